from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bascule.cutover.clock import ClockState, DowntimeClock
from bascule.notifications.events import ClockLevel, ClockWarning

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_fractions_fire_once_each_and_in_order() -> None:
    clock = DowntimeClock(frozen_at=T0, budget_s=100, warn_at=(0.5, 0.75, 0.9))
    s = clock.status(at(10))
    assert (s.elapsed_s, s.remaining_s, s.due) == (10, 90, ())
    s = clock.status(at(51), state=s.state)
    assert [a.key for a in s.due] == ["warn:0.5"] and s.due[0].level is ClockLevel.APPROACHING
    s = clock.status(at(60), state=s.state)
    assert s.due == ()
    s = clock.status(at(95), state=s.state)
    assert [a.key for a in s.due] == ["warn:0.75", "warn:0.9"]
    assert s.due[-1].level is ClockLevel.CRITICAL
    s = clock.status(at(101), state=s.state)
    assert [a.key for a in s.due] == ["exceeded"] and s.over_budget and s.remaining_s == -1
    assert clock.status(at(500), state=s.state).due == ()


def test_forecast_alert_as_soon_as_forecast_end_passes_budget() -> None:
    clock = DowntimeClock(frozen_at=T0, budget_s=100, warn_at=(0.5,))
    s = clock.status(at(20), forecast_remaining_s=80)
    assert s.forecast_total_s == 100 and s.due == ()  # exactly on budget is not over
    s = clock.status(at(21), forecast_remaining_s=80, state=s.state)
    assert [a.key for a in s.due] == ["forecast"] and s.forecast_over_budget
    assert s.due[0].level is ClockLevel.CRITICAL
    assert clock.status(at(22), forecast_remaining_s=90, state=s.state).due == ()


def test_state_round_trips_through_json_like_dict() -> None:
    clock = DowntimeClock(frozen_at=T0, budget_s=10, warn_at=(0.5,))
    s = clock.status(at(6))
    restored = ClockState.from_dict(s.state.as_dict())
    assert clock.status(at(7), state=restored).due == ()
    assert s.as_dict()["due"] == ["warn:0.5"]


def test_events_are_clock_warnings() -> None:
    clock = DowntimeClock(frozen_at=T0, budget_s=10, warn_at=(0.5,))
    (event,) = clock.status(at(6)).events(dag_id="cutover", run_id="manual__2026-11-28T22:00:00+00:00")
    assert isinstance(event, ClockWarning)
    assert (event.level, event.elapsed_s, event.budget_s, event.frozen_at) == (ClockLevel.CRITICAL, 6, 10, T0)


def test_from_plan_uses_budget_and_fractions() -> None:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    plan = load_plan(LAB_PLAN)
    clock = DowntimeClock.from_plan(plan, frozen_at=T0)
    assert clock.budget_s == plan.budget_seconds and clock.warn_at == tuple(plan.downtime.warn_at)


def test_clock_before_freeze_time_reads_zero_and_log_line() -> None:
    s = DowntimeClock(frozen_at=T0, budget_s=10).status(at(-5), forecast_remaining_s=3)
    assert s.elapsed_s == 0 and "elapsed=0.0s" in s.log_line()


@pytest.mark.parametrize("kwargs, message", [
    ({"frozen_at": datetime(2026, 1, 1), "budget_s": 1}, "timezone-aware"),
    ({"frozen_at": T0, "budget_s": 0}, "budget_s"),
    ({"frozen_at": T0, "budget_s": 1, "warn_at": (1.5,)}, "warn_at"),
])
def test_bad_clock_inputs_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DowntimeClock(**kwargs)


def test_negative_forecast_is_refused() -> None:
    with pytest.raises(ValueError, match="forecast_remaining_s"):
        DowntimeClock(frozen_at=T0, budget_s=1).status(at(0), forecast_remaining_s=-1)
