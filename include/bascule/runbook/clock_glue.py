"""The downtime clock inside a run: read the freeze, fire each warning once, log the line.

Fired warnings live in an Airflow Variable keyed by dag and run, so a retried
or later task does not fire them again (XCom is cleared on retry).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.runbook.context import StepContext


def _key(ctx: StepContext) -> str:
    return f"bascule_clock__{ctx.dag_id}__{ctx.run_id}"


def check(ctx: StepContext, freeze: dict[str, Any], *, forecast_remaining_s: float | None = None,
          now: datetime | None = None) -> dict[str, Any]:
    from airflow.sdk import Variable

    from bascule.cutover.clock import ClockState, DowntimeClock
    from bascule.runbook.runtime import notify

    clock = DowntimeClock.from_plan(ctx.plan, frozen_at=datetime.fromisoformat(freeze["frozen_at"]))
    now = now or datetime.now(UTC)
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
