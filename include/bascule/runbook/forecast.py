"""The night's forecast while it runs: how much downtime is still to come, at the rehearsed pace.

bascule knows every step of the previous run of the same plan and DAG (its report: the rehearsal).
While step S runs, the downtime still to come is what S has left of its rehearsed duration, plus
everything the rehearsal did after S ended. A step that runs past its rehearsed time keeps adding
to the elapsed time while the rest stays the same, so the downtime clock's ``forecast`` alert fires
as soon as the night can no longer end within the budget at the rehearsed pace of what is left:
long before the budget itself is spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bascule.today import parse_instant


@dataclass(frozen=True)
class StepForecast:
    planned_s: float
    rest_after_s: float

    def remaining(self, step_elapsed_s: float) -> float:
        """Downtime still to come when the step has run ``step_elapsed_s`` seconds."""
        return max(0.0, self.planned_s - max(0.0, step_elapsed_s)) + self.rest_after_s


def step_forecast(previous: Mapping[str, Any] | None, step: str) -> StepForecast | None:
    """The rehearsal's figures for ``step``; None without a rehearsal, or for a step outside its downtime."""
    if not previous or not previous.get("frozen_at") or not previous.get("downtime_end"):
        return None
    row = next((s for s in previous.get("steps") or [] if s.get("step") == step), None)
    if row is None or not row.get("ended_at"):
        return None
    try:
        frozen = parse_instant(previous["frozen_at"])
        end = parse_instant(previous["downtime_end"])
        ended = parse_instant(row["ended_at"])
        planned = float(row["actual_s"])
    except (KeyError, TypeError, ValueError):
        return None
    if ended <= frozen or ended > end:
        return None  # before the freeze or after the writes reopened: not downtime
    return StepForecast(planned_s=planned, rest_after_s=(end - ended).total_seconds())
