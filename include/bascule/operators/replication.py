"""Operators the preparation and cutover DAGs reuse: check, start, stop, sync DDL, monitor.

They hold their ``Replication`` through ``@cached_property`` and reach databases
only through it (its hooks). Lifecycle operations exist for ``postgres-logical``;
``none`` has nothing to start or stop; GoldenGate processes are started and
stopped by the GoldenGate team's own tooling, and bascule only watches them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bascule.hooks.replication import ReplicationHistoryHook
from bascule.privacy.sanitize import sanitize_error_text
from bascule.replication.base import LagReading, Replication, ReplicationState
from bascule.replication.eta import drain_eta
from bascule.replication.factory import replication_from_config


class _ReplicationOperator(BaseOperator):
    template_fields: Sequence[str] = ("replication_config",)

    def __init__(self, *, replication_config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(replication_config, dict) or "method" not in replication_config:
            raise ValueError(f"{self.task_id}: replication_config must be a dict with a 'method'")
        self.replication_config = replication_config

    @cached_property
    def replication(self) -> Replication:
        return replication_from_config(self.replication_config)

    def _managed(self) -> Any | None:
        """The postgres-logical object, None for ``none``; GoldenGate lifecycle is not bascule's."""
        from bascule.replication.postgres_logical import PostgresLogicalReplication

        if isinstance(self.replication, PostgresLogicalReplication):
            return self.replication
        if self.replication.method == "none":
            return None
        raise AirflowFailException(
            f"{self.task_id}: {self.replication.method}: start/stop/DDL sync is run by the GoldenGate "
            "deployment's own tooling; bascule only watches it"
        )


class CheckReplicationPrerequisitesOperator(_ReplicationOperator):
    """Check what replication needs; fail on any blocking finding, listing each with its fix."""

    ui_color = "#eef3fb"

    def execute(self, context: Any) -> list[dict[str, Any]]:
        repl = self._managed()
        if repl is None:
            return []
        findings = repl.check_prerequisites()
        for f in findings:
            if not f.ok:
                self.log.warning("%s: %s: %s. Fix: %s", f.check, f.subject, f.message, f.fix)
        blocking = [f for f in findings if not f.ok and f.severity == "error"]
        if blocking:
            raise AirflowFailException(f"{len(blocking)} replication prerequisite(s) not met: " + "; ".join(
                f"{f.subject}: {f.message}" for f in blocking))
        return [f.to_json() for f in findings]


