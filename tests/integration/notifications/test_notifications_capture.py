"""Notifications against the local Slack capture server: threads, failures, fallback, privacy."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from bascule.hooks import slack as slack_hook_module
from bascule.notifications.blocks import render
from bascule.notifications.events import (
    EventKind,
    EventValidationError,
    GateDecided,
    GateDecision,
    GateWaiting,
    LagAlert,
    ReplicationBrokenEvent,
    RunStarted,
    StepFinished,
    StepOutcome,
    StepStarted,
    TaskFailed,
    TaskRef,
)
from bascule.notifications.slack import (
    LEDGER_XCOM_KEY,
    BasculeSlackNotifier,
    DeliveryMode,
    MemoryThreadStore,
    NotificationSettings,
    SlackNotifications,
    merge_ledgers,
    thread_key,
)
from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.slack_capture import CaptureServer, FailureMode, read_jsonl, render_thread_text

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
        monkeypatch.setenv(
            "AIRFLOW_CONN_BASCULE_SLACK_WEBHOOK_TEST",
            json.dumps(
                {
                    "conn_type": "slackwebhook",
                    "host": server.services_url,
                    "password": "T000/B000/XXXXCAPTURE",
                }
            ),
        )
        yield server


def settings(**overrides) -> NotificationSettings:
    values = {"channel": "#cutover", "slack_conn_id": "bascule_slack_test", "breaker_failures": 99}
    values.update(overrides)
    return NotificationSettings(**values)


def posts(server: CaptureServer) -> list[dict]:
    return [r for r in server.records if r["api_method"] == "chat.postMessage" and r["failure"] == "none"]


def run_sequence(n: SlackNotifications) -> None:
    n.open_thread(RunStarted(plan_id="lab", downtime_budget_s=1800, **RUN))
    n.notify(GateWaiting(gate_id="go_live", asked=("alice", "bob"), task=TASK, **RUN))
    n.notify(GateDecided(gate_id="go_live", decision=GateDecision.GO, decided_by="alice", **RUN))
    n.notify(StepStarted(step="freeze", task=TASK, **RUN))
    n.notify(StepFinished(step="freeze", task=TASK, outcome=StepOutcome.SUCCEEDED, duration_s=3, **RUN))


def test_replies_thread_under_the_parent_and_a_retry_finds_the_thread(slack):
    store = MemoryThreadStore()
    first = SlackNotifications(settings=settings(), thread_store=store)
    run_sequence(first)

    records = posts(slack)
    parent, replies = records[0], records[1:]
    assert "thread_ts" not in parent["body"]
    assert parent["response_ts"] == "1700000000.000100"
    assert len(replies) == 4
    assert {r["body"]["thread_ts"] for r in replies} == {parent["response_ts"]}
    # Replies go to the channel id Slack answered with, as the Web API expects for threads.
    assert {r["body"]["channel"] for r in replies} == {parent["response_channel"]}
    assert [r["auth"] for r in records] == ["Bearer"] * 5  # token sent, never recorded

    # A retried task: new notifier, same run; it must not post a second parent.
    retried = SlackNotifications(settings=settings(), thread_store=store)
    retried.open_thread(RunStarted(plan_id="lab", **RUN))
    retried.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN))
    records = posts(slack)
    assert len(records) == 6
    assert records[-1]["body"]["thread_ts"] == parent["response_ts"]

    assert first.summary()["totals"] == {"attempted": 5, "delivered": 5, "failed": 0}
    assert merge_ledgers([first.summary(), retried.summary()])["by_kind"]["lag_alert"]["delivered"] == 1

    text = render_thread_text(slack.records)
    lines = text.splitlines()
    assert lines[0].startswith("#cutover [1700000000.000100]")
    assert sum(1 for ln in lines if ln.startswith("    ↳ ")) == 5
    assert render_thread_text(read_jsonl(slack.out)) == text


def test_a_reply_without_a_parent_opens_the_thread_itself(slack):
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore())
    n.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN))
    parent, reply = posts(slack)
    assert reply["body"]["thread_ts"] == parent["response_ts"]


def test_background_posts_keep_their_order_and_push_the_ledger_once_sent(slack):
    pushed: list[tuple[str, dict]] = []
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.append((key, value)))
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore(), ti=ti,
                           publish_each_delivery=False, background=True)
    parent = RunStarted(plan_id="lab", downtime_budget_s=1800, **RUN)
    events = [
        StepStarted(step="freeze_source", task=TASK, **RUN),
        StepFinished(step="freeze_source", task=TASK, outcome=StepOutcome.SUCCEEDED, duration_s=0.7, **RUN),
        GateWaiting(gate_id="go_live", asked=("alice",), task=TASK, **RUN),
        GateDecided(gate_id="go_live", decision=GateDecision.GO, decided_by="alice", **RUN),
    ]
    for event in events:
        n.post(event, parent=parent)

    assert n.wait_posted() is True
    records = posts(slack)
    assert len(records) == 5  # one parent, whoever posts first, then the replies in the order queued
    assert "thread_ts" not in records[0]["body"]
    assert [r["body"]["text"] for r in records[1:]] == [render(e, n.links).text for e in events]
    assert {r["body"]["thread_ts"] for r in records[1:]} == {records[0]["response_ts"]}
    assert pushed == [(LEDGER_XCOM_KEY, n.summary())]
    assert n.summary()["totals"] == {"attempted": 5, "delivered": 5, "failed": 0}


def test_background_wait_is_bounded_when_slack_hangs(slack):
    slack.hang_s = 3.0
    n = SlackNotifications(settings=settings(timeout_s=0.5, budget_s=1.0, max_attempts=1),
                           thread_store=MemoryThreadStore(), background=True)
    n.open_thread(RunStarted(plan_id="lab", **RUN))
    slack.set_mode(FailureMode.HANG)
    n.post(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN))  # must neither raise nor wait

    assert n.wait_posted(timeout=0.05) is False  # still in flight: the caller is told, not blocked
    assert n.wait_posted() is True  # the default bound is the message's delivery budget
    assert n.summary()["by_kind"]["lag_alert"] == {"attempted": 1, "delivered": 0, "failed": 1}
    slack.set_mode(FailureMode.NONE)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the waits the hook asks for instead of measuring the wall clock."""
    waits: list[float] = []
    real_sleep = slack_hook_module.time.sleep

    def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(slack_hook_module.time, "sleep", fake_sleep)
    return waits


