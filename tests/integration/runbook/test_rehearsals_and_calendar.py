"""The three months on a calendar, under the real scheduler (ADR 0048, 0058): the night refuses to start for real
until every milestone is recorded, fresh, and the last rehearsal is green; the rehearsal DAG runs twice on the
rehearsal environment (refreshed from the lab's templates first), the second comparing itself with the first.

One calendar for the whole module: the session's stack reads a copy of the lab plan, given a calendar here for
the module's duration and put back after (the lab plan itself has none, so that no other night is gated).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Two rehearsal nights, a refused night and a night stopped at its first gate: longer than the suite's 600 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

# Owners the lab's stack knows (the plan's gate users). Dates are those of a migration in 2027: in the future,
# so the rehearsal DAG's schedule (every 3 days from the first rehearsal) creates no run during the test.
CALENDAR = """
calendar:
  cutover: "2027-03-06T22:00:00+01:00"
  timezone: Europe/Paris
  milestones:
    platform_installed: {date: 2026-12-11, done: "new servers and PostgreSQL 15 in place", owner: cutover_manager}
    assessment_signed_off: {date: 2026-12-18, done: "pre-flight assessment signed off", owner: dba}
    schema_signed_off: {date: 2027-01-08, done: "schema comparison signed off", owner: dba}
    initial_load_complete: {date: 2027-01-15, done: "initial load complete", owner: dba}
    replay_passed: {date: 2027-01-29, done: "performance replay signed off", owner: dba}
    storage_applied: {date: 2027-02-05, done: "storage actions applied", owner: dba}
    go_no_go_meeting: {date: 2027-02-27, done: "go/no-go meeting held", owner: cutover_manager}
  rehearsals: {first: 2027-02-06, count: 6, every_days: 3, last_by_days: 7}
