"""Fakes for the unit tests of operators, sensors and triggers: an Airflow context, a replication, Slack.

No database, no network, no Airflow metadata DB: a task instance that records
what it pushes and answers what it is asked, a replication that reads from a
script, and a notifier that keeps the events it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bascule.replication.base import LagReading, Replication, ReplicationBroken, ReplicationState

RUN_ID = "manual__2026-05-01T22:00:00+00:00"
# The workers' key that signs gate decisions (ADR 0037), as a secrets backend would give it.
DECISION_KEY = "unit-tests-decision-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def decision_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    import json

    from airflow.sdk import configuration

    monkeypatch.setenv("AIRFLOW_CONN_BASCULE_DECISION_KEY",
                       json.dumps({"conn_type": "generic", "password": DECISION_KEY}))
    # The suite's own conftest points the secrets backend at the lab's connections file, which
    # holds the lab's key once a lab exists and comes before environment variables: unit tests
    # read connections from the environment only, whatever ran before them.
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", "")
    monkeypatch.setattr(configuration, "_secrets_backend_cache", {})
    return DECISION_KEY.encode()
# What a driver error may quote: the fake patient whose name must never leave bascule.
PATIENT = "Thornbury"


class FakeTI:
    """A task instance: ``xcom_push`` and ``xcom_pull`` against an in-memory store, every call recorded."""

    def __init__(self, task_id: str = "task", dag_id: str = "cutover", run_id: str = RUN_ID, *,
                 task: Any = None, xcoms: dict[tuple[str, str], Any] | None = None) -> None:
        self.task_id = task_id
        self.dag_id = dag_id
        self.run_id = run_id
        self.task = task
        self.map_index = -1
        self.try_number = 1
        self.id = uuid.uuid4()
        self.store: dict[tuple[str, str], Any] = dict(xcoms or {})
        self.pushed: list[tuple[str, Any]] = []
        self.pulled: list[tuple[Any, str]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        self.pulled.append((task_ids, key))
        return self.store.get((task_ids if task_ids is not None else self.task_id, key))

    def pushed_under(self, key: str) -> list[Any]:
        return [value for k, value in self.pushed if k == key]


def make_context(task_id: str = "task", *, task: Any = None, dag_id: str = "cutover",
                 xcoms: dict[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    ti = FakeTI(task_id, dag_id, task=task, xcoms=xcoms)
    return {"ti": ti, "task_instance": ti, "task": task, "run_id": ti.run_id,
            "dag_run": SimpleNamespace(conf={}, run_id=ti.run_id)}


def reading(state: ReplicationState = ReplicationState.STREAMING, lag: float | None = 0.1, *,
            cause: str | None = None, applied: str | None = None, behind: int | None = 0) -> LagReading:
    return LagReading(state=state, observed_at=datetime.now(UTC), lag_seconds=lag, lag_bytes=behind,
                      source_position="0/5000", applied_position=applied, cause=cause)


class FakeReplication(Replication):
    """A replication that reads from a script: one reading (and one ``applied_through`` answer) per call.

    The last entry of each script repeats. An ``applied`` entry that is an exception is raised.
    """

    def __init__(self, readings: Iterable[LagReading] = (), applied: Iterable[bool | BaseException] = (False,),
                 *, method: str = "postgres-logical", position: str | None = "0/5000") -> None:
        self.method = method
        self._readings = list(readings) or [reading()]
        self._applied = list(applied)
        self.position = position
        self.reads = 0
        self.applied_calls: list[str] = []
        self.closed = 0

    def reading(self) -> LagReading:
        r = self._readings[min(self.reads, len(self._readings) - 1)]
        self.reads += 1
        return r

    def source_position(self) -> str | None:
        return self.position

    def applied_through(self, position: str) -> bool:
        answer = self._applied[min(len(self.applied_calls), len(self._applied) - 1)]
        self.applied_calls.append(position)
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)

    def close(self) -> None:
        self.closed += 1


class SlackRecorder:
    """Stands in for ``SlackNotifications``: keeps what is posted, never talks to Slack."""

    def __init__(self) -> None:
        self.posted: list[Any] = []
        self.parents: list[Any] = []
        self.waits = 0
        self.carried = 0
        self.flows: dict[str, str] = {}

    def post(self, event: Any, *, parent: Any = None) -> None:
        self.posted.append(event)
        self.parents.append(parent)

    def notify(self, event: Any) -> bool:
        self.posted.append(event)
        return True

    def wait_posted(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return True

    def flow_change(self, flow: str, event: Any, *, state: str) -> bool:
        """Like ``SlackNotifications.flow_change``: posts only when the flow's state changes."""
        if self.flows.get(flow, "ok") == state:
            return False
        self.flows[flow] = state
        self.posted.append(event)
        return True

    def carry_earlier_ledger(self) -> None:
        self.carried += 1

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.posted]


@pytest.fixture()
def slack(monkeypatch: pytest.MonkeyPatch) -> SlackRecorder:
    """Every ``SlackNotifications.for_plan`` returns this recorder (None when the plan has no notifications)."""
    from bascule.notifications.slack import SlackNotifications

    recorder = SlackRecorder()

    def for_plan(cls: Any, notifications: Any, **_: Any) -> SlackRecorder | None:
        return None if notifications is None else recorder

    monkeypatch.setattr(SlackNotifications, "for_plan", classmethod(for_plan))
    return recorder


@pytest.fixture(scope="session")
def lab_plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


@pytest.fixture(scope="session")
def oracle_plan() -> Any:
    from bascule.paths import PLANS_DIR
    from bascule.plan import load_plan

    return load_plan(PLANS_DIR / "production-oracle.example.yaml")


@pytest.fixture()
def ctx_factory() -> Callable[..., dict[str, Any]]:
    return make_context


@pytest.fixture()
def fake_replication() -> type[FakeReplication]:
    return FakeReplication


@pytest.fixture()
def make_reading() -> Callable[..., LagReading]:
    return reading


@pytest.fixture()
def patient() -> str:
    return PATIENT


@pytest.fixture()
def broken() -> Callable[[str], ReplicationBroken]:
    return ReplicationBroken