@pytest.mark.parametrize(
    ("mode", "retry_after", "reason", "attempts"),
    [
        (FailureMode.DOWN, 1, "connection_error", 3),
        (FailureMode.HTTP_500, 1, "server_error", 3),
        (FailureMode.RATE_LIMITED, 1, "rate_limited", 3),
        # Slack asks for longer than the message's budget: give up at once rather than wait.
        (FailureMode.RATE_LIMITED, 30, "rate_limited", 1),
    ],
)
def test_failures_are_bounded_counted_and_never_raised(slack, sleeps, mode, retry_after, reason, attempts):
    s = settings()
    n = SlackNotifications(settings=s, thread_store=MemoryThreadStore())
    n.open_thread(RunStarted(plan_id="lab", **RUN))
    slack.retry_after_s = retry_after
    slack.set_mode(mode)

    events = [
        LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN),
        TaskFailed(task=TASK, error_type="RuntimeError", cause="boom", **RUN),
    ]
    results = [n.notify(e) for e in events]  # must not raise

    assert results == [False, False]
    ledger = n.summary()
    assert ledger["by_kind"]["lag_alert"] == {"attempted": 1, "delivered": 0, "failed": 1}
    assert ledger["by_kind"]["task_failed"] == {"attempted": 1, "delivered": 0, "failed": 1}
    assert ledger["failure_reasons"] == {reason: 2}
    # The waits the hook asked for stay within the per-message budget.
    assert sum(sleeps) <= 2 * s.budget_s
    if mode is FailureMode.RATE_LIMITED and retry_after <= s.budget_s:
        assert all(w == retry_after for w in sleeps)  # Retry-After honoured, not shortened
    if mode is not FailureMode.DOWN:
        failed = [r for r in slack.records if r["failure"] != "none"]
        assert len(failed) == 2 * attempts
    slack.set_mode(FailureMode.NONE)


