"""What every runbook step does around its action: announce, and watch the clock.

Notifications never fail a step (the notification layer swallows Slack's
failures); the downtime clock is bascule's own, started at the freeze.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.notifications.slack import SlackNotifications
    from bascule.operators.steps import StepContext

FREEZE_TASK_ID = "freeze_source"


def notifier(ctx: StepContext) -> SlackNotifications | None:
    """The step's notifier: one per task, so the Slack connection and the thread are looked up once."""
    if ctx.plan.notifications is None:
        return None
    if ctx.slack is None:
        from bascule.notifications.slack import NotificationSettings, SlackNotifications

        ctx.slack = SlackNotifications(settings=NotificationSettings.from_plan(ctx.plan.notifications), ti=ctx.ti,
                                       publish_each_delivery=False, background=ctx.slack_background)
    return ctx.slack


def flush(ctx: StepContext) -> None:
    """Wait for the step's messages and push its Slack ledger to XCom (the report counts it).

    Call it before the process ends: before it defers, parks or fails, and, for a
    step that posts in the background, from its success callback (see
    :func:`flush_after_success`), which Airflow runs once the task's state is
    reported, so the next step does not wait for Slack.
    """
    if ctx.slack is not None:
        ctx.slack.wait_posted()


def flush_after_success(context: Any) -> None:
    """``on_success_callback`` of the tasks that post in the background: send what is still queued."""
    task = context.get("task")
    ctx = getattr(task, "_bascule_step_ctx", None)
    slack = ctx.slack if ctx is not None else getattr(task, "_bascule_slack", None)
    if slack is not None:
        slack.wait_posted()


def with_flush_after_success(callbacks: Any) -> list[Any]:
    """``callbacks`` (None, one, or a list) plus :func:`flush_after_success`."""
    if callbacks is None:
        existing: list[Any] = []
    elif isinstance(callbacks, (list, tuple)):
        existing = list(callbacks)
    else:
        existing = [callbacks]
    return [*existing, flush_after_success]


def task_ref(ctx: StepContext) -> Any:
    from bascule.notifications.events import TaskRef

    return TaskRef(dag_id=ctx.dag_id, run_id=ctx.run_id, task_id=str(ctx.ti.task_id),
                   try_number=getattr(ctx.ti, "try_number", None))


def run_started_event(plan: Any, dag_id: str, run_id: str) -> Any:
    """The run's parent message: the plan, its engines and its downtime budget."""
    from bascule.notifications.events import RunStarted

    return RunStarted(dag_id=dag_id, run_id=run_id, plan_id=plan.name, source=plan.source.engine.value,
                      target=plan.target.engine.value, downtime_budget_s=plan.budget_seconds)


def run_started(ctx: StepContext) -> Any:
    return run_started_event(ctx.plan, ctx.dag_id, ctx.run_id)


def notify(ctx: StepContext, event: Any) -> None:
    slack = notifier(ctx)
    if slack is not None:
        # The run's parent message names the plan and its budget; whichever step speaks
        # first posts it (a no-op once the thread exists).
        slack.post(event, parent=run_started(ctx))


def step_started(ctx: StepContext, *, critical_path: bool) -> None:
    from bascule.notifications.events import StepStarted

    notify(ctx, StepStarted(dag_id=ctx.dag_id, run_id=ctx.run_id, step=ctx.step, task=task_ref(ctx),
                            critical_path=critical_path))
    check_clock(ctx)


def step_finished(ctx: StepContext, *, ok: bool, seconds: float, critical_path: bool) -> None:
    from bascule.notifications.events import StepFinished, StepOutcome

    notify(ctx, StepFinished(dag_id=ctx.dag_id, run_id=ctx.run_id, step=ctx.step, task=task_ref(ctx),
                             outcome=StepOutcome.SUCCEEDED if ok else StepOutcome.FAILED,
                             duration_s=max(0.0, seconds), critical_path=critical_path))
    check_clock(ctx)
    if not ok or not ctx.slack_background:
        flush(ctx)


def check_clock(ctx: StepContext, *, forecast_remaining_s: float | None = None) -> dict[str, Any] | None:
    """Log the downtime clock and fire its warnings, once the source is frozen."""
    freeze = ctx.result_of(FREEZE_TASK_ID) if ctx.step != FREEZE_TASK_ID else None
    if not freeze:
        return None
    from bascule.runbook import clock_glue

    return clock_glue.check(ctx, freeze, forecast_remaining_s=forecast_remaining_s)
