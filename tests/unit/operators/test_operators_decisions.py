"""The gate's signed decision and the guard before every step after it (ADR 0037), against fakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSkipException

from bascule.operators.decisions import DecisionRefused, guard_for
from bascule.operators.gates import CheckpointOperator, DecisionNotRecorded, GateOperator
from bascule.plan import Gate, ManualStep
from bascule.runbook.actions import CUTOVER
from bascule.runbook.context import DECISION_XCOM_KEY, DONE, GO, NO_GO
from bascule.runbook.decisions import Requirement, Verdict, sign, verify
from bascule.runbook.fallback import FALLBACK

pytestmark = pytest.mark.unit


def _answer(option, user="cutover_manager"):
    # A NO-GO carries its reason, as the Required Action form requires.
    return {"chosen_options": [option], "params_input": {"reason": "not ready"} if option == NO_GO else {}, "responded_at": datetime(2026, 5, 1, 22, 12, tzinfo=UTC),
            "responded_by_user": {"id": user, "name": user}}


def _answered_gate(plan, ctx_factory, option=GO, user="cutover_manager"):
    from airflow.providers.standard.operators.empty import EmptyOperator

    with DAG("cutover", schedule=None):
        gate = GateOperator(task_id="gate_go_live", plan=plan, gate_id="go_live", go_task_id="open_target_writes",
                            no_go_task_id="rollback", evidence_task_id="smoke_tests")
        gate >> [EmptyOperator(task_id="open_target_writes"), EmptyOperator(task_id="rollback")]
    context = ctx_factory("gate_go_live", task=gate)
    try:
        gate.execute_complete(context, _answer(option, user))
    except Exception as exc:  # branching ends in DownstreamTasksSkipped
        if type(exc).__name__ != "DownstreamTasksSkipped":
            raise
    (record,) = context["ti"].pushed_under(DECISION_XCOM_KEY)
    return record


def test_the_gate_records_a_signed_decision_that_the_guard_accepts(lab_plan, ctx_factory, slack, decision_key):
    record = _answered_gate(lab_plan, ctx_factory)
    need = Requirement("gate_go_live", "go_live", GO)
    assert record["signature"].startswith("hmac-sha256:")
    assert verify(decision_key, record, dag_id="cutover", run_id=record["run_id"], requirement=need,
                  assigned=("cutover_manager", "app_owner")) is Verdict.HOLDS


def test_a_responder_the_plan_does_not_assign_is_refused_before_anything_is_recorded(lab_plan, ctx_factory, slack):
    with pytest.raises(DecisionNotRecorded, match="answered by 'bascule_ops', who is not among its assigned"):
        _answered_gate(lab_plan, ctx_factory, user="bascule_ops")
    assert slack.posted == []


def _guarded_step_context(ctx_factory, task_id, xcoms):
    return ctx_factory(task_id, xcoms=xcoms)


@pytest.mark.parametrize("runbook", [CUTOVER, FALLBACK], ids=lambda r: r.dag_id)
def test_the_guard_refuses_every_step_after_a_gate_with_no_answer(runbook, lab_plan, ctx_factory):
    guarded = [e.task_id for e in runbook.entries if guard_for(runbook, e.task_id, lab_plan) is not None]
    assert guarded, "every runbook has steps after its gates"
    for task_id in guarded:
        guard = guard_for(runbook, task_id, lab_plan)
        with pytest.raises(DecisionRefused, match=r"has no recorded decision"):
            guard(ctx_factory(task_id, dag_id=runbook.dag_id))  # a gate marked success: no answer recorded


def test_the_guard_accepts_signed_answers_and_skips_the_branch_not_chosen(lab_plan, ctx_factory, decision_key):
    def signed(gate_task, gate_id, option, by="cutover_manager"):
        ti = ctx_factory(gate_task)["ti"]
        return sign(decision_key, {"dag_id": "cutover", "run_id": ti.run_id, "task_id": gate_task, "gate": gate_id,
                                   "decision": option, "by": by, "at": "2026-05-01T22:12:00+00:00"})

    xcoms = {("gate_go_for_freeze", DECISION_XCOM_KEY): signed("gate_go_for_freeze", "go_for_freeze", GO),
             ("gate_go_live", DECISION_XCOM_KEY): signed("gate_go_live", "go_live", NO_GO, by="app_owner")}
    guard_for(CUTOVER, "rollback", lab_plan)(ctx_factory("rollback", xcoms=xcoms))  # NO-GO leads here: runs
    with pytest.raises(AirflowSkipException, match="go_live was answered NO-GO"):
        guard_for(CUTOVER, "open_target_writes", lab_plan)(ctx_factory("open_target_writes", xcoms=xcoms))
    # A decision written by hand through the XCom API, for the right gate and option, has no valid signature.
    forged = {**xcoms, ("gate_go_live", DECISION_XCOM_KEY): {**xcoms[("gate_go_live", DECISION_XCOM_KEY)],
                                                             "decision": GO}}
    with pytest.raises(DecisionRefused, match="signature does not hold"):
        guard_for(CUTOVER, "open_target_writes", lab_plan)(ctx_factory("open_target_writes", xcoms=forged))


def _plan_with_placements(plan):
    gates = {**plan.gates, "data_verified": Gate(title="Data verified", assigned_users=("data_steward",),
                                                 after="final_validation")}
    steps = {"stop_hl7": ManualStep(title="Stop the HL7 interface engine", owners=("integration_lead",),
                                    after="tminus_checks")}
    return plan.model_copy(update={"gates": gates, "manual_steps": steps})


def test_the_plan_places_its_own_gates_and_manual_steps_in_the_night(lab_plan):
    from bascule.runbook.evidence import checkpoint_body

    plan = _plan_with_placements(lab_plan)
    night = CUTOVER.placed(plan, body_from=checkpoint_body)
    assert "gate_data_verified" in night.entry("gate_go_live").after
    assert night.entry("gate_data_verified").after == ("final_validation",)
    assert night.entry("gate_data_verified").guarded  # inside the window: a NO-GO rolls back
    assert "manual_stop_hl7" in night.entry("gate_go_for_freeze").after
    assert {(r.gate_id, r.option) for r in night.requirements("open_target_writes")} >= {
        ("data_verified", GO), ("stop_hl7", DONE)}
    assert night.requirements("rollback_on_failure") == ()  # a failure rolls back, whatever was answered
    # A NO-GO at data_verified fails it and rolls back: the report still records the night (it was skipped
    # as "not on the branch chosen" before, and the night had no report).
    assert night.requirements("report") == ()


def test_a_checkpoint_no_go_fails_it_and_a_manual_step_takes_done_from_its_owner(lab_plan, ctx_factory, slack):
    plan = _plan_with_placements(lab_plan)
    with DAG("cutover", schedule=None):
        gate = CheckpointOperator(task_id="gate_data_verified", plan=plan, gate_id="data_verified",
                                  runbook=CUTOVER)
        manual = CheckpointOperator(task_id="manual_stop_hl7", plan=plan, gate_id="stop_hl7", manual=True)
    assert gate.options == [GO, NO_GO] and manual.options == [DONE]
    with pytest.raises(DecisionNotRecorded, match="NO-GO at gate data_verified: the night stops here and rolls back"):
        gate.execute_complete(ctx_factory("gate_data_verified", task=gate), _answer(NO_GO, "data_steward"))
    context = ctx_factory("manual_stop_hl7", task=manual)
    manual.execute_complete(context, _answer(DONE, "integration_lead"))
    (record,) = context["ti"].pushed_under(DECISION_XCOM_KEY)
    assert record["decision"] == DONE and record["by"] == "integration_lead"
