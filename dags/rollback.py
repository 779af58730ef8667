"""
### Rollback after go-live: fall back to the source

For the days after a GO LIVE, while reverse replication (target -> source)
carries every write the application makes on the target back to the source.
Each step is its own task (ADR 0060):

1. `announce_fallback`, `check_reverse_replication`: reverse replication must be
   streaming (else the run fails here, nothing changed) and the endpoint on the
   target. The evidence becomes the gate's body.
2. **Gate `gate_fallback`** (GO / NO-GO, only the plan's assigned users).
   NO-GO ends the run at `abort_fallback`: nothing changed.
3. `freeze_target`: revoke the application's writes on the target, end its
   sessions, pause the endpoint. **The downtime clock starts.**
4. `drain_reverse` (deferrable: the source has applied everything up to the
   target's frozen position), `stop_reverse_replication`.
5. `fallback_fixups`: the source's sequences advanced past the target's; the
   source's constraints and triggers checked.
6. `switch_back`: endpoint to the source, the source's application role given
   back what the cutover's freeze took, endpoint resumed: **writes reopen on the
   source**. The target stays frozen.
7. `fallback_smoke_tests` through the endpoint.
8. Any failure before writes reopen on the source runs `undo_fallback`: the
   application goes back, live, to the target, with reverse replication running.
9. `report`: steps, downtime against budget, the decision, writes (JSON, Gantt PNG, summary).
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.runbook import build_runbook
from bascule.plan import default_plan_path, load_plan
from bascule.runbook.fallback import FALLBACK

plan = load_plan(default_plan_path())


@dag(
    dag_id=FALLBACK.dag_id,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "rollback"),
    params={
        "rehearsal": Param(False, type="boolean", description="record this run as a rehearsal"),
    },
)
def rollback() -> None:
    # Every task, edge and guard comes from the runbook registry (bascule.runbook.fallback.FALLBACK).
    build_runbook(FALLBACK, plan)


rollback()
