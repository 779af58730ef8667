"""
### The cutover night

The big-bang switch from the source to the target, gated by people, with the
downtime clock running from the freeze. Each runbook step is its own task:

1. `announce_start`, `tminus_checks`: replication streaming under its lag
   threshold, a green full comparison (change tracking starts here), the target's
   suites and constraints in full behind change trackers of their own (ADR 0061),
   the endpoint on the source. The evidence becomes the first gate's body.
2. **Gate `gate_go_for_freeze`** (GO / NO-GO, only the plan's assigned users).
   NO-GO ends the run at `abort_before_freeze`: nothing changed, replication runs on.
3. `restore_point`, `catch_up_checks` (while the application still writes: the
   comparison, the suites and the foreign keys brought from T-minus up to now, in
   passes, each moving its change tracker on, ADR 0070), `freeze_source` (revoke
   the application's writes, end its sessions, pause the endpoint). **The downtime
   clock starts.**
4. The drain, in `freeze_source`'s own task once the freeze is recorded (the target
   has applied everything up to the frozen position; step `drain` in the report).
5. Then, side by side: `stop_replication` (the drained subscription is disabled)
   then `prepare_reverse_replication` (target -> source, created disabled: its slot
   keeps every write from now on); `final_validation` (incremental comparison since
   T-minus); `target_suites` (the Great Expectations invariants on the target, on the
   rows changed since T-minus); and
6. `fixups` (sequences advanced past the source's, constraints and triggers
   checked, foreign keys on the rows changed since T-minus), then
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

from airflow.sdk import Param, dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.runbook import build_runbook
from bascule.plan import default_plan_path, load_plan
from bascule.runbook.actions import CUTOVER

plan = load_plan(default_plan_path())


@dag(
    dag_id=CUTOVER.dag_id,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "cutover"),
    params={
        "rehearsal": Param(False, type="boolean", description="record this run as a rehearsal"),
        "allow_findings": Param(False, type="boolean",
                                description="let T-minus findings through to the gate instead of failing"),
    },
)
def cutover() -> None:
    # Every task, edge and guard comes from the runbook registry (bascule.runbook.actions.CUTOVER).
    build_runbook(CUTOVER, plan)


cutover()
