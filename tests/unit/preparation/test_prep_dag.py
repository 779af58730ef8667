"""The prepare DAG's shape: stages behind their gates, the rehearsal trigger, plan gates."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_prepare_dag_wiring(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    from bascule.paths import DAGS_DIR
    from bascule.plan import default_plan_path, load_plan

    dag = DagBag(dag_folder=str(DAGS_DIR / "prepare.py")).get_dag("prepare")
    plan = load_plan(default_plan_path())
    for gate_id, stage, go in (("assessment_signoff", "assessment", "schema_comparison"),
                               ("schema_signoff", "schema_comparison", "start_replication"),
                               ("replay_signoff", "performance_replay", "storage_analysis"),
                               ("storage_apply", "storage_analysis", "apply_storage")):
        assert gate_id in plan.gates
        gate = dag.get_task(f"gate_{gate_id}")
        assert gate.upstream_task_ids == {stage} and go in gate.downstream_task_ids
    rehearse = dag.get_task("rehearse")
    assert rehearse.trigger_dag_id == "cutover" and rehearse.conf == {"rehearsal": True}
    assert rehearse.wait_for_completion
    assert dag.get_task("replay_after_storage").upstream_task_ids == {"apply_storage"}
    assert dag.get_task("readiness_report").trigger_rule == "all_done"
