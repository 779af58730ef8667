"""A night in Europe/Paris that spans a change of summer time keeps its real durations.

Python subtracts two datetimes that share one ``tzinfo`` object on their wall
clocks: 02:30 CET minus 01:30 CEST is "one hour" although two hours passed. The
downtime clock and the report compute in UTC only (``bascule.today``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bascule.cutover.clock import DowntimeClock
from bascule.runbook.forecast import step_forecast
from bascule.runbook.report import build_report
from bascule.today import parse_instant, utc

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
# 2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET; 01:30 CEST is 23:30 UTC the day before.
AUTUMN_FROZEN = datetime(2026, 10, 25, 1, 30, tzinfo=PARIS)
AUTUMN_END = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS)  # the second 02:30, in CET
# 2027-03-28: at 02:00 CET the clocks jump to 03:00 CEST.
SPRING_FROZEN = datetime(2027, 3, 28, 1, 30, tzinfo=PARIS)
SPRING_END = datetime(2027, 3, 28, 3, 30, tzinfo=PARIS)


def test_the_trap_this_guards_against():
    # Same tzinfo object: Python ignores the offsets. This is what the clock must not do.
    assert AUTUMN_END - AUTUMN_FROZEN == timedelta(hours=1)
    assert utc(AUTUMN_END) - utc(AUTUMN_FROZEN) == timedelta(hours=2)


@pytest.mark.parametrize(("frozen", "now", "hours"), [(AUTUMN_FROZEN, AUTUMN_END, 2), (SPRING_FROZEN, SPRING_END, 1)],
                         ids=["autumn", "spring"])
def test_the_downtime_clock_counts_real_time(frozen, now, hours):
    clock = DowntimeClock(frozen_at=frozen, budget_s=2 * 3600, warn_at=(0.5, 0.75, 0.9))
    status = clock.status(now)
    assert status.elapsed_s == hours * 3600
    assert status.frozen_at.tzinfo is UTC
    # Two hours spent of a two-hour budget is exceeded; one hour only reaches the half-way warning.
    assert ("exceeded" in [a.key for a in status.due]) is (hours == 2)


def _iso(moment: datetime) -> str:
    return moment.isoformat()  # the local offset as a Paris worker would write it


@pytest.mark.parametrize(("frozen", "end", "hours"), [(AUTUMN_FROZEN, AUTUMN_END, 2), (SPRING_FROZEN, SPRING_END, 1)],
                         ids=["autumn", "spring"])
def test_the_report_counts_real_time_and_orders_steps_by_instant(frozen, end, hours):
    total = hours * 3600
    # Steps written in local time with their own offsets, on both sides of the change.
    freeze = {"step": "freeze_source", "started_at": _iso(frozen), "ended_at": _iso(frozen + timedelta(seconds=5)),
              "seconds": 5}
    last_start = utc(end) - timedelta(seconds=60)
    reopen = {"step": "open_target_writes", "started_at": _iso(last_start.astimezone(PARIS)),
              "ended_at": _iso(utc(end).astimezone(PARIS)), "seconds": 60}
    # In autumn, 02:50+02:00 (00:50 UTC) comes before 02:10+01:00 (01:10 UTC): text order would swap them.
    middle = [{"step": name, "started_at": _iso((utc(frozen) + timedelta(seconds=total * f)).astimezone(PARIS)),
               "ended_at": _iso((utc(frozen) + timedelta(seconds=total * f + 5)).astimezone(PARIS)), "seconds": 5}
              for name, f in (("drain", 2 / 3), ("final_validation", 5 / 6))]
    report = build_report(plan_name="lab", dag_id="cutover", run_id="dst", budget_s=7200,
                          steps=[reopen, middle[1], freeze, middle[0]],
                          decisions=[], outcome="completed", frozen_at=_iso(frozen),
                          downtime_end=_iso(utc(end).astimezone(PARIS)))
    assert report["downtime_s"] == total
    assert [s["step"] for s in report["steps"]] == ["freeze_source", "drain", "final_validation",
                                                    "open_target_writes"]
    assert report["work_s"] == 75
    assert report["overhead_s"] == total - 75
    # The forecast reads the same instants: after the freeze step, the rest of the night.
    forecast = step_forecast(report, "freeze_source")
    assert forecast is not None and forecast.rest_after_s == total - 5


def test_a_naive_time_is_refused_not_guessed():
    with pytest.raises(ValueError, match="naive time"):
        parse_instant("2026-10-25T02:30:00")
    with pytest.raises(ValueError, match="timezone-aware"):
        DowntimeClock(frozen_at=datetime(2026, 10, 25, 2, 30), budget_s=60)
