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

from datetime import timedelta
from typing import Any

from airflow.sdk import Param, dag
from airflow.task.trigger_rule import TriggerRule

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.operators.drain import DrainSensor
from bascule.operators.gates import GateOperator
from bascule.operators.steps import RunbookStepOperator
from bascule.plan import default_plan_path, load_plan
from bascule.runbook import fallback

plan = load_plan(default_plan_path())


def step(task_id: str, action: Any, **kwargs: Any) -> RunbookStepOperator:
    return RunbookStepOperator(task_id=task_id, step=task_id, action=action, **kwargs)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=default_args(),
    tags=tags(plan, "rollback"),
    params={
        "rehearsal": Param(False, type="boolean", description="record this run as a rehearsal"),
        "simulator_stats": Param(None, type=["null", "string"],
                                 description="lab: the clinic simulator's stats file, for the report"),
    },
)
def rollback() -> None:
    announce = step("announce_fallback", fallback.announce_fallback, critical_path=False)
    check = step(fallback.CHECK, fallback.check_reverse_replication, critical_path=False)
    gate = GateOperator(task_id=fallback.GATE, plan=plan, gate_id="fallback", go_task_id=fallback.FREEZE_TARGET,
                        no_go_task_id=fallback.ABORT, evidence_task_id=fallback.CHECK,
                        retries=1, retry_delay=timedelta(seconds=1))
    abort = step(fallback.ABORT, fallback.abort_fallback, critical_path=False)

    freeze = step(fallback.FREEZE_TARGET, fallback.freeze_target)
    drain = DrainSensor(
        task_id=fallback.DRAIN, plan=plan, replication_config=fallback.drain_config(plan),
        position="{{ ti.xcom_pull(task_ids='" + fallback.FREEZE_TARGET
                 + "', key='bascule_step')['result']['position'] }}",
        poll_interval=plan.replication.poll_interval_s, timeout=plan.budget_seconds,
    )
    stop = step(fallback.STOP, fallback.stop_reverse_replication)
    fix = step(fallback.FIXUPS, fallback.fallback_fixups)
    switch = step(fallback.SWITCH_BACK, fallback.switch_back)
    smoke = step(fallback.SMOKE, fallback.fallback_smoke_tests)
    undo = step(fallback.UNDO, fallback.undo_fallback, trigger_rule=TriggerRule.ONE_FAILED)
    report = step("report", fallback.fallback_report, critical_path=False, trigger_rule=TriggerRule.ALL_DONE)

    announce >> check >> gate >> [freeze, abort]
    freeze >> drain >> stop >> fix >> switch >> smoke
    # Only failures before writes reopen on the source are undone: after that,
    # the source holds writes the target has not seen.
    [freeze, drain, stop, fix, switch] >> undo
    [abort, smoke, undo] >> report


rollback()
