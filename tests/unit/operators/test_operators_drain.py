"""DrainSensor: the step record it pushes, waiting in the task by default, and a drain that resumes."""

from __future__ import annotations

from datetime import datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bascule.operators.drain import DrainSensor
from bascule.replication.base import ReplicationState
from bascule.runbook.context import DRAIN_STARTED_XCOM_KEY, DRAIN_TIMING_XCOM_KEY
from bascule.triggers.replication import ReplicationCaughtUpTrigger

pytestmark = pytest.mark.unit

CONFIG = {"method": "postgres-logical", "publisher_conn_id": "bascule_legacy", "subscriber_conn_id": "bascule_new"}
FROZEN_AT = "0/5000"


def _drain(plan, replication, **kwargs):
    kwargs.setdefault("poll_interval", 0.01)
    kwargs.setdefault("timeout", 30.0)
    op = DrainSensor(task_id="drain", plan=plan, replication_config=CONFIG, position=FROZEN_AT, **kwargs)
    op.__dict__["replication"] = replication  # the sensor's cached Replication: no database
    return op


def test_a_drain_waits_in_the_task_for_as_long_as_it_may_wait(lab_plan):
    op = _drain(lab_plan, None, timeout=7200.0)
    assert op.inline_wait_s == 7200.0
    assert op.do_xcom_push is False  # its record is under its own key
    assert _drain(lab_plan, None, inline_wait_s=2.0).inline_wait_s == 2.0  # unless told otherwise


