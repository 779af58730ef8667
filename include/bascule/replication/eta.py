"""When will the lag reach the threshold? A least-squares line through the recent readings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

DEFAULT_POINTS = 12


@dataclass(frozen=True)
class DrainEstimate:
    eta_seconds: float
    eta_at: datetime
    slope: float  # seconds of lag per second of wall time; negative while draining
    points: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["eta_at"] = self.eta_at.isoformat()
        return data


def drain_eta(history: Sequence[tuple[datetime, float]], threshold_s: float, *,
              points: int = DEFAULT_POINTS, min_points: int = 3) -> DrainEstimate | None:
    """Estimate from ``(observed_at, lag_seconds)`` pairs (any order) when lag reaches ``threshold_s``.

    Returns 0 s when the newest lag is already at or under the threshold, and None
    when there are too few readings or the lag is not going down.
    """
    if threshold_s < 0:
        raise ValueError(f"threshold_s must be >= 0 (got {threshold_s})")
    recent = sorted((t, float(v)) for t, v in history if v is not None)[-points:]
    if not recent:
        return None
    newest_t, newest_lag = recent[-1]
    if newest_lag <= threshold_s:
        return DrainEstimate(eta_seconds=0.0, eta_at=newest_t, slope=0.0, points=len(recent))
    if len(recent) < min_points:
        return None
    xs = [(t - newest_t).total_seconds() for t, _ in recent]
    ys = [v for _, v in recent]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if slope >= 0:
        return None
    intercept = my - slope * mx  # fitted lag at the newest reading (x = 0)
    seconds = max(0.0, (threshold_s - intercept) / slope)
    return DrainEstimate(eta_seconds=round(seconds, 3), eta_at=newest_t + timedelta(seconds=seconds),
                         slope=round(slope, 6), points=n)
