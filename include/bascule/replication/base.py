"""The contract every replication method fulfils.

Sensors, triggers and the cutover talk only to this interface, so a sensor never
knows which engine it is watching. Readings are plain, JSON-able values: they go
to XCom, notifications and reports, and must never carry a row value.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


class ReplicationState(enum.StrEnum):
    NOT_CONFIGURED = "not_configured"
    INITIAL_SYNC = "initial_sync"
    STREAMING = "streaming"
    STOPPED = "stopped"
    BROKEN = "broken"


class ReplicationBroken(RuntimeError):
    """Replication cannot make progress on its own; ``cause`` says why in one line."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause  # a SafeText when bascule composed it from names, states and counts


@dataclass(frozen=True)
class LagReading:
    """One observation of replication health.

    ``lag_seconds`` is end-to-end, measured on the source's clock (heartbeat), so
    clock skew between hosts does not distort it. Positions are engine-native
    (LSN for PostgreSQL, SCN for Oracle) and kept as text.
    """

    state: ReplicationState
    observed_at: datetime
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    source_position: str | None = None
    applied_position: str | None = None
    cause: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        data["observed_at"] = self.observed_at.isoformat()
        return data


class Replication(abc.ABC):
    """Start, watch and stop the flow of changes from source to target."""

    method: str

    @abc.abstractmethod
    def reading(self) -> LagReading:
        """Current state, lag and positions. Never raises for a broken flow: reports it."""

    @abc.abstractmethod
    def source_position(self) -> str | None:
        """The source's current write position, the stop point once it is frozen."""

    @abc.abstractmethod
    def applied_through(self, position: str) -> bool:
        """True once the target has applied every change up to ``position``."""
