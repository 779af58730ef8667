"""A Slack outage costs a run's tasks one discovery, not one per task process (the run-wide circuit breaker)."""

from __future__ import annotations

from typing import Any

import pytest

from bascule.hooks.slack import DeliveryResult, FailureReason
from bascule.notifications.events import GateWaiting, RunStarted, TaskRef
from bascule.notifications.slack import (
    MemoryBreakerStore,
    MemoryThreadStore,
    NotificationSettings,
    SlackNotifications,
    breaker_key,
)

pytestmark = pytest.mark.unit

DAG, RUN = "cutover", "manual__2026-05-01T22:00:00+00:00"


class DeadSlack:
    """Every message times out after its whole budget (here: no real wait)."""

    def __init__(self) -> None:
        self.calls = 0

    def post_message(self, **_: Any) -> DeliveryResult:
        self.calls += 1
        return DeliveryResult(delivered=False, attempts=2, elapsed_s=5.0, reason=FailureReason.TIMEOUT)


class _Ti:
    task_id = "t"

    def xcom_push(self, **_: Any) -> None:
        pass


def _task_process(breakers: MemoryBreakerStore, slack: DeadSlack, **settings: Any) -> SlackNotifications:
    """One task's notifier: a process of its own, sharing only the run's stores with the others."""
    notifier = SlackNotifications(
        settings=NotificationSettings(channel="#cutover", airflow_base_url="http://airflow.example", **settings),
        thread_store=MemoryThreadStore(), breaker_store=breakers, ti=_Ti(), publish_each_delivery=False)
    notifier.__dict__["hook"] = slack
    return notifier


def _event(run_id: str = RUN) -> GateWaiting:
    return GateWaiting(dag_id=DAG, run_id=run_id, gate_id="go_live", asked=("alice",),
                       task=TaskRef(dag_id=DAG, run_id=run_id, task_id="gate_go_live"))


def test_once_a_task_finds_slack_down_the_later_tasks_of_the_run_do_not_try() -> None:
    breakers, slack = MemoryBreakerStore(), DeadSlack()
    first = _task_process(breakers, slack)
    for _ in range(3):
        first.notify(_event())
    assert slack.calls == 3  # each event first tries the run's parent; the third failure opens the breaker
    assert breakers.get(breaker_key(DAG, RUN)) is not None

    later = _task_process(breakers, slack)
    assert later.notify(_event()) is False
    assert later.open_thread(RunStarted(dag_id=DAG, run_id=RUN, plan_id="lab")) is None
    assert slack.calls == 3, "a later task of the run spent time on a Slack known to be down"
    assert later.summary()["failure_reasons"] == {"circuit_open": 2, "no_thread": 1}


def test_another_run_is_not_silenced() -> None:
    breakers, slack = MemoryBreakerStore(), DeadSlack()
    first = _task_process(breakers, slack)
    for _ in range(3):
        first.notify(_event())
    other = _task_process(breakers, slack)
    calls = slack.calls
    other.notify(_event("another_run"))
    assert slack.calls > calls


def test_after_the_cooldown_one_failure_is_enough_to_leave_slack_alone_again() -> None:
    breakers, slack = MemoryBreakerStore(), DeadSlack()
    key = breaker_key(DAG, RUN)
    breakers.put(key, 1.0)  # opened by an earlier task, long expired: half-open
    notifier = _task_process(breakers, slack)
    notifier.open_thread(RunStarted(dag_id=DAG, run_id=RUN, plan_id="lab"))
    assert slack.calls == 1
    assert (breakers.get(key) or 0) > 1.0, "one failure after the cooldown did not open the run's breaker again"
    notifier.notify(_event())
    assert slack.calls == 1


def test_a_broken_breaker_store_costs_nothing_but_a_warning() -> None:
    class Broken(MemoryBreakerStore):
        def get(self, key: str) -> float | None:
            raise ConnectionError("execution API down")

        def put(self, key: str, until: float) -> None:
            raise ConnectionError("execution API down")

    slack = DeadSlack()
    notifier = _task_process(Broken(), slack)
    for _ in range(4):
        assert notifier.notify(_event()) is False
    assert slack.calls == 3  # counted in the process alone, as before the run-wide breaker
    notifier.forget_thread(DAG, RUN)
