"""The forecast the downtime clock uses while a step runs: the rehearsal's pace for what is left."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bascule.cutover.clock import DowntimeClock
from bascule.runbook import runtime
from bascule.runbook.forecast import StepForecast, step_forecast
from bascule.runbook.report import build_report

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def rehearsal() -> dict[str, Any]:
    def step(name: str, start: float, seconds: float) -> dict[str, Any]:
        return {"step": name, "task_id": name, "started_at": at(start), "ended_at": at(start + seconds),
                "seconds": seconds}

    steps = [step("restore_point", -2.0, 0.3), step("freeze_source", -0.5, 0.6), step("drain", 0.5, 0.2),
             step("target_suites", 1.0, 10.0), step("open_target_writes", 13.5, 0.2),
             step("announce_live", 15.0, 0.1)]
    return build_report(plan_name="lab", dag_id="cutover", run_id="rehearsal", budget_s=7200, steps=steps,
                        decisions=[], outcome="completed", frozen_at=at(0), downtime_end=at(13.7))


def test_a_step_forecasts_its_rehearsed_rest_and_what_it_has_left() -> None:
    f = step_forecast(rehearsal(), "target_suites")
    assert f == StepForecast(planned_s=10.0, rest_after_s=pytest.approx(2.7))
    assert f.remaining(0.0) == pytest.approx(12.7)
    assert f.remaining(4.0) == pytest.approx(8.7)
    # Past its rehearsed time the step adds nothing more: elapsed grows, the rest stays.
    assert f.remaining(15.0) == pytest.approx(2.7)


@pytest.mark.parametrize("step", ["restore_point", "announce_live", "no_such_step"])
def test_no_forecast_outside_the_rehearsed_downtime(step: str) -> None:
    assert step_forecast(rehearsal(), step) is None


def test_no_forecast_without_a_rehearsal() -> None:
    assert step_forecast(None, "target_suites") is None
    assert step_forecast({"steps": []}, "target_suites") is None


def test_a_late_step_makes_the_forecast_alert_due_before_the_budget_is_spent() -> None:
    f = step_forecast(rehearsal(), "target_suites")
    assert f is not None
    clock = DowntimeClock(frozen_at=T0, budget_s=20.0, warn_at=(0.99,))
    # The suites started at 1 s: 17 s into them the night is 18 s old, and 2.7 s are still to come.
    status = clock.status(T0 + timedelta(seconds=18), forecast_remaining_s=f.remaining(17.0))
    assert [a.key for a in status.due] == ["forecast"]
    assert status.elapsed_s < clock.budget_s


def fake_ctx(*, frozen: bool) -> Any:
    freeze = {"frozen_at": at(0), "position": "0/1"}
    return SimpleNamespace(plan=SimpleNamespace(name="lab"), dag_id="cutover", run_id="tonight",
                           step="target_suites", step_task="target_suites", freeze_task="freeze_source",
                           result_of=lambda task_id: freeze if frozen and task_id == "freeze_source" else None)


def test_clock_watch_checks_the_clock_while_the_step_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runtime._PREVIOUS_REPORTS, ("lab", "cutover", "tonight"), rehearsal())
    seen: list[float | None] = []
    three = threading.Event()

    def check(ctx: Any, *, forecast_remaining_s: float | None) -> None:
        seen.append(forecast_remaining_s)
        if len(seen) >= 3:
            three.set()

    with runtime.clock_watch(fake_ctx(frozen=True), interval_s=0.01, check=check):
        assert three.wait(timeout=30), "the clock was not checked while the step worked"
        assert _watchers() == 1
    assert _watchers() == 0  # the watch ends with the step
    assert all(v is not None and 2.7 - 1e-6 <= v <= 12.7 for v in seen), seen
    assert seen == sorted(seen, reverse=True)  # the step's share shrinks as it works


def _watchers() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "bascule-clock" and t.is_alive())


def test_no_watch_before_the_freeze(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    with runtime.clock_watch(fake_ctx(frozen=False), interval_s=0.001, check=lambda *a, **k: seen.append(k)):
        pass
    assert seen == []  # the clock starts at the freeze: nothing to watch before it
    assert _watchers() == 0


def test_the_first_look_at_the_clock_is_taken_beside_the_action(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runtime._PREVIOUS_REPORTS, ("lab", "cutover", "tonight"), rehearsal())
    seen: list[tuple[bool, float | None]] = []
    action_running = threading.Event()
    looked = threading.Event()

    def check(ctx: Any, *, forecast_remaining_s: float | None) -> None:
        # A look taken before the action would never see it running.
        seen.append((action_running.wait(timeout=10), forecast_remaining_s))
        looked.set()

    with runtime.clock_watch(fake_ctx(frozen=True), interval_s=3600, check=check):
        action_running.set()
        assert looked.wait(timeout=30), "the clock was not checked as the step started"
    assert len(seen) == 1
    beside, remaining = seen[0]
    assert beside is True and remaining == pytest.approx(12.7, abs=0.5)


def step_ctx(*, background: bool) -> Any:
    ctx = fake_ctx(frozen=True)
    ctx.plan.notifications = None
    ctx.ti = SimpleNamespace(task_id="target_suites", try_number=1)
    ctx.slack = None
    ctx.slack_background = background
    ctx.clock_check_after_success = False
    return ctx


@pytest.mark.parametrize("background", [True, False])
def test_a_successful_step_looks_at_the_clock_from_its_success_callback(
        monkeypatch: pytest.MonkeyPatch, background: bool) -> None:
    looks: list[Any] = []
    monkeypatch.setattr(runtime, "check_clock_after_step", looks.append)
    ctx = step_ctx(background=background)
    runtime.step_finished(ctx, ok=True, seconds=1.0, critical_path=True)
    # Posting in the background, the step leaves its last look to the callback, after its success is reported.
    assert looks == ([] if background else [ctx])
    runtime.flush_after_success({"task": SimpleNamespace(_bascule_step_ctx=ctx)})
    assert looks == [ctx]
    runtime.flush_after_success({"task": SimpleNamespace(_bascule_step_ctx=ctx)})
    assert looks == [ctx]  # once


def test_a_failed_step_looks_at_the_clock_before_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[Any] = []
    monkeypatch.setattr(runtime, "check_clock_after_step", looks.append)
    ctx = step_ctx(background=True)
    runtime.step_finished(ctx, ok=False, seconds=1.0, critical_path=True)
    assert looks == [ctx] and ctx.clock_check_after_success is False
