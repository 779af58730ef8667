"""Operators of the preparation months; each stage pushes its gate's evidence (Markdown) under ``gate_body``.

A stage with a BLOCKER pushes its evidence, then fails with the list of blockers:
its gate, downstream, never opens. All I/O goes through
:class:`bascule.hooks.assessment.AssessmentHook`; the logic lives in
``bascule.preparation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bascule.engines import dialect_for
from bascule.hooks.assessment import AssessmentHook
from bascule.plan import Plan
from bascule.preparation.findings import FindingSet
from bascule.runbook.context import EVIDENCE_XCOM_KEY

FINDINGS_XCOM_KEY = "findings"


class _StageOperator(BaseOperator):
    ui_color = "#e8f0fe"

    def __init__(self, *, plan: Plan, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.source_conn_id = plan.source.conn_id
        self.target_conn_id = plan.target.conn_id

    @cached_property
    def source_hook(self) -> AssessmentHook:
        return AssessmentHook(db_conn_id=self.source_conn_id, engine=self.plan.source.engine.value)

    @cached_property
    def target_hook(self) -> AssessmentHook:
        return AssessmentHook(db_conn_id=self.target_conn_id, engine=self.plan.target.engine.value)

    def _require_live_preparation(self) -> None:
        # Asked of the plan's engines, not of the hooks: refusing must not need a connection.
        if not all(dialect_for(side.engine.value).runs_preparation_live for side in (self.plan.source, self.plan.target)):
            raise AirflowFailException(
                f"{self.task_id}: runs live on PostgreSQL only; for Oracle, run the SQL of "
                "bascule.engines.oracle_assessment with the DBA (see docs/preparation.md)")

    def _conclude(self, context: Any, findings: FindingSet, body: str) -> None:
        context["ti"].xcom_push(key=EVIDENCE_XCOM_KEY, value=body)
        # Pushed before failing, so the readiness report lists a blocked stage's findings too.
        context["ti"].xcom_push(key=FINDINGS_XCOM_KEY, value=findings.to_json())
        for f in findings.sorted():
            if f.severity.value != "PASS":
                self.log.warning("%s %s on %s: %s Fix: %s", f.severity.value, f.check, f.object, f.message, f.fix)
        if findings.blockers:
            raise AirflowFailException(findings.blocked_message())


class AssessmentOperator(_StageOperator):
    """Pre-flight assessment of source and target; fails (the gate never opens) on a BLOCKER."""

    template_fields: Sequence[str] = ("cutover_date",)

    def __init__(self, *, plan: Plan, cutover_date: str | None = None, **kwargs: Any) -> None:
        super().__init__(plan=plan, **kwargs)
        self.cutover_date = cutover_date

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation.assessment import assess_postgres, cutover_date_arg

        self._require_live_preparation()
        role = None
        if self.plan.replication.postgres_logical is not None:
            role = AssessmentHook(db_conn_id=self.plan.replication.postgres_logical.replication_conn_id
                                  ).airflow_connection.login
        with self.source_hook as src, self.target_hook as tgt:
            findings = assess_postgres(plan=self.plan, source=src, target=tgt,
                                       cutover_date=cutover_date_arg(self.cutover_date), replication_role=role,
                                       target_free_bytes=tgt.data_directory_free_bytes)
        self._conclude(context, findings, findings.markdown())
        return findings.to_json()


class SchemaComparisonOperator(_StageOperator):
    """Source against target schema; differences the release explains are EXPECTED."""

    template_fields: Sequence[str] = ("expected",)

    def __init__(self, *, plan: Plan, expected: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(plan=plan, **kwargs)
        self.expected = list(expected)

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation.schema_diff import compare, release_objects_for, snapshot

        self._require_live_preparation()
        schemas = list(self.plan.scope.schemas)
        with self.source_hook as src, self.target_hook as tgt:
            diff = compare(snapshot(src, schemas), snapshot(tgt, schemas), plan=self.plan,
                           release=release_objects_for(self.plan), expected=self.expected)
        self.log.info("%s", diff.render())
        findings = diff.findings()
        self._conclude(context, findings, findings.markdown() + "\n\n```\n" + diff.render()[:6000] + "\n```")
        return {**diff.to_json(), "findings": findings.to_json()}


class InitialLoadProgressOperator(BaseOperator):
    """Waits for the subscription's initial copy, logging each table's state and rows copied."""

    template_fields: Sequence[str] = ("replication_config",)

    def __init__(self, *, replication_config: dict[str, Any], timeout_s: float = 6 * 3600, poll_s: float = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replication_config = replication_config
        self.timeout_s = timeout_s
        self.poll_s = poll_s

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from bascule.preparation.load import wait_for_initial_sync
        from bascule.replication.factory import replication_from_config

        repl = replication_from_config(dict(self.replication_config))
        if not hasattr(repl, "sync_progress"):
            self.log.info("replication method %s has no per-table initial sync to follow",
                          self.replication_config.get("method"))
            return []
        try:
            return wait_for_initial_sync(repl, timeout_s=self.timeout_s, poll_s=self.poll_s, log=self.log.info)
        finally:
            repl.close()


class PerformanceReplayOperator(_StageOperator):
    """pgbench replay of the clinic workload on clones of both sides; fails on a regression beyond the noise."""

    template_fields: Sequence[str] = ("threshold", "concurrency", "repeats", "duration_s")

    def __init__(self, *, plan: Plan, threshold: float = 0.20, concurrency: Sequence[int] = (1, 2, 4),
                 repeats: int = 3, duration_s: int = 10, noise_k: float | None = None, **kwargs: Any) -> None:
        super().__init__(plan=plan, **kwargs)
        self.threshold = threshold
        self.concurrency = list(concurrency)
        self.repeats = repeats
        self.duration_s = duration_s
        self.noise_k = noise_k

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation import replay

        self._require_live_preparation()
        settings = replay.ReplaySettings(
            concurrency=tuple(int(c) for c in self.concurrency), repeats=int(self.repeats),
            duration_s=int(self.duration_s), threshold=float(self.threshold),
            **({} if self.noise_k is None else {"noise_k": float(self.noise_k)}))
        suffix = context["ti"].task_id
        result = replay.run_replay(
            replay.ReplayEndpoint("source", self.source_hook, self.source_hook.database, self.plan.source.app_conn_id,
                                  clone_db=f"{self.source_hook.database}_{suffix}_src"),
            replay.ReplayEndpoint("target", self.target_hook, self.target_hook.database, self.plan.target.app_conn_id,
                                  clone_db=f"{self.target_hook.database}_{suffix}_tgt"),
            settings=settings, schemas=self.plan.scope.schemas, log=self.log.info)
        findings = result.findings()
        self._conclude(context, findings, result.markdown())
        return {**result.to_json(), "findings": findings.to_json()}


class StorageAnalysisOperator(_StageOperator):
    """Sizes, unused/duplicate/redundant indexes (source statistics), bloat and archive candidates."""

    template_fields: Sequence[str] = ("retention_months",)

    def __init__(self, *, plan: Plan, retention_months: int | None = None,
                 archive_tables: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(plan=plan, **kwargs)
        self.retention_months = plan.storage.retention_months if retention_months is None else retention_months
        self.archive_tables = None if archive_tables is None else list(archive_tables)

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation.storage import analyse_storage
        from bascule.today import retention_today

        self._require_live_preparation()
        today = retention_today(self.plan)
        self.log.info("storage: retention of %s months measured from %s (%s)", self.retention_months, today,
                      "the plan's storage.as_of" if self.plan.storage.as_of else "today's date")
        with self.source_hook as src, self.target_hook as tgt:
            analysis = analyse_storage(source=src, target=tgt, schemas=self.plan.scope.schemas, today=today,
                                       retention_months=int(self.retention_months),
                                       archive_tables=self.archive_tables)
        findings = analysis.findings()
        self._conclude(context, findings, analysis.markdown())
        return {**analysis.to_json(), "findings": findings.to_json()}


class StorageApplyOperator(_StageOperator):
    """Applies the analysis's actions on the TARGET (after its gate) and measures the size before and after.

    Archived partitions go to the plan's ``storage.archive_conn_id``, a database on another cluster."""

    template_fields: Sequence[str] = ("analysis_task_id",)

    def __init__(self, *, plan: Plan, analysis_task_id: str, only: Sequence[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(plan=plan, **kwargs)
        self.analysis_task_id = analysis_task_id
        self.only = None if only is None else list(only)
        self.archive_conn_id = plan.storage.archive_conn_id

    @cached_property
    def archive_hook(self) -> AssessmentHook | None:
        return None if self.archive_conn_id is None else AssessmentHook(db_conn_id=self.archive_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.hooks import evidence
        from bascule.preparation.storage import Action, ActionKind, apply_storage_actions

        self._require_live_preparation()
        analysis = context["ti"].xcom_pull(task_ids=self.analysis_task_id)
        if not analysis:
            raise AirflowFailException(f"no storage analysis in XCom of task {self.analysis_task_id!r}")
        actions = [Action.from_json(a) for a in analysis["actions"]]
        if self.only is not None:
            actions = [a for a in actions if a.object in set(self.only)]
        if self.archive_hook is None and any(a.kind is ActionKind.ARCHIVE_PARTITION for a in actions):
            raise AirflowFailException("storage.archive_conn_id is not set in the plan: partitions to archive need "
                                       "a database outside the target's cluster")
        manifest = evidence.dag_folder(self.plan.name, context["ti"].dag_id) / "storage_archive_manifest.json"
        try:
            with self.target_hook as tgt:
                result = apply_storage_actions(tgt, actions, schemas=self.plan.scope.schemas,
                                               archive=self.archive_hook, manifest_path=manifest, log=self.log.info)
        finally:
            if self.archive_hook is not None:
                self.archive_hook.close()
        self.log.info("storage on the target: %d -> %d bytes (%.1f%% smaller)", result.before_bytes,
                      result.after_bytes, result.reduction_pct)
        return {**result.to_json(), "actions": [a.to_json() for a in actions]}


class RehearsalReportOperator(BaseOperator):
    """History of the cutover's rehearsals, the night's forecast against the budget, and N against N-1."""

    template_fields: Sequence[str] = ("scale",)

    def __init__(self, *, plan: Plan, cutover_dag_id: str = "cutover", scale: float = 1.0, **kwargs: Any) -> None:
        from bascule.runbook.milestones import REHEARSAL, milestone_asset

        # With a calendar, the last rehearsal's outcome is recorded, signed, on the plan's rehearsal Asset:
        # the night checks it before it starts for real (ADR 0048).
        self._rehearsal_asset = milestone_asset(plan, REHEARSAL) if plan.calendar is not None else None
        if self._rehearsal_asset is not None:
            kwargs["outlets"] = [*kwargs.get("outlets", []), self._rehearsal_asset]
        super().__init__(**kwargs)
        self._plan = plan
        self.plan_name = plan.name
        self.budget_s = plan.budget_seconds
        self.cutover_dag_id = cutover_dag_id
        self.scale = scale

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.preparation import rehearsal

        history = rehearsal.load_history(self.plan_name, dag_id=self.cutover_dag_id)
        data = rehearsal.summary(history, budget_s=self.budget_s, scale=float(self.scale))
        context["ti"].xcom_push(key=EVIDENCE_XCOM_KEY, value=rehearsal.markdown(data))
        if self._rehearsal_asset is not None and history:
            self._record_last(context, history[-1])
        return data

    def _record_last(self, context: Any, last: Any) -> None:
        from bascule.hooks.decision_key import DecisionKeyHook
        from bascule.runbook.milestones import REHEARSAL, evidence
        from bascule.today import parse_instant

        ti = context["ti"]
        key = DecisionKeyHook(key_conn_id=self._plan.decisions.key_conn_id).key()
        extra = evidence(key, plan=self._plan, milestone=REHEARSAL, dag_id=ti.dag_id, run_id=ti.run_id,
                         signed_off_by=None, outcome=last.outcome, recorded_at=parse_instant(last.started_at),
                         figures={"rehearsal_run_id": last.run_id, "downtime_s": last.downtime_s})
        context["outlet_events"][self._rehearsal_asset].extra = extra
        self.log.info("last rehearsal %s (%s) recorded on asset %s", last.run_id, last.outcome,
                      self._rehearsal_asset.name)


class ReadinessReportOperator(BaseOperator):
    """Writes the readiness HTML (and a PNG when Chromium is installed) from the stages' XComs."""

    def __init__(self, *, plan: Plan, stage_task_ids: Sequence[str], rehearsal_task_id: str | None = None,
                 storage_task_id: str | None = None, replay_task_id: str | None = None,
                 schema_task_id: str | None = None, validation_dag_id: str = "validate",
                 screenshot: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.stage_task_ids = list(stage_task_ids)
        self.rehearsal_task_id = rehearsal_task_id
        self.storage_task_id = storage_task_id
        self.replay_task_id = replay_task_id
        self.schema_task_id = schema_task_id
        self.validation_dag_id = validation_dag_id
        self.screenshot = screenshot

    @cached_property
    def target_hook(self) -> AssessmentHook:
        return AssessmentHook(db_conn_id=self.plan.target.conn_id, engine=self.plan.target.engine.value)

    def execute(self, context: Any) -> dict[str, Any]:
        import tempfile
        from pathlib import Path

        from bascule.hooks import evidence
        from bascule.preparation import readiness

        ti = context["ti"]

        def pull(task_id: str | None) -> Any:
            return ti.xcom_pull(task_ids=task_id) if task_id else None

        findings = [ti.xcom_pull(task_ids=task_id, key=FINDINGS_XCOM_KEY) for task_id in self.stage_task_ids]
        storage = dict(pull(self.storage_task_id) or {})
        ctx = readiness.build_context(
            plan_name=self.plan.name, budget_s=self.plan.budget_seconds,
            lag_points=readiness_lag_history(self.target_hook), lag_threshold_s=self.plan.replication.lag_threshold_s,
            rehearsals=pull(self.rehearsal_task_id), storage=storage,
            findings=[f for f in findings if f], replay=pull(self.replay_task_id),
            validation_runs=validation_history(self.plan.name, self.validation_dag_id),
        )
        folder = evidence.run_folder(self.plan.name, ti.dag_id, ti.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        # Rendered (and photographed by Chromium) in a scratch folder, then stored where every worker reads it.
        with tempfile.TemporaryDirectory(prefix="bascule-readiness-") as scratch:
            html = readiness.write_report(ctx, Path(scratch) / "readiness.html")
            (folder / "readiness.html").write_bytes(html.read_bytes())
            out = {"html": str(folder / "readiness.html"), "png": None}
            if self.screenshot:
                try:
                    png = readiness.screenshot(html, Path(scratch) / "readiness.png")
                    (folder / "readiness.png").write_bytes(png.read_bytes())
                    out["png"] = str(folder / "readiness.png")
                except FileNotFoundError as exc:
                    self.log.warning("no screenshot: %s", exc)
        self.log.info("readiness report: %s", out["html"])
        return out


def readiness_lag_history(hook: AssessmentHook, *, limit: int = 2000) -> list[tuple[str, float]]:
    """Lag readings from the replication issue's ``bascule_meta.replication_history`` on the target, if any."""
    from bascule.engines import postgres_replication as pr
    from bascule.hooks.assessment import PreparationDatabaseError

    try:
        if not hook.records(pr.history_table_exists())[0][0]:
            return []
        rows = hook.records(pr.recent_history("postgres-logical", "forward", limit))
    except PreparationDatabaseError:
        return []
    finally:
        hook.close()
    return [(t.isoformat() if hasattr(t, "isoformat") else str(t), float(v)) for t, v in reversed(rows)]


def validation_history(plan_name: str, dag_id: str = "validate") -> list[dict[str, Any]]:
    """Validation runs from the evidence store, ``<plan>/<dag_id>/<run>/validation-steps/`` (see docs)."""
    from bascule.hooks import evidence
    from bascule.validation.history import read_record

    folder = evidence.dag_folder(plan_name, dag_id)
    runs = []
    for run in sorted(folder.iterdir(), key=str) if folder.exists() else []:
        data = read_record(run) if run.is_dir() else None
        if data is None:
            continue
        runs.append({k: data.get(k) for k in ("run_id", "finished_at", "outcome", "tables", "rows_compared",
                                              "mismatched_rows")})
    return sorted(runs, key=lambda r: str(r.get("finished_at")))


__all__ = [
    "AssessmentOperator", "InitialLoadProgressOperator", "PerformanceReplayOperator", "ReadinessReportOperator",
    "RehearsalReportOperator", "SchemaComparisonOperator", "StorageAnalysisOperator", "StorageApplyOperator",
]
