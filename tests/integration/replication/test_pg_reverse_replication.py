"""Reverse replication after go-live: the new release's schema back to the old one."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_reverse_replication_carries_writes_despite_release_only_columns(fresh_lab: Any,
                                                                         airflow_env: dict[str, str]) -> None:
    from bascule.replication.base import ReplicationState
    from bascule.replication.factory import replication_from_plan

    plan = _plan()
    forward = replication_from_plan(plan)
    forward.create_publication()
    forward.create_subscription(copy_data=True)
    _wait(lambda: forward.reading().state is ReplicationState.STREAMING)
    forward.disable()

    reverse = replication_from_plan(plan, "reverse")
    try:
        reverse.create_publication()
        # The target's patients carry release 2.0's preferred_language; the source has no such column.
        assert "preferred_language" not in reverse.common_columns(["clinic.patients"])["clinic.patients"]
        reverse.create_subscription(copy_data=False)
        _wait(lambda: reverse.reading().state is ReplicationState.STREAMING)
        with fresh_lab.connect("new", "clinic") as conn:
            conn.execute("SELECT setval('clinic.patients_patient_id_seq', 900000000)")
            (new_id,) = conn.execute(
                "INSERT INTO clinic.patients (mrn, nin, family_name, given_name, birth_date, sex, address_line, "
                "postcode, home_hospital_id, created_at, updated_at, preferred_language) "
                "SELECT 'MRNREVERSE01', 'ZX000001A', family_name, given_name, birth_date, sex, address_line, "
                "postcode, home_hospital_id, now(), now(), 'fr' FROM clinic.patients ORDER BY patient_id LIMIT 1 "
                "RETURNING patient_id"
            ).fetchone()
            conn.execute("UPDATE clinic.encounters SET triage_score = 3, ward = 'R2' "
                         "WHERE encounter_id = (SELECT min(encounter_id) FROM clinic.encounters)")
        with fresh_lab.connect("legacy", "clinic") as src:
            _wait(lambda: src.execute("SELECT count(*) FROM clinic.patients WHERE patient_id = %s",
                                      (new_id,)).fetchone()[0] == 1)
            _wait(lambda: src.execute("SELECT ward FROM clinic.encounters ORDER BY encounter_id LIMIT 1"
                                      ).fetchone()[0] == "R2")
        assert reverse.reading().state is ReplicationState.STREAMING
    finally:
        reverse.drop()
        reverse.close()
        forward.drop()
        forward.close()
