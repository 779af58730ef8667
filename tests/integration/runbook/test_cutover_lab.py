"""The whole cutover night on the lab, under the real scheduler, gates answered through the REST API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from leak_check import LeakPatient, assert_no_leak, night_bytes  # type: ignore[import-not-found]

from bascule.hooks import evidence
from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration


@pytest.fixture()
def plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


@pytest.fixture()
def night(fresh_lab: Any, airflow_stack: Any, plan: Any, tmp_path: Path) -> Any:
    from bascule_lab.scenario import LabCutover, start_forward_replication

    # A patient whose values exist nowhere else, on the source before the initial load (leak_check.py).
    patient = LeakPatient()
    patient.insert(fresh_lab)
    start_forward_replication(plan)
    cutover = LabCutover(lab=fresh_lab, stack=airflow_stack, plan=plan, workdir=tmp_path)
    cutover.leak_patient = patient  # type: ignore[attr-defined]
    return cutover


def _reading(plan: Any, direction: str) -> Any:
    from bascule.replication.factory import replication_from_plan

    repl = replication_from_plan(plan, direction)
    try:
        return repl.reading()
    finally:
        repl.close()


def _flows(lab: Any) -> dict[str, set[str]]:
    """Subscriptions on each side and slots on each side: what a finished night must leave."""
    out: dict[str, set[str]] = {}
    for cluster in ("legacy", "new"):
        with lab.connect(cluster, "clinic") as conn:
            out[f"{cluster}_subscriptions"] = {r[0] for r in conn.execute("SELECT subname FROM pg_subscription")}
            out[f"{cluster}_slots"] = {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots")
                                       if r[0].startswith("bascule_sub")}
    return out


# Checked for privileges like any insert, and writes no row.
NO_ROW = ("INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) "
          "SELECT 1, 'T', 1, 'u', now() WHERE false")


def _target_refuses_the_application(lab: Any) -> bool:
    """A write on the target as the application, straight to the cluster (no endpoint): refused?"""
    import psycopg

    with psycopg.connect(lab.dsn("new", "clinic_app"), autocommit=True, connect_timeout=5) as app:
        try:
            app.execute(NO_ROW)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def _no_canary(*texts: str) -> None:
    blob = "\n".join(texts)
    leaked = [c for c in CANARY_STRINGS if c in blob]
    assert not leaked, f"canary values leaked: {leaked}"


def _no_lost_update_or_resurrected_delete(writes: dict[str, Any]) -> None:
    """The night's writes changed rows too, and every acknowledged update and delete holds."""
    assert writes["updates"] > 0 and writes["deletes"] > 0, writes
    assert writes["lost_updates"] == 0 and writes["resurrected_deletes"] == 0, writes


@pytest.fixture()
def watch_on(night: Any) -> Iterator[Any]:
    """post_go_live unpaused before the night, as on a real one (a paused DAG is not queued by an Asset event);
    paused again after, so that the session's other nights that go live start no watch."""
    ops = night.client("bascule_ops")
    ops.wait_for_dag("post_go_live")
    ops.unpause("post_go_live")
    try:
        yield ops
    finally:
        ops.pause("post_go_live")


