"""What a runbook step tells the team: the run's Slack thread, one notifier per task.

Notifications never fail a step (the notification layer swallows Slack's failures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.notifications.slack import SlackNotifications
    from bascule.runbook.context import StepContext


def notifier(ctx: StepContext) -> SlackNotifications | None:
    """The step's notifier: one per task, so the Slack connection and the thread are looked up once."""
    if ctx.slack is None and ctx.plan.notifications is not None:
        from bascule.notifications.slack import SlackNotifications

        ctx.slack = SlackNotifications.for_plan(ctx.plan.notifications, ti=ctx.ti, publish_each_delivery=False,
                                                background=ctx.slack_background)
    return ctx.slack


def flush(ctx: StepContext) -> None:
    """Wait for the step's messages and push its Slack ledger to XCom (the report counts it).

    Call it before the process ends: before it defers, parks or fails, and, for a
    step that posts in the background, from its success callback (see
    ``runtime.flush_after_success``), which Airflow runs once the task's state is
    reported, so the next step does not wait for Slack.
    """
    if ctx.slack is not None:
        ctx.slack.wait_posted()


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
