"""
### Milestones its owner confirms: the platform installed, the go/no-go meeting held

The plan's calendar (`calendar:`) names seven milestones. Five are recorded by the
`prepare` DAG when their stage is signed off GO. Two happen outside bascule, so
their owners confirm them here:

- `platform_installed`: the new hardware and database release are in place;
- `go_no_go_meeting`: the meeting decided on the last rehearsal's report.

Trigger a run with the param `milestone`. The owner named in the plan answers
**DONE** under Required Actions; the milestone is then recorded, signed by the
workers, as an event on its Asset (`bascule.<plan>.<milestone>`). The `cutover`
DAG refuses to start for real until every milestone is recorded, in order, and
the last rehearsal is green and recent (ADR 0048). Plans without a calendar
(the lab) get an empty DAG. A lab or demo plan with a calendar may also confirm
here a stage's milestone whose owner the calendar names (ADR 0058).
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag, task

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.gates import CheckpointOperator
from bascule.operators.milestones import MilestoneOperator
from bascule.plan import MilestoneId, PlanMode, default_plan_path, load_plan

plan = load_plan(default_plan_path())
# A lab or demo plan has no three months of stages to run: there, a stage's milestone may be confirmed by the
# owner the calendar names too (ADR 0058). A production plan records those only from the prepare DAG's stages.
MANUAL = [m for m in MilestoneId if m.manual or (
    plan.mode is not PlanMode.PRODUCTION and plan.calendar is not None and plan.calendar.milestones[m].owner)]


@dag(
    dag_id="milestones",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    doc_md=__doc__,
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "calendar"),
    params={"milestone": Param(MANUAL[0].value, enum=[m.value for m in MANUAL],
                               description="the milestone its owner confirms")},
)
def milestones() -> None:
    if plan.calendar is None:
        EmptyOperator(task_id="no_calendar")
        return

    @task.branch(task_id="which")
    def which(params: dict | None = None) -> str:
        chosen = MilestoneId((params or {})["milestone"])
        return f"confirm_{chosen.value}"

    branch = which()
    for milestone in MANUAL:
        confirm = CheckpointOperator(task_id=f"confirm_{milestone.value}", plan=plan,
                                     gate_id=f"milestone_{milestone.value}", manual=True)
        record = MilestoneOperator(task_id=f"milestone_{milestone.value}", plan=plan, milestone=milestone,
                                   gate_task_id=confirm.task_id)
        branch >> confirm >> record


milestones()
