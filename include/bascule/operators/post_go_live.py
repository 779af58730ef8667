"""After GO LIVE: reverse replication watched for the plan's rollback window, then the window closed (ADR 0057).

The night's GO LIVE starts reverse replication (target -> source): it is what makes the
``rollback`` DAG possible. For ``cutover.rollback_window`` after the night's go-live
instant, :class:`RollbackWindowSensor` samples that flow with the monitors' reading, records
each reading in the target's replication history (the view's reverse lag), and says in the
**night's** Slack thread when the flow goes over its lag threshold, breaks or recovers. At the
end of the window the gate ``close_rollback_window`` (assigned in the plan) decides:
:class:`RetireReverseReplicationOperator` drops the reverse flow and records it retired, so no
monitor reports it and the ``rollback`` DAG refuses to start; :class:`CloseMigrationOperator`
writes the migration's closing record to the evidence store and says so in the night's thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.hooks import evidence
from bascule.hooks.replication import ReplicationHistoryHook
from bascule.operators.decisions import DecisionGuard
from bascule.plan import Plan
from bascule.replication.base import ReplicationState
from bascule.replication.factory import replication_from_plan, runs_reverse
from bascule.runbook.context import DECISION_XCOM_KEY, EVIDENCE_XCOM_KEY, GO, SafeMessage
from bascule.runbook.decisions import Requirement, assigned_people
from bascule.today import parse_instant, utc_now

__all__ = ["CLOSE_GATE", "CloseMigrationOperator", "NoNightToWatch", "RetireReverseReplicationOperator",
           "RollbackWindowSensor", "closed_by", "find_night", "night_of_events", "window_of"]

CLOSE_GATE = "close_rollback_window"
CUTOVER_DAG = "cutover"
NIGHT_XCOM_KEY = "night"


class NoNightToWatch(AirflowFailException, SafeMessage):
    """No night went live for this plan, or the one named did not: nothing to watch. Not retried."""


def find_night(plan_name: str, run_id: str | None = None, *, base: Any = None) -> dict[str, Any]:
    """The night this window follows: ``run_id``'s report, else the last night that went live for real.

    Read from the evidence store (``<store>/<plan>/cutover/<run>/report.json``): its go-live instant (the
    end of its downtime), its outcome, whether it was a rehearsal, and its Slack thread.
    """
    folder = (base / plan_name / CUTOVER_DAG) if base is not None else evidence.dag_folder(plan_name, CUTOVER_DAG)
    reports = [evidence.read_json(p) for p in sorted(folder.glob("*/report.json"))] if folder.exists() else []
    if run_id:
        named = [r for r in reports if r.get("run_id") == run_id]
        if not named:
            raise NoNightToWatch(f"no report of cutover run {run_id!r} in the evidence store ({folder})")
        night = named[0]
        if night.get("outcome") != "completed" or not night.get("downtime_end"):
            raise NoNightToWatch(f"cutover run {run_id!r} ended {night.get('outcome')!r}: it did not go live")
        return night
    live = [r for r in reports if r.get("outcome") == "completed" and r.get("downtime_end") and not r.get("rehearsal")]
    if not live:
        raise NoNightToWatch(f"no cutover of plan {plan_name!r} went live (evidence store {folder}): nothing to "
                             "watch")
    return max(live, key=lambda r: parse_instant(str(r["downtime_end"])))


def night_of_events(events: Iterable[Any], asset_name: str) -> str:
    """The cutover run whose ``went_live`` event started this run: the latest such event among those the run
    consumed (several when the watch was paused across nights).

    The run id is Airflow's own record of the run that emitted the event (``source_run_id``), which the REST
    API cannot set, and the extra must name the same run: an event posted through the API starts no watch.
    """
    ours = [e for e in events if getattr(e, "source_dag_id", None) == CUTOVER_DAG and getattr(e, "source_run_id", None)
            and (getattr(e, "extra", None) or {}).get("run_id") == e.source_run_id]
    if not ours:
        raise NoNightToWatch(f"this run was started by an event on {asset_name} that no cutover run emitted: "
                             "nothing to watch (trigger it by hand with cutover_run_id)")
    return str(max(ours, key=lambda e: e.timestamp).source_run_id)


def closed_by(plan_name: str, night_run_id: str, *, base: Any = None, dag_id: str = "post_go_live") -> str | None:
    """The run that already closed this night's rollback window (its closing record in the evidence store)."""
    folder = (base / plan_name / dag_id) if base is not None else evidence.dag_folder(plan_name, dag_id)
    if not folder.exists():
        return None
    for path in sorted(folder.glob("*/closing.json")):
        record = evidence.read_json(path)
        if record.get("night") == night_run_id and record.get("closed"):
            return str(record.get("run_id"))
    return None


