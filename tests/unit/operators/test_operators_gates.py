"""GateOperator: GO / NO-GO mapped to their tasks, the plan's people, its body, and the decision it records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.standard.exceptions import HITLTimeoutError
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import DownstreamTasksSkipped, TaskAwaitingInput

from bascule.operators.gates import GO, NO_GO, DecisionNotRecorded, GateOperator
from bascule.runbook.context import ASKED_XCOM_KEY, DECISION_XCOM_KEY, EVIDENCE_XCOM_KEY

pytestmark = pytest.mark.unit

ASKED_AT = "2026-05-01T22:10:00+00:00"


def _gate_dag(plan, gate_id="go_for_freeze", **kwargs):
    """gate -> restore_point (GO) and gate -> abort (NO-GO), inside a DAG so the gate can branch."""
    if "body_from" not in kwargs:
        kwargs.setdefault("evidence_task_id", "tminus_checks")
    with DAG("cutover", schedule=None):
        evidence = EmptyOperator(task_id="tminus_checks")
        gate = GateOperator(task_id="gate", plan=plan, gate_id=gate_id, go_task_id="restore_point",
                            no_go_task_id="abort", **kwargs)
        evidence >> gate >> [EmptyOperator(task_id="restore_point"), EmptyOperator(task_id="abort")]
    return gate


def test_go_and_no_go_lead_to_their_tasks_and_only_the_plans_people_may_answer(lab_plan):
    gate = _gate_dag(lab_plan, gate_id="go_live")
    assert gate.options == [GO, NO_GO]
    assert gate.options_mapping == {GO: "restore_point", NO_GO: "abort"}
    assert gate.assigned_users == [{"id": "cutover_manager", "name": "cutover_manager"},
                                   {"id": "app_owner", "name": "app_owner"}]
    assert gate.subject == "GO LIVE"
    assert gate.response_timeout is None  # the point of no return waits as long as it takes
    assert gate.template_fields == ("subject", "body")
    assert gate.multiple is False and gate.defaults is None  # no answer is ever assumed


def test_a_gate_with_a_timeout_in_the_plan_waits_that_long(lab_plan):
    assert _gate_dag(lab_plan).response_timeout == timedelta(minutes=30)


@pytest.mark.parametrize("sources", [
    {},  # neither
    {"evidence_task_id": "tminus_checks", "body_from": lambda ctx: "body"},  # both
])
def test_a_gate_needs_exactly_one_source_for_its_body(lab_plan, sources):
    with pytest.raises(ValueError, match="gate go_live: give exactly one of evidence_task_id .* and body_from"):
        GateOperator(task_id="g", plan=lab_plan, gate_id="go_live", go_task_id="a", no_go_task_id="b", **sources)


def test_a_gate_the_plan_does_not_declare_is_refused_naming_the_plans_gates(lab_plan):
    with pytest.raises(KeyError, match="no gate 'go_home'.*go_for_freeze"):
        GateOperator(task_id="g", plan=lab_plan, gate_id="go_home", go_task_id="a", no_go_task_id="b",
                     body_from=lambda ctx: "")


def test_the_body_is_the_evidence_the_earlier_task_pushed(lab_plan, ctx_factory):
    gate = _gate_dag(lab_plan)
    context = ctx_factory("gate", task=gate, xcoms={("tminus_checks", EVIDENCE_XCOM_KEY): "## lag 0.2 s"})
    gate.render_template_fields(context)
    assert gate.body == "## lag 0.2 s"
    assert gate.subject == "GO for freeze"


@pytest.fixture()
def hitl_requests(monkeypatch):
    """Stands in for the Execution API call that stores the question."""
    requests = []
    monkeypatch.setattr("airflow.providers.standard.operators.hitl.upsert_hitl_detail",
                        lambda **kwargs: requests.append(kwargs))
    return requests


def test_opening_a_gate_computes_its_body_announces_it_and_parks(lab_plan, ctx_factory, slack, hitl_requests):
    seen = []

    def body_from(ctx):
        seen.append((ctx.step, ctx.plan.name))
        return "## GO LIVE? downtime so far 42.0 s"

    gate = _gate_dag(lab_plan, gate_id="go_live", body_from=body_from)
    context = ctx_factory("gate", task=gate)
    with pytest.raises(TaskAwaitingInput) as parked:
        gate.execute(context)

    assert parked.value.method_name == "execute_complete"
    assert seen == [("gate", "lab")]
    (request,) = hitl_requests
    assert request["options"] == [GO, NO_GO] and request["subject"] == "GO LIVE"
    assert request["body"] == "## GO LIVE? downtime so far 42.0 s"
    assert [u["id"] for u in request["assigned_users"]] == ["cutover_manager", "app_owner"]
    ti = context["ti"]
    assert ti.pushed_under(EVIDENCE_XCOM_KEY) == ["## GO LIVE? downtime so far 42.0 s"]
    (asked,) = ti.pushed_under(ASKED_XCOM_KEY)
    assert datetime.fromisoformat(asked).tzinfo is not None
    (waiting,) = slack.posted
    assert type(waiting).__name__ == "GateWaiting"
    assert waiting.gate_id == "go_live" and waiting.asked == ("cutover_manager", "app_owner")
    assert waiting.timeout_s is None
    assert slack.waits >= 1  # the process parks next: the message is sent before it does


def test_a_gate_whose_evidence_cannot_be_gathered_fails_before_asking(lab_plan, ctx_factory, slack, hitl_requests):
    def body_from(ctx):
        raise RuntimeError("target unreachable")

    gate = _gate_dag(lab_plan, gate_id="go_live", body_from=body_from)
    context = ctx_factory("gate", task=gate)
    with pytest.raises(RuntimeError, match="target unreachable"):
        gate.execute(context)
    assert hitl_requests == []
    assert context["ti"].pushed_under(ASKED_XCOM_KEY) == []
    # Never asked, so nobody is paged: the HITL notifier runs only once the Required Action exists.
    assert slack.posted == []


def _answer(option, user="cutover_manager", reason=None):
    return {"chosen_options": [option], "params_input": {} if reason is None else {"reason": reason},
            "responded_at": datetime(2026, 5, 1, 22, 12, 30, tzinfo=UTC),
            "responded_by_user": {"id": user, "name": user}}


@pytest.mark.parametrize(("option", "runs", "skipped", "decision"), [
    (GO, "restore_point", "abort", "go"),
    (NO_GO, "abort", "restore_point", "no_go"),
])
def test_the_decision_is_recorded_with_who_and_when_and_branches(lab_plan, ctx_factory, slack, option, runs,
                                                                 skipped, decision):
    gate = _gate_dag(lab_plan)
    context = ctx_factory("gate", task=gate, xcoms={("gate", ASKED_XCOM_KEY): ASKED_AT})
    with pytest.raises(DownstreamTasksSkipped) as branched:
        gate.execute_complete(context, _answer(option, reason="lag too high" if option == NO_GO else None))

    assert branched.value.tasks == [(skipped, -1)]
    (record,) = context["ti"].pushed_under(DECISION_XCOM_KEY)
    assert record["gate"] == "go_for_freeze" and record["decision"] == option
    assert record["by"] == "cutover_manager"
    assert record["asked_at"] == ASKED_AT and record["at"] == "2026-05-01T22:12:30+00:00"
    assert record["decision_s"] == 150.0
    assert datetime.fromisoformat(record["recorded_at"]).tzinfo is not None
    (decided,) = slack.posted
    assert decided.decision.value == decision and decided.decided_by == "cutover_manager"
    assert slack.carried == 1  # resumed in a new process: the messages sent before parking still count
    assert runs not in [t for t, _ in branched.value.tasks]


def test_an_unanswered_gate_records_no_decision_and_fails(lab_plan, ctx_factory, slack):
    gate = _gate_dag(lab_plan)
    context = ctx_factory("gate", task=gate)
    event = {"error": "no answer", "error_type": "timeout"}
    with pytest.raises(HITLTimeoutError):
        gate.execute_complete(context, event)

    # Nobody decided: nothing is signed or recorded, so no step after the gate can run.
    assert context["ti"].pushed_under(DECISION_XCOM_KEY) == []
    assert slack.posted == []  # nobody decided: no "GO by" message
    assert slack.waits == 1  # the task fails here: what is queued is sent


def test_an_answer_that_is_not_an_option_is_refused(lab_plan, ctx_factory, slack):
    gate = _gate_dag(lab_plan)
    context = ctx_factory("gate", task=gate)
    with pytest.raises(DecisionNotRecorded, match="not one of GO, NO-GO; nothing recorded"):
        gate.execute_complete(context, _answer("MAYBE"))
    # Refused before anything is recorded or announced.
    assert context["ti"].pushed_under(DECISION_XCOM_KEY) == [] and slack.posted == []


def test_a_no_go_without_a_reason_is_refused_and_one_with_a_reason_keeps_it(lab_plan, ctx_factory, slack):
    gate = _gate_dag(lab_plan)
    assert set(gate.params) == {"reason"}  # the Required Action form's field
    context = ctx_factory("gate", task=gate, xcoms={("gate", ASKED_XCOM_KEY): ASKED_AT})
    with pytest.raises(DecisionNotRecorded, match="NO-GO by 'cutover_manager' without a reason"):
        gate.execute_complete(context, _answer(NO_GO, reason="  "))
    assert context["ti"].pushed_under(DECISION_XCOM_KEY) == [] and slack.posted == []
    with pytest.raises(DownstreamTasksSkipped):
        gate.execute_complete(context, _answer(NO_GO, reason="suite on encounters is red"))
    (record,) = context["ti"].pushed_under(DECISION_XCOM_KEY)
    # A person types the reason: it goes through the sanitiser like any text that leaves the worker (ADR 0041),
    # which keeps the object names the plan knows and drops every other word (a patient's name among them).
    assert record["reason"] == "encounters"
    (decided,) = slack.posted
    assert decided.reason == "encounters"


def test_the_waiting_gate_pages_its_people_with_their_slack_ids_and_links_the_required_action(
        lab_plan, ctx_factory, slack, hitl_requests):
    from bascule.notifications.blocks import AirflowLinks, render

    plan = lab_plan.model_copy(update={"notifications": lab_plan.notifications.model_copy(
        update={"slack_users": {"cutover_manager": "U0LABCM01"}})})
    gate = _gate_dag(plan, gate_id="go_live", body_from=lambda ctx: "## GO LIVE?")
    with pytest.raises(TaskAwaitingInput):
        gate.execute(ctx_factory("gate", task=gate))
    (waiting,) = slack.posted
    assert waiting.mentions == ("U0LABCM01",)
    message = render(waiting, AirflowLinks("http://af:8080"))
    assert "<@U0LABCM01>" in message.text and "app_owner" in message.text
    assert "http://af:8080/dags/cutover/runs/" in json.dumps(message.blocks_list())
    assert "/tasks/gate/required_actions" in json.dumps(message.blocks_list())
