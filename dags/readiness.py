"""
### Weekly readiness: are we on the calendar?

Every Monday at 07:00 in the calendar's time zone (plans with a `calendar:`;
one empty task otherwise), recomputed from what the runs recorded (ADR 0059):

- the milestones, from their signed Asset events: planned against recorded,
  on time, late or overdue, and any made stale by a later renewal;
- the rehearsals, from their reports in the evidence store: done against
  planned by today, the last one's outcome, the downtime and validation time
  trend between the last two complete ones;
- the forward flow's lag this week against last week (the monitor's history);
- the storage figures signed with `storage_applied`; the days left.

Writes `readiness.json` and `readiness.html` (the timeline, planned against
actual) to the evidence store and posts **one** Slack message with the risks.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import CronTriggerTimetable, dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.readiness import WeeklyReadinessOperator
from bascule.plan import default_plan_path, load_plan

plan = load_plan(default_plan_path())


@dag(
    schedule=CronTriggerTimetable("0 7 * * 1", timezone=plan.calendar.timezone) if plan.calendar else None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "calendar", "preparation"),
)
def readiness() -> None:
    if plan.calendar is None:
        EmptyOperator(task_id="no_calendar")
        return
    WeeklyReadinessOperator(task_id="weekly_readiness", plan=plan)


readiness()
