"""
### After GO LIVE: the rollback window, watched, then closed

For the plan's rollback window (`cutover.rollback_window`) after a night went live,
reverse replication (target -> source) is what makes the `rollback` DAG possible.
**Starts by itself**: scheduled on the Asset `bascule.<plan>.went_live`, whose event
the night's `report` adds only for a real night that went live (not a rehearsal, a
rolled-back or an aborted night), with the night's run id. Keep this DAG unpaused
from before the night: a paused DAG is not queued by the event. By hand: trigger it
with param `cutover_run_id` (empty: the last night that went live, from the
evidence store). One run at a time: an event that comes while a run is active
waits for it, and a window already closed is not watched again. ADR 0057:

1. `watch_reverse_replication`: one reading every heartbeat interval (reschedule
   mode: no worker slot held between readings), recorded in the target's
   replication history; a lag over the threshold, a break or a recovery is said
   in the **night's** Slack thread. Done at the end of the window; skipped if a
   fallback stopped reverse replication (the window is over).
2. **Gate `close_rollback_window`** (GO / NO-GO, only the plan's assigned users).
   GO: `retire_reverse_replication` drops the reverse flow (subscription on the
   source, slot and publication on the target) and records it retired on purpose:
   no monitor reports it, and the `rollback` DAG refuses to start. NO-GO:
   `keep_rollback_window`, nothing changes (trigger this DAG again to watch on).
3. `close_migration`: the closing record (window, reading at its end, decision,
   what was retired) in the evidence store, and a line in the night's thread.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.gates import GateOperator
from bascule.operators.post_go_live import (
    CLOSE_GATE,
    CloseMigrationOperator,
    RetireReverseReplicationOperator,
    RollbackWindowSensor,
)
from bascule.plan import default_plan_path, load_plan
from bascule.runbook.milestones import went_live_asset

plan = load_plan(default_plan_path())


@dag(
    # The night's report emits it when a real night went live: the watch starts without anyone remembering.
    schedule=[went_live_asset(plan)],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "post-go-live"),
    params={"cutover_run_id": Param("", type="string",
                                    description="a manual run: the night that went live (empty: the last "
                                                "one); a run the night started reads it from its event")},
)
def post_go_live() -> None:
    watch = RollbackWindowSensor(task_id="watch_reverse_replication", plan=plan,
                                 cutover_run_id="{{ params.cutover_run_id }}")
    keep = EmptyOperator(task_id="keep_rollback_window")
    retire = RetireReverseReplicationOperator(task_id="retire_reverse_replication", plan=plan,
                                              gate_task_id=f"gate_{CLOSE_GATE}")
    gate = GateOperator(task_id=f"gate_{CLOSE_GATE}", plan=plan, gate_id=CLOSE_GATE, go_task_id=retire.task_id,
                        no_go_task_id=keep.task_id, evidence_task_id=watch.task_id)
    close = CloseMigrationOperator(task_id="close_migration", plan=plan, watch_task_id=watch.task_id,
                                   gate_task_id=gate.task_id, retire_task_id=retire.task_id)
    watch >> gate >> [retire, keep]
    [retire, keep] >> close


post_go_live()
