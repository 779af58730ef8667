"""Nobody moves the night past a gate without its assigned person's answer (ADR 0037).

Under the lab's real scheduler, through the REST API as a user with edit rights on the DAG
(Airflow accepts each change: HTTP 200), a gate is marked success or failed, cleared, and a
step after it is marked success, once by a user no gate names (``bascule_ops``) and once by
an assigned user who skips the answer. Each time the step after the gate refuses, naming the
gate, and nothing moves: no write reopens, the endpoint does not go live.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.integration

DAG_ID = "cutover"
REFUSED = "has no recorded decision"


@pytest.fixture()
def plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


@pytest.fixture()
def night(fresh_lab: Any, airflow_stack: Any, plan: Any, tmp_path: Path) -> Any:
    from bascule_lab.scenario import LabCutover, start_forward_replication

    start_forward_replication(plan)
    yield LabCutover(lab=fresh_lab, stack=airflow_stack, plan=plan, workdir=tmp_path)
    # A bypassed night ends frozen on purpose: give the next test its endpoint and roles back
    # (a lab reset recreates the databases, not the roles or the pooler's state).
    for cluster in ("legacy", "new"):
        with fresh_lab.connect(cluster) as conn:
            conn.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
    endpoint = _endpoint(plan)
    endpoint.point_to("source")
    endpoint.resume()


def _trigger(night: Any) -> tuple[Any, str]:
    ops = night.client("bascule_ops")
    ops.wait_for_dag(DAG_ID)
    ops.unpause(DAG_ID)
    return ops, ops.trigger(DAG_ID, run_id=f"bypass__{time.time_ns()}")


def _states(client: Any, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: str(ti["state"]) for ti in client.task_instances(DAG_ID, run_id)}


def _app_writes_on(lab: Any, cluster: str) -> bool:
    """Whether the application role can insert on ``cluster`` right now (its own login, not through PgBouncer)."""
    try:
        with psycopg.connect(lab.dsn(cluster, "clinic_app"), connect_timeout=5) as conn:
            conn.execute("INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) "
                         "SELECT min(encounter_id), 'BYPASS', 0, 'n/a', now() FROM clinic.encounters")
        return True
    except psycopg.Error:
        return False


def _endpoint(plan: Any) -> Any:
    from bascule.runbook.actions import endpoint_switch

    return endpoint_switch(plan)


def _endpoint_state(plan: Any) -> dict[str, Any]:
    return _endpoint(plan).state().as_dict()


@pytest.mark.parametrize("state", ["success", "failed"])
def test_a_user_no_gate_names_marks_go_for_freeze_and_nothing_moves(night: Any, plan: Any, state: str) -> None:
    ops, run_id = _trigger(night)
    ops.wait_for_gate(DAG_ID, run_id, "gate_go_for_freeze", timeout=600)
    ops.set_task_state(DAG_ID, run_id, "gate_go_for_freeze", state)  # accepted: HTTP 200
    assert ops.wait_for_run(DAG_ID, run_id, timeout=600) == "failed"
    states = _states(ops, run_id)
    if state == "success":
        # Both branches became runnable; both refused, naming the gate.
        for task in ("restore_point", "abort_before_freeze"):
            assert states[task] == "failed", states
            log = ops.task_log(DAG_ID, run_id, task)
            assert "gate 'go_for_freeze' (task gate_go_for_freeze)" in log and REFUSED in log, log[-2000:]
    else:
        assert states["restore_point"] == "upstream_failed", states
    assert states["freeze_source"] in ("upstream_failed", "skipped", "failed")
    assert states["stop_replication"] != "success" and states["final_validation"] != "success"
    # Nothing moved: the source still takes the application's writes, the endpoint is open on it.
    assert _app_writes_on(night.lab, "legacy")
    endpoint = _endpoint_state(plan)
    assert endpoint["side"] == "source" and not endpoint["paused"], endpoint


def test_an_assigned_user_who_skips_the_answer_at_go_live_moves_nothing(night: Any, plan: Any) -> None:
    from bascule_lab.gates.auto import answer_gates

    ops, run_id = _trigger(night)
    answer_gates(plan, client_for=night.client, dag_id=DAG_ID, run_id=run_id, decisions={"go_for_freeze": "GO"})
    manager = night.client("cutover_manager")
    manager.wait_for_gate(DAG_ID, run_id, "gate_go_live", timeout=900)
    # Clearing the waiting gate only asks again: no answer, no way past it.
    manager.clear_task(DAG_ID, run_id, "gate_go_live")
    manager.wait_for_gate(DAG_ID, run_id, "gate_go_live", timeout=300)
    # A step after the gate set by hand: the next one runs, and refuses.
    manager.set_task_state(DAG_ID, run_id, "open_target_writes", "success")
    deadline = time.monotonic() + 300
    while _states(manager, run_id).get("start_reverse_replication") not in ("failed", "success", "upstream_failed"):
        assert time.monotonic() < deadline, _states(manager, run_id)
        time.sleep(1)
    # The gate itself marked success by one of its own people, without answering.
    manager.set_task_state(DAG_ID, run_id, "gate_go_live", "success")
    assert manager.wait_for_run(DAG_ID, run_id, timeout=600) == "failed"
    states = _states(manager, run_id)
    for task in ("start_reverse_replication", "rollback"):
        assert states[task] == "failed", states
        log = manager.task_log(DAG_ID, run_id, task)
        assert "gate 'go_live' (task gate_go_live)" in log and REFUSED in log, log[-2000:]
    # Nothing moved: the source stays frozen, the endpoint stays paused (no write reopened anywhere).
    assert not _app_writes_on(night.lab, "legacy")
    endpoint = _endpoint_state(plan)
    assert endpoint["paused"], endpoint
