"""PostgreSQL logical replication on the real lab: initial load, lag, caught-up, breakage, DDL sync."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration

TABLES = ("hospitals", "staff", "patients", "encounters", "prescriptions", "observations", "clinical_notes",
          "audit_log")
KEYS = {"hospitals": "hospital_id", "staff": "staff_id", "patients": "patient_id", "encounters": "encounter_id",
        "prescriptions": "prescription_id", "observations": "observation_id", "clinical_notes": "note_id",
        "audit_log": "audit_id"}


def _plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


def _counts(lab: Any, cluster: str) -> dict[str, tuple[int, int | None]]:
    with lab.connect(cluster, "clinic") as conn:
        return {t: tuple(conn.execute(f"SELECT count(*), max({KEYS[t]}) FROM clinic.{t}").fetchone())
                for t in TABLES}


def _write_audit(lab: Any, rows: int, *, single_row_txns: bool = False) -> None:
    with lab.connect("legacy", "clinic") as conn:
        if single_row_txns:
            for _ in range(rows):
                conn.execute("INSERT INTO clinic.audit_log (logged_at, staff_id, action, object_type)"
                             " VALUES (now(), 1, 'view', 'test')")
        else:
            conn.execute("INSERT INTO clinic.audit_log (logged_at, staff_id, action, object_type)"
                         " SELECT now(), 1, 'view', 'test' FROM generate_series(1, %s)", (rows,))


async def _first_event(trigger: Any, timeout: float = 120.0) -> dict[str, Any]:
    agen = trigger.run()
    try:
        event = await asyncio.wait_for(agen.__anext__(), timeout)
        return event.payload
    finally:
        await agen.aclose()


def _wait_streaming(repl: Any, timeout: float = 120.0) -> Any:
    from bascule.replication.base import ReplicationState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = repl.reading()
        if reading.state is ReplicationState.STREAMING:
            return reading
        assert reading.state is not ReplicationState.BROKEN, reading.cause
        time.sleep(0.3)
    raise AssertionError(f"not streaming after {timeout} s: {reading.state} {reading.details}")


@pytest.fixture()
def replicating(fresh_lab: Any, airflow_env: dict[str, str]) -> Any:
    from bascule.replication.factory import replication_from_plan

    repl = replication_from_plan(_plan())
    repl.create_publication()
    repl.create_subscription(copy_data=True)
    _wait_streaming(repl)
    yield repl
    repl.close()


def _config() -> dict[str, Any]:
    from bascule.replication.factory import replication_config

    return replication_config(_plan())


def test_prerequisites_and_initial_load(fresh_lab: Any, airflow_env: dict[str, str]) -> None:
    from bascule.replication.factory import replication_from_plan

    repl = replication_from_plan(_plan())
    findings = repl.check_prerequisites()
    blocking = [f for f in findings if not f.ok and f.severity == "error"]
    assert not blocking, blocking
    checked = {f.subject for f in findings if f.check == "replica_identity"}
    assert {"clinic.patients", "clinic.audit_log"} <= checked

    assert _counts(fresh_lab, "new")["patients"][0] == 0, "the target starts empty"
    tables = repl.create_publication()
    assert repl.create_publication() == tables, "creating the publication twice is harmless"
    assert "bascule_meta.heartbeat" in tables and "clinic.audit_log" in tables
    assert not any(t.startswith("clinic.audit_log_y") for t in tables), "partitions go through their root"
    repl.create_subscription(copy_data=True)
    repl.create_subscription(copy_data=True)
    reading = _wait_streaming(repl)
    progress = repl.sync_progress()
    assert progress and all(p["state"] == "ready" for p in progress)
    assert _counts(fresh_lab, "new") == _counts(fresh_lab, "legacy")
    assert reading.source_position and reading.applied_position and reading.lag_bytes is not None
    json.dumps(reading.to_json())

    # Stop and resume keep the slot; dropping twice is harmless.
    repl.disable()
    repl.disable()
    _write_audit(fresh_lab, 50)
    assert repl.reading().cause == "subscription bascule_sub is disabled"
    repl.enable()
    _wait_streaming(repl)
    position = repl.source_position()
    deadline = time.monotonic() + 60
    while not repl.applied_through(position) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _counts(fresh_lab, "new") == _counts(fresh_lab, "legacy"), "nothing lost while disabled"
    repl.drop()
    repl.drop()
    with fresh_lab.connect("legacy", "clinic") as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone()[0] == 0
    repl.close()


def test_lag_sensor_sees_a_large_transaction_drain(replicating: Any, fresh_lab: Any) -> None:
    from bascule.triggers.replication import ReplicationLagTrigger

    _write_audit(fresh_lab, 150_000)
    behind = replicating.reading()
    assert behind.lag_bytes and behind.lag_bytes > 0, "the target is behind right after a large commit"
    trigger = ReplicationLagTrigger(replication_config=_config(), lag_threshold_s=0.5, stable_window_s=1.0,
                                    poll_interval_s=0.2)
    event = asyncio.run(_first_event(trigger))
    assert event["status"] == "success", event
    assert event["reading"]["state"] == "streaming"
    assert event["reading"]["lag_seconds"] <= 0.5
    assert _counts(fresh_lab, "new")["audit_log"] == _counts(fresh_lab, "legacy")["audit_log"]
    assert not [c for c in CANARY_STRINGS if c in json.dumps(event)]


def test_caught_up_sensor_waits_for_every_row_before_the_freeze(replicating: Any, fresh_lab: Any) -> None:
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    stop = threading.Event()

    def stream() -> None:
        with fresh_lab.connect("legacy", "clinic") as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at)"
                             " SELECT min(encounter_id), 'HR', 72, 'bpm', now() FROM clinic.encounters")

    writer = threading.Thread(target=stream)
    writer.start()
    time.sleep(1.5)
    stop.set()
    writer.join()
    _write_audit(fresh_lab, 120_000)  # the last write before the freeze is a large one
    frozen = replicating.source_position()
    assert not replicating.applied_through(frozen), "the target cannot have applied 120k rows yet"
    source = _counts(fresh_lab, "legacy")

    event = asyncio.run(_first_event(ReplicationCaughtUpTrigger(
        replication_config=_config(), position=frozen, poll_interval_s=0.1)))
    target = _counts(fresh_lab, "new")
    assert event["status"] == "success", event
    assert event["position"] == frozen
    assert target == source, "every row written before the freeze is on the target (counts and last keys)"


@pytest.mark.parametrize("how", ["disable_subscription", "terminate_walsender_and_drop_slot"])
def test_breaking_replication_fails_the_sensor_with_its_cause(replicating: Any, fresh_lab: Any, how: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from bascule.sensors.replication import ReplicationCaughtUpSensor
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    def break_it() -> None:
        time.sleep(1.0)
        if how == "disable_subscription":
            with fresh_lab.connect("new", "clinic") as conn:
                conn.execute("ALTER SUBSCRIPTION bascule_sub DISABLE")
            return
        with fresh_lab.connect("legacy", "clinic") as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                             " WHERE slot_name = 'bascule_sub' AND active_pid IS NOT NULL")
                try:
                    conn.execute("SELECT pg_drop_replication_slot('bascule_sub')")
                    return
                except Exception:
                    time.sleep(0.05)

    breaker = threading.Thread(target=break_it)
    breaker.start()
    # A position far ahead: only breakage can end this wait.
    event = asyncio.run(_first_event(ReplicationCaughtUpTrigger(
        replication_config=_config(), position="FF/0", poll_interval_s=0.2), timeout=60))
    breaker.join()
    assert event["status"] == "broken"
    expected = "is disabled" if how == "disable_subscription" else "replication slot bascule_sub does not exist"
    assert expected in event["cause"]

    sensor = ReplicationCaughtUpSensor(task_id="caught_up", replication_config=_config(), position="FF/0",
                                       timeout=3600)
    with pytest.raises(AirflowFailException, match=expected):
        sensor.execute_complete({}, event)


def test_partition_created_on_the_source_reaches_the_target(replicating: Any, fresh_lab: Any) -> None:
    from bascule.replication.ddl_sync import sync_schema_changes
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("CREATE TABLE clinic.audit_log_y2031m01 PARTITION OF clinic.audit_log"
                     " FOR VALUES FROM ('2031-01-01 00:00+00') TO ('2031-02-01 00:00+00')")
        conn.execute("CREATE INDEX observations_code_idx ON clinic.observations (code)")
    result = sync_schema_changes(replicating)
    assert result.missing_partitions == ["clinic.audit_log_y2031m01"]
    assert result.missing_indexes == ["clinic.observations_code_idx"]
    assert result.applied and result.refreshed
    again = sync_schema_changes(replicating)
    assert again.changes == 0, "a second sync finds nothing to do"

    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("INSERT INTO clinic.audit_log (logged_at, staff_id, action, object_type)"
                     " SELECT '2031-01-15 10:00+00', 1, 'view', 'test' FROM generate_series(1, 500)")
    frozen = replicating.source_position()
    event = asyncio.run(_first_event(ReplicationCaughtUpTrigger(replication_config=_config(), position=frozen,
                                                                poll_interval_s=0.2)))
    assert event["status"] == "success", event
    with fresh_lab.connect("new", "clinic") as conn:
        assert conn.execute("SELECT count(*) FROM clinic.audit_log_y2031m01").fetchone()[0] == 500
        assert conn.execute("SELECT to_regclass('clinic.observations_code_idx') IS NOT NULL").fetchone()[0]
