"""The drain: wait until the target has applied everything up to the frozen source position.

The replication sensor, plus what the cutover needs around it: a step record
for the report (the time until the trigger saw the target caught up is the
step's work; resuming from the deferral is overhead), the step's Slack
announcements, and the downtime clock.

``DrainSensor`` is a task of its own (the fallback's drain). ``FreezeAndDrainOperator``
runs the freeze step and then the same sensor in one task, so that no task
boundary lies between the two inside the downtime window (ADR 0071).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from bascule.operators.steps import RunbookStepError, RunbookStepOperator
from bascule.privacy.sanitize import sanitize_error_text
from bascule.runbook.context import (
    DRAIN_STARTED_XCOM_KEY,
    DRAIN_TIMING_XCOM_KEY,
    SafeMessage,
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
        # Inside the freeze's task (FreezeAndDrainOperator) the drain posts through the freeze's notifier: one
        # Slack ledger per task, which the report counts.
        ctx = StepContext(plan=self._run_plan(context), airflow=context, step=self.step, runbook=self.runbook,
                          slack=getattr(self, "_bascule_shared_slack", None), slack_background=True)
        self._bascule_step_ctx = ctx
        return ctx

    def execute(self, context: Any) -> Any:
        return self.drain(context)

    def drain(self, context: Any) -> Any:
        """What ``execute`` does; ``FreezeAndDrainOperator`` calls it from its own ``execute``."""
        from airflow.sdk.exceptions import TaskDeferred

        from bascule.runbook import announce, runtime

        self._started_at = datetime.now(UTC).isoformat()
        ctx = self._ctx(context)
        runtime.step_started(ctx, critical_path=True)
        try:
            with runtime.clock_watch(ctx):
                result = self.wait_caught_up(context)
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


class DrainNotFinished(AirflowFailException, SafeMessage):
    """The target did not apply the frozen position within the drain's timeout; not retried."""


class FreezeAndDrainOperator(RunbookStepOperator):
    """The freeze step, then the drain, in one task (ADR 0071).

    The freeze runs as any runbook step (its record under ``STEP_XCOM_KEY`` starts the downtime clock); then
    a ``DrainSensor`` built for the frozen position waits in this process, and records the drain as a step of
    its own (``drain_step``, under ``DRAIN_TIMING_XCOM_KEY`` of this task), announced and watched by the clock
    as before. A task boundary costs 0.4 to 0.75 s of downtime on the lab's machine; this one bought nothing:
    the drain needs only the freeze's position, and nothing else runs between them.

    A failure of the drain fails this task: a broken replication is not retried (as the sensor's own), any
    other error is retried, and the retry freezes again, which changes nothing and keeps the first freeze's
    time (``bascule.cutover.freeze.freeze``), then drains.
    """

    def __init__(self, *, plan: Any, direction: str, drain_step: str = "drain", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drain_plan = plan
        self.direction = direction
        self.drain_step = drain_step

    def _drain_sensor(self, position: str | None) -> DrainSensor:
        from bascule.replication.factory import drain_config

        plan = self.drain_plan
        # Built here, in the task, not at parse time: an operator built inside the DAG file would become a
        # task of the DAG. Its timeout is the night's budget, its whole wait in this process (DrainSensor).
        # Its `drain`, not its `execute`, runs in this task: Airflow refuses (allow_nested_operators=False) what
        # it would otherwise only warn about, one operator's execute calling another's.
        return DrainSensor(task_id=self.task_id, plan=plan, step=self.drain_step, runbook=self.runbook,
                           replication_config=drain_config(plan, self.direction), position=position,
                           poll_interval=plan.replication.poll_interval_s, timeout=plan.budget_seconds,
                           allow_nested_operators=False)

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, TaskDeferred

        record = super().execute(context)
        freeze_ctx = self._bascule_step_ctx
        position = (record.get("result") or {}).get("position")
        sensor = self._drain_sensor(str(position) if position else None)
        sensor._bascule_shared_slack = freeze_ctx.slack  # type: ignore[attr-defined]
        try:
            sensor.drain(context)
        except TaskDeferred:
            raise DrainNotFinished(f"step {self.drain_step} failed: the {self.direction} replication did not apply "
                                   f"the frozen position {position} within {sensor.timeout:.0f} s") from None
        except AirflowException:
            raise  # the sensor's own failures are sanitised where they are made (a broken replication)
        except Exception as exc:
            # `from None`: a driver's text may quote a row.
            raise RunbookStepError(f"step {self.drain_step} failed: {sanitize_error_text(exc)}") from None
        finally:
            # The success callback takes the drain's last look at the clock, and flushes the shared notifier.
            self._bascule_step_ctx = getattr(sensor, "_bascule_step_ctx", None) or freeze_ctx
        return record
