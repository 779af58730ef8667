"""The replication sensors: fail at once on a broken flow, defer with the right trigger, time out."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import pytest
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from bascule.privacy.sanitize import SafeText
from bascule.replication.base import ReplicationState
from bascule.replication.factory import replication_config
from bascule.sensors.replication import ReplicationCaughtUpSensor, ReplicationLagSensor
from bascule.triggers.replication import ReplicationCaughtUpTrigger, ReplicationLagTrigger

pytestmark = pytest.mark.unit

CONFIG = {"method": "postgres-logical", "publisher_conn_id": "bascule_legacy", "subscriber_conn_id": "bascule_new",
          "publication": "bascule_pub", "subscription": "bascule_sub", "direction": "forward"}
S, BROKEN = ReplicationState.STREAMING, ReplicationState.BROKEN


def _with(sensor, replication):
    sensor.__dict__["replication"] = replication  # the sensor's cached Replication: no database
    return sensor


def _lag_sensor(replication=None, **kwargs):
    kwargs.setdefault("lag_threshold_s", 5.0)
    return _with(ReplicationLagSensor(task_id="wait_for_lag", replication_config=CONFIG, **kwargs), replication)


def _caught_up_sensor(replication=None, **kwargs):
    kwargs.setdefault("poll_interval", 0.01)
    return _with(ReplicationCaughtUpSensor(task_id="drain", replication_config=CONFIG, **kwargs), replication)


def _round_trip(trigger):
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    rebuilt = cls(**json.loads(json.dumps(kwargs)))  # plain JSON, as the triggerer stores it
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)
    return kwargs


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize("sensor", [ReplicationLagSensor, ReplicationCaughtUpSensor])
@pytest.mark.parametrize("config", [{"publisher_conn_id": "x"}, "postgres-logical", None])
def test_a_config_without_a_method_is_refused_naming_the_task_and_the_field(sensor, config):
    extra = {"lag_threshold_s": 1.0} if sensor is ReplicationLagSensor else {}
    with pytest.raises(ValueError, match="^s: replication_config must be a dict with a 'method'"):
        sensor(task_id="s", replication_config=config, **extra)


def test_a_negative_inline_wait_is_refused():
    with pytest.raises(ValueError, match="drain: inline_wait_s must be >= 0 \\(got -1\\)"):
        ReplicationCaughtUpSensor(task_id="drain", replication_config=CONFIG, inline_wait_s=-1)


def test_what_is_templated():
    assert ReplicationLagSensor.template_fields == ("replication_config", "lag_threshold_s", "stable_window_s")
    assert ReplicationCaughtUpSensor.template_fields == ("replication_config", "position")


def test_from_plan_takes_the_thresholds_and_the_direction_from_the_plan(lab_plan):
    lag = ReplicationLagSensor.from_plan(lab_plan, task_id="lag")
    assert (lag.lag_threshold_s, lag.stable_window_s, lag.poll_interval) == (5.0, 10.0, 0.5)
    assert lag.replication_config == replication_config(lab_plan, "forward")
    back = ReplicationCaughtUpSensor.from_plan(lab_plan, direction="reverse", task_id="drain_back")
    assert back.replication_config["direction"] == "reverse" and back.poll_interval == 0.5
    assert ReplicationLagSensor.from_plan(lab_plan, task_id="l", lag_threshold_s=1).lag_threshold_s == 1


# --------------------------------------------------------------------------- the lag sensor


def test_the_lag_sensor_defers_to_its_trigger_with_its_thresholds():
    sensor = _lag_sensor(lag_threshold_s=2, stable_window_s=10, poll_interval=0.25, timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})

    trigger = deferred.value.trigger
    assert isinstance(trigger, ReplicationLagTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    kwargs = _round_trip(trigger)
    assert kwargs == {"replication_config": CONFIG, "lag_threshold_s": 2.0, "stable_window_s": 10.0,
                      "poll_interval_s": 0.25, "eta_points": 12}


def test_the_lag_sensor_succeeds_with_the_triggers_event(make_reading):
    event = {"status": "success", "reading": make_reading(S, 0.4).to_json(), "waited_s": 11.0, "cause": None}
    assert _lag_sensor().execute_complete({}, event) == event


def test_the_lag_sensor_fails_without_retry_on_a_broken_event_naming_the_cause(make_reading):
    event = {"status": "broken", "reading": make_reading(BROKEN, None).to_json(), "waited_s": 1.26,
             "cause": "replication slot bascule_sub does not exist on the publisher"}
    with pytest.raises(AirflowFailException, match="^wait_for_lag: replication is broken: replication slot "
                       "bascule_sub does not exist on the publisher \\(after 1.3 s\\)$"):
        _lag_sensor().execute_complete({}, event)


def test_an_event_without_a_cause_still_fails(make_reading):
    with pytest.raises(AirflowFailException, match="unknown cause"):
        _lag_sensor().execute_complete({}, {"status": "error", "reading": None, "waited_s": 0})


@pytest.mark.parametrize(("reading", "done"), [
    ((S, 4.9), True), ((S, 5.0), True), ((S, 5.1), False), ((S, None), False),
    ((ReplicationState.INITIAL_SYNC, 0.1), False), ((ReplicationState.STOPPED, 0.0), False),
])
def test_without_the_trigger_one_reading_under_the_threshold_is_enough(fake_replication, make_reading,
                                                                       reading, done):
    state, lag = reading
    sensor = _lag_sensor(fake_replication([make_reading(state, lag)]), deferrable=False)
    assert sensor.poke({}) is done


def test_without_the_trigger_a_broken_flow_fails_at_first_look(fake_replication, make_reading):
    repl = fake_replication([make_reading(BROKEN, None, cause=SafeText("subscription bascule_sub is disabled"))])
    sensor = _lag_sensor(repl, deferrable=False, poll_interval=0.01, timeout=5)
    with pytest.raises(AirflowFailException, match="replication is broken: subscription bascule_sub is disabled"):
        sensor.execute({})
    assert repl.reads == 1


def test_without_the_trigger_a_lag_that_stays_high_times_out(fake_replication, make_reading):
    sensor = _lag_sensor(fake_replication([make_reading(S, 60.0)]), deferrable=False, poll_interval=0.01,
                         timeout=0.05)
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        sensor.execute({})


def test_a_deferral_that_runs_out_of_time_fails_as_a_sensor_timeout():
    for sensor in (_lag_sensor(), _caught_up_sensor(position="0/5000")):
        with pytest.raises(AirflowSensorTimeout):
            sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {})


# --------------------------------------------------------------------------- the caught-up sensor


def test_a_target_already_caught_up_succeeds_without_deferring(fake_replication, make_reading, ctx_factory):
    repl = fake_replication([make_reading(applied="0/5000")], applied=[True])
    event = _caught_up_sensor(repl, position="0/5000").execute(ctx_factory("drain"))
    assert event["status"] == "success" and event["position"] == "0/5000"
    assert event["reading"]["applied_position"] == "0/5000"
    assert repl.applied_calls == ["0/5000"]


def test_without_a_position_the_source_position_is_read_and_kept(fake_replication, ctx_factory):
    repl = fake_replication(applied=[True], position="0/7A0")
    context = ctx_factory("drain")
    event = _caught_up_sensor(repl).execute(context)
    assert event["position"] == "0/7A0" and repl.applied_calls == ["0/7A0"]
    assert context["ti"].pushed_under("frozen_position") == ["0/7A0"]


def test_with_no_replication_there_is_nothing_to_wait_for(fake_replication, make_reading, ctx_factory):
    repl = fake_replication([make_reading(ReplicationState.NOT_CONFIGURED, None)], method="none", position=None)
    event = _caught_up_sensor(repl).execute(ctx_factory("drain"))
    assert event == {"status": "success", "position": None, "reading": event["reading"]}
    assert event["reading"]["state"] == "not_configured" and repl.applied_calls == []


def test_a_target_still_behind_after_the_inline_wait_defers_for_the_rest_of_the_timeout(fake_replication,
                                                                                       ctx_factory):
    repl = fake_replication(applied=[False])
    sensor = _caught_up_sensor(repl, position="0/5000", inline_wait_s=0.05, timeout=100)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(ctx_factory("drain"))

    assert 1 <= len(repl.applied_calls) <= 6  # looked every poll for the inline wait, then gave up
    trigger = deferred.value.trigger
    assert isinstance(trigger, ReplicationCaughtUpTrigger) and trigger.position == "0/5000"
    assert _round_trip(trigger) == {"replication_config": CONFIG, "position": "0/5000", "poll_interval_s": 0.01}
    # The inline wait counts against the timeout: it bounds the whole wait.
    assert timedelta(seconds=99) <= deferred.value.timeout < timedelta(seconds=100)


def test_a_broken_flow_fails_the_caught_up_sensor_at_once_naming_the_cause(fake_replication, make_reading,
                                                                           broken, patient, ctx_factory):
    repl = fake_replication([make_reading(BROKEN, None)],
                            applied=[broken(f"slot bascule_sub does not exist (dropped while applying '{patient}')")])
    sensor = _caught_up_sensor(repl, position="0/5000", inline_wait_s=60)
    with pytest.raises(AirflowFailException, match="drain: replication is broken: ") as err:
        sensor.execute(ctx_factory("drain"))
    assert patient not in str(err.value)
    assert len(repl.applied_calls) == 1  # the first look, not the whole inline wait


def test_a_flow_that_reads_broken_fails_even_if_applied_through_cannot_tell(fake_replication, make_reading,
                                                                            patient, ctx_factory, caplog):
    repl = fake_replication([make_reading(BROKEN, None, cause=SafeText("subscription bascule_sub is disabled"))],
                            applied=[RuntimeError(f'invalid input syntax for type date: "{patient} 1931"')])
    with pytest.raises(AirflowFailException, match="subscription bascule_sub is disabled"):
        _caught_up_sensor(repl, position="0/5000", inline_wait_s=60).execute(ctx_factory("drain"))
    assert "applied_through failed: " in caplog.text
    assert patient not in caplog.text


def test_without_the_trigger_the_caught_up_sensor_pokes_until_applied(fake_replication, broken, ctx_factory):
    repl = fake_replication(applied=[False, True])
    sensor = _caught_up_sensor(repl, position="0/5000", deferrable=False)
    assert sensor.execute(ctx_factory("drain")) is None  # BaseSensorOperator's own loop: no event
    assert repl.applied_calls == ["0/5000", "0/5000"]

    failing = _caught_up_sensor(fake_replication(applied=[broken(SafeText("publication bascule_pub does not exist"))]),
                                position="0/5000", deferrable=False)
    with pytest.raises(AirflowFailException, match="publication bascule_pub does not exist"):
        failing.execute(ctx_factory("drain"))


@pytest.mark.parametrize("which", ["lag", "caught_up"])
def test_without_the_trigger_a_broken_cause_is_sanitised_too(fake_replication, make_reading, broken, patient, which):
    cause = f"apply failed: Key (family_name)=({patient}) already exists"
    if which == "lag":
        sensor = _lag_sensor(fake_replication([make_reading(BROKEN, None, cause=cause)]), deferrable=False)
    else:
        sensor = _caught_up_sensor(fake_replication(applied=[broken(cause)]), position="0/5000", deferrable=False)
    with pytest.raises(AirflowFailException) as err:
        sensor.poke({})
    assert patient not in str(err.value)
