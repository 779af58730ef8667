"""bench/faults.py's supervisor starts again a component that dies while it waits for health (ADR 0053)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from bascule.paths import REPO_ROOT
from bascule_lab.airflow_stack import AirflowStackError

pytestmark = pytest.mark.unit


@pytest.fixture()
def faults(monkeypatch) -> Any:
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import faults as module

    monkeypatch.setattr(module, "SUPERVISOR_DELAY_S", 0.0)
    yield module
    sys.modules.pop("faults", None)


class Stack:
    """A scheduler that is alive at the first look and has exited by the first wait (the control cluster's
    restart), then stays up once started again."""

    def __init__(self, exits: int) -> None:
        self.exits = exits
        self.dead: list[str] = []
        self.started: list[str] = []

    def restart_dead(self) -> list[str]:
        started, self.dead = self.dead, []
        self.started += started
        return started

    def wait_healthy(self, *, timeout: float) -> None:
        if self.exits:
            self.exits -= 1
            self.dead = ["scheduler"]
            raise AirflowStackError("airflow scheduler exited with 1; see logs")


class PgBouncer:
    def is_running(self) -> bool:
        return True


def _campaign(faults: Any, stack: Stack) -> Any:
    campaign = faults.Campaign.__new__(faults.Campaign)
    campaign.stack, campaign.pgbouncer = stack, PgBouncer()
    campaign.echo = lambda line: None
    return campaign


def test_a_component_that_dies_while_the_supervisor_waits_is_started_again(faults) -> None:
    stack = Stack(exits=2)
    assert _campaign(faults, stack).supervise(timeout=30) == ["scheduler", "scheduler"]
    assert stack.started == ["scheduler", "scheduler"]


def test_the_supervisor_gives_up_at_its_timeout(faults) -> None:
    with pytest.raises(AirflowStackError, match="scheduler exited"):
        _campaign(faults, Stack(exits=10**6)).supervise(timeout=0.2)
