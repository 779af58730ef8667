"""
### Rehearsals on the plan's calendar

A full rehearsal of the night, at the cadence the plan's calendar gives
(`calendar.rehearsals`: every `every_days` from `first`; by hand for a plan
without a calendar), always on the plan's **rehearsal environment**
(`rehearsal:`), never on production's connections (ADR 0058):

1. `refresh_environment`: the plan's `rehearsal.refresh` command makes the
   rehearsal environment fresh (the site restores production's latest backup
   there; the lab resets its clusters from their seeded templates).
2. `start_replication`, `wait_for_lag`: forward replication on the rehearsal
   environment, initial load included, streaming under its lag threshold.
3. `rehearse`: the `cutover` DAG with conf `{"rehearsal": true}`, run
   `rehearsal__<this run>`; its gates are answered by their people, as on the night.
4. `compare`: rehearsal N against N-1 and against the plan (per step, the
   critical path, the downtime, the validation time, the budget, the planned
   day), written to the evidence store; with a calendar, the outcome is recorded,
   signed, on the rehearsal Asset that the night's `calendar_checks` reads.

A plan with no rehearsal environment gets one task that says so.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.rehearsals import RefreshRehearsalEnvironmentOperator, RehearsalComparisonOperator
from bascule.operators.replication import StartReplicationOperator
from bascule.plan import default_plan_path, load_plan
from bascule.replication.factory import replication_config
from bascule.sensors.replication import ReplicationLagSensor

plan = load_plan(default_plan_path())
cadence = plan.calendar.rehearsals if plan.calendar is not None else None
RUN_ID = "rehearsal__{{ run_id }}"


@dag(
    # The calendar's cadence, from its first rehearsal (at the night's time of day, in its time zone).
    schedule=timedelta(days=cadence.every_days) if cadence is not None else None,
    start_date=datetime.combine(cadence.first, time(), plan.calendar.cutover.tzinfo)
    if cadence is not None and plan.calendar is not None else START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "rehearsal", "preparation"),
)
def rehearsal() -> None:
    if plan.rehearsal is None:
        EmptyOperator(task_id="no_rehearsal_environment")
        return
    on_rehearsal = plan.for_rehearsal()
    refresh = RefreshRehearsalEnvironmentOperator(task_id="refresh_environment", plan=plan)
    start = StartReplicationOperator(task_id="start_replication",
                                     replication_config=replication_config(on_rehearsal, "forward"), copy_data=True)
    wait = ReplicationLagSensor.from_plan(on_rehearsal, task_id="wait_for_lag",
                                         timeout=timedelta(hours=6).total_seconds())
    rehearse = TriggerDagRunOperator(task_id="rehearse", trigger_dag_id="cutover", conf={"rehearsal": True},
                                     trigger_run_id=RUN_ID, wait_for_completion=True, poke_interval=5,
                                     allowed_states=["success"], failed_states=["failed"])
    compare = RehearsalComparisonOperator(task_id="compare", plan=plan, rehearsal_run_id=RUN_ID)
    refresh >> start >> wait >> rehearse >> compare


rehearsal()