def test_a_drain_caught_up_at_once_pushes_its_step_record(lab_plan, slack, ctx_factory, fake_replication,
                                                          make_reading):
    repl = fake_replication([make_reading(applied="0/5000")], applied=[True])
    context = ctx_factory("drain")
    event = _drain(lab_plan, repl).execute(context)

    assert event["status"] == "success" and event["position"] == FROZEN_AT
    ti = context["ti"]
    (record,) = ti.pushed_under(DRAIN_TIMING_XCOM_KEY)
    assert record["step"] == "drain" and record["task_id"] == "drain" and record["critical_path"] is True
    assert record["seconds"] == round(event["waited_s"], 4)
    assert record["result"] == {"position": FROZEN_AT, "waited_s": event["waited_s"], "state": "streaming",
                                "applied_position": "0/5000"}
    assert datetime.fromisoformat(record["started_at"]) <= datetime.fromisoformat(record["ended_at"])
    # Caught up without deferring: no start kept for a resumed process.
    assert ti.pushed_under(DRAIN_STARTED_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted", "StepFinished"]
    assert slack.posted[1].outcome.value == "succeeded"


def test_a_drain_keeps_looking_in_the_task_instead_of_deferring(lab_plan, slack, ctx_factory, fake_replication):
    repl = fake_replication(applied=[False, False, False, True])
    context = ctx_factory("drain")
    event = _drain(lab_plan, repl).execute(context)  # no TaskDeferred: it waited in the task

    assert repl.applied_calls == [FROZEN_AT] * 4
    assert event["status"] == "success"
    (record,) = context["ti"].pushed_under(DRAIN_TIMING_XCOM_KEY)
    assert record["result"]["waited_s"] >= 0.03 - 1e-3  # three polls of 0.01 s


def test_a_drain_told_to_defer_keeps_its_start_for_the_resumed_process(lab_plan, slack, ctx_factory,
                                                                         fake_replication):
    repl = fake_replication(applied=[False])
    context = ctx_factory("drain")
    with pytest.raises(TaskDeferred) as deferred:
        _drain(lab_plan, repl, inline_wait_s=0).execute(context)

    trigger = deferred.value.trigger
    assert isinstance(trigger, ReplicationCaughtUpTrigger) and trigger.position == FROZEN_AT
    assert trigger.replication_config == CONFIG and trigger.poll_interval_s == 0.01
    assert deferred.value.method_name == "execute_complete"
    ti = context["ti"]
    (started,) = ti.pushed_under(DRAIN_STARTED_XCOM_KEY)
    assert datetime.fromisoformat(started).tzinfo is not None
    assert ti.pushed_under(DRAIN_TIMING_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted"] and slack.waits == 1  # sent before the process ends


def test_a_resumed_drain_records_the_step_from_the_start_the_first_process_kept(lab_plan, slack, ctx_factory,
                                                                                 fake_replication, make_reading):
    started = "2026-05-01T22:20:00+00:00"
    context = ctx_factory("drain", xcoms={("drain", DRAIN_STARTED_XCOM_KEY): started})
    event = {"status": "success", "position": FROZEN_AT, "waited_s": 12.5,
             "reading": make_reading(applied="0/5000").to_json()}
    op = _drain(lab_plan, fake_replication())  # a new process: no _started_at of its own
    assert op.execute_complete(context, event) == event

    (record,) = context["ti"].pushed_under(DRAIN_TIMING_XCOM_KEY)
    assert record["started_at"] == started and record["seconds"] == 12.5
    assert record["result"]["waited_s"] == 12.5 and record["result"]["state"] == "streaming"
    assert slack.carried == 1  # the start message, sent by the first process, still counts
    assert slack.kinds() == ["StepFinished"]


def test_a_broken_flow_fails_the_drain_at_once_naming_the_cause(lab_plan, slack, ctx_factory, fake_replication,
                                                                make_reading, broken, patient):
    repl = fake_replication([make_reading(ReplicationState.BROKEN, None)],
                            applied=[broken(f'subscription "bascule_sub" disabled after error on {patient}')])
    context = ctx_factory("drain")
    with pytest.raises(AirflowFailException, match="drain: replication is broken: ") as err:
        _drain(lab_plan, repl).execute(context)

    assert patient not in str(err.value)
    assert context["ti"].pushed_under(DRAIN_TIMING_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted"] and slack.waits == 1


# --------------------------------------------------------------------------- the freeze that drains in its task


def _freeze_and_drain(plan, replication, action, *, timeout=None, runbook=None):
    from bascule.operators.drain import FreezeAndDrainOperator

    op = FreezeAndDrainOperator(task_id="freeze_source", step="freeze_source", action=action, plan=plan,
                                direction="forward", runbook=runbook)
    op.__dict__["plan"] = plan  # the cached plan: no plan file read
    built = op._drain_sensor

    def sensor(position):
        s = built(position)
        s.__dict__["replication"] = replication  # the sensor's cached Replication: no database
        s.poll_interval = 0.01
        if timeout is not None:
            s.timeout = s.inline_wait_s = timeout
        return s

    op._drain_sensor = sensor
    return op


def _frozen(ctx):
    return {"position": FROZEN_AT, "frozen_at": "2026-05-01T22:20:00+00:00"}


def test_the_freeze_then_drains_in_its_own_task_with_a_record_for_each_step(lab_plan, slack, ctx_factory,
                                                                             fake_replication, make_reading):
    repl = fake_replication([make_reading(applied="0/5000")], applied=[False, True])
    context = ctx_factory("freeze_source")
    op = _freeze_and_drain(lab_plan, repl, _frozen)
    record = op.execute(context)

    ti = context["ti"]
    assert record["step"] == "freeze_source" and record["result"]["position"] == FROZEN_AT
    assert repl.applied_calls == [FROZEN_AT] * 2  # the drain waited for the position the freeze returned
    (drained,) = ti.pushed_under(DRAIN_TIMING_XCOM_KEY)
    assert drained["step"] == "drain" and drained["task_id"] == "freeze_source" and drained["critical_path"]
    assert drained["result"]["position"] == FROZEN_AT and drained["result"]["applied_position"] == "0/5000"
    assert datetime.fromisoformat(record["ended_at"]) <= datetime.fromisoformat(drained["started_at"])
    # One notifier for the task: both steps announced through it, in order, one ledger for the report.
    assert slack.kinds() == ["StepStarted", "StepFinished", "StepStarted", "StepFinished"]
    assert [e.step for e in slack.posted] == ["freeze_source", "freeze_source", "drain", "drain"]
    # The success callback flushes it and takes the drain's last look at the clock.
    assert op._bascule_step_ctx.step == "drain" and op._bascule_step_ctx.clock_check_after_success


def test_a_broken_flow_fails_the_freezes_task_naming_the_drain_and_no_value(lab_plan, slack, ctx_factory,
                                                                          fake_replication, make_reading, broken,
                                                                          patient):
    repl = fake_replication([make_reading(ReplicationState.BROKEN, None)],
                            applied=[broken(f'subscription "bascule_sub" disabled after error on {patient}')])
    context = ctx_factory("freeze_source")
    with pytest.raises(AirflowFailException, match="replication is broken: ") as err:
        _freeze_and_drain(lab_plan, repl, _frozen).execute(context)

    assert patient not in str(err.value)
    # The freeze is recorded (the clock runs from it, and the rollback reads it); the drain is not.
    assert context["ti"].pushed_under(DRAIN_TIMING_XCOM_KEY) == []
    assert slack.kinds() == ["StepStarted", "StepFinished", "StepStarted"]


def test_another_error_in_the_drain_is_retried_with_a_sanitised_message(lab_plan, slack, ctx_factory,
                                                                       fake_replication, patient):
    from bascule.operators.steps import RunbookStepError

    class Unreachable(fake_replication):
        def reading(self):  # the target went away between two looks
            raise RuntimeError(f"server closed the connection while reading {patient}")

    repl = Unreachable(applied=[False])
    with pytest.raises(RunbookStepError, match="step drain failed: ") as err:
        _freeze_and_drain(lab_plan, repl, _frozen).execute(ctx_factory("freeze_source"))
    assert patient not in str(err.value)
    assert not isinstance(err.value, AirflowFailException)  # retried: the retry freezes again (a no-op), drains


def test_a_drain_that_outlasts_its_timeout_fails_without_deferring(lab_plan, slack, ctx_factory, fake_replication):
    from bascule.operators.drain import DrainNotFinished

    repl = fake_replication(applied=[False])
    with pytest.raises(DrainNotFinished, match=f"did not apply the frozen position {FROZEN_AT} within"):
        _freeze_and_drain(lab_plan, repl, _frozen, timeout=0.05).execute(ctx_factory("freeze_source"))


def test_the_drain_runs_in_the_freezes_task_without_calling_an_operators_execute_from_another(
        lab_plan, slack, ctx_factory, fake_replication, make_reading, monkeypatch):
    from airflow.sdk.bases.operator import ExecutorSafeguard

    # As in a task: the Task Runner calls the freeze's execute; a nested execute would be refused.
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", False)
    repl = fake_replication([make_reading(applied="0/5000")], applied=[True])
    op = _freeze_and_drain(lab_plan, repl, _frozen)
    assert op._drain_sensor(FROZEN_AT).allow_nested_operators is False
    context = ctx_factory("freeze_source")
    op.execute(context, FreezeAndDrainOperator__sentinel=ExecutorSafeguard.sentinel_value)
    assert [r["step"] for r in context["ti"].pushed_under(DRAIN_TIMING_XCOM_KEY)] == ["drain"]