def test_rate_limit_then_success_is_delivered_after_retry_after(slack, sleeps):
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore())
    n.open_thread(RunStarted(plan_id="lab", **RUN))
    slack.set_mode(FailureMode.RATE_LIMITED, times=1)
    assert n.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN)) is True
    assert sleeps == [1.0]
    assert n.summary()["totals"]["failed"] == 0


def test_circuit_breaker_stops_calling_a_dead_slack(slack, sleeps):
    n = SlackNotifications(settings=settings(breaker_failures=2), thread_store=MemoryThreadStore())
    n.open_thread(RunStarted(plan_id="lab", **RUN))
    slack.set_mode(FailureMode.HTTP_500)
    for _ in range(5):
        n.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN))
    failed_requests = [r for r in slack.records if r["failure"] != "none"]
    assert len(failed_requests) == 2 * 3  # two messages tried, three skipped
    ledger = n.summary()
    assert ledger["by_kind"]["lag_alert"]["failed"] == 5
    assert ledger["failure_reasons"] == {"server_error": 2, "circuit_open": 3}


def test_an_outage_of_500s_then_timeouts_costs_a_run_one_discovery_not_one_per_task(slack):
    """Slack answers 500, then hangs: once one task of the run opens the breaker, the next task's process
    (a notifier of its own, sharing the run's breaker store) never calls Slack (ADR 0039)."""
    from bascule.notifications.slack import MemoryBreakerStore

    slack.hang_s = 1.5
    breakers = MemoryBreakerStore()
    fast = settings(timeout_s=0.3, budget_s=0.5, max_attempts=2, breaker_failures=3)
    first = SlackNotifications(settings=fast, thread_store=MemoryThreadStore(), breaker_store=breakers)
    slack.set_mode(FailureMode.HTTP_500, times=2, then=FailureMode.HANG)
    for _ in range(3):
        assert first.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN)) is False
    seen = {r["failure"] for r in slack.records}
    assert {"http_500", "hang"} <= seen
    calls = len(slack.records)

    later = SlackNotifications(settings=fast, thread_store=MemoryThreadStore(), breaker_store=breakers)
    assert later.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN)) is False
    assert len(slack.records) == calls
    assert later.summary()["failure_reasons"] == {"circuit_open": 1, "no_thread": 1}
    slack.set_mode(FailureMode.NONE)


def test_webhook_fallback_posts_without_threads(slack):
    s = settings(slack_conn_id=None, webhook_conn_id="bascule_slack_webhook_test", mode=DeliveryMode.WEBHOOK)
    n = SlackNotifications(settings=s, thread_store=MemoryThreadStore())
    run_sequence(n)
    hooks = [r for r in slack.records if r["kind"] == "webhook"]
    assert len(hooks) == 5
    assert not [r for r in slack.records if r["kind"] == "web_api"]
    assert all("thread_ts" not in r["body"] for r in hooks)
    assert all(r["path"] == "/services/…" for r in hooks)  # the webhook token is not recorded
    assert n.summary()["totals"]["delivered"] == 5
    assert "(webhook)" in render_thread_text(slack.records)


def test_misconfigured_web_api_falls_back_to_the_webhook(slack):
    s = settings(slack_conn_id="no_such_connection", webhook_conn_id="bascule_slack_webhook_test")
    n = SlackNotifications(settings=s, thread_store=MemoryThreadStore())
    assert n.notify(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **RUN)) is True
    assert [r["kind"] for r in slack.records] == ["webhook", "webhook"]


