"""
### Replication setup (preparation)

Starts continuous replication from the source to the target, as the plan says:

1. `check_prerequisites`: wal_level, a key or replica identity on every table in
   scope, free slots and workers, privileges; fails listing each problem with its fix.
2. `sync_schema`: tables, partitions and indexes on the source but not on the
   target are created there from the source's catalogue (rows never: they come
   only through the initial load and replication).
3. `start_replication`: publication (partitions through their root, plus the
   heartbeat table) and subscription with the initial copy; rerunning is harmless.
4. `wait_for_lag`: deferrable sensor; succeeds once the initial copy is done and
   lag stays under the threshold for the stable window, fails at once if
   replication breaks.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.replication import (
    CheckReplicationPrerequisitesOperator,
    StartReplicationOperator,
    SyncSchemaChangesOperator,
)
from bascule.plan import default_plan_path, load_plan
from bascule.replication.factory import replication_config
from bascule.sensors.replication import ReplicationLagSensor

plan = load_plan(default_plan_path())
config = replication_config(plan, "forward")


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "replication", "preparation"),
)
def replication_setup() -> None:
    check = CheckReplicationPrerequisitesOperator(task_id="check_prerequisites", replication_config=config)
    sync = SyncSchemaChangesOperator(task_id="sync_schema", replication_config=config)
    start = StartReplicationOperator(task_id="start_replication", replication_config=config, copy_data=True)
    wait = ReplicationLagSensor.from_plan(plan, task_id="wait_for_lag",
                                          timeout=timedelta(hours=6).total_seconds())
    check >> sync >> start >> wait


replication_setup()
