"""
### Inventory of the source and the target

Reads the migration plan and records, for the **source** and the **target**,
each table in scope with its exact row count, its size (indexes and TOAST/LOB
included, partitions folded into their root), its primary key and its replica
identity (supplemental logging on Oracle), and every sequence with its last value.

- `inventory_source` and `inventory_target` run in parallel, each pushing its
  side as JSON to XCom.
- `report` prints both sides as one readable table in its log and pushes the
  combined JSON.

In the lab the target holds the schema only until the initial load: its rows
read 0 until replication has run. No row value is ever read.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.inventory import InventoryOperator, inventory_report
from bascule.plan import default_plan_path, load_plan

plan = load_plan(default_plan_path())


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    # Any task that fails says so in the run's Slack thread, with its log link (ADR 0047).
    default_args=default_args(on_failure_callback=failure_notifiers(plan)),
    tags=tags(plan, "inventory"),
)
def inventory() -> None:
    sides = {
        side: InventoryOperator(
            task_id=f"inventory_{side}",
            side=side,
            db_conn_id=endpoint.conn_id,
            engine=endpoint.engine.value,
            schemas=plan.scope.schemas,
            include_tables=plan.scope.include_tables,
            exclude_tables=plan.scope.exclude_tables,
        )
        for side, endpoint in (("source", plan.source), ("target", plan.target))
    }

    @task
    def report(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
        return inventory_report(source, target)

    report(sides["source"].output, sides["target"].output)


inventory()
