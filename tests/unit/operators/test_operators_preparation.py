"""Preparation operators: Oracle refused, evidence pushed before a BLOCKER fails the stage, the helpers they read."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bascule.operators import preparation as prep
from bascule.operators.preparation import (
    FINDINGS_XCOM_KEY,
    AssessmentOperator,
    InitialLoadProgressOperator,
    PerformanceReplayOperator,
    RehearsalReportOperator,
    SchemaComparisonOperator,
    StorageAnalysisOperator,
    StorageApplyOperator,
)
from bascule.preparation.findings import Finding, FindingSet, Severity
from bascule.runbook.context import EVIDENCE_XCOM_KEY

pytestmark = pytest.mark.unit

BLOCKER = Finding("wal_level", "source", Severity.BLOCKER, "wal_level is replica", "set wal_level = logical")
WARNING = Finding("bloat", "clinic.encounters", Severity.WARNING, "38% bloat", "VACUUM FULL after the load")
PASSED = Finding("version", "target", Severity.PASS, "PostgreSQL 15")

STAGES = [
    (AssessmentOperator, {}),
    (SchemaComparisonOperator, {}),
    (PerformanceReplayOperator, {}),
    (StorageAnalysisOperator, {}),
    (StorageApplyOperator, {"analysis_task_id": "storage_analysis"}),
]


class FakeCatalogue:
    """An AssessmentHook stand-in: a context manager that knows its database and closes."""

    def __init__(self, name, records=None, free_bytes=None):
        self.name = name
        self.database = f"clinic_{name}"
        self.data_directory_free_bytes = free_bytes
        self._records = list(records or [])
        self.queries = []
        self.entered = self.closed = 0

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        self.closed += 1

    def records(self, query):
        self.queries.append(query)
        answer = self._records.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close(self):
        self.closed += 1


def _stage(cls, plan, **kwargs):
    op = cls(task_id=kwargs.pop("task_id", "stage"), plan=plan, **kwargs)
    op.__dict__["source_hook"] = FakeCatalogue("source")  # the cached hooks: no database
    op.__dict__["target_hook"] = FakeCatalogue("target", free_bytes=10 * 2**30)
    return op


@pytest.fixture()
def reports(monkeypatch, tmp_path):
    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path))
    return tmp_path


# --------------------------------------------------------------------------- refusals and templates


@pytest.mark.parametrize(("cls", "extra"), STAGES, ids=[c.__name__ for c, _ in STAGES])
def test_a_stage_refuses_an_oracle_plan_before_touching_a_database(oracle_plan, ctx_factory, cls, extra):
    op = _stage(cls, oracle_plan, task_id="assess", **extra)
    with pytest.raises(AirflowFailException, match="^assess: runs live on PostgreSQL only; for Oracle, run the SQL "
                       "of bascule.engines.oracle_assessment"):
        op.execute(ctx_factory("assess"))
    assert op.source_hook.entered == op.target_hook.entered == 0


def test_what_is_templated():
    assert AssessmentOperator.template_fields == ("cutover_date",)
    assert SchemaComparisonOperator.template_fields == ("expected",)
    assert PerformanceReplayOperator.template_fields == ("threshold", "concurrency", "repeats", "duration_s")
    assert StorageAnalysisOperator.template_fields == ("retention_months",)
    assert StorageApplyOperator.template_fields == ("analysis_task_id",)
    assert RehearsalReportOperator.template_fields == ("scale",)
    assert InitialLoadProgressOperator.template_fields == ("replication_config",)


def test_storage_retention_comes_from_the_plan_unless_given(lab_plan):
    assert _stage(StorageAnalysisOperator, lab_plan).retention_months == 24
    assert _stage(StorageAnalysisOperator, lab_plan, retention_months=0).retention_months == 0


# --------------------------------------------------------------------------- the assessment


class FakeConnectionHook:
    """Stands in for the ``AssessmentHook`` the operator builds to learn the replication role's login."""

    def __init__(self, *, db_conn_id, engine="postgres"):
        self.airflow_connection = type("Conn", (), {"login": f"{db_conn_id}_login"})()