class StartReplicationOperator(_ReplicationOperator):
    """Publish the scope and subscribe (initial load with ``copy_data``); resume if disabled."""

    ui_color = "#e3f5e1"

    def __init__(self, *, replication_config: dict[str, Any], copy_data: bool = True, **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        self.copy_data = copy_data

    def execute(self, context: Any) -> dict[str, Any]:
        repl = self._managed()
        if repl is None:
            return self.replication.reading().to_json()
        tables = repl.create_publication()
        repl.create_subscription(copy_data=self.copy_data, enabled=True)
        repl.enable()
        self.log.info("publication %s: %d tables; subscription %s enabled", repl.publication, len(tables),
                      repl.subscription)
        # The monitors watch this flow again (a flow retired by an earlier night is started anew here).
        self._record_started(context, repl)
        return repl.reading().to_json()

    def _record_started(self, context: Any, repl: Any) -> None:
        # Bookkeeping: a flow that runs is what matters; a failure here only leaves the monitors' note as it was.
        direction = str(self.replication_config.get("direction", "forward"))
        try:
            # Recorded where the monitors keep their history: the plan's target, whichever way the flow runs.
            history = repl.subscriber_conn_id if direction == "forward" else repl.publisher_conn_id
            ti = context.get("ti")
            ReplicationHistoryHook(history_conn_id=history).record_flow_event(
                method=repl.method, direction=direction, event="started", dag_id=getattr(ti, "dag_id", None),
                run_id=getattr(ti, "run_id", None))
        except Exception as exc:
            self.log.warning("the %s flow's start was not recorded for the monitors: %s", direction,
                             sanitize_error_text(exc))


class StopReplicationOperator(_ReplicationOperator):
    """Stop applying (``drop=False``: the slot keeps the changes) or remove the flow entirely."""

    ui_color = "#fbeaea"

    def __init__(self, *, replication_config: dict[str, Any], drop: bool = False, **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        self.drop = drop

    def execute(self, context: Any) -> dict[str, Any]:
        repl = self._managed()
        if repl is None:
            return {"stopped": True, "dropped": False}
        if self.drop:
            repl.drop()
        else:
            repl.disable()
        return {"stopped": True, "dropped": self.drop}


class SyncSchemaChangesOperator(_ReplicationOperator):
    """Carry source DDL (tables, partitions, indexes) to the target and refresh the subscription."""

    ui_color = "#f3eefb"

    def __init__(self, *, replication_config: dict[str, Any], apply: bool = True, **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        self.apply = apply

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.replication.ddl_sync import sync_schema_changes

        repl = self._managed()
        if repl is None:
            return {}
        result = sync_schema_changes(repl, apply=self.apply)
        self.log.info("DDL sync: %d table(s), %d partition(s), %d index(es) missing on the target%s",
                      len(result.missing_tables), len(result.missing_partitions), len(result.missing_indexes),
                      " (created)" if result.applied else "")
        for item in result.not_replicated:
            self.log.warning("not replicated: %s %s", item["kind"], item["object"])
        return result.to_json()


class ReplicationMonitorOperator(_ReplicationOperator):
    """Sample a few readings, record them in the target's history table, estimate the drain ETA, alert.

    :param history_conn_id: connection of the database holding ``bascule_meta.replication_history``.
    :param lag_threshold_s: alert above this lag.
    :param samples: readings taken ``sample_interval_s`` apart (they are also the heartbeat markers).
    :param notifications: the plan's notifications section (or None: log lines only).
    """

    template_fields: Sequence[str] = ("replication_config", "history_conn_id", "lag_threshold_s")
    ui_color = "#fdf1d6"

    def __init__(self, *, replication_config: dict[str, Any], history_conn_id: str, lag_threshold_s: float,
                 samples: int = 3, sample_interval_s: float = 2.0, notifications: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(replication_config=replication_config, **kwargs)
        if samples < 1:
            raise ValueError(f"{self.task_id}: samples must be >= 1 (got {samples})")
        self.history_conn_id = history_conn_id
        self.lag_threshold_s = lag_threshold_s
        self.samples = samples
        self.sample_interval_s = sample_interval_s
        self.notifications = notifications

    @cached_property
    def history(self) -> ReplicationHistoryHook:
        return ReplicationHistoryHook(history_conn_id=self.history_conn_id)

    def _sample(self) -> list[LagReading]:
        readings = []
        for i in range(self.samples):
            if i:
                time.sleep(self.sample_interval_s)
            readings.append(self.replication.reading())
            if readings[-1].state is ReplicationState.BROKEN:
                break
        close = getattr(self.replication, "close", None)
        if callable(close):
            close()
        return readings

    def execute(self, context: Any) -> dict[str, Any]:
        threshold = float(self.lag_threshold_s)
        direction = str(self.replication_config.get("direction", "forward"))
        # A flow a run stopped or retired on purpose (the night retires the forward flow at GO LIVE) is not
        # broken: say so in the log, post nothing, and watch it again once a run starts it (ADR 0057).
        last = self.history.last_flow_event(method=self.replication.method, direction=direction)
        if last is not None and last.quiet:
            self.log.info("the %s flow was %s: not watched", direction, last.describe())
            return {"reading": None, "samples": 0, "eta": None, "alert": None, "alert_delivered": None,
                    "recovery_posted": False, "quiet": last.describe()}
        readings = self._sample()
        final = readings[-1]
        # The cause goes to the history table and the log: sanitised first (a driver's cause can quote a row).
        cause = sanitize_error_text(final.cause) if final.cause else None
        history = [(r.observed_at, r.lag_seconds) for r in readings if r.lag_seconds is not None]
        row = {"observed_at": final.observed_at, "state": final.state.value, "lag_seconds": final.lag_seconds,
               "lag_bytes": final.lag_bytes, "source_position": final.source_position,
               "applied_position": final.applied_position, "eta_seconds": None, "cause": cause,
               "dag_run_id": context["run_id"]}
        past = self.history.record(row, method=self.replication.method, direction=direction)
        eta = drain_eta([*past, *history], threshold)
        alert = None
        if final.state is ReplicationState.BROKEN:
            alert = "broken"
            self.log.error("replication BROKEN: %s", cause)
        elif final.lag_seconds is not None and final.lag_seconds > threshold:
            alert = "lag"
            self.log.warning("replication lag %.1f s over the threshold %.1f s; drain ETA %s", final.lag_seconds,
                             threshold, "unknown (not draining)" if eta is None else f"{eta.eta_seconds:.0f} s")
        else:
            self.log.info("replication %s: lag %s s, %s bytes behind", final.state.value, final.lag_seconds,
                          final.lag_bytes)
        # One Slack thread per flow: it speaks when the flow's state changes, never every five minutes.
        delivered = self._alert(context, alert, final, threshold, direction=direction)
        return {"reading": final.to_json(), "samples": len(readings),
                "eta": None if eta is None else eta.to_json(), "alert": alert,
                "alert_delivered": delivered if alert else None, "recovery_posted": bool(delivered) and not alert}

    def _alert(self, context: Any, alert: str | None, reading: LagReading, threshold: float, *,
               direction: str = "forward") -> bool:
        # Notifications must never fail the monitor: a Slack outage is not a replication problem.
        try:
            from bascule.notifications.events import LagAlert, ReplicationBrokenEvent, ReplicationRecovered
            from bascule.notifications.slack import SlackNotifications

            slack = SlackNotifications.for_plan(self.notifications, ti=context["ti"])
            if slack is None:
                return False
            ti = context["ti"]
            method = self.replication.method.replace("-", "_")
            flow = f"{method}__{direction}"
            if alert is None:
                return slack.flow_change(flow, ReplicationRecovered(
                    dag_id=ti.dag_id, run_id=ti.run_id, method=method, direction=direction,
                    lag_s=reading.lag_seconds), state="ok")
            if alert == "broken":
                event: Any = ReplicationBrokenEvent(dag_id=ti.dag_id, run_id=ti.run_id, method=method,
                                                    cause=reading.cause or "unknown")
            else:
                event = LagAlert(dag_id=ti.dag_id, run_id=ti.run_id, method=method,
                                 lag_s=float(reading.lag_seconds or 0.0), threshold_s=threshold,
                                 lag_bytes=reading.lag_bytes)
            return slack.flow_change(flow, event, state=alert)
        except Exception:
            self.log.exception("%s alert could not be sent", alert)
            return False