def test_go_go_moves_the_application_to_the_target(night: Any, plan: Any, slack_capture: Any, watch_on: Any,
                                                  airflow_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule_lab.gates.client import AirflowApiError

    refused: list[int] = []

    def outsider_tries(gate_id: str, run_id: str) -> None:
        # Only the plan's assigned users may answer: bascule_ops is assigned to no gate.
        try:
            night.client("bascule_ops").answer("cutover", run_id, f"gate_{gate_id}", option="GO")
        except AirflowApiError as exc:
            refused.append(exc.status)

    result = night.run(before_gate=outsider_tries)
    # The rollback window runs from go-live: its watch started by itself on the night's went_live event, and
    # reads while this night is checked.
    watch = _watch_started_by_the_night(night, result)

    assert result.state == "success", result.tasks
    assert refused == [403, 403]
    assert result.tasks["open_target_writes"] == "success"
    assert result.tasks["rollback"] == "skipped" and result.tasks["rollback_on_failure"] == "skipped"
    assert result.endpoint_side == "new"
    assert result.writes["acked"] > 0 and result.writes["lost"] == 0, result.writes
    assert result.simulator["write_rate_before_freeze"] > 0, result.simulator
    _no_lost_update_or_resurrected_delete(result.writes)
    report = result.report
    assert report is not None and report["outcome"] == "completed"
    # The report's writes: each kind's rate before the freeze, and the simulator's check when the report asked.
    writes = report["writes"]
    assert all(writes["write_rates_before_freeze"][k] > 0 for k in ("insert", "update", "delete")), writes
    assert writes["check"] == "done", writes
    assert (writes["lost_writes"], writes["lost_updates"], writes["resurrected_deletes"]) == (0, 0, 0), writes
    assert report["downtime_s"] > 0 and report["work_s"] > 0
    bounds = report["downtime_bounds"]
    assert bounds["start_event"] == "before the REVOKE of clinic_app's write rights on the source", bounds
    assert bounds["end_event"] == "probe write committed as clinic_app through the endpoint on the target", bounds
    assert (bounds["start"], bounds["end"]) == (report["frozen_at"], report["downtime_end"])
    assert not _target_refuses_the_application(night.lab), "GO LIVE opened the target"
    assert report["validation"]["ok"] and report["validation"]["differences"] == 0
    # The suites ran in full at T-minus; in the window only on the rows changed since (ADR 0061).
    suites = report["validation"]["suites"]
    assert {s["run"] for s in suites} == {"delta"} and all(s["success"] for s in suites), suites
    assert sum(s["rows_in_scope"] for s in suites) > 0, suites
    assert {d["gate"]: d["decision"] for d in report["decisions"]} == {"go_for_freeze": "GO", "go_live": "GO"}
    assert {d["by"] for d in report["decisions"]} <= set(plan.gate("go_live").assigned_users) | set(
        plan.gate("go_for_freeze").assigned_users)
    # Each gate recorded when it asked; GO LIVE asked during the downtime, so its wait is shown apart.
    assert all(d["asked_at"] and d["decision_s"] >= 0 for d in report["decisions"]), report["decisions"]
    go_live = next(d for d in report["decisions"] if d["gate"] == "go_live")
    assert 0 < report["decision_wait_s"] <= go_live["decision_s"] + 1e-3 <= report["overhead_s"] + 1e-3, report
    assert ObjectStoragePath(report["files"]["gantt_png"]).read_bytes()
    # The run's evidence is sealed: every step record, the chart and both decisions chain to the root the report
    # (fetched from the metadata database through the REST API) shows.
    monkeypatch.setenv("AIRFLOW__BASCULE__EVIDENCE_URL", report["evidence"]["store"])
    verdict = evidence.verify(plan.name, "cutover", result.run_id, expected_root=report["evidence"]["root"])
    assert verdict.ok and verdict.checked_decisions == 2 and verdict.checked_files > 10, verdict
    assert _reading(plan, "reverse").state.value == "streaming"
    # Forward replication is retired: no slot is left holding the source's WAL.
    flows = _flows(night.lab)
    assert result.tasks["retire_forward_replication"] == "success"
    assert flows["new_subscriptions"] == set() and flows["legacy_slots"] == set(), flows
    assert flows["legacy_subscriptions"] == {"bascule_sub_reverse"}, flows
    with night.lab.connect("new", "clinic") as conn:
        left = {r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'bascule_d%'")}
    assert left == set(), f"the window's delta slots hold the target's WAL: {left}"

    texts = [json.dumps(r) for r in slack_capture.records]
    assert texts, "the run posted to Slack"
    # Sent in the background, counted all the same, across each gate's park and resume.
    by_kind = report["notifications"]["by_kind"]
    assert by_kind["gate_waiting"]["delivered"] == 2 and by_kind["gate_decided"]["delivered"] == 2, by_kind
    assert by_kind["step_started"]["delivered"] == by_kind["step_finished"]["delivered"] > 10, by_kind
    _no_canary(json.dumps(report), *texts)
    # The weeks after: the same GO night's rollback window, watched then closed (before the leak check, which
    # then covers them too).
    _after_go_live(night, plan, result, slack_capture, watch)
    searched = assert_no_leak(night.leak_patient, night_bytes(night.lab, airflow_stack, night.workdir,
                                                              slack_capture))
    print(f"leak check, GO night: {searched}")


def _posted_since(slack_capture: Any, before: int) -> list[dict[str, Any]]:
    return [r for r in slack_capture.records[before:] if r["api_method"] == "chat.postMessage"]


def _run_monitor(night: Any) -> dict[str, Any]:
    """One run of the scheduled replication_monitor, under the scheduler; paused again after it."""
    ops = night.client("bascule_ops")
    ops.wait_for_dag("replication_monitor")
    run_id = ops.trigger("replication_monitor")
    ops.unpause("replication_monitor")
    try:
        assert ops.wait_for_run("replication_monitor", run_id, timeout=180) == "success"
    finally:
        ops.pause("replication_monitor")
    return ops.xcom("replication_monitor", run_id, "record_lag")


def _events_of(night: Any, run_id: str) -> list[dict[str, Any]]:
    """The Asset events a cutover run emitted (the night's went_live event is the only one a lab night can)."""
    return night.client("bascule_ops")._call("GET", "/api/v2/assets/events", params={
        "source_dag_id": "cutover", "source_run_id": run_id})["asset_events"]


def _watch_started_by_the_night(night: Any, result: Any) -> tuple[str, float]:
    """The post_go_live run the night's went_live Asset event created: asset-triggered (no one triggered it), the
    latest event it consumed this night's report's."""
    import time

    ops = night.client("bascule_ops")
    deadline = time.monotonic() + 120
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = ops._call("GET", "/api/v2/dags/post_go_live/dagRuns",
                         params={"run_type": "asset_triggered", "order_by": "-run_after"})["dag_runs"]
        if runs:
            break
        time.sleep(0.5)
    assert len(runs) == 1, f"one watch started by the night's event, got {runs}"
    run = runs[0]
    assert run["run_type"] == "asset_triggered" and run["triggered_by"] == "asset", run
    consumed = ops._call("GET", f"/api/v2/dags/post_go_live/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    events = sorted(consumed["asset_events"], key=lambda e: e["timestamp"])
    # Every event the run consumed is a night's report's (earlier GO nights of the session, while the DAG was
    # paused, count too: Airflow hands a first run every event since the DAG was scheduled on the Asset); the
    # latest, which the watch follows, is this night's.
    assert events and {(e["source_dag_id"], e["source_task_id"]) for e in events} == {("cutover", "report")}, events
    latest = events[-1]
    assert (latest["source_run_id"], latest["extra"]["run_id"]) == (result.run_id, result.run_id), events
    assert latest["extra"]["outcome"] == "completed" and latest["extra"]["plan"] == "lab", events
    return str(run["dag_run_id"]), time.monotonic()


def _after_go_live(night: Any, plan: Any, result: Any, slack_capture: Any, watch: tuple[str, float]) -> None:
    """ADR 0057: replication_monitor stays quiet about the forward flow the night retired; post_go_live watches
    reverse replication to the end of the plan's rollback window, its gate retires it, the migration closes."""
    import time

    from bascule.today import parse_instant
    from bascule_lab.gates.auto import answer_gates

    phase = time.monotonic()
    before = len(slack_capture.records)
    monitored = _run_monitor(night)
    assert monitored["alert"] is None and monitored["samples"] == 0, monitored
    assert monitored["quiet"].startswith(f"retired on purpose by cutover run {result.run_id} at "), monitored
    assert _posted_since(slack_capture, before) == [], "the monitor said something about the retired flow"

    ops = night.client("bascule_ops")
    run_id, started = watch
    ops.wait_for_gate("post_go_live", run_id, "gate_close_rollback_window", timeout=300)
    watched_s = time.monotonic() - started
    answer_gates(plan, client_for=night.client, dag_id="post_go_live", run_id=run_id,
                 decisions={"close_rollback_window": "GO"})
    assert ops.wait_for_run("post_go_live", run_id, timeout=300) == "success"
    tasks = {ti["task_id"]: str(ti["state"]) for ti in ops.task_instances("post_go_live", run_id)}
    assert tasks == {"watch_reverse_replication": "success", "gate_close_rollback_window": "success",
                     "retire_reverse_replication": "success", "keep_rollback_window": "skipped",
                     "close_migration": "success"}, tasks
    # Watched reading after reading (reschedule mode) until the window's end, each reading in the target's history.
    with night.lab.connect("new", "clinic") as conn:
        readings = conn.execute("SELECT count(*), count(*) FILTER (WHERE state = 'streaming') FROM "
                                "bascule_meta.replication_history WHERE direction = 'reverse' AND dag_run_id = %s",
                                (run_id,)).fetchone()
    assert readings[0] >= 2 and readings[0] == readings[1], readings
    watched = ops.xcom("post_go_live", run_id, "watch_reverse_replication")
    assert watched["night"] == result.run_id and watched["state"] == "streaming", watched
    assert watched["window_s"] == plan.cutover.rollback_window
    assert parse_instant(watched["window_start"]) == parse_instant(result.report["downtime_end"]), watched
    closing = ops.xcom("post_go_live", run_id, "close_migration")
    assert closing["closed"] is True and closing["retired"] == {"reverse_replication": "dropped",
                                                                "source": "retired"}, closing
    assert closing["decision"]["decision"] == "GO" and closing["decision"]["by"] in plan.gate(
        "close_rollback_window").assigned_users, closing
    assert json.loads(ObjectStoragePath(closing["file"]).read_text())["night"] == result.run_id
    # Nothing flows any more between the two databases, and no slot holds WAL on either side.
    flows = _flows(night.lab)
    assert flows == {"legacy_subscriptions": set(), "legacy_slots": set(), "new_subscriptions": set(),
                     "new_slots": set()}, flows
    # The closing is said in the night's own thread.
    thread = result.report["slack_thread"]
    in_thread = [r for r in _posted_since(slack_capture, before) if r["body"].get("thread_ts") == thread["ts"]]
    assert any("close_rollback_window" in json.dumps(r["body"]) for r in in_thread), in_thread
    # The old source's part is over: the rollback DAG refuses before anything moves.
    ops.unpause("rollback")
    fallback = ops.trigger("rollback")
    assert ops.wait_for_run("rollback", fallback, timeout=180) == "failed"
    refused = {ti["task_id"]: str(ti["state"]) for ti in ops.task_instances("rollback", fallback)}
    assert refused["check_reverse_replication"] == "failed" and refused["freeze_target"] in (
        "upstream_failed", "skipped"), refused
    assert "the rollback window is closed" in ops.task_log("rollback", fallback, "check_reverse_replication")
    # Both flows retired on purpose: the monitor stays quiet.
    before = len(slack_capture.records)
    assert _run_monitor(night)["samples"] == 0
    assert _posted_since(slack_capture, before) == []
    print(f"post-go-live: rollback window of {plan.cutover.rollback_window:.0f} s watched ({readings[0]} readings), "
          f"gate asked {watched_s:.1f} s after the night's end; closing {closing['file']}; phase {time.monotonic() - phase:.1f} s")


def test_no_go_at_go_live_rolls_back_without_losing_a_write(night: Any, plan: Any) -> None:
    refused: dict[str, bool] = {}

    def write_to_the_target(gate_id: str, run_id: str) -> None:
        refused[gate_id] = _target_refuses_the_application(night.lab)

    result = night.run(decisions={"go_for_freeze": "GO", "go_live": "NO-GO"}, before_gate=write_to_the_target)

    assert result.state == "success", result.tasks
    # The target refused the application from T-minus until the end of the night, and after the rollback.
    assert refused == {"go_for_freeze": True, "go_live": True}
    assert _target_refuses_the_application(night.lab), "the rollback left the target closed"
    assert result.report["downtime_bounds"]["end_event"] == (
        "probe write committed as clinic_app through the endpoint on the source")
    assert result.tasks["rollback"] == "success"
    assert result.tasks["open_target_writes"] == "skipped"
    assert result.endpoint_side == "legacy"
    assert result.writes["acked"] > 0 and result.writes["lost"] == 0, result.writes
    _no_lost_update_or_resurrected_delete(result.writes)
    assert result.report is not None and result.report["outcome"] == "rolled_back"
    assert {d["gate"]: d["decision"] for d in result.report["decisions"]}["go_live"] == "NO-GO"
    assert _events_of(night, result.run_id) == [], "a rolled-back night starts no rollback window's watch"
    assert _reading(plan, "forward").state.value == "streaming", "forward replication runs again"
    flows = _flows(night.lab)
    assert flows["legacy_subscriptions"] == set() and flows["new_slots"] == set(), \
        f"the reverse replication prepared for GO LIVE is dropped: {flows}"


def test_a_difference_found_after_the_freeze_rolls_back(night: Any, plan: Any, fresh_lab: Any, airflow_stack: Any,
                                                        slack_capture: Any) -> None:
    def plant_a_difference(gate_id: str, run_id: str) -> None:
        if gate_id == "go_for_freeze":
            # A write that reaches only the target, on the leak patient's own row, after T-minus: the final
            # comparison must catch it, and report it without any of the row's values.
            night.leak_patient.change_on_target(fresh_lab)

    result = night.run(decisions={"go_for_freeze": "GO", "go_live": "GO"}, before_gate=plant_a_difference)

    assert result.state == "failed", result.tasks
    assert result.tasks["final_validation"] == "failed"
    assert result.tasks["rollback_on_failure"] == "success"
    assert result.tasks["open_target_writes"] in ("upstream_failed", "skipped")
    assert result.endpoint_side == "legacy"
    assert result.writes["lost"] == 0, result.writes
    _no_lost_update_or_resurrected_delete(result.writes)
    assert result.report is not None and result.report["outcome"] == "rolled_back"
    assert _reading(plan, "forward").state.value == "streaming"
    searched = assert_no_leak(night.leak_patient, night_bytes(night.lab, airflow_stack, night.workdir,
                                                              slack_capture))
    print(f"leak check, rolled-back night: {searched}")


def test_no_go_for_freeze_changes_nothing(night: Any, plan: Any, fresh_lab: Any) -> None:
    with fresh_lab.connect("legacy", "clinic") as conn:
        grants_before = conn.execute("SELECT count(*) FROM information_schema.role_table_grants "
                                     "WHERE grantee = 'clinic_app'").fetchone()[0]
    # Run as a rehearsal: every step works on the plan's rehearsal environment, never on its own connections.
    result = night.run(decisions={"go_for_freeze": "NO-GO"}, simulate=False, conf={"rehearsal": True})

    assert result.state == "success", result.tasks
    assert result.report is not None and result.report["rehearsal"] is True
    assert result.report["environment"] == {"rehearsal": True, "source": "bascule_rehearsal_legacy",
                                            "target": "bascule_rehearsal_new"}
    assert result.tasks["abort_before_freeze"] == "success"
    assert result.tasks["freeze_source"] == "skipped"
    assert _events_of(night, result.run_id) == [], "a rehearsal starts no rollback window's watch"
    assert result.endpoint_side == "legacy"
    with fresh_lab.connect("legacy", "clinic") as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.role_table_grants "
                            "WHERE grantee = 'clinic_app'").fetchone()[0] == grants_before
    assert _reading(plan, "forward").state.value == "streaming"
    assert result.report is not None and result.report["outcome"] == "aborted"