"""
CALENDAR_DAGS = ("cutover", "milestones", "rehearsal", "readiness")


def _reparse(ops: Any, dag_ids: tuple[str, ...]) -> None:
    """Ask the dag-processor to parse these files again now (rather than within its 30 s)."""
    for dag_id in dag_ids:
        token = ops._call("GET", f"/api/v2/dags/{dag_id}")["file_token"]
        ops._call("PUT", f"/api/v2/parseDagFile/{token}")


def _wait_until(what: str, check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not seen within {timeout:.0f} s")
        time.sleep(1)


@pytest.fixture(scope="module")
def calendar_stack(airflow_stack: Any, lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan
    from bascule_lab.scenario import LabCutover

    night = LabCutover(lab=lab, stack=airflow_stack, plan=load_plan(LAB_PLAN),
                       workdir=tmp_path_factory.mktemp("calendar"))
    ops = night.client("bascule_ops")
    for dag_id in CALENDAR_DAGS:
        ops.wait_for_dag(dag_id)
    airflow_stack.write_plan(CALENDAR)
    night.plan = load_plan(airflow_stack.plan_file)
    try:
        _reparse(ops, CALENDAR_DAGS)

        def reparsed() -> bool:
            tasks = {t["task_id"] for t in ops._call("GET", "/api/v2/dags/milestones/tasks")["tasks"]}
            assets = {a["name"] for a in ops._call("GET", "/api/v2/assets", params={"limit": 100})["assets"]}
            return "confirm_storage_applied" in tasks and {"bascule.lab.go_no_go_meeting",
                                                           "bascule.lab.rehearsal"} <= assets

        _wait_until("the DAGs parsed with the calendar", reparsed)
        for dag_id in CALENDAR_DAGS:
            ops.unpause(dag_id)
        yield night
    finally:
        # Back to the lab plan without a calendar: the module's other nights and the next modules' are not gated.
        airflow_stack.write_plan()
        _reparse(ops, CALENDAR_DAGS)


def _confirm(night: Any, milestones: list[str]) -> None:
    """Each milestone confirmed DONE by its owner in the milestones DAG, one after the other (so recorded in this
    order); the runs are triggered together, so that each waits at its question already."""
    ops = night.client("bascule_ops")
    runs = {m: ops.trigger("milestones", conf={"milestone": m}) for m in milestones}
    for milestone, run_id in runs.items():
        owner = night.plan.calendar.milestones[milestone].owner
        task = f"confirm_{milestone}"
        for _ in range(3):  # Airflow 3.3's answer/park race re-asks now and then (bascule_lab.gates.client)
            ops.wait_for_gate("milestones", run_id, task, timeout=120)
            night.client(owner).answer("milestones", run_id, task, option="DONE")
            if ops.wait_gate_settled("milestones", run_id, task, timeout=120) != "asked_again":
                break
        assert ops.wait_for_run("milestones", run_id, timeout=120) == "success", milestone


def _cutover_refused(night: Any) -> str:
    ops = night.client("bascule_ops")
    run_id = ops.trigger("cutover", run_id=f"lab__calendar_{time.time_ns()}")
    assert ops.wait_for_run("cutover", run_id, timeout=180) == "failed"
    tasks = {ti["task_id"]: str(ti["state"]) for ti in ops.task_instances("cutover", run_id)}
    assert tasks["calendar_checks"] == "failed" and tasks["tminus_checks"] == "upstream_failed", tasks
    assert tasks["freeze_source"] in ("upstream_failed", "skipped"), tasks
    return ops.task_log("cutover", run_id, "calendar_checks")


def _rehearse(night: Any) -> tuple[str, dict[str, Any]]:
    """One run of the rehearsal DAG: the rehearsal night's gates answered GO as their people would."""
    from bascule_lab.gates.auto import answer_gates
    from bascule_lab.gates.client import AirflowApiError

    ops = night.client("bascule_ops")
    run_id = ops.trigger("rehearsal")
    rehearsal_run = f"rehearsal__{run_id}"
    def triggered() -> bool:
        try:
            ops.run("cutover", rehearsal_run)
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
            return False
        return True

    _wait_until("the rehearsal night", triggered, timeout=300)
    answer_gates(night.plan, client_for=night.client, dag_id="cutover", run_id=rehearsal_run,
                 decisions={"go_for_freeze": "GO", "go_live": "GO"}, timeout=300)
    assert ops.wait_for_run("rehearsal", run_id, timeout=600) == "success", ops.task_instances("rehearsal", run_id)
    return rehearsal_run, ops.xcom("rehearsal", run_id, "compare")


