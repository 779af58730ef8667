"""Schema comparison on the lab: the release's changes are expected; drift is caught."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _diff(expected=()):
    from bascule.hooks.assessment import AssessmentHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation.schema_diff import compare, release_objects_for, snapshot

    plan = load_plan(default_plan_path())
    with AssessmentHook(db_conn_id="bascule_legacy") as src, AssessmentHook(db_conn_id="bascule_new") as tgt:
        return compare(snapshot(src, ["clinic"]), snapshot(tgt, ["clinic"]), plan=plan,
                       release=release_objects_for(plan), expected=expected)


def test_release_changes_are_expected(fresh_lab, airflow_env):
    diff = _diff()
    assert diff.unexpected == []
    objects = {(d.kind.value, d.object) for d in diff.expected}
    assert ("column", "clinic.patients.preferred_language") in objects
    assert ("column", "clinic.encounters.triage_score") in objects
    assert ("index", "clinic.encounters.encounters_open_triage_idx") in objects
    assert ("constraint", "clinic.encounters.encounters_triage_score_check") in objects
    assert diff.counts["source"]["table"] > 40 and diff.counts["source"]["sequence"] >= 8
    assert diff.findings().verdict.value == "PASS"


def test_drift_is_detected(fresh_lab, airflow_env):
    with fresh_lab.connect("new", "clinic") as conn:
        conn.execute("ALTER TABLE clinic.observations ALTER COLUMN unit TYPE varchar(12)")
        conn.execute("DROP INDEX clinic.prescriptions_encounter_id_idx")
        conn.execute("CREATE VIEW clinic.open_encounters AS SELECT encounter_id FROM clinic.encounters "
                     "WHERE discharged_at IS NULL")
    with fresh_lab.connect("legacy", "clinic") as conn:
        conn.execute("ALTER TABLE clinic.staff ADD COLUMN pager text")
        conn.execute("CREATE FUNCTION clinic.bmi(w numeric, h numeric) RETURNS numeric LANGUAGE sql "
                     "AS 'SELECT w / (h * h)'")
    diff = _diff()
    got = {(d.kind.value, d.object, d.change.value) for d in diff.unexpected}
    assert ("column", "clinic.observations.unit", "differs") in got
    assert ("index", "clinic.prescriptions.prescriptions_encounter_id_idx", "only on source") in got
    assert ("view", "clinic.open_encounters", "only on target") in got
    assert ("column", "clinic.staff.pager", "only on source") in got
    assert ("function", "clinic.bmi(w numeric, h numeric)", "only on source") in got
    text = diff.render()
    assert "UNEXPECTED clinic.observations.unit (differs)" in text
    assert "- text NOT NULL" in text and "+ character varying(12) NOT NULL" in text
    findings = diff.findings()
    # A source column the target lacks stops replication: a blocker, not a warning.
    assert [f.object for f in findings.blockers] == ["column clinic.staff.pager"]
    # Declared as expected, the view is no longer drift.
    assert "clinic.open_encounters" not in {d.object for d in _diff(expected=["clinic.open_encounters"]).unexpected}
