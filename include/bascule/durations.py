"""Human durations for plans: ``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"`` or a bare number of seconds.

Kept dependency-free so plan parsing stays cheap at DAG import time.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration"]

# Units must appear largest first and at most once, so "30m1h" or "1h1h" are rejected
# rather than silently summed: an operator typo in a downtime budget should fail loudly.
_DURATION_RE = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?"
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?$"
)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_HINT = "must be a duration like 2h, 90m, 1h30m, 45s or a number of seconds"


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds; raise ``ValueError`` with a one-line human message.

    The sign is not checked here: callers decide whether zero or negative is allowed,
    so the error can say which bound was violated.
    """
    # bool is an int subclass; "timeout: yes" in YAML must not become one second.
    if isinstance(value, bool):
        raise ValueError(f"{_HINT} (got {value!r})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").lower()
        seconds = _parse_text(text, original=value)
    else:
        raise ValueError(f"{_HINT} (got {type(value).__name__})")
    if not math.isfinite(seconds):
        raise ValueError(f"{_HINT} (got {value!r})")
    return seconds


def _parse_text(text: str, *, original: str) -> float:
    if not text:
        raise ValueError(f"{_HINT} (got {original!r})")
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION_RE.match(text)
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"{_HINT} (got {original!r})")
    return sum(float(amount) * _UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount)


def format_duration(seconds: float) -> str:
    """Compact rendering used in summaries and messages: 7200 -> "2h", 5400 -> "1h30m"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole = int(seconds)
    if whole != seconds or whole == 0:
        # Sub-second precision matters for poll intervals; do not round it away.
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts)
