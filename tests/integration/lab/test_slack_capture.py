"""The lab's fake Slack (bascule_lab.slack_capture): its command line renders a capture file as the threads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bascule.notifications.events import (
    GateDecided,
    GateDecision,
    GateWaiting,
    RunStarted,
    StepFinished,
    StepOutcome,
    StepStarted,
    TaskRef,
)
from bascule.notifications.slack import MemoryThreadStore, NotificationSettings, SlackNotifications
from bascule_lab.slack_capture import CaptureServer, render_thread_text

pytestmark = pytest.mark.integration

RUN = {"dag_id": "bascule_cutover", "run_id": "manual__2026-05-01T22:00:00+00:00"}
TASK = TaskRef(task_id="switch_over", try_number=1, **RUN)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch, tmp_path):
    with CaptureServer(out=tmp_path / "slack.jsonl") as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_BASCULE_SLACK_TEST",
            json.dumps(
                {"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": server.api_url}}
            ),
        )
        yield server


def settings(**overrides) -> NotificationSettings:
    values = {"channel": "#cutover", "slack_conn_id": "bascule_slack_test", "breaker_failures": 99}
    values.update(overrides)
    return NotificationSettings(**values)


def run_sequence(n: SlackNotifications) -> None:
    n.open_thread(RunStarted(plan_id="lab", downtime_budget_s=1800, **RUN))
    n.notify(GateWaiting(gate_id="go_live", asked=("alice", "bob"), task=TASK, **RUN))
    n.notify(GateDecided(gate_id="go_live", decision=GateDecision.GO, decided_by="alice", **RUN))
    n.notify(StepStarted(step="freeze", task=TASK, **RUN))
    n.notify(StepFinished(step="freeze", task=TASK, outcome=StepOutcome.SUCCEEDED, duration_s=3, **RUN))


def test_cli_renders_a_capture_file(slack):
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore())
    run_sequence(n)
    out = subprocess.run(
        [sys.executable, "-m", "bascule_lab.slack_capture", "--render", str(slack.out)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == render_thread_text(slack.records)
    print(out)
