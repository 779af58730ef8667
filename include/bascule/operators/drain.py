"""The drain: wait until the target has applied everything up to the frozen source position.

The replication sensor, plus what the cutover needs around it: a step record
for the report (the time until the trigger saw the target caught up is the
step's work; resuming from the deferral is overhead), the step's Slack
announcements, and the downtime clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bascule.runbook.context import (
    DRAIN_STARTED_XCOM_KEY,
    DRAIN_TIMING_XCOM_KEY,
    StepContext,
    plan_for_run,
    run_conf,
)
from bascule.sensors.replication import ReplicationCaughtUpSensor

if TYPE_CHECKING:
    from bascule.runbook.registry import Runbook


class DrainSensor(ReplicationCaughtUpSensor):
    def __init__(self, *, plan: Any, step: str = "drain", runbook: Runbook | None = None, **kwargs: Any) -> None:
        from bascule.runbook.runtime import with_flush_after_success

        kwargs["on_success_callback"] = with_flush_after_success(kwargs.get("on_success_callback"))
        # The step's record is under DRAIN_TIMING_XCOM_KEY; a return_value copy would cost one more Execution API
        # call between the drain and the checks.
        kwargs.setdefault("do_xcom_push", False)
        wait_in_task = "inline_wait_s" not in kwargs
        super().__init__(**kwargs)
        if wait_in_task:
            # Waiting in the task for as long as the sensor may wait: the downtime clock is watched
            # only while the task's process lives (runtime.clock_watch), and a deferred drain would
            # raise no alert until it resumed. Nothing else runs during the drain, so the worker slot
            # it keeps costs nothing, and no resume (~2 s) is added to the downtime.
            self.inline_wait_s = float(self.timeout)
        self._plan = plan
        self.step = step
        self.runbook = runbook

    def _run_plan(self, context: Any) -> Any:
        """The plan of this run: a rehearsal drains its own environment's replication, never production's."""
        plan = plan_for_run(self._plan, run_conf(context))
        if plan is not self._plan and not getattr(self, "_bascule_rehearsal", False):
            from bascule.replication.factory import drain_config

            self.replication_config = drain_config(plan, self.replication_config.get("direction", "forward"))
            self.__dict__.pop("replication", None)  # built from the production config at parse time
            self._bascule_rehearsal = True
        return plan

    def _ctx(self, context: Any) -> Any:
        ctx = StepContext(plan=self._run_plan(context), airflow=context, step=self.step, runbook=self.runbook,
                          slack_background=True)
        self._bascule_step_ctx = ctx
        return ctx

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import TaskDeferred

        from bascule.runbook import announce, runtime

        self._started_at = datetime.now(UTC).isoformat()
        ctx = self._ctx(context)
        runtime.step_started(ctx, critical_path=True)
        try:
            with runtime.clock_watch(ctx):
                result = super().execute(context)
        except BaseException as exc:
            if isinstance(exc, TaskDeferred):
                # The resumed process records the step: it needs this one's start. Pushed only now,
                # since a drain that finds the target caught up (the usual case) never needs it.
                context["ti"].xcom_push(key=DRAIN_STARTED_XCOM_KEY, value=self._started_at)
            # This process ends here (TaskDeferred, or a failure): send what is queued now.
            announce.flush(ctx)
            raise
        if result is not None:  # caught up without deferring (or nothing to wait for)
            self._record(context, result, ctx)
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from bascule.runbook import announce

        result = super().execute_complete(context, event)
        ctx = self._ctx(context)
        slack = announce.notifier(ctx)
        if slack is not None:
            # Resumed in a new process: keep the count of the start message sent before the deferral.
            slack.carry_earlier_ledger()
        self._record(context, event, ctx)
        return result

    def _record(self, context: Any, event: dict[str, Any], ctx: Any | None = None) -> None:
        from bascule.runbook import runtime

        ti = context["ti"]
        # Resumed after a deferral, this is another process: the start is in XCom.
        started = getattr(self, "_started_at", None) or ti.xcom_pull(task_ids=self.task_id, key=DRAIN_STARTED_XCOM_KEY) \
            or datetime.now(UTC).isoformat()
        ended = datetime.now(UTC)
        waited = float(event.get("waited_s") or 0.0)
        reading = event.get("reading") or {}
        ti.xcom_push(key=DRAIN_TIMING_XCOM_KEY, value={
            "step": self.step, "task_id": self.task_id, "started_at": started, "ended_at": ended.isoformat(),
            "seconds": round(waited, 4), "critical_path": True,
            "result": {"position": event.get("position") or self.position, "waited_s": waited,
                       "state": reading.get("state"), "applied_position": reading.get("applied_position")},
        })
        ctx = ctx or self._ctx(context)
        ctx.log(f"target caught up with the frozen source after {waited:.2f} s")
        runtime.step_finished(ctx, ok=True, seconds=waited, critical_path=True)
