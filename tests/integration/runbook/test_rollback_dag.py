"""Falling back after go-live, on the lab, under the real scheduler, the gate answered through the REST API.

A GO cutover leaves the application live on the target with reverse replication
streaming; the simulator keeps writing through PgBouncer on the target, then
through the fallback: every write it saw acknowledged, in both phases, must be
on the source the endpoint points to afterwards.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration

DAG_ID = "rollback"
GATE_SETTLE_S = 8.0


@pytest.fixture()
def plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


def _drop_replication(plan: Any) -> None:
    from bascule_lab.testing.replication import drop_both_directions

    drop_both_directions(plan)


@pytest.fixture()
def night(fresh_lab: Any, airflow_stack: Any, plan: Any, tmp_path: Path) -> Iterator[Any]:
    from bascule_lab.pgbouncer import LabPgBouncer
    from bascule_lab.scenario import LabCutover, start_forward_replication

    start_forward_replication(plan)
    yield LabCutover(lab=fresh_lab, stack=airflow_stack, plan=plan, workdir=tmp_path)
    # The stack and the lab are shared by the session: leave no flow, freeze or pause behind.
    _drop_replication(plan)
    for cluster in ("legacy", "new"):
        with fresh_lab.connect(cluster) as conn:
            conn.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
    LabPgBouncer(fresh_lab).reset()


def _settle(night: Any, dag_id: str, run_id: str, task_id: str) -> None:
    # Airflow 3.3 fails a gate try answered before the scheduler has seen its parking worker exit
    # ("finished with state success, but the task instance's state attribute is running"); the gate's
    # retry recovers, but on a loaded 2-core machine that exit took 5.5 s: answer after it, as a person would.
    night.client("bascule_ops").wait_for_gate(dag_id, run_id, task_id, settle=GATE_SETTLE_S)


def _report(night: Any, run_id: str) -> dict[str, Any]:
    entry = night.client("bascule_ops")._call(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/cutover_report",
        params={"deserialize": "true"})
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def _sequences(lab: Any, cluster: str) -> dict[str, int | None]:
    with lab.connect(cluster, "clinic") as conn:
        return dict(conn.execute("SELECT sequencename, last_value FROM pg_sequences "
                                 "WHERE schemaname = 'clinic' ORDER BY 1").fetchall())


def test_rollback_after_go_live_loses_no_write(night: Any, plan: Any, fresh_lab: Any, tmp_path: Path,
                                               slack_capture: Any) -> None:
    from bascule.replication.factory import replication_from_plan
    from bascule.runbook.actions import endpoint_switch
    from bascule_lab import simulator
    from bascule_lab.gates.auto import answer_gates
    from bascule_lab.pgbouncer import LabPgBouncer

    cutover = night.run(before_gate=lambda gate_id, run_id: _settle(night, "cutover", run_id, f"gate_{gate_id}"))
    assert cutover.state == "success", cutover.tasks
    assert cutover.endpoint_side == "new" and cutover.writes["lost"] == 0, cutover.writes
    assert cutover.writes["lost_updates"] == 0 and cutover.writes["resurrected_deletes"] == 0, cutover.writes
    (cutover_ledger,) = tmp_path.glob("ledger-*.csv")

    pgbouncer = LabPgBouncer(fresh_lab)
    ledger = tmp_path / "fallback-ledger.csv"
    proc = simulator.start_background(dsn=pgbouncer.app_dsn(), ledger=ledger, sessions=4, rate=100.0,
                                      log=tmp_path / "fallback-simulator.log")
    ops = night.client("bascule_ops")
    try:
        time.sleep(4)  # the application live on the target: writes that only reverse replication carries back
        ops.wait_for_dag(DAG_ID)
        ops.unpause(DAG_ID)
        run_id = f"lab__fallback_{time.time_ns()}"
        simulator.attach_to_run(night.stack.simulator_dir, run_id, ledger)
        run_id = ops.trigger(DAG_ID, run_id=run_id)
        _settle(night, DAG_ID, run_id, "gate_fallback")
        answer_gates(plan, client_for=night.client, dag_id=DAG_ID, run_id=run_id, decisions={"fallback": "GO"})
        state = ops.wait_for_run(DAG_ID, run_id, timeout=600)
        time.sleep(2)  # writes after the fallback, on the source
    finally:
        stats = simulator.stop_background(proc, ledger)
    tasks = {ti["task_id"]: str(ti["state"]) for ti in ops.task_instances(DAG_ID, run_id)}

    assert state == "success", tasks
    assert tasks["switch_back"] == "success" and tasks["fallback_smoke_tests"] == "success"
    assert tasks["undo_fallback"] == "skipped" and tasks["abort_fallback"] == "skipped"

    assert pgbouncer.points_to() == "legacy"
    assert endpoint_switch(plan).state().as_dict() == {"side": "source", "paused": False}

    # Every acknowledged write, before the cutover, on the target, and after the fallback, is on the source.
    before = simulator.verify(cutover_ledger, pgbouncer.app_dsn())
    during = simulator.verify(ledger, pgbouncer.app_dsn())
    assert before.acked > 0 and before.lost == 0, before.as_dict()
    assert during.acked > 0 and during.lost == 0, during.as_dict()
    # Updated and deleted rows too: their last acknowledged state, on the target or after, is on the source.
    for checked in (before, during):
        assert checked.updates > 0 and checked.deletes > 0, checked.as_dict()
        assert checked.lost_updates == 0 and checked.resurrected_deletes == 0, checked.as_dict()
    assert stats.as_dict()["acked"] > 0

    source, target = _sequences(fresh_lab, "legacy"), _sequences(fresh_lab, "new")
    assert set(source) == set(target)
    for name, value in target.items():
        if value is not None:
            assert source[name] is not None and source[name] > value, (name, source[name], value)

    with fresh_lab.connect("new", "clinic") as conn:
        assert conn.execute("SELECT count(*) FROM bascule_meta.freeze_state "
                            "WHERE role_name = 'clinic_app' AND released_at IS NULL").fetchone()[0] == 1, \
            "the target stays frozen"
    reverse = replication_from_plan(plan, "reverse", expect_running=False)
    try:
        assert reverse.subscription_facts()[0] is False, "reverse replication stopped"
    finally:
        reverse.close()

    report = _report(night, run_id)
    assert report["outcome"] == "rolled_back"
    assert report["downtime_s"] > 0 and report["work_s"] > 0
    assert report["downtime_bounds"]["start_event"] == "before the REVOKE of clinic_app's write rights on the target"
    assert report["downtime_bounds"]["end_event"] == (
        "probe write committed as clinic_app through the endpoint on the source")
    assert [(d["gate"], d["decision"], d["by"]) for d in report["decisions"]] == [
        ("fallback", "GO", plan.gate("fallback").assigned_users[0])]
    assert {s["step"] for s in report["steps"]} >= {"freeze_target", "drain", "stop_reverse_replication",
                                                     "fallback_fixups", "switch_back"}
    assert report["fallback"]["undone"] is False and report["fallback"]["sequences_advanced"] > 0
    assert report["writes"]["check"] == "done" and report["writes"]["lost_updates"] == 0, report["writes"]
    assert ObjectStoragePath(report["files"]["gantt_png"]).read_bytes()

    blob = "\n".join([json.dumps(report), *(json.dumps(r) for r in slack_capture.records),
                      ObjectStoragePath(report["files"]["summary"]).read_text()])
    leaked = [c for c in CANARY_STRINGS if c in blob]
    assert not leaked, f"canary values leaked: {leaked}"
