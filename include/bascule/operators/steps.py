"""One runbook step = one task: timed, announced, and safe to show in any log.

Each step of the cutover runs a library function (an *action*) through
``RunbookStepOperator``. The operator measures the action's own execution
(what the report calls work), announces start and end on the critical path,
checks the downtime clock, and turns any database error into a one-line,
value-free message before it reaches the task log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.notifications.sanitize import sanitize_error_text
from bascule.plan import Plan, default_plan_path, load_plan

STEP_XCOM_KEY = "bascule_step"


class SafeMessage:
    """Mixin for bascule's own exceptions whose text is built from identifiers and numbers only.

    Their message reaches the log as written; any other exception's text is
    sanitised first, since a driver error may quote row values.
    """


class RunbookStepError(RuntimeError):
    """A step failed; the message is sanitised (no row value) and names the step. Retried."""


class RunbookStepFailed(AirflowFailException):
    """A check did not hold (differences, a refused smoke test): retrying cannot mend it."""


@dataclass
class StepContext:
    """What an action sees: the plan, the Airflow context, and the results of earlier steps."""

    plan: Plan
    airflow: Any
    step: str
    notes: list[str] = field(default_factory=list)
    slack: Any = None
    # True for steps that flush from their success callback (runtime.flush_after_success).
    slack_background: bool = False
    # Set by runtime.step_finished: the success callback takes the step's last look at the clock.
    clock_check_after_success: bool = False
    _results: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)

    @property
    def ti(self) -> Any:
        return self.airflow["ti"]

    @property
    def step_task(self) -> str:
        return str(self.ti.task_id)

    @property
    def dag_id(self) -> str:
        return str(self.ti.dag_id)

    @property
    def run_id(self) -> str:
        return str(self.ti.run_id)

    @property
    def conf(self) -> dict[str, Any]:
        dag_run = self.airflow.get("dag_run")
        return dict(getattr(dag_run, "conf", None) or {})

    def result_of(self, task_id: str) -> dict[str, Any] | None:
        """The action result of an earlier step of this run, or None if it did not run."""
        # Earlier steps are finished: their results cannot change while this one runs.
        if task_id not in self._results:
            record = self.ti.xcom_pull(task_ids=task_id, key=STEP_XCOM_KEY)
            self._results[task_id] = None if record is None else record.get("result")
        return self._results[task_id]

    def log(self, line: str) -> None:
        self.notes.append(line)
        print(f"[{self.step}] {line}", flush=True)


Action = Callable[[StepContext], dict[str, Any] | None]


class RunbookStepOperator(BaseOperator):
    """Run one runbook step (``action``) and record its timing and result."""

    template_fields: Sequence[str] = ("step",)
    ui_color = "#fff4e0"

    def __init__(
        self,
        *,
        step: str,
        action: Action,
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
        self.plan_path = plan_path
        self.critical_path = critical_path

    @cached_property
    def plan(self) -> Plan:
        return load_plan(self.plan_path or default_plan_path())

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.runbook import runtime

        ctx = StepContext(plan=self.plan, airflow=context, step=self.step, slack_background=True)
        self._bascule_step_ctx = ctx
        runtime.step_started(ctx, critical_path=self.critical_path)
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            with runtime.clock_watch(ctx):
                result = self.action(ctx) or {}
        except AirflowSkipException:
            runtime.flush(ctx)  # the start was announced: the report counts that message
            raise
        except Exception as exc:
            seconds = time.perf_counter() - t0
            runtime.step_finished(ctx, ok=False, seconds=seconds, critical_path=self.critical_path)
            error = RunbookStepFailed if isinstance(exc, AirflowFailException) else RunbookStepError
            text = str(exc) if isinstance(exc, SafeMessage) else sanitize_error_text(str(exc))
            # `from None`: the original exception text may hold row values (DETAIL lines).
            raise error(f"step {self.step} failed: {type(exc).__name__}: {text}") from None
        seconds = time.perf_counter() - t0
        record = {
            "step": self.step,
            "task_id": self.task_id,
            "started_at": started_at.isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            "seconds": round(seconds, 4),
            "critical_path": self.critical_path,
            "result": result,
        }
        context["ti"].xcom_push(key=STEP_XCOM_KEY, value=record)
        runtime.step_finished(ctx, ok=True, seconds=seconds, critical_path=self.critical_path)
        self.log.info("step %s done in %.2f s", self.step, seconds)
        return record