@pytest.fixture()
def assessed(monkeypatch):
    from bascule.preparation import assessment

    calls = []

    def install(findings):
        def fake_assess(**kwargs):
            calls.append(kwargs)
            return FindingSet(stage="assessment", findings=tuple(findings))

        monkeypatch.setattr(assessment, "assess_postgres", fake_assess)
        monkeypatch.setattr(prep, "AssessmentHook", FakeConnectionHook)
        return calls

    return install


def test_a_blocker_fails_the_assessment_after_pushing_its_evidence(lab_plan, ctx_factory, assessed):
    calls = assessed([PASSED, WARNING, BLOCKER])
    op = _stage(AssessmentOperator, lab_plan, task_id="assessment", cutover_date="2027-03-14T22:00:00")
    context = ctx_factory("assessment")
    with pytest.raises(AirflowFailException) as err:
        op.execute(context)

    assert str(err.value) == ("assessment: 1 BLOCKER(s) stop the gate:\n"
                              "- wal_level on source: wal_level is replica Fix: set wal_level = logical")
    ti = context["ti"]
    (body,) = ti.pushed_under(EVIDENCE_XCOM_KEY)
    assert body.startswith("**assessment: BLOCKER** (1 blocker, 1 warning, 1 pass)")
    assert "| BLOCKER | wal_level | `source` |" in body
    (findings,) = ti.pushed_under(FINDINGS_XCOM_KEY)
    assert findings["verdict"] == "BLOCKER" and findings["counts"] == {"PASS": 1, "WARNING": 1, "BLOCKER": 1}
    (call,) = calls
    assert call["plan"] is lab_plan and call["cutover_date"] == date(2027, 3, 14)
    assert call["replication_role"] == "bascule_legacy_repl_login"
    assert call["source"] is op.source_hook and call["target"] is op.target_hook
    assert call["target_free_bytes"] == 10 * 2**30
    assert op.source_hook.closed == op.target_hook.closed == 1


def test_an_assessment_with_warnings_only_passes_and_returns_its_findings(lab_plan, ctx_factory, assessed):
    assessed([PASSED, WARNING])
    context = ctx_factory("assessment")
    result = _stage(AssessmentOperator, lab_plan).execute(context)
    assert result["verdict"] == "WARNING" and [f["check"] for f in result["findings"]] == ["bloat", "version"]
    assert context["ti"].pushed_under(FINDINGS_XCOM_KEY) == [result]


def test_a_cutover_date_that_is_not_a_date_is_refused_naming_the_field(lab_plan, ctx_factory, assessed):
    assessed([])
    op = _stage(AssessmentOperator, lab_plan, cutover_date="next tuesday")
    with pytest.raises(ValueError, match="cutover_date must be an ISO date like 2027-03-14 \\(got 'next tuesday'\\)"):
        op.execute(ctx_factory("assessment"))


# --------------------------------------------------------------------------- schema comparison


def test_the_schema_comparison_shows_the_diff_under_its_findings(lab_plan, ctx_factory, monkeypatch):
    from bascule.preparation import schema_diff

    seen = {}

    class Diff:
        def render(self):
            return "~" * 7000

        def findings(self):
            return FindingSet(stage="schema", findings=(WARNING,))

        def to_json(self):
            return {"differences": 1}

    def fake_compare(source, target, *, plan, release, expected):
        seen.update(source=source, target=target, expected=expected)
        return Diff()

    monkeypatch.setattr(schema_diff, "snapshot", lambda reader, schemas: (reader.name, tuple(schemas)))
    monkeypatch.setattr(schema_diff, "release_objects_for", lambda plan: None)
    monkeypatch.setattr(schema_diff, "compare", fake_compare)
    context = ctx_factory("schema")
    result = _stage(SchemaComparisonOperator, lab_plan, expected=["clinic.patients.preferred_language"]
                    ).execute(context)

    assert seen == {"source": ("source", ("clinic",)), "target": ("target", ("clinic",)),
                    "expected": ["clinic.patients.preferred_language"]}
    assert result["differences"] == 1 and result["findings"]["verdict"] == "WARNING"
    (body,) = context["ti"].pushed_under(EVIDENCE_XCOM_KEY)
    assert body.endswith("\n\n```\n" + "~" * 6000 + "\n```")  # the diff, cut to what a gate can show