def window_of(night: Mapping[str, Any], window_s: float) -> tuple[datetime, datetime]:
    """From the night's go-live instant (its downtime's end) to the end of the plan's rollback window."""
    start = parse_instant(str(night["downtime_end"]))
    return start, start + timedelta(seconds=window_s)


def _night_thread(night: Mapping[str, Any]) -> Any:
    from bascule.notifications.slack import ThreadRef

    ref = night.get("slack_thread") or {}
    return ThreadRef(channel=str(ref["channel"]), ts=str(ref["ts"])) if ref.get("ts") else None


class RollbackWindowSensor(BaseSensorOperator):
    """Watch reverse replication from the night's go-live until the end of the plan's rollback window.

    Each poke (``mode="reschedule"``: no worker slot is held between pokes, for days) takes one reading,
    records it in the target's history, and posts in the night's Slack thread when the flow's state
    changes (lag over the threshold, broken, recovered). Done at the end of the window; skipped, with the
    gate after it, when a run stopped reverse replication on purpose (a fallback: the window is over).
    """

    template_fields: Sequence[str] = ("cutover_run_id",)
    ui_color = "#e6f4ea"

    def __init__(self, *, plan: Plan, cutover_run_id: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", max(1.0, plan.replication.heartbeat_interval_s))
        # The window, plus a day for the people at the gate's scheduler to be late: a sensor must end.
        kwargs.setdefault("timeout", plan.cutover.rollback_window + 86400.0)
        super().__init__(**kwargs)
        self._plan = plan
        self.cutover_run_id = cutover_run_id

    @cached_property
    def history(self) -> ReplicationHistoryHook:
        return ReplicationHistoryHook(history_conn_id=self._plan.target.conn_id)

    def night_run_id(self, context: Any) -> str | None:
        """The night to watch: the one whose ``went_live`` event started this run, else the param (a manual
        run; empty: the last night that went live)."""
        from bascule.runbook.milestones import went_live_asset

        asset = went_live_asset(self._plan)
        accessor = context.get("triggering_asset_events") if hasattr(context, "get") else None
        events = list(accessor.get(asset) or ()) if accessor else []
        run_type = getattr(context.get("dag_run") if hasattr(context, "get") else None, "run_type", None)
        if events or str(getattr(run_type, "value", run_type)) == "asset_triggered":
            return night_of_events(events, asset.name)
        return self.cutover_run_id or None

    def poke(self, context: Any) -> PokeReturnValue | bool:
        from bascule.privacy.sanitize import sanitize_error_text

        plan = self._plan
        night = find_night(plan.name, self.night_run_id(context))
        closer = closed_by(plan.name, str(night["run_id"]))
        if closer is not None:
            # A run queued behind the one that closed it (max_active_runs=1): no second watch of the same night.
            raise AirflowSkipException(f"the rollback window of night {night['run_id']} was closed by run "
                                       f"{closer}: nothing to watch")
        start, end = window_of(night, plan.cutover.rollback_window)
        method = plan.replication.method.value
        last = self.history.last_flow_event(method=method, direction="reverse")
        if last is not None and last.quiet:
            raise AirflowSkipException(f"reverse replication was {last.describe()}: the rollback window is over "
                                       "without being closed here")
        repl = replication_from_plan(plan, "reverse")
        try:
            reading = repl.reading()
        finally:
            close = getattr(repl, "close", None)
            if callable(close):
                close()
        cause = sanitize_error_text(reading.cause) if reading.cause else None
        self.history.record({"observed_at": reading.observed_at, "state": reading.state.value,
                             "lag_seconds": reading.lag_seconds, "lag_bytes": reading.lag_bytes,
                             "source_position": reading.source_position,
                             "applied_position": reading.applied_position, "eta_seconds": None, "cause": cause,
                             "dag_run_id": context["run_id"]}, method=method, direction="reverse")
        threshold = plan.replication.lag_threshold_s
        alert = ("broken" if reading.state is ReplicationState.BROKEN
                 else "lag" if reading.lag_seconds is not None and reading.lag_seconds > threshold else None)
        self._tell(context, night, alert, reading, threshold)
        now = utc_now()
        self.log.info("reverse replication %s, lag %s s; rollback window of night %s: %s -> %s (%s)",
                      reading.state.value, reading.lag_seconds, night["run_id"], start.isoformat(timespec="seconds"),
                      end.isoformat(timespec="seconds"), "over" if now >= end else f"{(end - now).total_seconds():.0f} s left")
        if now < end:
            return False
        summary = {"night": night["run_id"], "window_start": start.isoformat(), "window_end": end.isoformat(),
                   "window_s": plan.cutover.rollback_window, "state": reading.state.value,
                   "lag_seconds": reading.lag_seconds, "slack_thread": night.get("slack_thread")}
        ti = context["ti"]
        ti.xcom_push(key=NIGHT_XCOM_KEY, value=summary)
        ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=(
            f"**Rollback window of night `{night['run_id']}`**: {start.isoformat(timespec='seconds')} -> "
            f"{end.isoformat(timespec='seconds')} ({plan.cutover.rollback_window:.0f} s).\n\n"
            f"Reverse replication (target -> source) now: **{reading.state.value}**, lag {reading.lag_seconds} s."
            "\n\nGO retires reverse replication and the old source's part in the migration: the `rollback` DAG "
            "can no longer fall back. NO-GO keeps the window open (trigger this DAG again to watch it)."))
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def _tell(self, context: Any, night: Mapping[str, Any], alert: str | None, reading: Any,
              threshold: float) -> None:
        # In the night's thread, only when the flow's state changes; never failing the watch.
        try:
            from bascule.notifications.events import LagAlert, ReplicationBrokenEvent, ReplicationRecovered
            from bascule.notifications.slack import SlackNotifications

            slack = SlackNotifications.for_plan(self._plan.notifications, ti=context["ti"])
            if slack is None:
                return
            method = self._plan.replication.method.value.replace("-", "_")
            ids = {"dag_id": CUTOVER_DAG, "run_id": str(night["run_id"])}
            event: Any
            if alert is None:
                event = ReplicationRecovered(**ids, method=method, direction="reverse", lag_s=reading.lag_seconds)
            elif alert == "broken":
                event = ReplicationBrokenEvent(**ids, method=method, cause=reading.cause or "unknown")
            else:
                event = LagAlert(**ids, method=method, lag_s=float(reading.lag_seconds or 0.0), threshold_s=threshold,
                                 lag_bytes=reading.lag_bytes)
            slack.flow_change(f"{method}__reverse", event, state=alert or "ok", thread=_night_thread(night))
        except Exception:
            self.log.exception("the reverse flow's %s could not be told on Slack", alert or "state")


