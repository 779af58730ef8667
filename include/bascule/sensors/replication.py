"""Sensors on replication: lag under the threshold, and the target caught up with the frozen source.

Both defer to a trigger (the triggerer polls; no worker slot is held) and work for
every method through the ``Replication`` interface: build their
``replication_config`` with :func:`bascule.replication.factory.replication_config`
(or use :meth:`from_plan`). A broken flow fails the task at once with the cause
in its message (``AirflowFailException``: retrying cannot mend a dropped slot or a
disabled subscription; a person must look).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from bascule.privacy.sanitize import SafeText, sanitize_error_text
from bascule.replication.base import Replication, ReplicationState
from bascule.replication.factory import replication_config, replication_from_config
from bascule.triggers.replication import ReplicationCaughtUpTrigger, ReplicationLagTrigger, caught_up_event

DEFAULT_TIMEOUT_S = 6 * 3600.0
# A wait in the task logs where it stands this often (the trigger's wait shows in the triggerer's log).
PROGRESS_EVERY_S = 15.0


class _ReplicationSensor(BaseSensorOperator):
    def __init__(self, *, replication_config: dict[str, Any], poll_interval: float = 0.5,
                 timeout: float = DEFAULT_TIMEOUT_S, deferrable: bool = True, **kwargs: Any) -> None:
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        if not isinstance(replication_config, dict) or "method" not in replication_config:
            raise ValueError(f"{self.task_id}: replication_config must be a dict with a 'method' "
                             "(build it with bascule.replication.factory.replication_config)")
        self.replication_config = replication_config
        self.poll_interval = float(poll_interval)
        self.deferrable = deferrable

    @cached_property
    def replication(self) -> Replication:
        return replication_from_config(self.replication_config)

    def _fail(self, event: dict[str, Any]) -> None:
        # Sanitised here, the one place a cause becomes a failure, whichever path (trigger or poke) brought it:
        # a driver's cause can quote a row.
        # Sanitised here, the one place a cause becomes a failure: bascule's own words (SafeText) pass, a
        # driver's text is reduced to its codes and known names.
        cause = sanitize_error_text(event["cause"]) if event.get("cause") else "unknown cause"
        raise AirflowFailException(
            f"{self.task_id}: replication is broken: {cause} (after {event.get('waited_s', 0):.1f} s)"
        )

    def _complete(self, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            # A trigger's event: its cause was sanitised where the event was made (triggers.replication._event).
            self._fail({**event, "cause": SafeText(event["cause"]) if event.get("cause") else None})
        reading = event.get("reading") or {}
        self.log.info("%s: %s after %.1f s (lag %s)", self.task_id, reading.get("state"),
                      event.get("waited_s", 0.0), _lag_text(reading.get("lag_seconds"), reading.get("lag_bytes")))
        return event


def _lag_text(seconds: float | None, behind: int | None) -> str:
    lag = "unknown" if seconds is None else f"{seconds:.1f} s"
    return lag if behind is None else f"{lag}, {behind} bytes"


class ReplicationLagSensor(_ReplicationSensor):
    """Wait until replication lag stays at or under ``lag_threshold_s`` for ``stable_window_s``.

    :param replication_config: the method and its connection ids (``replication_config(plan)``).
    :param lag_threshold_s: end-to-end lag, in seconds, that counts as caught up.
    :param stable_window_s: how long the lag must stay under the threshold.
    :param poll_interval: seconds between readings.
    :param timeout: seconds before the sensor gives up.
    """

    template_fields: Sequence[str] = ("replication_config", "lag_threshold_s", "stable_window_s")
    ui_color = "#fdf1d6"

    def __init__(self, *, replication_config: dict[str, Any], lag_threshold_s: float, stable_window_s: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        self.lag_threshold_s = lag_threshold_s
        self.stable_window_s = stable_window_s

    @classmethod
    def from_plan(cls, plan: Any, *, direction: str = "forward", **kwargs: Any) -> ReplicationLagSensor:
        r = plan.replication
        kwargs.setdefault("lag_threshold_s", r.lag_threshold_s)
        kwargs.setdefault("stable_window_s", r.stable_window_s)
        kwargs.setdefault("poll_interval", r.poll_interval_s)
        return cls(replication_config=replication_config(plan, direction), **kwargs)

    def _trigger(self) -> ReplicationLagTrigger:
        return ReplicationLagTrigger(replication_config=self.replication_config,
                                     lag_threshold_s=float(self.lag_threshold_s),
                                     stable_window_s=float(self.stable_window_s),
                                     poll_interval_s=self.poll_interval)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(trigger=self._trigger(), method_name="execute_complete", timeout=timedelta(seconds=float(self.timeout)))

    def poke(self, context: Any) -> bool:
        reading = self.replication.reading()
        if reading.state is ReplicationState.BROKEN:
            self._fail({"cause": reading.cause, "waited_s": 0.0})
        # Without the trigger, the stable window is not tracked: one good reading is enough.
        return reading.state is ReplicationState.STREAMING and reading.lag_seconds is not None \
            and reading.lag_seconds <= float(self.lag_threshold_s)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return self._complete(event)


class ReplicationCaughtUpSensor(_ReplicationSensor):
    """Once the source is frozen, wait until the target has applied everything up to its position.

    :param replication_config: the method and its connection ids (``replication_config(plan)``).
    :param position: the source's frozen position (LSN / SCN), templated; read from the source at
        execution when omitted, so run this sensor only after the freeze.
    :param poll_interval: seconds between readings.
    :param timeout: seconds before the sensor gives up.
    :param inline_wait_s: seconds to keep looking in the task itself before deferring to the
        triggerer (0: one look, then defer).
    """

    template_fields: Sequence[str] = ("replication_config", "position")
    ui_color = "#e3f5e1"

    def __init__(self, *, replication_config: dict[str, Any], position: str | None = None,
                 inline_wait_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        if inline_wait_s < 0:
            raise ValueError(f"{self.task_id}: inline_wait_s must be >= 0 (got {inline_wait_s})")
        self.position = position
        self.inline_wait_s = float(inline_wait_s)

    @classmethod
    def from_plan(cls, plan: Any, *, direction: str = "forward", **kwargs: Any) -> ReplicationCaughtUpSensor:
        kwargs.setdefault("poll_interval", plan.replication.poll_interval_s)
        return cls(replication_config=replication_config(plan, direction), **kwargs)

    def _frozen_position(self, context: Any) -> str | None:
        if self.position:
            return str(self.position)
        position = self.replication.source_position()
        self.log.info("%s: source position at the freeze: %s", self.task_id, position)
        context["ti"].xcom_push(key="frozen_position", value=position)
        return position

    def execute(self, context: Any) -> Any:
        return self.wait_caught_up(context)

    def wait_caught_up(self, context: Any) -> Any:
        """What ``execute`` does; callable from another operator's ``execute`` (Airflow's ExecutorSafeguard
        warns when one operator's ``execute`` calls another's)."""
        position = self._frozen_position(context)
        if position is None:  # method "none": nothing flows, nothing to wait for
            return {"status": "success", "position": None, "reading": self.replication.reading().to_json()}
        if not self.deferrable:
            self.position = position
            return super().execute(context)
        # On cutover night the target is usually caught up within a poll or two of the freeze;
        # a deferral would add the triggerer's pick-up and the task's resume (~2 s) to the downtime.
        started = time.monotonic()
        reported = started
        while True:
            event = caught_up_event(self.replication, position, started)
            if event is not None:
                return self._complete(event)
            now = time.monotonic()
            if now - started + self.poll_interval > self.inline_wait_s:
                break
            if now - reported >= PROGRESS_EVERY_S:
                reported = now
                self._log_progress(position, now - started)
            time.sleep(self.poll_interval)
        # The inline wait counts against the timeout: it bounds the whole wait, not each half of it.
        remaining = max(0.0, float(self.timeout) - (time.monotonic() - started))
        self.defer(trigger=ReplicationCaughtUpTrigger(replication_config=self.replication_config,
                                                      position=position, poll_interval_s=self.poll_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=remaining))

    def _log_progress(self, position: str, waited_s: float) -> None:
        reading = self.replication.reading()
        self.log.info("%s: waiting for position %s for %.0f s (%s, lag %s, applied %s)", self.task_id, position,
                      waited_s, reading.state.value, _lag_text(reading.lag_seconds, reading.lag_bytes),
                      reading.applied_position or "unknown")

    def poke(self, context: Any) -> bool:
        from bascule.replication.base import ReplicationBroken

        try:
            return self.replication.applied_through(str(self.position))
        except ReplicationBroken as exc:
            self._fail({"cause": exc.cause, "waited_s": 0.0})
            return False

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        return self._complete(event)
