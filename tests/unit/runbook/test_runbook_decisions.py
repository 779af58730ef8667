"""Signed gate decisions (bascule.runbook.decisions): what a step after a gate accepts, and what it refuses."""

from __future__ import annotations

import pytest

from bascule.runbook.actions import CUTOVER
from bascule.runbook.decisions import DecisionForged, Requirement, Verdict, sign, verify
from bascule.runbook.fallback import FALLBACK

pytestmark = pytest.mark.unit

KEY = b"k" * 32
NEED_GO = Requirement(gate_task="gate_go_live", gate_id="go_live", option="GO")
DECISION = {"dag_id": "cutover", "run_id": "r1", "task_id": "gate_go_live", "gate": "go_live", "decision": "GO",
            "by": "cutover_manager", "at": "2026-11-27T22:00:00+00:00", "asked_at": "2026-11-27T21:59:00+00:00"}
ASSIGNED = ("cutover_manager", "app_owner")


def _verify(record, requirement=NEED_GO, **kwargs):
    return verify(KEY, record, dag_id=kwargs.get("dag_id", "cutover"), run_id=kwargs.get("run_id", "r1"),
                  requirement=requirement, assigned=kwargs.get("assigned", ASSIGNED))


def test_a_signed_answer_by_an_assigned_user_holds_and_the_other_option_is_told_apart():
    signed = sign(KEY, DECISION)
    assert _verify(signed) is Verdict.HOLDS
    assert _verify(signed, Requirement("gate_go_live", "go_live", "NO-GO")) is Verdict.OTHER_OPTION


@pytest.mark.parametrize(("record", "found"), [
    (None, "has no recorded decision"),  # the gate was marked success, or cleared: no answer recorded
    ({**DECISION}, "not signed by a worker"),  # a decision written through the XCom API
    ({**sign(KEY, DECISION), "decision": "GO", "by": "bascule_ops"}, "signature does not hold"),  # altered
    (sign(b"x" * 32, DECISION), "signature does not hold"),  # signed with another key
    (sign(KEY, {**DECISION, "run_id": "r0"}), r"belongs elsewhere \(run_id='r0'\)"),  # copied from another run
    (sign(KEY, {**DECISION, "task_id": "gate_go_for_freeze", "gate": "go_for_freeze"}), "belongs elsewhere"),
    (sign(KEY, {**DECISION, "by": "bascule_ops"}), "answered by 'bascule_ops', who is not among its assigned"),
])
def test_anything_but_a_signed_answer_by_an_assigned_user_is_refused_naming_the_gate(record, found):
    with pytest.raises(DecisionForged, match=found) as err:
        _verify(record)
    assert "gate 'go_live' (task gate_go_live)" in str(err.value)


def test_a_decision_needs_every_signed_field():
    with pytest.raises(ValueError, match="cannot be signed without by"):
        sign(KEY, {**DECISION, "by": None})


def test_the_registry_says_which_answers_each_step_needs():
    def need(runbook, task):
        return {(r.gate_id, r.option) for r in runbook.requirements(task)}

    assert need(CUTOVER, "freeze_source") == {("go_for_freeze", "GO")}
    assert need(CUTOVER, "abort_before_freeze") == {("go_for_freeze", "NO-GO")}
    assert need(CUTOVER, "open_target_writes") == {("go_for_freeze", "GO"), ("go_live", "GO")}
    assert need(CUTOVER, "rollback") == {("go_for_freeze", "GO"), ("go_live", "NO-GO")}
    # Reached whatever the answer: the report needs none; before the first gate, nothing is needed.
    assert need(CUTOVER, "report") == set() and need(CUTOVER, "tminus_checks") == set()
    assert need(FALLBACK, "switch_back") == {("fallback", "GO")} and need(FALLBACK, "abort_fallback") == {
        ("fallback", "NO-GO")}


def test_the_catch_up_refuses_a_second_try(lab_plan):
    """ADR 0070: a pass moved the trackers on; a second try would start from T-minus's report."""
    from types import SimpleNamespace

    from bascule.runbook import actions
    from bascule.runbook.context import StepContext

    ti = SimpleNamespace(try_number=2, task_id="catch_up_checks", dag_id="cutover", run_id="r1")
    ctx = StepContext(plan=lab_plan, airflow={"ti": ti}, step="catch_up_checks")
    with pytest.raises(actions.CutoverCheckFailed, match=r"already ran in this night \(this is try 2\)"):
        actions.catch_up_checks(ctx)
