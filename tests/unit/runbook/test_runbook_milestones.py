"""Milestones on Assets: signed evidence, stale when one they build on is recorded again, and the night's check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bascule.plan import MilestoneId, load_plan
from bascule.runbook import milestones
from bascule.runbook.context import StepContext
from bascule.runbook.milestones import REHEARSAL, Seen, evidence, findings

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[3] / "include" / "plans" / "production-oracle.example.yaml"
KEY = b"unit-tests-decision-key-0123456789abcdef"
T0 = datetime(2027, 2, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def plan() -> Any:
    return load_plan(EXAMPLE)


def _seen(plan: Any, milestone: str, at: datetime, *, key: bytes = KEY, outcome: str | None = None,
          source_run: str | None = None) -> Seen:
    run_id = f"manual__{milestone}_{at.isoformat()}"
    extra = evidence(key, plan=plan, milestone=milestone, dag_id="prepare", run_id=run_id, signed_off_by="dba.oncall",
                     figures={"tables": 12}, outcome=outcome, recorded_at=at)
    return Seen(extra=extra, source_dag_id="prepare", source_run_id=source_run or run_id)


def _all(plan: Any, *, rehearsal: str = "completed", at: datetime = T0) -> dict[str, list[Seen]]:
    events = {m.value: [_seen(plan, m.value, at + timedelta(hours=i))] for i, m in enumerate(MilestoneId)}
    events[REHEARSAL] = [_seen(plan, REHEARSAL, at + timedelta(days=1), outcome=rehearsal)]
    return events


def test_every_milestone_recorded_in_order_and_a_recent_green_rehearsal_let_the_night_start(plan: Any) -> None:
    assert findings(plan, _all(plan), key=KEY, now=T0 + timedelta(days=3)) == []


def test_a_missing_milestone_is_named_with_what_done_means(plan: Any) -> None:
    events = _all(plan)
    del events[MilestoneId.REPLAY_PASSED.value]
    found = findings(plan, events, key=KEY, now=T0 + timedelta(days=3))
    assert len(found) == 1 and found[0].startswith("milestone replay_passed: no signed evidence on asset "
                                                   "bascule.hospital-prod-oracle.replay_passed")
    assert "Real Application Testing" in found[0]


def test_a_milestone_recorded_before_one_it_builds_on_was_recorded_again_is_stale(plan: Any) -> None:
    events = _all(plan)
    events["schema_signed_off"].append(_seen(plan, "schema_signed_off", T0 + timedelta(days=2)))
    found = findings(plan, events, key=KEY, now=T0 + timedelta(days=3))
    stale = [f.split(":")[0] for f in found]
    assert stale == [f"milestone {m}" for m in ("initial_load_complete", "replay_passed", "storage_applied",
                                                 "go_no_go_meeting")]
    assert all("before schema_signed_off was recorded again" in f for f in found)


@pytest.mark.parametrize("forge", ["other key", "edited", "replayed by hand", "unsigned"])
def test_forged_or_replayed_evidence_is_not_evidence(plan: Any, forge: str) -> None:
    events = _all(plan)
    good = events["storage_applied"][0]
    if forge == "other key":
        bad = _seen(plan, "storage_applied", T0, key=b"x" * 40)
    elif forge == "edited":
        bad = Seen(extra={**good.extra, "figures": {"tables": 13}}, source_dag_id="prepare",
                   source_run_id=good.source_run_id)
    elif forge == "replayed by hand":
        # A real signed body copied into an event made through the REST API: no source run.
        bad = Seen(extra=dict(good.extra))
    else:
        bad = Seen(extra={k: v for k, v in good.extra.items() if k != "signature"}, source_dag_id="prepare",
                   source_run_id=good.source_run_id)
    events["storage_applied"] = [bad]
    found = findings(plan, events, key=KEY, now=T0 + timedelta(days=3))
    assert found == [f for f in found if f.startswith("milestone storage_applied: no signed evidence")] and found
    assert "1 event(s) without a valid signature ignored" in found[0]


def test_the_last_rehearsal_must_be_green_and_recent(plan: Any) -> None:
    red = _all(plan, rehearsal="rolled_back")
    assert findings(plan, red, key=KEY, now=T0 + timedelta(days=3)) == [
        f"rehearsal: the last one (manual__rehearsal_{(T0 + timedelta(days=1)).isoformat()}, "
        f"{(T0 + timedelta(days=1)).isoformat(timespec='seconds')}) ended 'rolled_back', not 'completed'"]
    old = findings(plan, _all(plan), key=KEY, now=T0 + timedelta(days=30))
    assert old == [f"rehearsal: the last green one (manual__rehearsal_{(T0 + timedelta(days=1)).isoformat()}) "
                   "is 29 days old, more than 17"]
    later_red = _all(plan)
    later_red[REHEARSAL].append(_seen(plan, REHEARSAL, T0 + timedelta(days=2), outcome="aborted"))
    assert "ended 'aborted'" in findings(plan, later_red, key=KEY, now=T0 + timedelta(days=3))[0]


def test_a_plan_without_a_calendar_checks_nothing(lab_plan: Any) -> None:
    assert milestones.calendar_assets(lab_plan) == []
    assert findings(lab_plan, {}, key=KEY) == []


def test_the_nights_first_checks_read_the_milestones_as_inlets_and_refuse(plan: Any, ctx_factory: Any,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from bascule.runbook.actions import CUTOVER, CutoverCheckFailed, calendar_checks

    entry = next(e for e in CUTOVER.entries if e.task_id == "calendar_checks")
    assets = entry.inlets_from(plan)
    assert [a.name for a in assets] == [milestones.asset_name(plan, m) for m in MilestoneId] + [
        milestones.asset_name(plan, REHEARSAL)]
    now_events = _all(plan, at=datetime.now(UTC) - timedelta(days=2))

    def event(seen: Seen) -> Any:
        return SimpleNamespace(extra=seen.extra, source_dag_id=seen.source_dag_id, source_run_id=seen.source_run_id)

    inlets = {a: [event(s) for s in now_events[a.name.rsplit(".", 1)[1]]] for a in assets}
    context = ctx_factory("calendar_checks")
    context["inlet_events"] = inlets
    ctx = StepContext(plan=plan, airflow=context, step="calendar_checks")
    assert calendar_checks(ctx) == {"checked": True, "milestones": 7}
    inlets[assets[0]] = []
    with pytest.raises(CutoverCheckFailed, match="the night may not start for real: 1 condition\\(s\\) fail: "
                                                 "milestone platform_installed"):
        calendar_checks(StepContext(plan=plan, airflow=context, step="calendar_checks"))
    # Every condition has its own line in the log (the error's text is clipped by the sanitiser).
    lines = [line for line in capsys.readouterr().out.splitlines() if "calendar: milestone" in line]
    assert len(lines) == 1 and "platform_installed: no signed evidence" in lines[0], lines
    # A rehearsal is exempt.
    context["dag_run"] = SimpleNamespace(conf={"rehearsal": True}, run_id="r")
    assert calendar_checks(StepContext(plan=plan, airflow=context, step="calendar_checks"))["reason"] == "rehearsal"


# --------------------------------------------------------------------------- the night went live (ADR 0057)


def _night_report(**fields: Any) -> dict[str, Any]:
    return {"dag_id": "cutover", "run_id": "manual__night", "outcome": "completed", "rehearsal": False,
            "downtime_end": "2027-03-01T22:30:00+00:00", "downtime_s": 600.0, **fields}


def test_only_a_real_night_that_went_live_has_a_went_live_event() -> None:
    from bascule.paths import LAB_PLAN

    lab = load_plan(LAB_PLAN)
    assert milestones.went_live_asset(lab).name == "bascule.lab.went_live"
    assert milestones.went_live_extra(lab, _night_report()) == {
        "plan": "lab", "dag_id": "cutover", "run_id": "manual__night", "outcome": "completed",
        "downtime_end": "2027-03-01T22:30:00+00:00", "downtime_s": 600.0}
    assert milestones.went_live_extra(lab, _night_report(rehearsal=True)) is None
    assert milestones.went_live_extra(lab.for_rehearsal(), _night_report()) is None  # the rehearsal environment
    assert milestones.went_live_extra(lab, _night_report(outcome="rolled_back")) is None
    assert milestones.went_live_extra(lab, _night_report(outcome="aborted", downtime_end=None)) is None


@pytest.mark.parametrize(("report", "emitted"), [
    (_night_report(), True), (_night_report(rehearsal=True), False), (_night_report(outcome="rolled_back"), False),
    (_night_report(outcome="aborted", downtime_end=None), False)])
def test_the_night_s_report_adds_the_event_to_its_alias_only_when_it_went_live(
        monkeypatch: pytest.MonkeyPatch, report: dict[str, Any], emitted: bool) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from bascule.paths import LAB_PLAN
    from bascule.runbook import actions
    from bascule.runbook import report as report_module

    lab = load_plan(LAB_PLAN)
    monkeypatch.setattr(report_module, "run_report", lambda ctx: report)
    outlets = OutletEventAccessors()
    ctx = StepContext(plan=lab, airflow={"outlet_events": outlets}, step="report")
    assert actions._run_report(ctx) is report
    events = outlets[milestones.went_live_alias(lab)].asset_alias_events
    if not emitted:
        assert events == [] and "no went_live event" in ctx.notes[-1]
        return
    (event,) = events
    assert event.dest_asset_key.name == "bascule.lab.went_live" and event.extra["run_id"] == "manual__night"
    # The cutover's report declares the alias as its only outlet: the Asset itself is on no task's outlets,
    # since a plain outlet gets an event whenever its task succeeds.
    entry = actions.CUTOVER.entry(actions.REPORT)
    assert entry.outlets_from is not None and entry.outlets_from(lab) == [milestones.went_live_alias(lab)]
    assert [e.task_id for e in actions.CUTOVER if e.outlets_from is not None] == [actions.REPORT]
