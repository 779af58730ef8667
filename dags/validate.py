"""
### Validate the target against the source

Triggered by hand during preparation, as often as the team wants proof that
the target holds every row of the source.

- `full_comparison` counts and hashes every table in scope inside both
  databases at once (range hashes, bisected down to the differing keys), with
  the release's column mapping, and starts the change tracking that
  `incremental_comparison` reads: it re-checks only the keys touched since.
- `suites_target` and `suites_source` run the plan's Great Expectations suites
  (`expectations/`) on each side, with BOOLEAN_ONLY results.

Each task pushes its JSON report to XCom and writes it under the report
directory; a failure names the tables and where the report is. Reports hold
keys (or keyed hashes of identifying keys) and counts, never a row value.
"""

from __future__ import annotations

from airflow.sdk import dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.validation import FullComparisonOperator, IncrementalComparisonOperator, suite_runs
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
    tags=tags(plan, "validation"),
)
def validate() -> None:
    full = FullComparisonOperator(task_id="full_comparison", plan=plan, track_changes=True)
    incremental = IncrementalComparisonOperator(task_id="incremental_comparison", plan=plan,
                                                previous_task_id="full_comparison")
    full >> incremental
    suite_runs(plan, side="target")
    suite_runs(plan, side="source")


validate()
