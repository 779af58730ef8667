"""Triggers that watch replication from the triggerer, whatever the method.

The ``Replication`` implementations are synchronous (psycopg, oracledb, REST); a
trigger runs them in a worker thread (``asyncio.to_thread``) so the triggerer's
event loop never blocks, and keeps one ``Replication`` object for its whole life
so connections and heartbeat markers survive between polls.

Events carry JSON only: ``status`` (``success`` | ``broken`` | ``error``), the
last reading, and for the lag trigger the drain ETA. Never a row value: readings
hold identifiers, LSNs and numbers, and causes are sanitised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from bascule.privacy.sanitize import sanitize_error_text
from bascule.replication.base import LagReading, Replication, ReplicationBroken, ReplicationState
from bascule.replication.eta import drain_eta
from bascule.replication.factory import replication_from_config

log = logging.getLogger(__name__)


def _close(replication: Replication) -> None:
    close = getattr(replication, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # closing must never mask the event
            pass


class ReplicationLagTrigger(BaseTrigger):
    """Fire ``success`` once lag stays at or under ``lag_threshold_s`` for ``stable_window_s``.

    Fires ``broken`` at the first reading whose state is BROKEN (the method decides
    what is definitive and what gets a grace period), so a sensor fails within a poll
    or two instead of running into its timeout.
    """

    def __init__(self, *, replication_config: dict[str, Any], lag_threshold_s: float, stable_window_s: float,
                 poll_interval_s: float = 0.5, eta_points: int = 12) -> None:
        super().__init__()
        self.replication_config = replication_config
        self.lag_threshold_s = float(lag_threshold_s)
        self.stable_window_s = float(stable_window_s)
        self.poll_interval_s = float(poll_interval_s)
        self.eta_points = int(eta_points)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "replication_config": self.replication_config, "lag_threshold_s": self.lag_threshold_s,
            "stable_window_s": self.stable_window_s, "poll_interval_s": self.poll_interval_s,
            "eta_points": self.eta_points,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        replication = replication_from_config(self.replication_config)
        started = time.monotonic()
        history: deque[tuple[datetime, float]] = deque(maxlen=max(self.eta_points, 3))
        stable_since: float | None = None
        last_eta_log = 0.0
        try:
            while True:
                reading: LagReading = await asyncio.to_thread(replication.reading)
                now = time.monotonic()
                if reading.state is ReplicationState.BROKEN:
                    yield TriggerEvent(_event("broken", reading, waited_s=now - started))
                    return
                if reading.lag_seconds is not None:
                    history.append((reading.observed_at, reading.lag_seconds))
                healthy = (reading.state in (ReplicationState.STREAMING, ReplicationState.NOT_CONFIGURED)
                           and (reading.lag_seconds is None and reading.state is ReplicationState.NOT_CONFIGURED
                                or reading.lag_seconds is not None
                                and reading.lag_seconds <= self.lag_threshold_s))
                if healthy:
                    stable_since = now if stable_since is None else stable_since
                    if now - stable_since >= self.stable_window_s:
                        yield TriggerEvent(_event("success", reading, waited_s=now - started,
                                                  stable_s=now - stable_since))
                        return
                else:
                    stable_since = None
                    if now - last_eta_log >= 10:
                        last_eta_log = now
                        eta = drain_eta(list(history), self.lag_threshold_s, points=self.eta_points)
                        self.log.info("replication %s: lag %s s, %s bytes; drain ETA %s", reading.state.value,
                                      reading.lag_seconds, reading.lag_bytes,
                                      "unknown" if eta is None else f"{eta.eta_seconds:.1f} s")
                await asyncio.sleep(self.poll_interval_s)
        finally:
            await asyncio.to_thread(_close, replication)


class ReplicationCaughtUpTrigger(BaseTrigger):
    """Fire ``success`` once the target has applied everything up to ``position`` (the frozen source)."""

    def __init__(self, *, replication_config: dict[str, Any], position: str, poll_interval_s: float = 0.5) -> None:
        super().__init__()
        self.replication_config = replication_config
        self.position = str(position)
        self.poll_interval_s = float(poll_interval_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "replication_config": self.replication_config, "position": self.position,
            "poll_interval_s": self.poll_interval_s,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        replication = replication_from_config(self.replication_config)
        started = time.monotonic()
        try:
            while True:
                event = await asyncio.to_thread(caught_up_event, replication, self.position, started)
                if event is not None:
                    yield TriggerEvent(event)
                    return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            await asyncio.to_thread(_close, replication)


def caught_up_event(replication: Replication, position: str, started: float) -> dict[str, Any] | None:
    """One look: the ``success`` or ``broken`` event if the wait is over, None to look again later.

    Shared by the trigger and by the sensor's short in-process wait before it defers.
    """
    try:
        done = replication.applied_through(position)
    except ReplicationBroken as exc:
        return _event("broken", replication.reading(), waited_s=time.monotonic() - started,
                      cause=exc.cause, position=position)
    except Exception as exc:  # judged by the reading below
        log.warning("applied_through failed: %s", sanitize_error_text(exc))
        done = False
    if done:
        return _event("success", replication.reading(), waited_s=time.monotonic() - started, position=position)
    # Fail fast: a flow that cannot progress will never reach the position.
    reading = replication.reading()
    if reading.state is ReplicationState.BROKEN:
        return _event("broken", reading, waited_s=time.monotonic() - started, position=position)
    return None


def _event(status: str, reading: LagReading, *, waited_s: float, cause: str | None = None,
           **extra: Any) -> dict[str, Any]:
    cause = cause or reading.cause
    return {
        "status": status, "reading": reading.to_json(), "waited_s": round(waited_s, 3),
        "cause": sanitize_error_text(cause) if cause else None, **extra,
    }
