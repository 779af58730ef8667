"""Validation operators: the plan's connections, the report kept before failing, no key value in what they say."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from bascule.operators.validation import (
    FullComparisonOperator,
    IncrementalComparisonOperator,
    SuiteRunOperator,
    suite_runs,
)
from bascule.validation import service
from bascule.validation.report import ComparisonReport, TableResult, TableStatus, ValidationFailed

pytestmark = pytest.mark.unit


@pytest.fixture()
def reports(monkeypatch, tmp_path):
    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path))
    return tmp_path


def _report(kind="full", *, failing=(), patient="Nobody"):
    tables = []
    for name in ("clinic.patients", "clinic.encounters"):
        t = TableResult(table=name, rows_source=1000, rows_target=1000, ranges=4)
        if name in failing:
            t.status = TableStatus.DIFFERENT
            t.counts["changed"] = 1
            t.keys["changed"] = [f"MRN-{patient}"]  # what a careless report could hold: it must not be said
        tables.append(t)
    return ComparisonReport(kind=kind, source_conn_id="bascule_legacy", target_conn_id="bascule_new",
                            tables=tables, seconds=1.5).to_json()


@pytest.fixture()
def comparisons(monkeypatch):
    """Replace the comparison service; ``calls`` keeps what each comparison was asked."""
    calls = []

    def install(report):
        def full(plan, **kwargs):
            calls.append(("full", plan, kwargs))
            return report

        def incremental(plan, previous, **kwargs):
            calls.append(("incremental", plan, {"previous": previous, **kwargs}))
            return report

        monkeypatch.setattr(service, "full_comparison", full)
        monkeypatch.setattr(service, "incremental_comparison", incremental)
        return calls

    return install


# --------------------------------------------------------------------------- construction


def test_connections_come_from_the_plan_unless_given(lab_plan):
    op = FullComparisonOperator(task_id="full", plan=lab_plan)
    assert (op.source_conn_id, op.target_conn_id, op.key_hash_conn_id) == ("bascule_legacy", "bascule_new",
                                                                           "bascule_key_hmac")
    other = FullComparisonOperator(task_id="full", plan=lab_plan, source_conn_id="s", target_conn_id="t",
                                   key_hash_conn_id="k", tables=("clinic.patients",))
    effective = other.effective_plan
    assert (effective.source.conn_id, effective.target.conn_id, effective.validation.key_hash_conn_id) == ("s", "t",
                                                                                                           "k")
    assert lab_plan.source.conn_id == "bascule_legacy"  # the plan itself is left as it was
    assert other.tables == ["clinic.patients"]


def test_what_is_templated():
    assert FullComparisonOperator.template_fields == ("source_conn_id", "target_conn_id", "key_hash_conn_id",
                                                      "tables")
    assert IncrementalComparisonOperator.template_fields[-1] == "previous_report_path"
    assert SuiteRunOperator.template_fields == ("db_conn_id", "source_conn_id")


def test_a_suite_runs_on_the_source_or_the_target_only():
    with pytest.raises(ValueError, match="side must be 'source' or 'target' \\(got 'both'\\)"):
        SuiteRunOperator(task_id="s", suite="clinic_patients", side="both", db_conn_id="x", engine="postgres",
                         source_conn_id="y", source_engine="postgres")


def test_suite_runs_make_one_task_per_suite_of_the_plan_on_one_side(lab_plan):
    with DAG("validate", schedule=None):
        group = suite_runs(lab_plan, side="target")
    tasks = list(group.children.values())
    assert group.group_id == "suites_target"
    assert [t.suite for t in tasks] == list(lab_plan.validation.suites)
    assert {(t.side, t.db_conn_id, t.source_conn_id, t.plan_name) for t in tasks} == {
        ("target", "bascule_new", "bascule_legacy", "lab")}


# --------------------------------------------------------------------------- execute


def test_a_green_full_comparison_is_kept_and_returned(lab_plan, ctx_factory, comparisons, reports):
    report = _report()
    calls = comparisons(report)
    context = ctx_factory("full_comparison", dag_id="validate")
    op = FullComparisonOperator(task_id="full_comparison", plan=lab_plan, track_changes=False,
                                tables=["clinic.patients"], wait_and_confirm_s=2)
    assert op.execute(context) == report

    ((kind, plan, kwargs),) = calls
    assert kind == "full" and plan.source.conn_id == "bascule_legacy"
    assert kwargs == {"track_changes": False, "tables": ["clinic.patients"], "wait_and_confirm_s": 2.0}
    folder = reports / "lab" / "validate" / "manual__2026-05-01T22_00_00_00_00"
    assert json.loads((folder / "full_comparison.json").read_text()) == report
    history = json.loads((folder / "validation.json").read_text())
    assert history["outcome"] == "passed" and history["rows_compared"] == 2000
    assert context["ti"].pushed == []  # returned, not pushed: Airflow keeps the return value


def test_differences_fail_without_retry_after_keeping_the_report(lab_plan, ctx_factory, comparisons, reports,
                                                                 patient, capsys):
    report = _report(failing=("clinic.patients",), patient=patient)
    comparisons(report)
    context = ctx_factory("full_comparison", dag_id="validate")
    with pytest.raises(ValidationFailed) as err:
        FullComparisonOperator(task_id="full_comparison", plan=lab_plan).execute(context)

    assert isinstance(err.value, AirflowFailException)
    assert err.value.tables == ["clinic.patients"]
    message = str(err.value)
    assert message.startswith("full comparison failed for 1 table(s): clinic.patients; full report: XCom "
                              "validate.full_comparison (run manual__2026-05-01T22:00:00+00:00) key return_value, "
                              "and file ")
    assert message.endswith("full_comparison.json")
    assert context["ti"].pushed_under("return_value") == [report]  # kept before failing
    out = capsys.readouterr().out
    assert "clinic.patients" in out and "DIFFERENCES" in out  # the summary is logged ...
    assert patient not in message and patient not in out  # ... but never a key


def test_an_incremental_comparison_starts_from_the_full_ones_report(lab_plan, ctx_factory, comparisons, reports,
                                                                    tmp_path):
    previous = _report()
    calls = comparisons(_report("incremental"))
    context = ctx_factory("incremental", dag_id="validate", xcoms={("full_comparison", "return_value"): previous})
    IncrementalComparisonOperator(task_id="incremental", plan=lab_plan, previous_task_id="full_comparison"
                                  ).execute(context)
    from_file = tmp_path / "previous.json"
    from_file.write_text(json.dumps({"kind": "full", "from": "file"}))
    IncrementalComparisonOperator(task_id="incremental", plan=lab_plan, previous_report_path=str(from_file)
                                  ).execute(ctx_factory("incremental", dag_id="validate"))
    IncrementalComparisonOperator(task_id="incremental", plan=lab_plan).execute(ctx_factory("incremental"))

    assert [c[0] for c in calls] == ["incremental"] * 3
    assert calls[0][2] == {"previous": previous, "tables": None}
    assert calls[1][2]["previous"] == {"kind": "full", "from": "file"}
    assert calls[2][2]["previous"] is None  # the service decides what a first incremental run does
