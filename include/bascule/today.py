"""What "today" and "now" mean to bascule, in one place.

Two kinds of time run through a migration, and they must not be mixed:

**Instants** (when a step started, when writes were frozen, when a gate was answered)
are always aware datetimes, compared and subtracted in UTC. Durations are computed
only between UTC instants: Python subtracts two datetimes that share a ``tzinfo``
object on their wall clocks, so a night in ``Europe/Paris`` that spans the change to
or from summer time would be off by an hour if its bounds were left in local time.
:func:`utc` and :func:`parse_instant` are the only ways instants enter the downtime
clock and the reports; a naive time is refused, never guessed.

**The day "old" is measured from** (which audit partitions are past their retention):
- in production, the real date, :func:`utc_today`: retention follows the calendar;
- in the lab, the date the synthetic hospital is laid out from
  (``bascule_lab.seed.REFERENCE_DATE``), which the lab plan declares as
  ``storage.as_of``. The seeded data, the storage analysis, its tests and
  ``bench/storage.py`` all read that one date, so the same commit archives the same
  partitions on any day. A production plan cannot set ``as_of`` (``bascule.plan``
  refuses it).

Code that runs inside PostgreSQL gets its dates passed in (the seed's
``bascule.reference_date`` setting) rather than reading ``now()``, except for what
the application itself stamps: live writes carry the database's real ``now()``, and
the lab's partitioned audit log has a default partition for them, so its layout does
not depend on the day it was created.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

__all__ = ["parse_instant", "retention_today", "utc", "utc_now", "utc_today"]


def utc_now() -> datetime:
    """The current instant, aware, in UTC."""
    return datetime.now(UTC)


def utc_today() -> date:
    """Today's date in UTC: the production answer to "how old is this"."""
    return utc_now().date()


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive value is an error, not a guess."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{value.isoformat()} is a naive time: instants must carry their UTC offset")
    return value.astimezone(UTC)


def parse_instant(value: str | datetime) -> datetime:
    """An ISO 8601 instant (as stored in XCom and reports) as an aware UTC datetime."""
    return utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def retention_today(plan: Any) -> date:
    """The day retention is measured from for ``plan``: its ``storage.as_of`` in the lab, else the real date."""
    as_of = plan.storage.as_of
    return as_of if as_of is not None else utc_today()
