"""The cutover report's arithmetic: work, overhead, and the time spent waiting for gate decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bascule.runbook.report import build_report, summary_text

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def step(name: str, start: float, seconds: float) -> dict[str, Any]:
    return {"step": name, "task_id": name, "started_at": at(start), "ended_at": at(start + seconds),
            "seconds": seconds}


def report(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [
        step("freeze_source", -0.5, 0.6),  # frozen at 0, inside this step
        step("drain", 0.5, 0.2),
        step("target_suites", 1.0, 10.0),
        step("final_validation", 1.2, 4.0),  # parallel: counted once
        step("open_target_writes", 13.5, 0.3),
    ]
    return build_report(plan_name="lab", dag_id="cutover", run_id="r1", budget_s=7200, steps=steps,
                        decisions=decisions, outcome="completed", frozen_at=at(0), downtime_end=at(13.7))


def test_overhead_is_the_downtime_no_step_was_executing() -> None:
    r = report([])
    assert r["downtime_s"] == 13.7
    # busy: 0-0.1 (freeze), 0.5-0.7 (drain), 1.0-11.0 (suites and validation), 13.5-13.7 (open writes)
    assert r["work_s"] == pytest.approx(10.5)
    assert r["overhead_s"] == pytest.approx(3.2)
    assert r["decision_wait_s"] == 0.0


def test_gate_decisions_inside_the_window_are_counted_apart() -> None:
    decisions = [
        # The first gate was answered before the freeze: none of its wait is downtime.
        {"gate": "go_for_freeze", "decision": "GO", "by": "cm", "asked_at": at(-30), "at": at(-5)},
        {"gate": "go_live", "decision": "GO", "by": "cm", "asked_at": at(11.5), "at": at(13.0)},
        {"gate": "legacy", "decision": "GO", "by": "cm", "at": at(12.0)},  # no question time recorded
    ]
    r = report(decisions)
    assert r["decision_wait_s"] == pytest.approx(1.5)
    assert r["overhead_s"] == pytest.approx(3.2)  # still part of the overhead, shown apart
    assert "of which 1.5 s waiting for gate decisions" in summary_text(r)


def test_the_report_says_which_events_bound_the_downtime() -> None:
    steps = [step("freeze_source", -0.5, 0.6), step("open_target_writes", 13.5, 0.3)]
    r = build_report(plan_name="lab", dag_id="cutover", run_id="r1", budget_s=7200, steps=steps, decisions=[],
                     outcome="completed", frozen_at=at(0), downtime_end=at(13.7),
                     start_event="before the REVOKE of clinic_app's write rights on the source",
                     end_event="probe write committed as clinic_app through the endpoint on the target")
    assert r["downtime_bounds"] == {
        "start": at(0), "start_event": "before the REVOKE of clinic_app's write rights on the source",
        "end": at(13.7), "end_event": "probe write committed as clinic_app through the endpoint on the target",
        "clock": "the workers' UTC clock"}
    assert (f"downtime from {at(0)} (before the REVOKE of clinic_app's write rights on the source) to {at(13.7)} "
            "(probe write committed as clinic_app through the endpoint on the target), both on the workers' UTC "
            "clock") in summary_text(r).splitlines()