def test_the_night_waits_for_the_calendar_and_rehearsals_compare_themselves(calendar_stack: Any, lab: Any,
                                                                           slack_capture: Any) -> None:
    from airflow.sdk import ObjectStoragePath

    from bascule_lab.scenario import start_forward_replication

    night = calendar_stack
    timings: dict[str, float] = {}
    started = time.monotonic()

    # The meeting held before the platform was installed (again): stale; five milestones missing; no rehearsal.
    _confirm(night, ["go_no_go_meeting", "platform_installed"])
    log = _cutover_refused(night)
    assert "the night may not start for real" in log, log
    for missing in ("assessment_signed_off", "schema_signed_off", "initial_load_complete", "replay_passed",
                    "storage_applied"):
        assert f"milestone {missing}: no signed evidence on asset bascule.lab.{missing}" in log, missing
    assert "milestone go_no_go_meeting: stale" in log and "before platform_installed was recorded again" in log, log
    assert "rehearsal: no signed rehearsal on asset bascule.lab.rehearsal" in log, log
    timings["refused"] = time.monotonic() - started

    _confirm(night, ["assessment_signed_off", "schema_signed_off", "initial_load_complete", "replay_passed",
                     "storage_applied", "go_no_go_meeting"])
    timings["milestones"] = time.monotonic() - started - sum(timings.values())

    # Two rehearsals on the rehearsal environment, each refreshed from the lab's templates first.
    first_run, first = _rehearse(night)
    second_run, second = _rehearse(night)
    timings["rehearsals"] = time.monotonic() - started - sum(timings.values())
    assert first["number"] >= 1 and first["latest_run"] == first_run and first["latest"]["outcome"] == "completed"
    assert second["number"] == first["number"] + 1, (first["number"], second["number"])
    assert second["latest_run"] == second_run and second["previous_run"] == first_run, second
    against = second["against_previous"]
    for figure in ("downtime_s", "critical_path_s", "validation_s"):
        row = against[figure]
        assert row["previous"] == first["latest"][figure] and row["latest"] == second["latest"][figure], figure
        assert row["previous"] > 0 and row["change_s"] == pytest.approx(row["latest"] - row["previous"], abs=1e-3)
    steps = {row["step"]: row for row in second["steps"]}
    assert {"freeze_source", "final_validation", "switch_endpoint"} <= set(steps), steps
    assert all(row["previous_s"] is not None and row["latest_s"] is not None for row in steps.values()), steps
    plan_side = second["against_plan"]
    assert plan_side["budget_s"] == night.plan.budget_seconds and plan_side["within_budget"] is True
    # Rehearsal N is held against the Nth planned date. Earlier modules of the session may have rehearsed already
    # (a rehearsal stopped at its first gate counts too), so N is read, not assumed; six planned dates cover them.
    planned = night.plan.calendar.rehearsals.dates()
    assert second["number"] <= len(planned) == 6, (second["number"], planned)
    assert plan_side["planned_on"] == planned[second["number"] - 1].isoformat(), plan_side
    assert plan_side["planned_count"] == 6 and plan_side["days_late"] is not None, plan_side
    recorded = json.loads(ObjectStoragePath(second["file"]).read_text())
    assert recorded["latest_run"] == second_run and recorded["against_previous"] == against
    # Each rehearsal's night worked on the rehearsal environment's connections only.
    report = night.report(second_run)
    assert report["rehearsal"] is True and report["environment"]["source"] == "bascule_rehearsal_legacy", report

    # The weekly readiness, from the same recorded facts: one Slack message, the timeline planned against actual.
    before = len(slack_capture.records)
    ops = night.client("bascule_ops")
    weekly_run = ops.trigger("readiness")
    assert ops.wait_for_run("readiness", weekly_run, timeout=180) == "success"
    ready = ops.xcom("readiness", weekly_run, "weekly_readiness")
    assert [r["status"] for r in ready["timeline"]] == ["on time"] * 7, ready["timeline"]
    assert ready["rehearsals"]["done"] >= 2 and ready["rehearsals"]["last_run"] == second_run, ready["rehearsals"]
    assert ready["days_left"] == (night.plan.calendar.night_date - date.fromisoformat(ready["today"])).days
    posted = [r for r in slack_capture.records[before:] if r["api_method"] == "chat.postMessage"
              and weekly_run in r["raw_body"]]
    assert len(posted) == 1 and not posted[0]["body"].get("thread_ts"), posted
    assert "planned against actual" in ObjectStoragePath(ready["page"]).read_text()
    timings["readiness"] = time.monotonic() - started - sum(timings.values())

    # Everything fresh and a green rehearsal: the night starts for real (stopped by a person at the first gate).
    lab.reset()
    start_forward_replication(night.plan)
    result = night.run(decisions={"go_for_freeze": "NO-GO"}, simulate=False)
    timings["night"] = time.monotonic() - started - sum(timings.values())
    assert result.state == "success", result.tasks
    assert result.tasks["calendar_checks"] == "success" and result.tasks["tminus_checks"] == "success", result.tasks
    assert result.tasks["abort_before_freeze"] == "success" and result.report["outcome"] == "aborted"
    log = night.client("bascule_ops").task_log("cutover", result.run_id, "calendar_checks")
    assert "calendar: 7 milestones and the last rehearsal hold" in log, log
    print("calendar and rehearsals: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    Path(night.workdir / "timings.json").write_text(json.dumps(timings))