class RetireReverseReplicationOperator(BaseOperator):
    """GO at ``close_rollback_window``: drop reverse replication (its subscription on the source, its slot and
    publication on the target) and record it retired on purpose. The signed GO is checked before anything."""

    ui_color = "#fbeaea"

    def __init__(self, *, plan: Plan, gate_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("pre_execute", DecisionGuard(
            key_conn_id=plan.decisions.key_conn_id, requirements=[Requirement(gate_task_id, CLOSE_GATE, GO)],
            assigned=assigned_people(plan)))
        super().__init__(**kwargs)
        self._plan = plan

    def execute(self, context: Any) -> dict[str, Any]:
        plan = self._plan
        retired = False
        if runs_reverse(plan):
            repl = replication_from_plan(plan, "reverse", expect_running=False)
            try:
                repl.drop()
            finally:
                repl.close()
            retired = True
            self.log.info("reverse replication retired: subscription, slot and publication dropped")
        else:
            self.log.info("reverse replication for %s is retired outside bascule", plan.replication.method.value)
        ReplicationHistoryHook(history_conn_id=plan.target.conn_id).record_flow_event(
            method=plan.replication.method.value, direction="reverse", event="retired",
            dag_id=context["ti"].dag_id, run_id=context["ti"].run_id)
        return {"reverse_replication": "dropped" if retired else "outside bascule", "source": "retired"}


class CloseMigrationOperator(BaseOperator):
    """The migration's closing record: the window watched, the decision, what was retired; in the evidence store
    and in the night's Slack thread. Runs whatever the gate's answer (``all_done``)."""

    ui_color = "#e0f0ff"

    def __init__(self, *, plan: Plan, watch_task_id: str, gate_task_id: str, retire_task_id: str,
                 **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self._plan = plan
        self.watch_task_id = watch_task_id
        self.gate_task_id = gate_task_id
        self.retire_task_id = retire_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        watched = ti.xcom_pull(task_ids=self.watch_task_id, key=NIGHT_XCOM_KEY) or {}
        decision = ti.xcom_pull(task_ids=self.gate_task_id, key=DECISION_XCOM_KEY) or {}
        retired = ti.xcom_pull(task_ids=self.retire_task_id)
        closed = bool(retired)
        record = {
            "plan": self._plan.name, "dag_id": ti.dag_id, "run_id": ti.run_id, "night": watched.get("night"),
            "window": {k: watched.get(k) for k in ("window_start", "window_end", "window_s")},
            "reverse_replication_at_end": {"state": watched.get("state"), "lag_seconds": watched.get("lag_seconds")},
            "decision": {k: decision.get(k) for k in ("gate", "decision", "by", "at")} if decision else None,
            "retired": retired, "closed": closed, "written_at": utc_now().isoformat(),
        }
        path = evidence.write_json(evidence.run_folder(self._plan.name, ti.dag_id, ti.run_id) / "closing.json",
                                   record)
        self.log.info("migration %s: %s; record %s", self._plan.name,
                      "closed, the rollback window retired" if closed else "rollback window left open", path)
        if closed and watched.get("night"):
            self._tell(context, watched)
        return {**record, "file": str(path)}

    def _tell(self, context: Any, watched: Mapping[str, Any]) -> None:
        try:
            from bascule.notifications.events import StepFinished, StepOutcome, TaskRef
            from bascule.notifications.slack import MemoryThreadStore, SlackNotifications, thread_key

            store = MemoryThreadStore()
            ref = _night_thread(watched)
            if ref is not None:
                store.put(thread_key(CUTOVER_DAG, str(watched["night"])), ref)
            slack = SlackNotifications.for_plan(self._plan.notifications, ti=context["ti"], thread_store=store)
            if slack is None:
                return
            ti = context["ti"]
            slack.notify(StepFinished(dag_id=CUTOVER_DAG, run_id=str(watched["night"]), step=CLOSE_GATE,
                                      task=TaskRef(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id),
                                      outcome=StepOutcome.SUCCEEDED, duration_s=float(watched.get("window_s") or 0),
                                      critical_path=False))
        except Exception:
            self.log.exception("the closing could not be told on Slack")
