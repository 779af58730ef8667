"""Pre-flight assessment on the lab: a clean lab passes; a table without a key stops the gate."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

pytestmark = pytest.mark.integration


def _hooks():
    from bascule.hooks.assessment import AssessmentHook

    return AssessmentHook(db_conn_id="bascule_legacy"), AssessmentHook(db_conn_id="bascule_new")


def test_clean_lab_has_no_blocker_and_names_each_check(fresh_lab, airflow_env):
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation.assessment import assess_postgres
    from bascule_lab.seed import REFERENCE_DATE

    plan = load_plan(default_plan_path())
    src, tgt = _hooks()
    with src, tgt:
        # The lab's partitions are laid out from its reference date, not from the day the test runs.
        night = (REFERENCE_DATE + timedelta(days=10)).date()
        result = assess_postgres(plan=plan, source=src, target=tgt, cutover_date=night,
                                 replication_role="bascule_repl", target_free_bytes=tgt.data_directory_free_bytes)
    assert result.blockers == [], result.blocked_message()
    checks = {f.check for f in result.findings}
    assert {"connectivity", "privileges", "wal_level", "replica_identity", "column_types", "lob_sizes",
            "large_objects", "free_space", "charset", "collation", "special_objects", "partitions_due"} <= checks
    free = next(f for f in result.findings if f.check == "free_space")
    assert free.severity.value == "PASS" and result.facts["target_free_bytes"] > 0
    # The release widens patients.phone: carried, and said so.
    assert any(f.object == "clinic.patients.phone" and "widened" in f.message for f in result.findings)


def test_special_objects_and_partitions_due(fresh_lab, airflow_env):
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation.assessment import assess_postgres
    from bascule_lab.seed import REFERENCE_DATE

    with fresh_lab.connect("legacy", "clinic") as conn:
        # Without its default partition, the audit log has nowhere for a row past its last month.
        conn.execute("DROP TABLE clinic.audit_log_default")
        conn.execute("CREATE UNLOGGED TABLE clinic.bed_board (bed_id int PRIMARY KEY, ward text)")
        conn.execute("CREATE MATERIALIZED VIEW clinic.ward_census AS SELECT ward, count(*) FROM clinic.encounters "
                     "GROUP BY ward")
        conn.execute("SELECT lo_create(0)")
    plan = load_plan(default_plan_path())
    src, tgt = _hooks()
    with src, tgt:
        result = assess_postgres(plan=plan, source=src, target=tgt,
                                 cutover_date=(REFERENCE_DATE + timedelta(days=400)).date(),
                                 target_free_bytes=10 ** 12)
    by = {(f.check, f.object): f for f in result.findings}
    assert by[("special_objects", "clinic.bed_board")].severity.value == "WARNING"
    assert by[("special_objects", "clinic.ward_census")].severity.value == "WARNING"
    assert by[("large_objects", "pg_largeobject")].severity.value == "BLOCKER"
    due = by[("partitions_due", "clinic.audit_log")]
    assert due.severity.value == "BLOCKER" and "no partition" in due.message


def test_table_without_primary_key_stops_the_gate(fresh_lab, airflow_env, tmp_path: Path, monkeypatch):
    """The prepare DAG: the assessment fails with the blocker, the sign-off gate never opens."""
    from bascule_lab.canary import CANARY_STRINGS
    from bascule_lab.demo_run import run_dag

    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path / "reports"))
    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("CREATE TABLE clinic.bed_moves (patient_id bigint, ward text, moved_at timestamptz)")
        conn.execute("GRANT SELECT ON clinic.bed_moves TO bascule_repl")
    log = tmp_path / "prepare.log"
    run, result = run_dag("prepare", log)
    states = {t: s for t, s, _ in result["tasks"]}
    assert states["assessment"] == "failed"
    assert states["gate_assessment_signoff"] == "upstream_failed"
    assert states["schema_comparison"] == "upstream_failed"
    # The readiness report still runs, and lists the blocker without a patient value.
    assert states["readiness_report"] == "success"
    html = ObjectStoragePath(result["values"]["readiness_report"]["html"]).read_text()
    assert "clinic.bed_moves" in html and "BLOCKER" in html
    for canary in CANARY_STRINGS:
        assert canary not in html
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run.run_id, XComModel.task_id == "assessment",
                                               XComModel.dag_id == "prepare").all()
        pushed = {x.key: XComModel.deserialize_value(x) for x in rows}
    assert "| BLOCKER | replica_identity | `clinic.bed_moves` |" in pushed["gate_body"]
    dumped = json.dumps(pushed["findings"])
    assert pushed["findings"]["verdict"] == "BLOCKER"
    for canary in CANARY_STRINGS:
        assert canary not in dumped


def test_blocker_message_names_the_table_and_the_fix(fresh_lab, airflow_env):
    """The message the failed assessment task raises (dag.test() keeps task logs out of the run log)."""
    from bascule.hooks.assessment import AssessmentHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation.assessment import assess_postgres
    from bascule.preparation.findings import GateBlocked

    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("CREATE TABLE clinic.bed_moves (patient_id bigint, ward text, moved_at timestamptz)")
    plan = load_plan(default_plan_path())
    with AssessmentHook(db_conn_id="bascule_legacy") as src, AssessmentHook(db_conn_id="bascule_new") as tgt:
        result = assess_postgres(plan=plan, source=src, target=tgt, target_free_bytes=10 ** 12)
    with pytest.raises(GateBlocked) as caught:
        result.raise_if_blocked()
    text = str(caught.value)
    assert text.startswith("assessment: 2 BLOCKER(s) stop the gate:")
    assert "- replica_identity on clinic.bed_moves: table has no primary key and no replica identity" in text
    assert "Fix: add a primary key (ALTER TABLE clinic.bed_moves ADD PRIMARY KEY (...))" in text
    # The target lacks the new table too: named, with its own fix.
    assert "- columns on clinic.bed_moves: table is missing on the target" in text