def test_canaries_never_reach_slack(slack):
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore())
    n.open_thread(RunStarted(plan_id="lab", **RUN))
    payloads = [
        *CANARY_STRINGS,
        "Key (mrn)=(MRNCANARY0001) already exists",
        "Zqxcanaryfenwick",
        'duplicate key value violates unique constraint "patients_pkey"\n'
        "DETAIL:  Key (mrn)=(MRNCANARY0001) already exists.",
        'null value in column "nin"\nDETAIL: Failing row contains (MRNCANARY0001, Zqxcanaryfenwick, ZZ999901Q).',
        'invalid input syntax for type date: "Zqxcanaryfenwick"',
        "new row for Zqxcanaryfenwick Canaryquilla at 17 Canarywharf Xylo Lane, ZZ99 1QX",
    ]
    for text in payloads:
        # Every free-text field: causes on events and the exception seen by the failure callback.
        n.notify(TaskFailed(task=TASK, error_type="UniqueViolation", cause=text, **RUN))
        n.notify(ReplicationBrokenEvent(method="pglogical", cause=text, **RUN))
        ti = SimpleNamespace(map_index=-1, try_number=1, task_id="load_patients", **RUN)
        notifier = BasculeSlackNotifier(channel="#cutover", slack_conn_id="bascule_slack_test")
        notifier.notifications.thread_store = MemoryThreadStore()
        notifier.notify({"ti": ti, "exception": RuntimeError(text)})
        # Identifier fields refuse anything that is not identifier-shaped (free text with spaces,
        # parentheses, quotes); a bare identifier-shaped value is the plan author's responsibility.
        if not any(ch in text for ch in " ()'\"+"):
            continue
        with pytest.raises(EventValidationError):
            GateDecided(gate_id="go", decision=GateDecision.GO, decided_by=text, **RUN)
        with pytest.raises(EventValidationError):
            StepStarted(step=text, task=TASK, **RUN)

    assert len(posts(slack)) > 3 * len(payloads)
    for rec in slack.records:
        for canary in ("MRNCANARY0001", "Zqxcanaryfenwick", *CANARY_STRINGS):
            assert canary not in rec["raw_body"]
    assert n.summary()["by_kind"][EventKind.TASK_FAILED.value]["delivered"] == len(payloads)


def test_a_resumed_task_carries_the_earlier_ledger_once(slack):
    earlier = {"version": 1, "by_kind": {"gate_waiting": {"attempted": 1, "delivered": 1, "failed": 0}},
               "totals": {"attempted": 1, "delivered": 1, "failed": 0}, "failure_reasons": {}, "worst_delay_s": 0.2}
    xcom: dict[str, dict] = {LEDGER_XCOM_KEY: earlier}
    reads: list[str] = []

    def pull() -> dict:
        reads.append("pull")
        return xcom[LEDGER_XCOM_KEY]

    ti = SimpleNamespace(xcom_push=lambda key, value: xcom.__setitem__(key, value))
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore(), ti=ti)
    n.carry_ledger(pull)
    n.open_thread(RunStarted(plan_id="lab", **RUN))  # pushes: earlier + this one
    n.notify(GateDecided(gate_id="go_live", decision=GateDecision.GO, decided_by="alice", **RUN))  # pushes again

    assert reads == ["pull"]  # read before the first push only: our own pushes are never counted twice
    assert xcom[LEDGER_XCOM_KEY]["by_kind"] == {
        "gate_decided": {"attempted": 1, "delivered": 1, "failed": 0},
        "gate_waiting": {"attempted": 1, "delivered": 1, "failed": 0},
        "run_started": {"attempted": 1, "delivered": 1, "failed": 0},
    }


