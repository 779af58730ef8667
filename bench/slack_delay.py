"""Worst delay a task suffers from Slack notifications when Slack misbehaves.

Runs the same eight events against the local capture server in each failure
mode (healthy, down, HTTP 500, 429 with Retry-After 1 s, 429 with Retry-After
30 s, hanging) with a fresh notifier each, and prints the per-event delay.
Last line: ``worst_delay_s=<x> failed_deliveries=<n> events=<m>``.

    .venv/bin/python bench/slack_delay.py
"""

from __future__ import annotations

import json
import os
import time
from typing import TextIO

from _last_line import figures_last

from bascule.notifications.events import (
    ClockLevel,
    ClockWarning,
    GateDecided,
    GateDecision,
    LagAlert,
    RunStarted,
    StepStarted,
    TaskFailed,
    TaskRef,
)
from bascule.notifications.slack import MemoryThreadStore, NotificationSettings, SlackNotifications
from bascule_lab.slack_capture import CaptureServer, FailureMode

RUN = {"dag_id": "bascule_bench", "run_id": "manual__bench"}
TASK = TaskRef(task_id="step", **RUN)


def events(i: int) -> list:
    run = {"dag_id": "bascule_bench", "run_id": f"manual__bench_{i}"}
    task = TaskRef(task_id="step", **run)
    return [
        RunStarted(plan_id="bench", **run),
        StepStarted(step="freeze", task=task, **run),
        LagAlert(method="pglogical", lag_s=12, threshold_s=5, **run),
        ClockWarning(level=ClockLevel.APPROACHING, elapsed_s=60, budget_s=90, frozen_at=TASK_AT, **run),
        GateDecided(gate_id="go", decision=GateDecision.GO, decided_by="alice", **run),
        TaskFailed(task=task, error_type="RuntimeError", cause="boom", **run),
        LagAlert(method="pglogical", lag_s=15, threshold_s=5, **run),
        StepStarted(step="switch", task=task, **run),
    ]


TASK_AT = RunStarted(plan_id="bench", **RUN).at


def main() -> None:
    with figures_last() as last:
        _run(last)


def _run(last: TextIO) -> None:
    scenarios = [
        ("healthy", FailureMode.NONE, 1),
        ("down", FailureMode.DOWN, 1),
        ("http_500", FailureMode.HTTP_500, 1),
        ("429_retry_after_1s", FailureMode.RATE_LIMITED, 1),
        ("429_retry_after_30s", FailureMode.RATE_LIMITED, 30),
        ("hang_10s", FailureMode.HANG, 1),
    ]
    worst = 0.0
    failed = 0
    total = 0
    with CaptureServer(hang_s=10.0) as server:
        os.environ["AIRFLOW_CONN_BASCULE_SLACK_BENCH"] = json.dumps(
            {"conn_type": "slack", "password": "xoxb-bench", "extra": {"base_url": server.api_url}}
        )
        settings = NotificationSettings(channel="#bench", slack_conn_id="bascule_slack_bench")
        print(f"{'scenario':<22} {'events':>6} {'failed':>6} {'worst_s':>8} {'total_s':>8}  reasons")
        for i, (name, mode, retry_after) in enumerate(scenarios):
            server.retry_after_s = retry_after
            server.set_mode(mode)
            n = SlackNotifications(settings=settings, thread_store=MemoryThreadStore())
            delays = []
            for event in events(i):
                start = time.monotonic()
                n.notify(event)
                delays.append(time.monotonic() - start)
            server.set_mode(FailureMode.NONE)
            ledger = n.summary()
            worst = max(worst, *delays)
            failed += ledger["totals"]["failed"]
            total += len(delays)
            print(
                f"{name:<22} {len(delays):>6} {ledger['totals']['failed']:>6} {max(delays):>8.2f} "
                f"{sum(delays):>8.2f}  {ledger['failure_reasons'] or '-'}"
            )
    print(f"worst_delay_s={worst:.2f} failed_deliveries={failed} events={total}", file=last)


if __name__ == "__main__":
    main()
