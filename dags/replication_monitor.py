"""
### Replication monitor (preparation)

Every five minutes during the months of preparation, one task samples the
replication flow of the plan (method, direction forward) a few times, a
heartbeat interval apart:

- records **state, lag (seconds, end to end on the source's clock; bytes), positions
  and the drain ETA** in `bascule_meta.replication_history` on the target;
- alerts in Slack (`LagAlert`, `ReplicationBrokenEvent`) when lag is over the plan's
  threshold or replication is broken, with a clear log line either way. A Slack
  failure never fails the task.

The XCom holds the last reading and the ETA as JSON; never a row value.
"""

from __future__ import annotations

from airflow.sdk import dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.replication import ReplicationMonitorOperator
from bascule.plan import default_plan_path, load_plan
from bascule.replication.factory import replication_config

plan = load_plan(default_plan_path())


@dag(
    schedule="*/5 * * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "replication", "preparation"),
)
def replication_monitor() -> None:
    ReplicationMonitorOperator(
        task_id="record_lag",
        replication_config=replication_config(plan, "forward"),
        history_conn_id=plan.target.conn_id,
        lag_threshold_s=plan.replication.lag_threshold_s,
        samples=3,
        sample_interval_s=plan.replication.heartbeat_interval_s,
        notifications=plan.notifications.model_dump() if plan.notifications else None,
    )


replication_monitor()