# --------------------------------------------------------------------------- storage apply


ANALYSIS = {"actions": [
    {"kind": "drop_index", "object": "clinic.ix_unused", "reason": "never scanned", "bytes": 1000},
    {"kind": "archive_partition", "object": "clinic.encounters_2019", "reason": "older than 24 months",
     "bytes": 50000, "table": "clinic.encounters", "root": "clinic.encounters"},
]}


def test_storage_apply_without_an_analysis_fails_naming_the_task(lab_plan, ctx_factory):
    op = _stage(StorageApplyOperator, lab_plan, analysis_task_id="storage_analysis")
    with pytest.raises(AirflowFailException, match="no storage analysis in XCom of task 'storage_analysis'"):
        op.execute(ctx_factory("storage_apply"))
    assert op.target_hook.entered == 0


def test_storage_apply_applies_only_the_chosen_actions_on_the_target(lab_plan, ctx_factory, monkeypatch, reports):
    from bascule.preparation import storage

    calls = []

    def fake_apply(target, actions, *, schemas, archive, manifest_path, log):
        calls.append((target, [a.object for a in actions], tuple(schemas), archive, manifest_path))
        return storage.ApplyResult(before_bytes=200, after_bytes=150, applied=(), archive={})

    monkeypatch.setattr(storage, "apply_storage_actions", fake_apply)
    op = _stage(StorageApplyOperator, lab_plan, analysis_task_id="storage_analysis",
                only=["clinic.encounters_2019"])
    op.__dict__["archive_hook"] = FakeCatalogue("archive")
    context = ctx_factory("storage_apply", dag_id="prepare", xcoms={("storage_analysis", "return_value"): ANALYSIS})
    result = op.execute(context)

    ((target, objects, schemas, archive, manifest),) = calls
    assert target is op.target_hook and op.source_hook.entered == 0  # the target only
    assert objects == ["clinic.encounters_2019"] and schemas == ("clinic",)
    # The plan's archive connection (another cluster in the lab), closed after the apply.
    assert op.archive_conn_id == lab_plan.storage.archive_conn_id == "bascule_archive"
    assert archive is op.archive_hook and archive.closed == 1
    assert str(manifest) == "file://" + str(reports / "lab" / "prepare" / "storage_archive_manifest.json")
    assert result["reduction_pct"] == 25.0 and [a["object"] for a in result["actions"]] == objects


def test_storage_apply_refuses_to_archive_without_an_archive_connection(lab_plan, ctx_factory):
    plan = lab_plan.model_copy(update={"storage": lab_plan.storage.model_copy(update={"archive_conn_id": None})})
    op = _stage(StorageApplyOperator, plan, analysis_task_id="storage_analysis")
    context = ctx_factory("storage_apply", dag_id="prepare", xcoms={("storage_analysis", "return_value"): ANALYSIS})
    with pytest.raises(AirflowFailException, match="storage.archive_conn_id is not set"):
        op.execute(context)
    assert op.target_hook.entered == 0


# --------------------------------------------------------------------------- initial load


def test_the_initial_load_has_nothing_to_follow_without_replication(ctx_factory):
    op = InitialLoadProgressOperator(task_id="initial_load", replication_config={"method": "none"})
    assert op.execute(ctx_factory("initial_load")) == []


class SyncingReplication:
    def __init__(self, steps):
        self.steps = list(steps)
        self.closed = 0

    def sync_progress(self):
        return self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]

    def close(self):
        self.closed += 1


def _install_factory(monkeypatch, repl):
    from bascule.replication import factory

    monkeypatch.setattr(factory, "replication_from_config", lambda config: repl)


def test_the_initial_load_waits_until_every_table_is_ready(ctx_factory, monkeypatch):
    repl = SyncingReplication([
        [{"table": "clinic.patients", "state": "data_copy", "rows_copied": 500},
         {"table": "clinic.encounters", "state": "init"}],
        [{"table": "clinic.patients", "state": "ready"}, {"table": "clinic.encounters", "state": "ready"}],
    ])
    _install_factory(monkeypatch, repl)
    op = InitialLoadProgressOperator(task_id="initial_load", replication_config={"method": "postgres-logical"},
                                     poll_s=0.0)
    result = op.execute(ctx_factory("initial_load"))
    assert [r["state"] for r in result] == ["ready", "ready"] and repl.closed == 1


