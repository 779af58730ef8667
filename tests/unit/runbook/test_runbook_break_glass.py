"""Break glass (bascule.runbook.break_glass): the printout follows the registry, and steps run by hand are guarded."""

from __future__ import annotations

import json

import pytest

from bascule.plan import Gate, ManualStep
from bascule.runbook import break_glass
from bascule.runbook.actions import CUTOVER
from bascule.runbook.context import DECISION_XCOM_KEY
from bascule.runbook.evidence import checkpoint_body
from bascule.runbook.fallback import FALLBACK
from bascule.runbook.registry import Runbook, gate, step

pytestmark = pytest.mark.unit


def _plan(lab_plan):
    gates = {**lab_plan.gates, "data_verified": Gate(title="Data verified", assigned_users=("data_steward",),
                                                     after="final_validation")}
    steps = {"stop_hl7": ManualStep(title="Stop HL7", owners=("integration_lead",), after="tminus_checks")}
    return lab_plan.model_copy(update={"gates": gates, "manual_steps": steps})


@pytest.mark.parametrize("base", [CUTOVER, FALLBACK], ids=lambda r: r.dag_id)
def test_the_printout_is_the_registry_in_order_with_a_command_for_every_task(base, lab_plan, airflow_env):
    from airflow.sdk import DAG

    from bascule.operators.runbook import build_runbook

    plan = _plan(lab_plan)
    runbook = base.placed(plan, body_from=checkpoint_body)
    lines = break_glass.render(plan, runbook, plan_path="plan.yaml")
    numbered = [line.split(". ", 1)[1].split()[0] for line in lines if line[:3].strip().rstrip(".").isdigit()]
    assert numbered == runbook.order()
    # The same tasks as the DAG the scheduler runs: the printout cannot drift from the night.
    with DAG(base.dag_id, schedule=None) as dag:
        build_runbook(base, plan)
    assert set(numbered) == {t.task_id for t in dag.tasks}
    commands = [line for line in lines if line.startswith("    by hand: ")]
    assert len(commands) == len(runbook.entries)
    if base is CUTOVER:
        assert any("answer manual_stop_hl7 DONE --by" in c for c in commands)
        assert any("answer gate_data_verified GO|NO-GO --by" in c for c in commands)
        at = next(i for i, x in enumerate(lines) if x.split(". ", 1)[-1].startswith("open_target_writes"))
        assert any("needs: " in x and "data_verified=GO" in x and "stop_hl7=DONE" in x for x in lines[at:at + 4])


def _toy(calls):
    def first(ctx):
        calls.append(("first", ctx.result_of("first")))
        return {"position": "0/1"}

    def after_go(ctx):
        calls.append(("after_go", ctx.result_of("first")))
        return {"done": True}

    return Runbook(dag_id="cutover", noun="cutover", entries=(
        step("first", first, starts_downtime=True),
        gate("gate_go_live", gate_id="go_live", go="after_go", no_go="after_no_go", evidence_from="first",
             after=("first",)),
        step("after_go", after_go),
        step("after_no_go", after_go),
    ))


def test_steps_by_hand_are_recorded_and_guarded_like_the_night(lab_plan, tmp_path, monkeypatch):
    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path))
    monkeypatch.setattr(break_glass, "read_metadata", lambda dag_id, run_id: None)  # Airflow is down
    calls: list = []
    runbook = _toy(calls)
    plan = lab_plan.model_copy(update={"notifications": None})
    break_glass.run_step(plan, runbook, plan_name="lab", run_id="r1", task_id="first", log=lambda line: None)
    with pytest.raises(break_glass.BreakGlassError, match="gate 'go_live'.*has no recorded decision"):
        break_glass.run_step(plan, runbook, plan_name="lab", run_id="r1", task_id="after_go")
    with pytest.raises(break_glass.BreakGlassError, match="'bascule_ops' is not among its assigned users"):
        break_glass.answer_gate(plan, runbook, plan_name="lab", run_id="r1", task_id="gate_go_live", option="GO",
                                by="bascule_ops")
    decision = break_glass.answer_gate(plan, runbook, plan_name="lab", run_id="r1", task_id="gate_go_live",
                                       option="GO", by="app_owner")
    assert decision["break_glass"]["os_user"] and decision["signature"].startswith("hmac-sha256:")
    with pytest.raises(break_glass.BreakGlassError, match="not on the branch chosen: go_live was answered GO"):
        break_glass.run_step(plan, runbook, plan_name="lab", run_id="r1", task_id="after_no_go")
    break_glass.run_step(plan, runbook, plan_name="lab", run_id="r1", task_id="after_go", log=lambda line: None)
    assert calls == [("first", None), ("after_go", {"position": "0/1"})]
    record = break_glass.read_state("lab", "cutover", "r1")
    assert record.states == {"first": "success", "gate_go_live": "success", "after_go": "success"}
    assert record.xcoms["gate_go_live"][DECISION_XCOM_KEY]["decision"] == "GO"
    saved = json.loads(break_glass.state_path("lab", "cutover", "r1").read_text())
    assert saved["xcoms"]["after_go"]["bascule_step"]["break_glass"] is True
    lines = break_glass.render(plan, runbook, plan_path="p.yaml", record=record)
    assert " 3. after_go  [success]" in lines[3] or any("after_go  [success]" in x for x in lines)


def test_a_freeze_that_drains_in_its_task_drains_by_hand_too_recorded_as_its_own_step(lab_plan, tmp_path,
                                                                                       monkeypatch,
                                                                                       fake_replication):
    from bascule.replication import factory
    from bascule.runbook.context import DRAIN_TIMING_XCOM_KEY, STEP_XCOM_KEY

    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path))
    monkeypatch.setattr(break_glass, "read_metadata", lambda dag_id, run_id: None)  # Airflow is down
    repl = fake_replication(applied=[True])
    monkeypatch.setattr(factory, "replication_from_plan", lambda plan, direction: repl)
    runbook = Runbook(dag_id="cutover", noun="cutover", entries=(
        step("freeze", lambda ctx: {"position": "0/5000", "frozen_at": "2026-05-01T22:20:00+00:00"},
             starts_downtime=True, drains="forward"),
    ))
    plan = lab_plan.model_copy(update={"notifications": None})
    break_glass.run_step(plan, runbook, plan_name="lab", run_id="r2", task_id="freeze", log=lambda line: None)

    assert repl.applied_calls == ["0/5000"]  # the position the freeze just returned
    pushed = break_glass.read_state("lab", "cutover", "r2").xcoms["freeze"]
    assert pushed[STEP_XCOM_KEY]["step"] == "freeze" and pushed[STEP_XCOM_KEY]["result"]["position"] == "0/5000"
    drained = pushed[DRAIN_TIMING_XCOM_KEY]
    assert drained["step"] == "drain" and drained["task_id"] == "freeze" and drained["break_glass"] is True
    assert drained["result"]["position"] == "0/5000"
    lines = break_glass.render(plan, runbook, plan_path="p.yaml")
    assert any("then (drain) wait until the forward replication has applied the frozen position" in x for x in lines)
