"""One runbook step = one task: timed, announced, and safe to show in any log.

Each step of the cutover runs a library function (an *action*) through
``RunbookStepOperator``. The operator measures the action's own execution
(what the report calls work), announces start and end on the critical path,
checks the downtime clock, and turns any database error into a one-line,
value-free message before it reaches the task log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.plan import Plan, default_plan_path, load_plan
from bascule.privacy.sanitize import sanitize_error_text
from bascule.runbook.context import STEP_XCOM_KEY, Action, SafeMessage, StepContext, plan_for_run, run_conf
from bascule.today import utc_now

if TYPE_CHECKING:
    from bascule.runbook.registry import Runbook


class RunbookStepError(RuntimeError, SafeMessage):
    """A step failed; the message is sanitised (no row value) and names the step. Retried."""


class RunbookStepFailed(AirflowFailException, SafeMessage):
    """A check did not hold (differences, a refused smoke test): retrying cannot mend it."""


class RunbookStepOperator(BaseOperator):
    """Run one runbook step (``action``) and record its timing and result."""

    template_fields: Sequence[str] = ("step",)
    ui_color = "#fff4e0"

    def __init__(
        self,
        *,
        step: str,
        action: Action,
        runbook: Runbook | None = None,
        plan_path: str | None = None,
        critical_path: bool = True,
        **kwargs: Any,
    ) -> None:
        from bascule.runbook.runtime import with_flush_after_success

        # The record goes to XCom under STEP_XCOM_KEY; a return_value copy would cost one more
        # Execution API call between this step and the next.
        kwargs.setdefault("do_xcom_push", False)
        kwargs["on_success_callback"] = with_flush_after_success(kwargs.get("on_success_callback"))
        super().__init__(**kwargs)
        self.step = step
        self.action = action
        self.runbook = runbook
        self.plan_path = plan_path
        self.critical_path = critical_path

    @cached_property
    def plan(self) -> Plan:
        return load_plan(self.plan_path or default_plan_path())

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.runbook import announce, runtime

        conf = run_conf(context)
        ctx = StepContext(plan=plan_for_run(self.plan, conf), airflow=context, step=self.step,
                          runbook=self.runbook, slack_background=True)
        self._bascule_step_ctx = ctx
        runtime.step_started(ctx, critical_path=self.critical_path)
        started_at = utc_now()
        t0 = time.perf_counter()
        try:
            with runtime.clock_watch(ctx):
                result = self.action(ctx) or {}
        except AirflowSkipException:
            announce.flush(ctx)  # the start was announced: the report counts that message
            raise
        except Exception as exc:
            seconds = time.perf_counter() - t0
            runtime.step_finished(ctx, ok=False, seconds=seconds, critical_path=self.critical_path)
            error = RunbookStepFailed if isinstance(exc, AirflowFailException) else RunbookStepError
            text = sanitize_error_text(exc)  # a SafeMessage passes as written, after its class
            # `from None`: the original exception text may hold row values (DETAIL lines).
            raise error(f"step {self.step} failed: {text}") from None
        seconds = time.perf_counter() - t0
        record = {
            "step": self.step,
            "task_id": self.task_id,
            "started_at": started_at.isoformat(),
            "ended_at": utc_now().isoformat(),
            "seconds": round(seconds, 4),
            "critical_path": self.critical_path,
            "result": result,
        }
        context["ti"].xcom_push(key=STEP_XCOM_KEY, value=record)
        self._keep_evidence(context, record, plan_name=ctx.plan.name)
        runtime.step_finished(ctx, ok=True, seconds=seconds, critical_path=self.critical_path)
        self.log.info("step %s done in %.2f s", self.step, seconds)
        return record

    def _keep_evidence(self, context: Any, record: dict[str, Any], *, plan_name: str) -> None:
        """The step's record in the run's evidence folder, with the worker that ran it (ADR 0044).

        Written before the task ends, not from its success callback: the report step seals every file of the
        folder into the run's manifest, and a file landing after that would read as tampering. The record is
        value-free (timings, counts, names), the same as the XCom.
        """
        from bascule.hooks import evidence

        if self.runbook is not None and self.runbook.entry(self.task_id).is_report:
            return  # the report seals the folder: its own record is the report itself
        ti = context["ti"]
        path = evidence.run_folder(plan_name, ti.dag_id, ti.run_id) / "steps" / (
            evidence.safe_name(self.task_id) + ".json")
        try:
            evidence.write_json(path, {**record, "worker": getattr(ti, "hostname", None),
                                       "try_number": getattr(ti, "try_number", None)})
        except OSError as exc:  # the store is down: the XCom holds the record, the report still has it
            self.log.warning("step record not kept in the evidence store: %s", type(exc).__name__)