def test_an_initial_load_that_does_not_finish_times_out_naming_what_is_pending(ctx_factory, monkeypatch):
    repl = SyncingReplication([[{"table": "clinic.patients", "state": "ready"},
                                {"table": "clinic.encounters", "state": "data_copy"}]])
    _install_factory(monkeypatch, repl)
    op = InitialLoadProgressOperator(task_id="initial_load", replication_config={"method": "postgres-logical"},
                                     timeout_s=0.0, poll_s=0.0)
    with pytest.raises(TimeoutError, match="clinic.encounters pending$"):
        op.execute(ctx_factory("initial_load"))
    assert repl.closed == 1  # closed on the way out too


# --------------------------------------------------------------------------- rehearsals and readiness


def _report(folder, run_id, started_at, seconds):
    path = folder / "lab" / "cutover" / run_id / "report.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": run_id, "outcome": "completed", "downtime_s": seconds + 10,
                                "budget_s": 7200, "steps": [
                                    {"step": "freeze_source", "started_at": started_at, "actual_s": 2.0},
                                    {"step": "drain", "started_at": started_at, "actual_s": seconds}]}))


def test_the_rehearsal_report_pushes_its_summary_as_the_gates_evidence(lab_plan, ctx_factory, reports):
    context = ctx_factory("rehearsals")
    assert _stage(RehearsalReportOperator, lab_plan).execute(context)["forecast"] is None
    assert context["ti"].pushed_under(EVIDENCE_XCOM_KEY) == ["**Rehearsals**: none yet"]

    _report(reports, "manual__1", "2026-04-01T22:00:00+00:00", 30.0)
    _report(reports, "manual__2", "2026-04-08T22:00:00+00:00", 20.0)
    context = ctx_factory("rehearsals")
    data = _stage(RehearsalReportOperator, lab_plan, scale=2.0).execute(context)
    assert data["latest_run"] == "manual__2" and data["previous_run"] == "manual__1"
    assert data["forecast"]["dominating_step"] == "drain" and data["forecast"]["scale"] == 2.0
    (body,) = context["ti"].pushed_under(EVIDENCE_XCOM_KEY)
    assert body.startswith("**Rehearsals**: 2; forecast downtime") and "| drain | 30.0 | 20.0 | -10.00 s |" in body


def test_validation_history_reads_each_runs_record_oldest_first(reports):
    # One file per task of the run (written by any worker), merged when read.
    for run_id, finished in [("b", "2026-04-02T10:00:00+00:00"), ("a", "2026-04-03T10:00:00+00:00")]:
        path = reports / "lab" / "validate" / run_id / "validation-steps" / "full_comparison.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"run_id": run_id, "finished_at": finished, "kind": "full_comparison",
                                    "ok": True, "tables": ["a", "b", "c", "d"], "rows_compared": 10,
                                    "mismatched_rows": 0}))
    runs = prep.validation_history("lab")
    assert [r["run_id"] for r in runs] == ["b", "a"]
    assert set(runs[0]) == {"run_id", "finished_at", "outcome", "tables", "rows_compared", "mismatched_rows"}
    assert prep.validation_history("another_plan") == []


def test_the_readiness_lag_history_is_oldest_first_and_empty_when_there_is_none():
    from bascule.hooks.assessment import PreparationDatabaseError

    newest, oldest = datetime(2026, 4, 2, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    hook = FakeCatalogue("target", records=[[(True,)], [(newest, 0.5), (oldest, 2)]])
    assert prep.readiness_lag_history(hook) == [(oldest.isoformat(), 2.0), (newest.isoformat(), 0.5)]
    assert hook.closed == 1

    no_table = FakeCatalogue("target", records=[[(False,)]])
    assert prep.readiness_lag_history(no_table) == [] and no_table.closed == 1 and len(no_table.queries) == 1

    failing = FakeCatalogue("target", records=[PreparationDatabaseError("target unreachable")])
    assert prep.readiness_lag_history(failing) == [] and failing.closed == 1
