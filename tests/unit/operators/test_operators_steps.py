"""RunbookStepOperator: a step's record, its announcements, and what leaves it when the action fails."""

from __future__ import annotations

from datetime import datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.operators.steps import RunbookStepError, RunbookStepFailed, RunbookStepOperator
from bascule.runbook.context import STEP_XCOM_KEY, SafeMessage

pytestmark = pytest.mark.unit

DRIVER_ERROR = ('new row for relation "patients" violates check constraint "dob_check" for Margaret {name}\n'
                "DETAIL:  Failing row contains (42, Margaret {name}, 1931-02-30).")


def _step(plan, action, **kwargs):
    kwargs.setdefault("task_id", "fixups")
    op = RunbookStepOperator(step="fixups", action=action, **kwargs)
    op.__dict__["plan"] = plan  # the cached plan: no plan file read
    return op


def test_a_step_records_its_timing_and_result_under_the_step_key(lab_plan, slack, ctx_factory):
    seen = []

    def action(ctx):
        seen.append((ctx.step, ctx.plan.name, ctx.step_task))
        return {"sequences": 3}

    op = _step(lab_plan, action, critical_path=False)
    context = ctx_factory("fixups")
    record = op.execute(context)

    assert seen == [("fixups", "lab", "fixups")]
    ti = context["ti"]
    assert ti.pushed_under(STEP_XCOM_KEY) == [record]
    assert record["step"] == "fixups" and record["task_id"] == "fixups"
    assert record["result"] == {"sequences": 3} and record["critical_path"] is False
    assert record["seconds"] >= 0
    started, ended = datetime.fromisoformat(record["started_at"]), datetime.fromisoformat(record["ended_at"])
    assert started.tzinfo is not None and started <= ended
    # Only the step record: no return_value copy (one Execution API call fewer between two steps).
    assert op.do_xcom_push is False
    # Announced on start and end; the end waits for the success callback to be sent (background).
    assert slack.kinds() == ["StepStarted", "StepFinished"]
    assert slack.posted[1].outcome.value == "succeeded" and slack.posted[1].critical_path is False
    assert slack.waits == 0


def test_an_action_returning_nothing_records_an_empty_result(lab_plan, slack, ctx_factory):
    record = _step(lab_plan, lambda ctx: None).execute(ctx_factory("fixups"))
    assert record["result"] == {}


def test_a_driver_error_fails_the_step_retryably_without_any_row_value(lab_plan, slack, ctx_factory, patient):
    class CheckViolation(Exception):
        pass

    def action(ctx):
        raise CheckViolation(DRIVER_ERROR.format(name=patient))

    context = ctx_factory("fixups")
    with pytest.raises(RunbookStepError) as err:
        _step(lab_plan, action).execute(context)

    text = str(err.value)
    assert text.startswith("step fixups failed: CheckViolation")
    assert "dob_check" not in text  # not a name the plan or catalog declared: dropped with the rest
    assert patient not in text and "1931" not in text and "DETAIL" not in text
    # `from None`: the original exception (and its DETAIL line) is not chained into the traceback.
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert not isinstance(err.value, AirflowFailException)  # a transient fault: Airflow may retry
    # No step record for a failed step, and the failure is announced, without the value either.
    assert context["ti"].pushed_under(STEP_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted", "StepFinished"]
    assert slack.posted[1].outcome.value == "failed"
    assert all(patient not in repr(e) for e in slack.posted)
    assert slack.waits == 1  # the process ends with the failure: what is queued is sent now


def test_a_check_that_does_not_hold_fails_without_retry(lab_plan, slack, ctx_factory, patient):
    def action(ctx):
        raise AirflowFailException(f"smoke test refused: patient {patient} not found")

    with pytest.raises(RunbookStepFailed) as err:
        _step(lab_plan, action).execute(ctx_factory("fixups"))

    assert isinstance(err.value, AirflowFailException)  # Airflow fails it without retrying
    assert "step fixups failed: AirflowFailException" in str(err.value)
    assert patient not in str(err.value)


def test_bascules_own_safe_messages_reach_the_log_as_written(lab_plan, slack, ctx_factory):
    class FreezeRefused(SafeMessage, RuntimeError):
        pass

    def action(ctx):
        raise FreezeRefused("Sessions of clinic_app still open: 3 after 30 s")

    with pytest.raises(RunbookStepError, match="FreezeRefused: Sessions of clinic_app still open: 3 after 30 s$"):
        _step(lab_plan, action).execute(ctx_factory("fixups"))


def test_a_skip_is_re_raised_as_a_skip_and_not_announced_as_a_failure(lab_plan, slack, ctx_factory):
    def action(ctx):
        raise AirflowSkipException("nothing failed: no rollback needed")

    context = ctx_factory("fixups")
    with pytest.raises(AirflowSkipException, match="no rollback needed"):
        _step(lab_plan, action).execute(context)

    assert context["ti"].pushed_under(STEP_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted"]
    assert slack.waits == 1  # the start message is flushed: the report counts it


def test_the_step_reads_earlier_results_from_their_step_records(lab_plan, slack, ctx_factory):
    from bascule.runbook.actions import CUTOVER

    context = ctx_factory("fixups", xcoms={("freeze_source", STEP_XCOM_KEY): None,
                                           ("tminus_checks", STEP_XCOM_KEY): {"result": {"lag": 0.2}}})

    def action(ctx):
        return {"earlier": ctx.result_of("tminus_checks"), "missing": ctx.result_of("restore_point")}

    record = _step(lab_plan, action, runbook=CUTOVER).execute(context)
    assert record["result"] == {"earlier": {"lag": 0.2}, "missing": None}


def test_the_success_callback_flushes_after_any_given_callback(lab_plan):
    from bascule.runbook.runtime import flush_after_success

    def mine(context):
        return None

    op = RunbookStepOperator(task_id="x", step="x", action=lambda ctx: {}, on_success_callback=mine)
    assert op.on_success_callback == [mine, flush_after_success]
    assert op.template_fields == ("step",)
    assert op.do_xcom_push is False
    explicit = RunbookStepOperator(task_id="y", step="y", action=lambda ctx: {}, do_xcom_push=True)
    assert explicit.do_xcom_push is True
