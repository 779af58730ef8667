"""Performance replay with real pgbench on clones: a target missing the workload's indexes regresses."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PATIENT_LOOKUPS = ("encounters_patient_id_idx", "encounters_patient_idx", "prescriptions_patient_id_idx",
                   "prescriptions_patient_prescribed_idx", "audit_log_patient_id_idx", "audit_log_patient_logged_idx",
                   "observations_encounter_id_idx", "observations_encounter_observed_idx")


def _drop_patient_lookups(clone) -> None:
    for name in PATIENT_LOOKUPS:
        clone.execute(f"DROP INDEX clinic.{name}")


def test_missing_index_is_a_regression_and_clones_are_dropped(fresh_lab, airflow_env, tmp_path):
    from bascule.hooks.assessment import AssessmentHook
    from bascule.preparation import replay

    admin = AssessmentHook(db_conn_id="bascule_legacy")
    # Both sides are clones of the seeded source; the "target" clone lacks the indexes the chart read needs.
    settings = replay.ReplaySettings(concurrency=(1,), repeats=3, duration_s=2, workload={"chart_read": 1})
    result = replay.run_replay(
        replay.ReplayEndpoint("source", admin, "clinic", "bascule_legacy_app", clone_db="clinic_rt_src"),
        replay.ReplayEndpoint("target", admin, "clinic", "bascule_legacy_app", clone_db="clinic_rt_tgt",
                              prepare=_drop_patient_lookups),
        settings=settings, schemas=["clinic"], workdir=tmp_path)
    (verdict,) = result.verdicts
    assert verdict.script == "chart_read" and verdict.clients == 1
    assert verdict.regression, result.markdown()
    findings = result.findings()
    assert findings.blockers and "chart_read at 1 client(s)" in findings.blocked_message()
    assert len(result.stats) == 6 and all(s.transactions > 0 for s in result.stats)
    with fresh_lab.connect("legacy") as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'clinic_rt_%'").fetchall()
    assert left == []
    with fresh_lab.connect("legacy", "clinic") as conn:
        # The live database was never touched.
        assert conn.execute("SELECT to_regclass('clinic.encounters_patient_idx')").fetchone()[0] is not None


def test_replay_refuses_the_live_database(fresh_lab, airflow_env):
    from bascule.hooks.assessment import AssessmentHook
    from bascule.preparation import replay

    with pytest.raises(ValueError, match="refusing to replay on 'clinic'"):
        replay.clone_database(AssessmentHook(db_conn_id="bascule_legacy"), template_db="clinic", clone_db="clinic")
