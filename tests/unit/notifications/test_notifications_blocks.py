from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from bascule.notifications.blocks import (
    KNOWN_BLOCK_TYPES,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER,
    MAX_SECTION_TEXT,
    AirflowLinks,
    render,
)
from bascule.notifications.events import (
    EVENT_TYPES,
    ClockLevel,
    ClockWarning,
    CutoverOutcome,
    EventKind,
    EventValidationError,
    FinalReport,
    GateDecided,
    GateDecision,
    GateWaiting,
    LagAlert,
    ReadinessSummary,
    ReplicationBrokenEvent,
    ReplicationRecovered,
    RunStarted,
    StepFinished,
    StepOutcome,
    StepStarted,
    TaskFailed,
    TaskRef,
    ValidationOutcome,
    ValidationResult,
)

pytestmark = pytest.mark.unit

RUN = {"dag_id": "bascule_cutover", "run_id": "manual__2026-05-01T22:00:00+00:00"}
TASK = TaskRef(task_id="switch_over", try_number=2, **RUN)
AT = datetime(2026, 5, 1, 22, 5, tzinfo=UTC)


def sample_events() -> list:
    return [
        RunStarted(plan_id="lab", source="postgres", target="postgres", downtime_budget_s=1800, **RUN),
        GateWaiting(gate_id="go_live", asked=("alice", "bob.smith"), task=TASK, timeout_s=900, **RUN),
        GateDecided(gate_id="go_live", decision=GateDecision.NO_GO, decided_by="alice", waited_s=42, **RUN),
        StepStarted(step="freeze_writes", task=TASK, **RUN),
        StepFinished(step="freeze_writes", task=TASK, outcome=StepOutcome.SUCCEEDED, duration_s=12.5, **RUN),
        ClockWarning(level=ClockLevel.CRITICAL, elapsed_s=1500, budget_s=1800, frozen_at=AT, **RUN),
        LagAlert(method="pglogical", lag_s=42.5, threshold_s=10, lag_bytes=123456, **RUN),
        ReplicationBrokenEvent(method="pglogical", cause="replication slot is inactive", **RUN),
        ReplicationRecovered(method="pglogical", direction="forward", lag_s=0.4, **RUN),
        ValidationResult(
            outcome=ValidationOutcome.FAILED,
            tables_checked=400,
            checks_run=1200,
            checks_failed=300,
            failed_tables=tuple(f"his.table_{i}" for i in range(300)),
            task=TASK,
            **RUN,
        ),
        TaskFailed(task=TASK, error_type="psycopg.errors.UniqueViolation", cause="duplicate key", **RUN),
        FinalReport(
            outcome=CutoverOutcome.COMPLETED,
            downtime_s=1234,
            downtime_budget_s=1800,
            tables_migrated=400,
            validation=ValidationOutcome.PASSED,
            **RUN,
        ),
        ReadinessSummary(plan_id="lab", days_left=93, on_time=4, late=1, overdue=0, rehearsals_done=1,
                         rehearsals_planned=3, risks=("assessment_signed_off late (3 days after 2026-12-18)",),
                         **RUN),
    ]


def test_every_kind_has_a_sample():
    assert {e.kind for e in sample_events()} == set(EventKind) == set(EVENT_TYPES)


def _texts(obj):
    """Every text object nested in a block, for limit checks."""
    if isinstance(obj, dict):
        if obj.get("type") in ("plain_text", "mrkdwn"):
            yield obj
        for v in obj.values():
            yield from _texts(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _texts(v)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.kind.value)
def test_renders_valid_block_kit(event):
    message = render(event, AirflowLinks("http://airflow.example:8080/"))
    assert message.kind is event.kind
    assert message.text.strip()
    blocks = message.blocks_list()
    assert isinstance(blocks, list) and 0 < len(blocks) <= MAX_BLOCKS
    json.dumps(blocks)  # must be JSON-able as posted
    for block in blocks:
        assert block["type"] in KNOWN_BLOCK_TYPES
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= MAX_HEADER
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= MAX_SECTION_TEXT
            assert len(block.get("fields", ())) <= MAX_FIELDS
            for f in block.get("fields", ()):
                assert 0 < len(f["text"]) <= MAX_FIELD_TEXT
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
        if block["type"] == "actions":
            for el in block["elements"]:
                assert el["type"] == "button"
                assert len(el["text"]["text"]) <= MAX_BUTTON_TEXT
                assert el["url"].startswith("http://airflow.example:8080/dags/bascule_cutover/runs/")
    for t in _texts(blocks):
        assert t["text"].strip()


