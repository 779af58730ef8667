"""The weekly readiness from recorded facts: planned against actual, the rehearsals, the lag, the risks (ADR 0059)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bascule.notifications.blocks import render
from bascule.notifications.events import ReadinessSummary
from bascule.paths import PLANS_DIR
from bascule.plan import MilestoneId, load_plan
from bascule.preparation import rehearsal, weekly

pytestmark = pytest.mark.unit


def _rehearsal(run: str, day: str, downtime: float, validation: float, outcome: str = "completed") -> object:
    steps = [{"step": "freeze_source", "started_at": f"{day}T22:00:00+00:00", "actual_s": 1.0},
             {"step": "final_validation", "started_at": f"{day}T22:00:01+00:00", "actual_s": validation}]
    return rehearsal.from_report({"run_id": run, "steps": steps, "outcome": outcome, "downtime_s": downtime,
                                  "rehearsal": True})


def test_planned_against_recorded_with_the_risks_of_the_week() -> None:
    calendar = load_plan(PLANS_DIR / "production-oracle.example.yaml").calendar
    assert calendar is not None
    plan_dates = {m.value: ms.date for m, ms in calendar.milestones.items()}
    now = datetime.combine(plan_dates["storage_applied"] + timedelta(days=9), datetime.min.time(), UTC)
    at = {name: datetime.combine(day, datetime.min.time(), UTC) for name, day in plan_dates.items()}
    recorded = {"platform_installed": at["platform_installed"],
                "assessment_signed_off": at["assessment_signed_off"] + timedelta(days=3),  # late
                "schema_signed_off": at["schema_signed_off"], "initial_load_complete": at["initial_load_complete"],
                "replay_passed": at["replay_passed"]}  # storage_applied: overdue
    history = [_rehearsal("r1", "2027-02-06", 600.0, 100.0), _rehearsal("r2", "2027-02-16", 650.0, 140.0)]
    readings = [(now - timedelta(days=d, hours=h), lag) for d, lag in ((9, 0.5), (8, 0.5), (2, 4.0), (1, 5.0))
                for h in (1, 2)]
    data = weekly.readiness(calendar, recorded=recorded, findings=["milestone x: stale, recorded ..."],
                            history=history, lag=weekly.lag_trend(readings, now), budget_s=7200.0, storage=None,
                            now=now)

    status = {r["milestone"]: (r["status"], r["days_late"]) for r in data["timeline"]}
    assert status["assessment_signed_off"] == ("late", 3) and status["platform_installed"] == ("on time", 0)
    assert status["storage_applied"] == ("overdue", 9) and status["go_no_go_meeting"][0] == "due"
    assert (data["on_time"], data["late"], data["overdue"]) == (4, 1, 1)
    assert data["days_left"] == (calendar.night_date - now.date()).days
    assert data["rehearsals"]["done"] == 2 and data["rehearsals"]["trend"]["validation_s"]["change_pct"] == 40.0
    assert data["lag"]["rising"] is True and data["lag"]["this_week"]["max_s"] == 5.0
    risks = "\n".join(data["risks"])
    for expected in ("assessment_signed_off late", "storage_applied overdue", "milestone x: stale",
                     "validation time up 40.0%", "lag's weekly median is rising", "no storage figures"):
        assert expected in risks, expected
    page = weekly.page("hospital", data)
    assert "<td>assessment_signed_off</td>" in page and "planned against actual" in page

    message = render(ReadinessSummary(dag_id="readiness", run_id="manual__1", plan_id="hospital",
                                      days_left=data["days_left"], on_time=4, late=1, overdue=1, rehearsals_done=2,
                                      rehearsals_planned=3, risks=tuple(data["risks"])))
    assert message.text.startswith(":") or "Readiness of hospital" in message.text
    assert "1 late, 1 overdue" in message.text


def test_nothing_recorded_yet_is_all_due_before_the_first_date() -> None:
    calendar = load_plan(PLANS_DIR / "production-oracle.example.yaml").calendar
    assert calendar is not None
    first = calendar.milestones[MilestoneId.PLATFORM_INSTALLED].date
    now = datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC)
    data = weekly.readiness(calendar, recorded={}, findings=[], history=[], lag=weekly.lag_trend([], now),
                            budget_s=7200.0, storage=None, now=now)
    assert {r["status"] for r in data["timeline"]} == {"due"} and data["risks"] == []
    assert data["lag"] == {"this_week": None, "last_week": None, "rising": False}
    assert date.fromisoformat(data["today"]) < first
