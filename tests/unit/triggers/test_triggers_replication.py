"""The replication triggers, run with asyncio against a scripted replication: no database, no triggerer."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest

from bascule.privacy.sanitize import SafeText
from bascule.replication.base import ReplicationState
from bascule.triggers import replication as triggers
from bascule.triggers.replication import ReplicationCaughtUpTrigger, ReplicationLagTrigger, caught_up_event

pytestmark = pytest.mark.unit

CONFIG = {"method": "postgres-logical", "publisher_conn_id": "bascule_legacy", "subscriber_conn_id": "bascule_new",
          "publication": "bascule_pub", "subscription": "bascule_sub", "direction": "forward"}
S, BROKEN = ReplicationState.STREAMING, ReplicationState.BROKEN
POLL = 0.005


@pytest.fixture()
def install(monkeypatch):
    """Make the trigger build ``repl`` from its config (the factory is what a triggerer would call)."""
    built = []

    def _install(repl):
        def factory(config, **overrides):
            built.append(config)
            return repl

        monkeypatch.setattr(triggers, "replication_from_config", factory)
        return built

    return _install


def _events(trigger, timeout=2.0):
    """Every event the trigger fires before it returns (a trigger that never returns times out)."""

    async def collect():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))


def _lag_trigger(**kwargs):
    kwargs.setdefault("lag_threshold_s", 5.0)
    kwargs.setdefault("stable_window_s", 0.0)
    return ReplicationLagTrigger(replication_config=CONFIG, poll_interval_s=POLL, **kwargs)


@pytest.mark.parametrize("trigger", [
    ReplicationLagTrigger(replication_config=CONFIG, lag_threshold_s=5, stable_window_s=10, poll_interval_s=1,
                          eta_points=6),
    ReplicationCaughtUpTrigger(replication_config=CONFIG, position="0/3A5F1C8", poll_interval_s=0.5),
], ids=["lag", "caught_up"])
def test_a_trigger_serialises_to_plain_json_and_back(trigger):
    classpath, kwargs = trigger.serialize()
    assert classpath == f"bascule.triggers.replication.{type(trigger).__name__}"
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["replication_config"] == CONFIG


# --------------------------------------------------------------------------- lag


def test_the_lag_trigger_fires_broken_at_the_first_broken_reading_with_a_sanitised_cause(
        install, fake_replication, make_reading, patient):
    cause = f"apply worker failed: Key (family_name)=({patient}) already exists"
    repl = fake_replication([make_reading(S, 30.0), make_reading(BROKEN, None, cause=cause)])
    built = install(repl)
    (event,) = _events(_lag_trigger())

    assert built == [CONFIG]
    assert event["status"] == "broken" and event["reading"]["state"] == "broken"
    assert event["cause"] and patient not in event["cause"]
    assert patient not in event["cause"]
    assert repl.reads == 2 and repl.closed == 1
    json.dumps(event)  # an event is plain JSON


def test_the_lag_trigger_fires_once_lag_stays_under_the_threshold_for_the_stable_window(
        install, fake_replication, make_reading):
    # Under (the window opens), over (it closes), then under for good.
    repl = fake_replication([make_reading(S, 1.0), make_reading(S, 9.0), make_reading(S, 2.0)])
    install(repl)
    (event,) = _events(_lag_trigger(stable_window_s=0.05))

    assert event["status"] == "success" and event["reading"]["lag_seconds"] == 2.0
    assert event["stable_s"] >= 0.05
    assert repl.reads > 3  # after the spike it kept looking for a whole window
    assert event["waited_s"] >= event["stable_s"]
    assert repl.closed == 1


def test_a_lag_at_the_threshold_counts_as_under_it(install, fake_replication, make_reading):
    install(fake_replication([make_reading(S, 5.0)]))
    (event,) = _events(_lag_trigger())
    assert event["status"] == "success" and event["stable_s"] == 0.0


def test_with_no_replication_the_lag_trigger_fires_at_once(install, fake_replication, make_reading):
    install(fake_replication([make_reading(ReplicationState.NOT_CONFIGURED, None)], method="none"))
    (event,) = _events(_lag_trigger(stable_window_s=0.0))
    assert event["status"] == "success" and event["reading"]["state"] == "not_configured"


@pytest.mark.parametrize("never_healthy", [
    (S, 60.0),  # lag over the threshold
    (S, None),  # streaming without a measured lag
    (ReplicationState.INITIAL_SYNC, 0.1),  # low lag, but the initial copy is not done
    (ReplicationState.STOPPED, 0.0),
])
def test_the_lag_trigger_keeps_waiting_until_the_sensors_timeout(install, fake_replication, make_reading,
                                                                 never_healthy):
    repl = fake_replication([make_reading(*never_healthy)])
    install(repl)
    with pytest.raises(TimeoutError):
        _events(_lag_trigger(), timeout=0.15)
    assert repl.reads >= 2
    assert repl.closed == 1  # cancelled by the timeout, it still closes the replication


def test_a_failing_close_does_not_hide_the_event(install, fake_replication, make_reading):
    repl = fake_replication([make_reading(S, 0.1)])

    def close():
        raise OSError("connection already closed")

    repl.close = close
    install(repl)
    (event,) = _events(_lag_trigger())
    assert event["status"] == "success"


# --------------------------------------------------------------------------- caught up


def test_the_caught_up_trigger_fires_once_the_position_is_applied(install, fake_replication, make_reading):
    repl = fake_replication([make_reading(S, 0.3, applied="0/3A5F1C8")], applied=[False, False, True])
    install(repl)
    (event,) = _events(ReplicationCaughtUpTrigger(replication_config=CONFIG, position="0/3A5F1C8",
                                                  poll_interval_s=POLL))

    assert event["status"] == "success" and event["position"] == "0/3A5F1C8"
    assert event["reading"]["applied_position"] == "0/3A5F1C8" and event["cause"] is None
    assert repl.applied_calls == ["0/3A5F1C8"] * 3
    assert event["waited_s"] >= 2 * POLL - 1e-3
    assert repl.closed == 1


def test_the_caught_up_trigger_fires_broken_naming_the_cause(install, fake_replication, make_reading, broken,
                                                             patient):
    repl = fake_replication([make_reading(S, 1.0), make_reading(BROKEN, None)],
                            applied=[False, broken(f"publication bascule_pub does not exist ('{patient}')")])
    install(repl)
    (event,) = _events(ReplicationCaughtUpTrigger(replication_config=CONFIG, position="0/1", poll_interval_s=POLL))

    assert event["status"] == "broken" and event["position"] == "0/1"
    assert event["cause"] and patient not in event["cause"]
    assert patient not in event["cause"]
    assert len(repl.applied_calls) == 2 and event["reading"]["state"] == "broken"


def test_the_caught_up_trigger_keeps_waiting_while_the_target_is_behind(install, fake_replication):
    repl = fake_replication(applied=[False])
    install(repl)
    with pytest.raises(TimeoutError):
        _events(ReplicationCaughtUpTrigger(replication_config=CONFIG, position="0/1", poll_interval_s=POLL),
                timeout=0.15)
    assert len(repl.applied_calls) >= 2 and repl.closed == 1


def test_one_look_judges_an_unexpected_error_by_the_reading(fake_replication, make_reading, patient, caplog):
    error = RuntimeError(f'invalid input syntax for type date: "{patient}"')
    healthy = fake_replication([make_reading(S, 0.2)], applied=[error])
    assert caught_up_event(healthy, "0/1", started=0.0) is None  # look again later
    failing = fake_replication([make_reading(BROKEN, None, cause=SafeText("subscription bascule_sub is disabled"))],
                               applied=[error])
    event = caught_up_event(failing, "0/1", started=0.0)
    assert event["status"] == "broken" and event["cause"] == "subscription bascule_sub is disabled"
    assert "applied_through failed" in caplog.text and patient not in caplog.text