def test_failure_links_to_the_failing_try_log():
    event = TaskFailed(task=TASK, error_type="RuntimeError", cause="boom", **RUN)
    urls = [el["url"] for b in render(event).blocks if b["type"] == "actions" for el in b["elements"]]
    assert urls == [
        "http://localhost:8080/dags/bascule_cutover/runs/manual__2026-05-01T22%3A00%3A00%2B00%3A00"
        "/tasks/switch_over?try_number=2"
    ]


def test_gate_decided_says_no_go_and_who():
    message = render(sample_events()[2])
    assert "NO-GO" in message.text and "alice" in message.text


def test_critical_events_are_broadcast():
    by_kind = {e.kind: render(e) for e in sample_events()}
    assert by_kind[EventKind.TASK_FAILED].broadcast
    assert by_kind[EventKind.REPLICATION_BROKEN].broadcast
    assert not by_kind[EventKind.STEP_STARTED].broadcast


def test_mrkdwn_control_characters_are_escaped_in_causes():
    event = ReplicationBrokenEvent(method="pglogical", cause="slot <x> & y", **RUN)
    text = json.dumps(render(event).blocks_list())
    assert "<x>" not in text


# --- events refuse wrong types ----------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: LagAlert(method="pglogical", lag_s="12", threshold_s=1, **RUN),
        lambda: LagAlert(method="pglogical", lag_s=float("nan"), threshold_s=1, **RUN),
        lambda: LagAlert(method="pglogical", lag_s=-1, threshold_s=1, **RUN),
        lambda: LagAlert(method="pglogical", lag_s=True, threshold_s=1, **RUN),
        lambda: GateDecided(gate_id="g", decision="go", decided_by="alice", **RUN),
        lambda: GateDecided(gate_id="g", decision=GateDecision.GO, decided_by="Zqx Fenwick", **RUN),
        lambda: GateWaiting(gate_id="g", asked=("alice", "o'brien"), task=TASK, **RUN),
        lambda: GateWaiting(gate_id="g", asked=("alice",), task={"task_id": "t"}, **RUN),
        lambda: ValidationResult(
            outcome=ValidationOutcome.FAILED,
            tables_checked=1,
            checks_run=1,
            checks_failed=1,
            failed_tables=("patients",),
            **RUN,
        ),
        lambda: ValidationResult(
            outcome=ValidationOutcome.FAILED, tables_checked=1.5, checks_run=1, checks_failed=1, **RUN
        ),
        lambda: ClockWarning(
            level=ClockLevel.EXCEEDED, elapsed_s=1, budget_s=1, frozen_at=datetime(2026, 1, 1), **RUN
        ),
        lambda: StepStarted(step="MRN 0001 = x", task=TASK, **RUN),
        lambda: RunStarted(plan_id="lab", dag_id="d", run_id="r r"),
        lambda: TaskFailed(task=TASK, error_type="Error: Key (mrn)=(1)", **RUN),
    ],
)
def test_events_refuse_wrong_values(build):
    with pytest.raises(EventValidationError) as info:
        build()
    # The error names the field, never echoes the value.
    assert "Fenwick" not in str(info.value) and "0001" not in str(info.value)


def test_events_are_frozen_and_causes_sanitised_at_construction():
    event = TaskFailed(
        task=TASK, error_type="UniqueViolation", cause="Key (mrn)=(MRNCANARY0001) exists", **RUN
    )
    assert "MRNCANARY0001" not in event.cause
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.cause = "Key (mrn)=(MRNCANARY0001)"  # type: ignore[misc]


def test_no_event_field_is_a_free_form_mapping():
    for cls in EVENT_TYPES.values():
        for f in dataclasses.fields(cls):
            assert "dict" not in str(f.type) and "Any" not in str(f.type), (cls.__name__, f.name)


def test_for_plan_is_the_one_way_to_build_a_notifier_and_its_hook_is_bounded():
    from bascule.notifications.slack import BoundedSlackHook, MemoryThreadStore, SlackNotifications

    assert SlackNotifications.for_plan(None) is None
    notifier = SlackNotifications.for_plan({"channel": "#cutover", "slack_conn_id": "bascule_slack"},
                                           thread_store=MemoryThreadStore(), background=True)
    assert isinstance(notifier, SlackNotifications)
    assert notifier.settings.channel == "#cutover" and notifier.settings.mode.value == "web_api"
    assert isinstance(notifier.hook, BoundedSlackHook) and notifier.hook is notifier.hook  # built once