EXIT_WITHOUT_WAITING = """
import sys
from bascule.notifications.events import LagAlert, RunStarted
from bascule.notifications.slack import MemoryThreadStore, NotificationSettings, SlackNotifications

run = {"dag_id": sys.argv[1], "run_id": sys.argv[2]}
n = SlackNotifications(settings=NotificationSettings(channel="#cutover", slack_conn_id="bascule_slack_test"),
                       thread_store=MemoryThreadStore(), background=True)
n.post(LagAlert(method="pglogical", lag_s=30, threshold_s=10, **run), parent=RunStarted(plan_id="lab", **run))
# No wait_posted(): the process ends with both messages still queued, as a task whose success callback never ran.
"""


def test_messages_still_queued_when_the_process_ends_are_sent(slack):
    slack.latency_s = 0.3  # both are still queued or in flight when the script's last line has run
    subprocess.run([sys.executable, "-c", EXIT_WITHOUT_WAITING, RUN["dag_id"], RUN["run_id"]], check=True,
                   timeout=120)
    records = posts(slack)
    assert len(records) == 2, records
    assert records[1]["body"]["thread_ts"] == records[0]["response_ts"]


def test_a_finished_run_updates_its_parent_uploads_its_chart_and_forgets_its_thread(slack):
    from bascule.notifications.events import CutoverOutcome, FinalReport

    store = MemoryThreadStore()
    n = SlackNotifications(settings=settings(), thread_store=store)
    run_sequence(n)
    parent = store.get(thread_key(RUN["dag_id"], RUN["run_id"]))
    final = FinalReport(outcome=CutoverOutcome.COMPLETED, downtime_s=42.0, downtime_budget_s=1800,
                        tables_migrated=4, **RUN)
    chart = b"\x89PNG\r\n\x1a\n" + b"0" * 2000
    done = n.finish_run(final, chart=chart)
    assert done == {"parent_updated": True, "chart_uploaded": True, "thread_forgotten": True}
    (update,) = [r for r in slack.records if r["api_method"] == "chat.update"]
    assert update["body"]["ts"] == parent.ts and "completed" in update["body"]["text"].lower()
    (upload,) = slack.uploads()
    assert upload["size"] == len(chart) and upload["png"] and upload["thread_ts"] == parent.ts
    assert store.get(thread_key(RUN["dag_id"], RUN["run_id"])) is None  # the Variable is gone


def test_the_monitor_keeps_one_thread_per_flow_and_speaks_only_on_change(slack, monkeypatch):
    from airflow.sdk import Variable

    from bascule.notifications.events import ReplicationBrokenEvent, ReplicationRecovered

    variables: dict[str, str] = {}
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: variables.get(key, default)))
    monkeypatch.setattr(Variable, "set", staticmethod(lambda key, value, **_: variables.__setitem__(key, value)))
    monkeypatch.setattr(Variable, "delete", staticmethod(lambda key: variables.pop(key, None)))
    n = SlackNotifications(settings=settings(), thread_store=MemoryThreadStore())
    run = {"dag_id": "replication_monitor"}
    broken = [ReplicationBrokenEvent(method="postgres_logical", cause="slot inactive", run_id=f"scheduled__{i}",
                                     **run) for i in range(3)]
    assert n.flow_change("postgres_logical__forward", broken[0], state="broken")
    assert not n.flow_change("postgres_logical__forward", broken[1], state="broken")  # quiet: no change
    assert not n.flow_change("postgres_logical__forward", broken[2], state="broken")
    recovered = ReplicationRecovered(method="postgres_logical", direction="forward", lag_s=0.2,
                                     run_id="scheduled__4", **run)
    assert n.flow_change("postgres_logical__forward", recovered, state="ok")
    assert variables == {}  # closed: the next break opens a new thread
    first, second = posts(slack)
    assert "thread_ts" not in first["body"] and second["body"]["thread_ts"] == first["response_ts"]
    assert "recovered" in second["body"]["text"].lower()
