"""No replication: the offline-copy plan.

The source is frozen before the copy starts and stays frozen until switchover,
so there is no change flow, no lag to wait for, and nothing can be behind:
``applied_through`` is always true and the reading says NOT_CONFIGURED rather
than pretending to stream.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bascule.replication.base import LagReading, Replication, ReplicationState


class NoReplication(Replication):
    """Offline copy: no change capture, no lag, positions meaningless."""

    method = "none"

    def reading(self) -> LagReading:
        return LagReading(
            state=ReplicationState.NOT_CONFIGURED,
            observed_at=datetime.now(UTC),
            details={"method": self.method, "reason": "offline copy, source frozen for the whole copy"},
        )

    def source_position(self) -> str | None:
        return None

    def applied_through(self, position: str) -> bool:
        return True
