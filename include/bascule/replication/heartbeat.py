"""End-to-end lag on the publisher's own clock: heartbeat rows plus markers at poll time.

The idea is GoldenGate's heartbeat table: a row on the publisher carries the
publisher's ``clock_timestamp()`` and WAL position; it replicates like any other
change, so the newest heartbeat visible on the subscriber says up to which moment
of the *publisher's* clock the subscriber has applied everything. Lag is then the
publisher's ``now`` minus that moment: two readings of the same clock, no skew.

Who writes it (ADR 0010): whoever reads. Every ``reading()`` first reads the
publisher's position and the walsender's ``replay_lsn``, then writes a marker
(the heartbeat row of its direction) and remembers ``(beat_at, lsn after commit)``
in memory. At the next reading:

* ``replay_lsn >= current WAL end`` read in the same snapshot: the subscriber has
  applied everything that existed at that instant, lag is 0 (exact);
* otherwise the newest remembered marker with ``lsn <= replay_lsn`` has been
  applied, and lag is ``now - its beat_at``: an upper bound that is at most one
  poll interval too high;
* with no applied marker in memory (a first reading), the subscriber's heartbeat
  row gives the same upper bound, coarser.

A separate writer is not needed: the sensors poll every ``poll_interval_s``, and
the monitor samples a few readings ``heartbeat_interval_s`` apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from bascule.engines import postgres_replication as q
from bascule.hooks.replication import PostgresLogicalReplicationHook


def lsn_to_int(lsn: str | None) -> int | None:
    """``'16/B374D848'`` -> integer byte position (PostgreSQL's pg_lsn)."""
    if lsn is None:
        return None
    hi, sep, lo = str(lsn).partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {lsn!r}")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass(frozen=True)
class Marker:
    beat_at: datetime
    lsn: int


class MarkerLog:
    """Recent markers of one reader, oldest first."""

    def __init__(self, maxlen: int = 512) -> None:
        self._markers: deque[Marker] = deque(maxlen=maxlen)

    def add(self, marker: Marker) -> None:
        self._markers.append(marker)

    def newest_applied(self, applied_lsn: int) -> Marker | None:
        newest = None
        for m in self._markers:
            if m.lsn <= applied_lsn:
                newest = m
            else:
                break
        # Markers up to the newest applied one are no longer needed.
        while self._markers and newest is not None and self._markers[0] is not newest:
            self._markers.popleft()
        return newest

    def __len__(self) -> int:
        return len(self._markers)


def ensure_heartbeat(hook: PostgresLogicalReplicationHook, *, replication_role: str | None) -> None:
    """Heartbeat table on both sides (idempotent); the replication role may read it for the initial copy."""
    for side in ("publisher", "subscriber"):
        hook.execute_many(side, [q.create_meta_schema(), q.create_heartbeat_table()])
    if replication_role:
        hook.execute_many("publisher", q.grant_heartbeat_read(replication_role))


def beat(hook: PostgresLogicalReplicationHook, writer: str) -> Marker:
    """Write one heartbeat on the publisher; return when and where (LSN after its commit)."""
    ((beat_at,),) = hook.records("publisher", q.write_heartbeat(writer))
    ((lsn,),) = hook.records("publisher", q.wal_insert_lsn())
    return Marker(beat_at=beat_at, lsn=lsn_to_int(lsn) or 0)


def newest_applied_heartbeat(hook: PostgresLogicalReplicationHook, writer: str) -> datetime | None:
    rows = hook.records("subscriber", q.newest_heartbeat(writer))
    return rows[0][0] if rows else None
