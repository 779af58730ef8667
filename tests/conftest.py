"""Shared fixtures: one Airflow home and one lab per test session.

Airflow reads its configuration when first imported, so the environment is set
here, at conftest import, before any test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bascule.paths import REPO_ROOT
from bascule_lab.airflow_env import airflow_env as _airflow_env
from bascule_lab.paths import lab_dir

TEST_PATIENTS = int(os.environ.get("BASCULE_TEST_PATIENTS", "2000"))
# Concurrent test runs on one machine (several developers, a bench) each need
# their own clusters: a reset in one would pull the rug from under the other.
TEST_LAB = os.environ.get("BASCULE_TEST_LAB", "test")

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bascule-airflow-"))
_CONNECTIONS = _AIRFLOW_HOME / "connections.json"
_CONNECTIONS.write_text("{}")
_ENV = _airflow_env(home=_AIRFLOW_HOME, connections_file=_CONNECTIONS)
os.environ.update(_ENV)


def _migrated_db_template() -> Path:
    """A migrated SQLite metadata DB, cached per Airflow version: migrating costs ~6 s."""
    import importlib.metadata

    version = importlib.metadata.version("apache-airflow-core")
    cached = REPO_ROOT / ".airflow" / "test-cache" / f"airflow-{version}.db"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **_ENV, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{cached}"}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                       capture_output=True, timeout=300)
    return cached


def _migrated(db: Path) -> bool:
    import sqlite3

    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'").fetchone()[0] == 1


@pytest.fixture(scope="session")
def airflow_env() -> dict[str, str]:
    """Airflow configured for this session, with a migrated metadata DB, for dag.test()."""
    db = _AIRFLOW_HOME / "airflow.db"
    # An earlier test's Airflow import may have opened the path before this fixture ran: SQLite then made
    # a database without Airflow's tables there.
    if not _migrated(db):
        shutil.copy(_migrated_db_template(), db)
        settings = sys.modules.get("airflow.settings")
        if settings is not None and getattr(settings, "engine", None) is not None:
            # Its pooled connections still see the file as it was.
            settings.dispose_orm()
            settings.configure_orm()
    return dict(_ENV)


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    """The real lab (legacy, new, control), seeded from a kept template.

    The test lab lives apart from the demo's so a test run never resets a demo.
    The clusters stop at the end of the session; their data stays, so the next
    session starts in seconds instead of re-seeding.
    """
    from bascule_lab.clusters import Lab, default_release_migration

    the_lab = Lab(lab_dir(purpose=TEST_LAB), echo=lambda line: print(line, file=sys.stderr))
    the_lab.up()
    try:
        the_lab.seed(patients=TEST_PATIENTS, release_migration=default_release_migration())
        shutil.copy(the_lab.connections_file, _CONNECTIONS)
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture()
def fresh_lab(lab: object) -> object:
    """The lab reset to its seeded state (source seeded, target schema only)."""
    lab.reset()  # type: ignore[attr-defined]
    return lab


@pytest.fixture(scope="session")
def slack_capture(lab: object) -> Iterator[object]:
    """A local Slack that records every call; the lab's `bascule_slack` connection points at it."""
    from bascule_lab.slack_capture import CaptureServer, route_slack

    with CaptureServer() as server:
        route_slack(_CONNECTIONS, server.api_url, token="xoxb-bascule-lab-capture")
        yield server


def _fresh_stack(lab: object, *, database: str, prefix: str, env_extra: dict[str, str] | None = None,
                 **stack_kwargs: object) -> Iterator[object]:
    """A real Airflow on its own metadata database in the lab's control cluster, recreated each session,
    so no run left over from an interrupted session holds the cutover's single active run."""
    from psycopg import sql

    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan
    from bascule_lab.airflow_stack import AirflowStack
    from bascule_lab.clusters import CONTROL
    from bascule_lab.scenario import gate_users

    with lab.connect(CONTROL) as conn:  # type: ignore[attr-defined]
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER airflow_meta").format(sql.Identifier(database)))
    url = lab.airflow_metadata_url().rsplit("/", 1)[0] + f"/{database}"  # type: ignore[attr-defined]
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = {**_airflow_env(home=home, connections_file=_CONNECTIONS, sql_alchemy_conn=url), **(env_extra or {})}
    stack = AirflowStack(home=home, env=env, users=gate_users(load_plan(LAB_PLAN)),
                         echo=lambda line: print(line, file=sys.stderr), **stack_kwargs)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def write_stack_plan(path: Path, extra: str = "") -> Path:
    """The lab plan, at ``path``, with ``extra`` YAML appended (a calendar): the plan the LocalExecutor stack's
    DAGs and workers read. Its release migration is named by its absolute path, so the copy loads anywhere."""
    import re

    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    migration = load_plan(LAB_PLAN).release_migration_path
    text = re.sub(r"(?m)^(\s+migration:).*$", lambda m: f"{m.group(1)} {migration}", LAB_PLAN.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text + extra)
    tmp.replace(path)  # whole, never half-written, for a worker that reads it meanwhile
    return path


@pytest.fixture(scope="session")
def airflow_stack(lab: object, slack_capture: object) -> Iterator[object]:
    """A real Airflow (api-server, scheduler, dag-processor, triggerer) on the lab's control cluster.

    Its plan is a copy of the lab plan (``stack.plan_file``), so that a test may give it a calendar for a while
    (tests/integration/runbook/test_rehearsals_and_calendar.py); rehearsal refreshes reset this session's lab."""
    from bascule_lab.clusters import AIRFLOW_DB

    plan_file = write_stack_plan(_AIRFLOW_HOME / "stack-plan" / "lab.yaml")
    for stack in _fresh_stack(lab, database=AIRFLOW_DB, prefix="bascule-stack-",
                              env_extra={"BASCULE_PLAN": str(plan_file), "BASCULE_LAB_PURPOSE": TEST_LAB}):
        stack.plan_file = plan_file  # type: ignore[attr-defined]
        stack.write_plan = lambda extra="": write_stack_plan(plan_file, extra)  # type: ignore[attr-defined]
        yield stack


@pytest.fixture(scope="session")
def shared_volume() -> Iterator[Path]:
    """The compose file's shared evidence volume, as a folder every worker and the API server see by URL."""
    folder = Path(tempfile.mkdtemp(prefix="bascule-evidence-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def celery_stack(lab: object, slack_capture: object, shared_volume: Path) -> Iterator[object]:
    """Airflow with the CeleryExecutor (ADR 0046): the four components, a local Redis and two Celery workers,
    on its own metadata database (the LocalExecutor stack may run beside it), evidence on ``shared_volume``.

    Per module, not per session: one module uses it, and an idle stack left running (a scheduler looping every
    0.1 s, a dag-processor re-parsing, two workers polling Redis) took CPU from every later night on 2 cores."""
    yield from _fresh_stack(lab, database="airflow_celery", prefix="bascule-celery-", executor="celery",
                            env_extra={"AIRFLOW__BASCULE__EVIDENCE_URL": f"file://{shared_volume}"})
