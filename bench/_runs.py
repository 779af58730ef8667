"""The statistics the benches publish: every repetition, its median, and detection gaps.

A bench that repeats a measurement prints every repetition and the median, never
only the best (issue 21: "publish every run's figures"). The lag bench's gaps are
taken between two clocks read in one process: the moment a watcher first saw a row
on the target and the moment the trigger fired. The watcher polls, so the row
became visible somewhere between its last look that missed it and its first look
that found it; a gap is negative only when the trigger fired before that window
opened, i.e. certainly before the row was visible.

Not a bench itself: it prints nothing. bench/lag_detection.py ends with the line these
statistics make, e.g. `median_s=0.411 p95_s=0.493 max_s=0.503 negative_gaps=0`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def _require(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{what}: no values")
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(_require(values, "median"))


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in [0, 1]); with few values it is one of them, never interpolated."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1] (got {q})")
    ordered = sorted(_require(values, "quantile"))
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def runs_text(values: Sequence[float], digits: int = 3) -> str:
    """Every repetition in run order, for a figures line: ``1.101/1.093/1.12``."""
    return "/".join(f"{round(float(v), digits):g}" for v in _require(values, "runs_text"))


def summary(values: Sequence[float], digits: int = 3) -> dict[str, object]:
    """Every run, in order, with the median, min and max: what a bench writes to its JSON."""
    vals = _require(values, "summary")
    return {"runs": [round(v, digits) for v in vals], "median": round(statistics.median(vals), digits),
            "min": round(min(vals), digits), "max": round(max(vals), digits), "n": len(vals)}


@dataclass(frozen=True)
class Gap:
    """A detection gap: ``seconds`` = fired - first seen; ``negative`` when the trigger surely fired early."""

    seconds: float
    resolution_s: float
    negative: bool


def detection_gap(*, fired_at: float, seen_at: float, missed_at: float) -> Gap:
    """The gap between a row becoming visible and the trigger firing, on one monotonic clock.

    ``missed_at``: when the watcher's last look that did not find the row started;
    ``seen_at``: when its first look that found it started. The row became visible in
    ``(missed_at, seen_at]``; a trigger that fired at or before ``missed_at`` fired
    before the row was visible: a negative gap, an error. Firing inside the window is
    within the watcher's resolution and not counted as negative.
    """
    if missed_at > seen_at:
        raise ValueError(f"missed_at ({missed_at}) must not be after seen_at ({seen_at})")
    return Gap(seconds=fired_at - seen_at, resolution_s=seen_at - missed_at, negative=fired_at <= missed_at)
