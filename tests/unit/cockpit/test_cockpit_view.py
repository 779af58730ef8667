"""The migration view: every route asks for a login, and the night's figures come from stored rows only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from bascule.cockpit import data
from bascule.cockpit.app import app
from bascule.runbook.actions import CUTOVER
from bascule.runbook.context import DECISION_XCOM_KEY, REPORT_XCOM_KEY, STEP_XCOM_KEY

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def at(s: float) -> str:
    return (T0 + timedelta(seconds=s)).isoformat()


def test_every_route_answers_401_without_a_login() -> None:
    from airflow.api_fastapi.app import init_auth_manager

    init_auth_manager()  # the deployment's (here Airflow's default, the simple auth manager)
    client = TestClient(app)
    paths = [r.path for r in app.routes if getattr(r, "methods", None)]
    assert {"/", "/assets/{name}", "/api/runs", "/api/night/{dag_id}/{run_id}", "/api/preparation",
            "/api/validation/{dag_id}/{run_id}", "/api/after/{dag_id}/{run_id}",
            "/api/timeline/{dag_id}/{run_id}", "/api/readiness/{run_id}"} <= set(paths)
    for path in paths:
        url = path.replace("{name}", "cockpit.js").replace("{dag_id}", "cutover").replace("{run_id}", "r1")
        response = client.get(url)
        assert response.status_code == 401, (url, response.status_code)
        assert "bascule" not in response.text.lower() or "not authenticated" in response.text.lower()
        forged = client.get(url, cookies={"_token": "forged"})
        assert forged.status_code in (401, 403), (url, forged.status_code)


def test_the_page_loads_nothing_from_outside() -> None:
    from importlib import resources

    static = resources.files("bascule.cockpit").joinpath("static")
    for name in ("index.html", "cockpit.js", "cockpit.css"):
        body = static.joinpath(name).read_text()
        assert "http://" not in body and "https://" not in body and "//cdn" not in body, name


def _rows(*, frozen: bool, waiting: bool, done: bool) -> data.RunRows:
    tasks = [data.TaskRow("tminus_checks", "success", hostname="worker-1"),
             data.TaskRow("gate_go_for_freeze", "success")]
    xcoms: dict = {"tminus_checks": {STEP_XCOM_KEY: {
        "step": "tminus_checks", "started_at": at(-60), "ended_at": at(-40), "seconds": 20.0,
        "result": {"replication": {"state": "streaming", "lag_seconds": 0.4, "lag_bytes": 120,
                                   "details": {"drain_eta_s": 3.0}, "observed_at": at(-41)}}}},
        "gate_go_for_freeze": {DECISION_XCOM_KEY: {"gate": "go_for_freeze", "decision": "GO", "by": "cm",
                                                    "at": at(-1)}}}
    if frozen:
        tasks.append(data.TaskRow("freeze_source", "success", hostname="worker-2"))
        xcoms["freeze_source"] = {STEP_XCOM_KEY: {"step": "freeze_source", "started_at": at(-0.5),
                                                  "ended_at": at(0.2), "seconds": 0.7,
                                                  "result": {"frozen_at": at(0)}}}
    gates = []
    if waiting:
        tasks.append(data.TaskRow("gate_go_live", "awaiting_input", start_date=T0 + timedelta(seconds=20)))
        gates.append(data.GateRow("gate_go_live", "GO LIVE?", [{"id": "dba", "name": "dba"}],
                                  T0 + timedelta(seconds=20), False))
    if done:
        xcoms["report"] = {REPORT_XCOM_KEY: {"outcome": "completed", "evidence": {"root": "ab" * 32},
                                             "writes": {"acked": 10, "refused": 3}}}
    return data.RunRows("cutover", "r1", "success" if done else "running", T0 - timedelta(seconds=70), None,
                        tasks, xcoms, gates)


class Plan:
    name = "lab"
    budget_seconds = 600.0


def test_the_clock_counts_from_the_freeze_against_the_budget_and_the_rehearsal() -> None:
    previous = {"run_id": "rehearsal-1", "frozen_at": at(-1000), "downtime_end": at(-940), "downtime_s": 60.0,
                "steps": [{"step": "gate_go_live", "ended_at": at(-950), "actual_s": 5.0}]}
    n = data.night(_rows(frozen=True, waiting=True, done=False), runbook=CUTOVER, plan=Plan(),
                   now=T0 + timedelta(seconds=30), base_url="http://af:8080", previous_report=previous)
    assert n["active"] and n["clock"]["elapsed_s"] == 30.0 and n["clock"]["budget_s"] == 600.0
    assert n["clock"]["budget_used_pct"] == 5.0 and n["clock"]["running"]
    # The gate has waited 10 s of its rehearsed 5 s: nothing of it left, then the rehearsal's 10 s after it.
    assert n["clock"]["forecast_s"] == 40.0 and n["clock"]["forecast_basis"] == "rehearsal-1"
    (gate,) = n["gates"]
    assert gate["waiting"] and gate["who"] == ["dba"] and gate["waited_s"] == 10.0
    assert gate["url"] == "http://af:8080/dags/cutover/runs/r1/tasks/gate_go_live/required_actions"
    assert [s["task_id"] for s in n["current"]] == ["gate_go_live"]
    assert n["lag"]["lag_seconds"] == 0.4 and n["lag"]["drain_eta_s"] == 3.0
    assert [g["task_id"] for g in n["gantt"]] == ["tminus_checks", "freeze_source", "gate_go_live"]
    assert n["gantt"][-1]["open"] and n["workers"] == ["worker-1", "worker-2"]
    assert n["outcome"] is None and n["writes"] is None


def test_before_the_freeze_there_is_no_clock_and_after_the_report_the_outcome_shows() -> None:
    before = data.night(_rows(frozen=False, waiting=False, done=False), runbook=CUTOVER, plan=Plan(),
                        now=T0, base_url="")
    assert before["clock"]["elapsed_s"] is None and before["clock"]["forecast_s"] is None
    after = data.night(_rows(frozen=True, waiting=False, done=True), runbook=CUTOVER, plan=Plan(), now=T0,
                       base_url="")
    assert after["outcome"] == "completed" and after["evidence_root"] == "ab" * 32 and not after["active"]
    assert after["writes"] == {"acked": 10, "refused": 3}
    assert after["decisions"] == [{"gate": "go_for_freeze", "decision": "GO", "by": "cm", "at": at(-1)}]


def test_validation_lists_each_table_with_its_differences_by_kind() -> None:
    doc = {"kind": "incremental", "tables": [
        {"table": "clinic.patients", "status": "different", "rows_compared": 100, "ranges": 4,
         "ranges_differing": 1, "counts": {"missing_on_target": 1, "changed": 0}, "keys_hashed": True,
         "keys": {"missing_on_target": ["9f2c"], "changed": []}, "differences": 1},
        {"table": "clinic.encounters", "status": "equal", "rows_compared": 200, "ranges": 8, "counts": {}}]}
    rows = _rows(frozen=False, waiting=False, done=False)
    # A step's result may carry a summary that only counts its tables: not a comparison, skipped.
    rows.xcoms["final_validation"] = {STEP_XCOM_KEY: {"result": {"validation": {"ok": True, "tables": 4}}}}
    v = data.validation(rows, [doc, {"tables": 4}])
    patients = next(t for t in v["tables"] if t["table"] == "clinic.patients")
    assert not patients["ok"] and patients["checks"][0]["keys"] == {"missing_on_target": ["9f2c"]}
    assert patients["checks"][0]["by_kind"]["missing_on_target"] == 1 and patients["checks"][0]["keys_hashed"]
    assert next(t for t in v["tables"] if t["table"] == "clinic.encounters")["ok"]


def test_a_dag_that_is_not_a_runbook_is_named() -> None:
    with pytest.raises(KeyError, match="'validate' is not a bascule runbook"):
        data.runbook_for("validate")


def test_the_drain_in_the_freezes_task_is_a_row_of_its_own() -> None:
    from bascule.runbook.context import DRAIN_TIMING_XCOM_KEY

    rows = _rows(frozen=True, waiting=False, done=False)
    (freeze,) = [t for t in rows.tasks if t.task_id == "freeze_source"]
    rows.tasks[rows.tasks.index(freeze)] = data.TaskRow("freeze_source", "running", hostname="worker-2")
    n = data.night(rows, runbook=CUTOVER, plan=Plan(), now=T0 + timedelta(seconds=1), base_url="http://af:8080")
    by_step = {s["step"]: s for s in n["steps"]}
    # Frozen, not yet drained: the freeze's step is done, the drain runs in the same task.
    assert by_step["freeze_source"]["state"] == "success" and by_step["drain"]["state"] == "running"
    assert by_step["drain"]["task_id"] == "freeze_source" and by_step["drain"]["kind"] == "drain"
    assert [s["step"] for s in n["current"]] == ["drain"] and by_step["drain"]["started_at"] == at(0.2)
    rows.xcoms["freeze_source"][DRAIN_TIMING_XCOM_KEY] = {"step": "drain", "started_at": at(0.21),
                                                          "ended_at": at(0.4), "seconds": 0.19}
    rows.tasks[rows.tasks.index(data.TaskRow("freeze_source", "running", hostname="worker-2"))] = \
        data.TaskRow("freeze_source", "success", hostname="worker-2")
    n = data.night(rows, runbook=CUTOVER, plan=Plan(), now=T0 + timedelta(seconds=2), base_url="http://af:8080")
    by_step = {s["step"]: s for s in n["steps"]}
    assert by_step["drain"]["state"] == "success" and by_step["drain"]["seconds"] == 0.19
    assert "drain" in [g["step"] for g in n["gantt"]] and n["current"] == []
