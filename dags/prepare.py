"""
### The three months before: is the new platform ready, and how long will the night take?

Driven by the migration plan. Each stage ends at a gate its people sign off in the
Airflow UI (GO / NO-GO, notified on Slack); a stage with a BLOCKER fails before
its gate opens, with the list of blockers and their fixes in the task log.

1. `assessment`: connectivity, versions, privileges, `wal_level`, tables without
   a key, column types, TOAST/large objects, free space, charset/collation,
   unlogged tables, materialised views, partitions due before the night
   (param `cutover_date`). Gate `assessment_signoff`.
2. `schema_comparison`: tables, columns, constraints, indexes, sequences, views,
   functions; differences the release explains are EXPECTED. Gate `schema_signoff`.
3. `start_replication` (the replication issue's operator) and `initial_load`
   (progress per table).
4. `performance_replay`: pgbench with the clinic workload on clones of both sides
   at rising concurrency, repeated; fails beyond the threshold *and* the noise.
   Gate `replay_signoff`.
5. `storage_analysis` then, after gate `storage_apply`, `apply_storage` on the
   target, and `replay_after_storage` to prove nothing the workload uses went.
6. `rehearse`: the cutover DAG in rehearsal mode; `rehearsal_report`: history,
   forecast against the budget, N against N-1.
7. `readiness_report`: one self-contained HTML page (and a PNG).
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag

from bascule.dag_defaults import START_DATE, default_args, tags
from bascule.notifications.slack import failure_notifiers
from bascule.operators.gates import GateOperator
from bascule.operators.milestones import MilestoneOperator
from bascule.operators.preparation import (
    AssessmentOperator,
    InitialLoadProgressOperator,
    PerformanceReplayOperator,
    ReadinessReportOperator,
    RehearsalReportOperator,
    SchemaComparisonOperator,
    StorageAnalysisOperator,
    StorageApplyOperator,
)
from bascule.operators.replication import StartReplicationOperator
from bascule.plan import MilestoneId, default_plan_path, load_plan
from bascule.preparation import SIGNOFF_GATES
from bascule.replication.factory import replication_config

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
    tags=tags(plan, "preparation"),
    params={
        "cutover_date": Param(None, type=["null", "string"], description="the night, ISO date (partitions due)"),
        "replay_threshold": Param(0.20, type="number", description="regression threshold (0.2 = 20%)"),
    },
)
def prepare() -> None:
    def gate(gate_id: str, evidence: str, go: str) -> GateOperator:
        stop = EmptyOperator(task_id=f"{gate_id}_no_go")
        g = GateOperator(task_id=f"gate_{gate_id}", plan=plan, gate_id=gate_id, go_task_id=go,
                         no_go_task_id=stop.task_id, evidence_task_id=evidence)
        g >> stop
        return g

    assessment = AssessmentOperator(task_id="assessment", plan=plan, cutover_date="{{ params.cutover_date }}")
    schema = SchemaComparisonOperator(task_id="schema_comparison", plan=plan)
    start = StartReplicationOperator(task_id="start_replication", replication_config=config, copy_data=True)
    load = InitialLoadProgressOperator(task_id="initial_load", replication_config=config)
    replay = PerformanceReplayOperator(task_id="performance_replay", plan=plan,
                                       threshold="{{ params.replay_threshold }}")
    storage = StorageAnalysisOperator(task_id="storage_analysis", plan=plan)
    apply = StorageApplyOperator(task_id="apply_storage", plan=plan, analysis_task_id=storage.task_id)
    replay_after = PerformanceReplayOperator(task_id="replay_after_storage", plan=plan,
                                             threshold="{{ params.replay_threshold }}")
    rehearse = TriggerDagRunOperator(task_id="rehearse", trigger_dag_id="cutover", conf={"rehearsal": True},
                                     wait_for_completion=True, poke_interval=10)
    rehearsals = RehearsalReportOperator(task_id="rehearsal_report", plan=plan, trigger_rule="all_done")
    readiness = ReadinessReportOperator(
        task_id="readiness_report", plan=plan, trigger_rule="all_done",
        stage_task_ids=[assessment.task_id, schema.task_id, replay.task_id, storage.task_id, replay_after.task_id],
        rehearsal_task_id=rehearsals.task_id, storage_task_id=apply.task_id, replay_task_id=replay_after.task_id,
        schema_task_id=schema.task_id,
    )

    signoff, schema_ok, replay_ok, storage_ok = SIGNOFF_GATES
    if plan.calendar is None:
        assessment >> gate(signoff, assessment.task_id, schema.task_id) >> schema
        schema >> gate(schema_ok, schema.task_id, start.task_id) >> start >> load >> replay
        replay >> gate(replay_ok, replay.task_id, storage.task_id) >> storage
        storage >> gate(storage_ok, storage.task_id, apply.task_id) >> apply >> replay_after
    else:
        # Each stage signed off GO records its milestone, signed, on the milestone's Asset (ADR 0048).
        def reached(milestone: MilestoneId, evidence: str, gate_task: str | None) -> MilestoneOperator:
            return MilestoneOperator(task_id=f"milestone_{milestone.value}", plan=plan, milestone=milestone,
                                     evidence_task_id=evidence, gate_task_id=gate_task)

        assessed = reached(MilestoneId.ASSESSMENT_SIGNED_OFF, assessment.task_id, f"gate_{signoff}")
        schema_signed = reached(MilestoneId.SCHEMA_SIGNED_OFF, schema.task_id, f"gate_{schema_ok}")
        loaded = reached(MilestoneId.INITIAL_LOAD_COMPLETE, load.task_id, None)
        replayed = reached(MilestoneId.REPLAY_PASSED, replay.task_id, f"gate_{replay_ok}")
        stored = reached(MilestoneId.STORAGE_APPLIED, apply.task_id, f"gate_{storage_ok}")
        assessment >> gate(signoff, assessment.task_id, assessed.task_id) >> assessed >> schema
        schema >> gate(schema_ok, schema.task_id, schema_signed.task_id) >> schema_signed >> start
        start >> load >> loaded >> replay
        replay >> gate(replay_ok, replay.task_id, replayed.task_id) >> replayed >> storage
        storage >> gate(storage_ok, storage.task_id, apply.task_id) >> apply >> stored >> replay_after
    replay_after >> rehearse >> rehearsals >> readiness


prepare()
