"""Fixtures of the cutover block tests: hooks on the lab and a guaranteed way back.

A freeze sets NOLOGIN on a cluster-wide role and pauses the lab's PgBouncer; a
failing test must not leave either behind for the next test (a lab reset
recreates the database, not the role or the pooler's state).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cutover_lab_helpers import LAB_ALLOWED_WRITERS, lab_endpoint, restore_lab_endpoint_and_roles


@pytest.fixture()
def cutover_lab(fresh_lab: Any) -> Iterator[Any]:
    restore_lab_endpoint_and_roles(fresh_lab)
    yield fresh_lab
    restore_lab_endpoint_and_roles(fresh_lab)


@pytest.fixture()
def endpoint(cutover_lab: Any) -> Any:
    return lab_endpoint()


@pytest.fixture()
def source_db(cutover_lab: Any) -> Any:
    from bascule.hooks.cutover import CutoverDatabaseHook

    return CutoverDatabaseHook(db_conn_id="bascule_legacy", engine="postgres", allowed_writers=LAB_ALLOWED_WRITERS)


@pytest.fixture()
def target_db(cutover_lab: Any) -> Any:
    from bascule.hooks.cutover import CutoverDatabaseHook

    return CutoverDatabaseHook(db_conn_id="bascule_new", engine="postgres", allowed_writers=LAB_ALLOWED_WRITERS)
