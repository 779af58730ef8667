"""What every runbook step does around its action: announce, and watch the downtime clock.

Notifications never fail a step (``bascule.runbook.announce``); the downtime clock is
bascule's own, started at the runbook's freeze. Its fired warnings live in an Airflow
Variable keyed by dag and run, so a retried or later task does not fire them again
(XCom is cleared on retry).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bascule.runbook.announce import flush, notify, task_ref
from bascule.today import parse_instant, utc_now

if TYPE_CHECKING:
    from bascule.runbook.context import StepContext
    from bascule.runbook.forecast import StepForecast


def flush_after_success(context: Any) -> None:
    """``on_success_callback`` of the tasks that post in the background: the step's last clock look, then Slack."""
    task = context.get("task")
    ctx = getattr(task, "_bascule_step_ctx", None)
    if ctx is not None and ctx.clock_check_after_success:
        ctx.clock_check_after_success = False
        try:
            check_clock_after_step(ctx)
        except Exception as exc:  # the step has succeeded: a clock look cannot undo that
            print(f"[downtime clock] check failed: {type(exc).__name__}", flush=True)
    slack = ctx.slack if ctx is not None else getattr(task, "_bascule_slack", None)
    if slack is not None:
        slack.wait_posted()


def with_flush_after_success(callbacks: Any) -> list[Any]:
    """``callbacks`` (None, one, or a list) plus ``runtime.flush_after_success``."""
    if callbacks is None:
        existing: list[Any] = []
    elif isinstance(callbacks, (list, tuple)):
        existing = list(callbacks)
    else:
        existing = [callbacks]
    return [*existing, flush_after_success]


def step_started(ctx: StepContext, *, critical_path: bool) -> None:
    """Announce the step. Its first look at the clock is taken by :func:`clock_watch`, beside the action."""
    from bascule.notifications.events import StepStarted

    notify(ctx, StepStarted(dag_id=ctx.dag_id, run_id=ctx.run_id, step=ctx.step, task=task_ref(ctx),
                            critical_path=critical_path))


def step_finished(ctx: StepContext, *, ok: bool, seconds: float, critical_path: bool) -> None:
    """Announce the end and look at the clock.

    A step that succeeded and posts in the background leaves its last look at
    the clock to its success callback (``runtime.flush_after_success``), like its
    messages: both are Execution API and Slack calls that would otherwise hold
    the next step back. A failed step looks now, since no callback follows.
    """
    from bascule.notifications.events import StepFinished, StepOutcome

    notify(ctx, StepFinished(dag_id=ctx.dag_id, run_id=ctx.run_id, step=ctx.step, task=task_ref(ctx),
                             outcome=StepOutcome.SUCCEEDED if ok else StepOutcome.FAILED,
                             duration_s=max(0.0, seconds), critical_path=critical_path))
    if ok and ctx.slack_background:
        ctx.clock_check_after_success = True
        return
    check_clock_after_step(ctx)
    flush(ctx)


def check_clock_after_step(ctx: StepContext) -> None:
    forecast = step_forecast(ctx) if _frozen(ctx) else None
    check_clock(ctx, forecast_remaining_s=forecast.rest_after_s if forecast else None)


_PREVIOUS_REPORTS: dict[tuple[str, str, str], dict[str, Any] | None] = {}


def step_forecast(ctx: StepContext) -> StepForecast | None:
    """This step's figures in the rehearsal (the previous run's report), for the clock's forecast."""
    from bascule.runbook import forecast, report

    key = (ctx.plan.name, ctx.dag_id, ctx.run_id)
    if key not in _PREVIOUS_REPORTS:
        try:
            _PREVIOUS_REPORTS[key] = report.previous_report(ctx.plan.name, ctx.dag_id, before_run=ctx.run_id)
        except (OSError, ValueError):
            _PREVIOUS_REPORTS[key] = None  # no rehearsal to forecast from: the clock still counts
    return forecast.step_forecast(_PREVIOUS_REPORTS[key], ctx.step)


CLOCK_WATCH_INTERVAL_S = 15.0


@contextmanager
def clock_watch(ctx: StepContext, *, interval_s: float = CLOCK_WATCH_INTERVAL_S,
                check: Callable[..., Any] | None = None) -> Iterator[None]:
    """Check the downtime clock as a step starts, then every ``interval_s`` while it works.

    Between a step's start and end nothing else looks at the clock: a suite that
    runs an hour late would raise no alert until it ends. Each check logs the clock
    line (progress on a long step) and fires what is due, the forecast first.
    The first check runs beside the action rather than before it: reading the
    freeze and the rehearsal costs Execution API calls, and after the freeze every
    such wait before the action is downtime. Before the freeze there is no clock,
    and the thread ends after one look.
    """
    check = check or check_clock
    started = time.monotonic()
    stop = threading.Event()

    def watch() -> None:
        try:
            if not _frozen(ctx):
                return
            forecast = step_forecast(ctx)
        except Exception as exc:  # the clock must never break the step it watches
            print(f"[downtime clock] check failed: {type(exc).__name__}", flush=True)
            return
        while True:
            elapsed = time.monotonic() - started
            try:
                check(ctx, forecast_remaining_s=forecast.remaining(elapsed) if forecast else None)
            except Exception as exc:
                print(f"[downtime clock] check failed: {type(exc).__name__}", flush=True)
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=watch, name="bascule-clock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _frozen(ctx: StepContext) -> dict[str, Any] | None:
    """The freeze's result once its runbook's side is frozen (the clock runs from there), else None."""
    freeze = ctx.freeze_task
    if freeze is None:
        return None
    # The freeze's own action has no clock yet; a drain waiting in the freeze's task (ADR 0071) has one.
    if ctx.step_task == freeze and ctx.step == ctx.runbook.entry(freeze).step:  # type: ignore[union-attr]
        return None
    return ctx.result_of(freeze)


def check_clock(ctx: StepContext, *, forecast_remaining_s: float | None = None) -> dict[str, Any] | None:
    """Log the downtime clock and fire its warnings, once the source is frozen."""
    freeze = _frozen(ctx)
    if not freeze:
        return None
    return check_frozen_clock(ctx, freeze, forecast_remaining_s=forecast_remaining_s)


def _key(ctx: StepContext) -> str:
    from bascule.runbook.context import clock_variable

    return clock_variable(ctx.dag_id, ctx.run_id)


def check_frozen_clock(ctx: StepContext, freeze: dict[str, Any], *, forecast_remaining_s: float | None = None,
                       now: datetime | None = None) -> dict[str, Any]:
    from airflow.sdk import Variable

    from bascule.cutover.clock import ClockState, DowntimeClock

    clock = DowntimeClock.from_plan(ctx.plan, frozen_at=parse_instant(freeze["frozen_at"]))
    now = now or utc_now()
    status = clock.status(now, forecast_remaining_s=forecast_remaining_s, state=ClockState.from_dict(None))
    if status.due:
        # Something is due unless it fired already: only then is the fired list worth a Variable read
        # (every step checks the clock twice; most of the night nothing is due).
        raw = Variable.get(_key(ctx), default=None)
        state = ClockState.from_dict(json.loads(raw) if raw else None)
        status = clock.status(now, forecast_remaining_s=forecast_remaining_s, state=state)
    print(f"[downtime clock] {status.log_line()}", flush=True)
    if status.due:
        Variable.set(_key(ctx), json.dumps(status.state.as_dict()))
        for event in status.events(dag_id=ctx.dag_id, run_id=ctx.run_id):
            notify(ctx, event)
    return status.as_dict()
