"""
### The cutover night

The big-bang switch from the source to the target, gated by people, with the
downtime clock running from the freeze. Each runbook step is its own task:

1. `announce_start`, `tminus_checks`: replication streaming under its lag
   threshold, a green full comparison (change tracking starts here), the endpoint
   on the source. The evidence becomes the first gate's body.
2. **Gate `gate_go_for_freeze`** (GO / NO-GO, only the plan's assigned users).
   NO-GO ends the run at `abort_before_freeze`: nothing changed, replication runs on.
3. `restore_point`, `freeze_source` (revoke the application's writes, end its
   sessions, pause the endpoint). **The downtime clock starts.**
4. `drain` (the target has applied everything up to the frozen position; it looks
   in the task for a few seconds, then defers).
5. Then, side by side: `stop_replication` (the drained subscription is disabled)
   then `prepare_reverse_replication` (target -> source, created disabled: its slot
   keeps every write from now on); `final_validation` (incremental comparison since
   T-minus); `target_suites` (the Great Expectations invariants on the target); and
6. `fixups` (sequences advanced past the source's, constraints and triggers
   checked), then
7. `switch_endpoint` (still paused), `smoke_tests` through the new endpoint.
8. **Gate `gate_go_live`**, the point of no return; it shows the evidence it
   gathers as it opens. GO: `open_target_writes` (**the downtime ends**), then
   `start_reverse_replication` (enable it), `retire_forward_replication` (drop the
   forward subscription and its slot on the source), `announce_live`. NO-GO: `rollback`.
9. Any failure after the freeze and before GO LIVE runs `rollback_on_failure`:
   endpoint back to the source, writes reopened there, forward replication
   resumed, the prepared reverse replication dropped, evidence kept. After GO
   LIVE, the way back is the `rollback` DAG.
10. `report`: planned against actual per step, downtime against budget, decisions,
    writes; JSON, a Gantt PNG and a summary posted to the run's Slack thread.

Trigger with conf `{"rehearsal": true}` for a rehearsal (recorded as such in the report).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag
from airflow.task.trigger_rule import TriggerRule

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.operators.drain import DrainSensor
from bascule.operators.gates import GateOperator
from bascule.operators.steps import RunbookStepOperator
from bascule.plan import default_plan_path, load_plan
from bascule.replication.factory import replication_config
from bascule.runbook import actions

plan = load_plan(default_plan_path())


def step(task_id: str, action: actions.Any, **kwargs: actions.Any) -> RunbookStepOperator:
    return RunbookStepOperator(task_id=task_id, step=task_id, action=action, **kwargs)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=default_args(),
    tags=tags(plan, "cutover"),
    params={
        "rehearsal": Param(False, type="boolean", description="record this run as a rehearsal"),
        "simulator_stats": Param(None, type=["null", "string"],
                                 description="lab: the clinic simulator's stats file, for the report"),
        "allow_findings": Param(False, type="boolean",
                                description="let T-minus findings through to the gate instead of failing"),
    },
)
def cutover() -> None:
    announce = step("announce_start", actions.announce_start, critical_path=False)
    tminus = step("tminus_checks", actions.tminus_checks, critical_path=False)
    gate_freeze = GateOperator(task_id="gate_go_for_freeze", plan=plan, gate_id="go_for_freeze",
                               go_task_id="restore_point", no_go_task_id="abort_before_freeze",
                               evidence_task_id="tminus_checks", retries=1, retry_delay=timedelta(seconds=1))
    abort = step("abort_before_freeze", actions.abort_before_freeze, critical_path=False)

    restore = step("restore_point", actions.restore_point)
    freeze = step("freeze_source", actions.freeze_source)
    drain = DrainSensor(
        task_id="drain", plan=plan, replication_config=replication_config(plan),
        position="{{ ti.xcom_pull(task_ids='freeze_source', key='bascule_step')['result']['position'] }}",
        poll_interval=plan.replication.poll_interval_s, timeout=plan.budget_seconds,
    )
    stop = step("stop_replication", actions.stop_replication)
    final = step("final_validation", actions.final_validation)
    suites = step("target_suites", actions.target_suites)
    fix = step("fixups", actions.fixups)
    switch = step("switch_endpoint", actions.switch_endpoint)
    smoke = step("smoke_tests", actions.smoke_tests)
    prepare_reverse = step("prepare_reverse_replication", actions.prepare_reverse_replication)
    gate_live = GateOperator(task_id="gate_go_live", plan=plan, gate_id="go_live",
                             go_task_id="open_target_writes", no_go_task_id="rollback",
                             body_from=actions.go_live_evidence, retries=1, retry_delay=timedelta(seconds=1))
    open_writes = step("open_target_writes", actions.open_target_writes)
    reverse = step("start_reverse_replication", actions.start_reverse_replication)
    retire_forward = step("retire_forward_replication", actions.retire_forward_replication, critical_path=False)
    live = step("announce_live", actions.announce_live, critical_path=False)

    rollback = step("rollback", actions.rollback)
    # all_done, not one_failed: the rollback waits for the sibling branches, so that none of them (the
    # endpoint switch) runs after it; the step skips itself when nothing failed.
    rollback_on_failure = step("rollback_on_failure", actions.rollback, trigger_rule=TriggerRule.ALL_DONE)
    report = step("report", actions.cutover_report, critical_path=False, trigger_rule=TriggerRule.ALL_DONE)

    announce >> tminus >> gate_freeze >> [restore, abort]
    # Once drained, the frozen source sends nothing more: stopping the (idle) subscription is one
    # more branch, not a step the checks must wait for; the reverse flow is prepared only once the
    # forward one is stopped (ADR 0032).
    restore >> freeze >> drain >> [stop, final, suites, fix]
    stop >> prepare_reverse
    fix >> switch >> smoke
    [final, suites, smoke, prepare_reverse] >> gate_live
    gate_live >> [open_writes, rollback]
    open_writes >> reverse >> retire_forward >> live
    # After GO LIVE there is no automatic way back: the rollback DAG is (it needs reverse replication).
    [freeze, drain, stop, final, suites, fix, switch, smoke, prepare_reverse, gate_live] >> rollback_on_failure
    [abort, live, rollback, rollback_on_failure] >> report

cutover()
