"""The validate DAG end to end with dag.test(): faithful target passes, planted violations fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.testing.copy import copy_source_to_target

pytestmark = pytest.mark.integration


def _states(result: dict[str, Any]) -> dict[str, str]:
    return {task: state.split(".")[-1].lower() for task, state, _ in result["tasks"]}


def _no_canary(text: str) -> None:
    leaked = [c for c in CANARY_STRINGS if c in text]
    assert not leaked, f"canary values leaked: {len(leaked)}"


def _readiness_history(run_id: str) -> list[dict[str, Any]]:
    """The validation history as the prepare DAG's readiness report reads and renders it."""
    from bascule.operators.preparation import validation_history
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import readiness

    plan = load_plan(default_plan_path())
    history = validation_history(plan.name, "validate")
    page = readiness.render(readiness.build_context(plan_name=plan.name, budget_s=plan.budget_seconds,
                                                    validation_runs=history))
    assert run_id in page
    return history


def test_validate_dag_faithful_then_violations(fresh_lab: Any, airflow_env: dict[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule_lab.demo_run import run_dag

    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path / "reports"))
    copy_source_to_target(fresh_lab)
    run, result = run_dag("validate", tmp_path / "ok.log")
    states = _states(result)
    log = (tmp_path / "ok.log").read_text()
    assert set(states.values()) == {"success"}, states
    full = result["values"]["full_comparison"]
    assert full["ok"] and full["differences"] == 0 and len(full["tables"]) == 8
    assert result["values"]["incremental_comparison"]["ok"]
    for suite in ("clinic_patients", "clinic_encounters", "clinic_prescriptions", "clinic_observations"):
        assert result["values"][f"suites_target.{suite}"]["success"] is True
        assert result["values"][f"suites_source.{suite}"]["success"] is True
    reports = sorted(p for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert any(p.suffix == ".html" for p in reports) and any(p.suffix == ".json" for p in reports)
    for path in reports:
        text = path.read_text()
        _no_canary(text)
        if path.suffix == ".html":
            assert "http://" not in text and "https://" not in text and "<script" not in text
    _no_canary(log)
    _no_canary(json.dumps(result["values"], default=str))
    history = _readiness_history(run.run_id)
    assert [(h["run_id"], h["outcome"], h["mismatched_rows"]) for h in history] == [(run.run_id, "passed", 0)]
    assert history[0]["tables"] >= 8 and history[0]["rows_compared"] == full["rows_compared"]
    first_run = run.run_id

    # Planted invariant violations on the target: an orphan encounter (foreign keys bypassed as a
    # broken load would) and a patient gone missing.
    with fresh_lab.connect("new", "clinic") as c:
        c.execute("SET session_replication_role = replica")
        c.execute("""INSERT INTO clinic.encounters (encounter_id, patient_id, hospital_id, attending_staff_id,
                     encounter_type, ward, admitted_at) VALUES (99999999, 88888888, 1, 1, 'outpatient', 'W', now())""")
        c.execute("DELETE FROM clinic.patients WHERE patient_id = (SELECT max(patient_id) FROM clinic.patients)")
    run, result = run_dag("validate", tmp_path / "bad.log")
    states = _states(result)
    log = (tmp_path / "bad.log").read_text()
    assert states["full_comparison"] == "failed"
    assert states["suites_target.clinic_encounters"] == "failed"
    assert states["suites_target.clinic_patients"] == "failed"
    assert all(states[f"suites_source.{s}"] == "success" for s in ("clinic_patients", "clinic_encounters"))
    # The failure says what failed and where the full result is; the result was pushed first.
    assert "suite clinic_encounters on the target" in log
    assert "unexpected_rows_expectation" in log and "expect_table_row_count_to_equal" in log
    assert "XCom validate.suites_target.clinic_encounters" in log
    assert result["values"]["suites_target.clinic_encounters"]["success"] is False
    full = result["values"]["full_comparison"]
    assert sorted(full["failed_tables"]) == ["clinic.encounters", "clinic.patients"]
    assert "full comparison failed for 2 table(s): clinic.encounters, clinic.patients" in log
    _no_canary(log)
    _no_canary(json.dumps(result["values"], default=str))
    # The readiness page lists both runs, the second failed with the comparison's two mismatched rows.
    history = _readiness_history(run.run_id)
    assert [(h["run_id"], h["outcome"], h["mismatched_rows"]) for h in history] == [
        (first_run, "passed", 0), (run.run_id, "failed", full["differences"])]
    assert full["differences"] == 2
    for path in (p for p in (tmp_path / "reports").rglob("*") if p.is_file()):
        _no_canary(path.read_text())
