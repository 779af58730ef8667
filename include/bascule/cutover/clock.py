"""The downtime clock: starts at the freeze, measures against the plan's budget.

``frozen_at`` is the worker's UTC clock right before the freeze's REVOKE was sent;
``now`` must be read on the same clock (ADR 0038).

Pure logic. A caller (a task, a sensor, a report) asks :meth:`DowntimeClock.status`
with the current time and the forecast of the remaining steps, and persists the
returned :class:`ClockState` (XCom, a Variable): each warning fires once per run,
however many times the status is asked and on whichever worker.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bascule.notifications.events import ClockLevel, ClockWarning
from bascule.today import utc


class AlertReason(enum.StrEnum):
    FRACTION = "fraction"  # a warn_at fraction of the budget was reached
    FORECAST = "forecast"  # elapsed + forecast of the remaining steps passes the budget
    EXCEEDED = "exceeded"  # the budget itself is spent


@dataclass(frozen=True)
class ClockAlert:
    key: str  # stable id of the alert within a run: "warn:0.5", "forecast", "exceeded"
    reason: AlertReason
    level: ClockLevel
    fraction: float | None = None


@dataclass(frozen=True)
class ClockState:
    """Alerts already fired; persist it between status calls."""

    fired: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"fired": list(self.fired)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ClockState:
        return cls(fired=tuple((data or {}).get("fired", ())))


@dataclass(frozen=True)
class ClockStatus:
    frozen_at: datetime
    elapsed_s: float
    budget_s: float
    remaining_s: float  # negative once over budget
    forecast_remaining_s: float | None
    forecast_total_s: float | None
    due: tuple[ClockAlert, ...]  # alerts to fire now (not fired before)
    state: ClockState  # ``fired`` including ``due``: persist this

    @property
    def over_budget(self) -> bool:
        return self.remaining_s < 0

    @property
    def forecast_over_budget(self) -> bool:
        return self.forecast_total_s is not None and self.forecast_total_s > self.budget_s

    def events(self, *, dag_id: str, run_id: str) -> list[ClockWarning]:
        return [ClockWarning(dag_id=dag_id, run_id=run_id, level=a.level, elapsed_s=self.elapsed_s,
                             budget_s=self.budget_s, frozen_at=self.frozen_at) for a in self.due]

    def as_dict(self) -> dict[str, Any]:
        return {"frozen_at": self.frozen_at.isoformat(), "elapsed_s": round(self.elapsed_s, 3),
                "budget_s": self.budget_s, "remaining_s": round(self.remaining_s, 3),
                "forecast_remaining_s": self.forecast_remaining_s, "forecast_total_s": self.forecast_total_s,
                "due": [a.key for a in self.due], "state": self.state.as_dict()}

    def log_line(self) -> str:
        forecast = "" if self.forecast_total_s is None else f" forecast_total={self.forecast_total_s:.1f}s"
        return (f"downtime clock: elapsed={self.elapsed_s:.1f}s budget={self.budget_s:.0f}s "
                f"remaining={self.remaining_s:.1f}s{forecast}"
                f"{' ALERTS=' + ','.join(a.key for a in self.due) if self.due else ''}")


class DowntimeClock:
    def __init__(self, *, frozen_at: datetime, budget_s: float, warn_at: Sequence[float] = (0.5, 0.75, 0.9)) -> None:
        if frozen_at.tzinfo is None:
            raise ValueError("frozen_at must be timezone-aware (the freeze's start, on the workers' UTC clock)")
        if not budget_s > 0:
            raise ValueError(f"budget_s must be > 0 (got {budget_s})")
        for f in warn_at:
            if not 0 < f < 1:
                raise ValueError(f"warn_at fractions must be in (0, 1) (got {f})")
        # In UTC: two times sharing one tzinfo (say Europe/Paris) subtract on their wall clocks,
        # an hour wrong across a change of summer time.
        self.frozen_at = utc(frozen_at)
        self.budget_s = float(budget_s)
        self.warn_at = tuple(sorted(set(warn_at)))

    @classmethod
    def from_plan(cls, plan: Any, *, frozen_at: datetime) -> DowntimeClock:
        return cls(frozen_at=frozen_at, budget_s=plan.budget_seconds, warn_at=plan.downtime.warn_at)

    def alerts(self) -> list[ClockAlert]:
        # The last fraction is the critical one; earlier ones say "approaching".
        out = [ClockAlert(f"warn:{f:g}", AlertReason.FRACTION,
                          ClockLevel.CRITICAL if f == self.warn_at[-1] else ClockLevel.APPROACHING, f)
               for f in self.warn_at]
        out.append(ClockAlert("forecast", AlertReason.FORECAST, ClockLevel.CRITICAL))
        out.append(ClockAlert("exceeded", AlertReason.EXCEEDED, ClockLevel.EXCEEDED))
        return out

    def status(self, now: datetime, forecast_remaining_s: float | None = None,
               state: ClockState | None = None) -> ClockStatus:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if forecast_remaining_s is not None and forecast_remaining_s < 0:
            raise ValueError(f"forecast_remaining_s must be >= 0 (got {forecast_remaining_s})")
        state = state or ClockState()
        elapsed = max(0.0, (utc(now) - self.frozen_at).total_seconds())
        forecast_total = None if forecast_remaining_s is None else elapsed + forecast_remaining_s
        due = []
        for alert in self.alerts():
            if alert.key in state.fired:
                continue
            if alert.reason is AlertReason.FRACTION:
                hit = elapsed >= alert.fraction * self.budget_s  # type: ignore[operator]
            elif alert.reason is AlertReason.FORECAST:
                hit = forecast_total is not None and forecast_total > self.budget_s
            else:
                hit = elapsed >= self.budget_s
            if hit:
                due.append(alert)
        return ClockStatus(
            frozen_at=self.frozen_at, elapsed_s=elapsed, budget_s=self.budget_s,
            remaining_s=self.budget_s - elapsed, forecast_remaining_s=forecast_remaining_s,
            forecast_total_s=forecast_total, due=tuple(due),
            state=ClockState(fired=state.fired + tuple(a.key for a in due)),
        )
