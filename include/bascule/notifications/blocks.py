"""Block Kit rendering, one renderer per event kind, plus the plain-text ``text`` fallback.

Renderers read only typed :mod:`bascule.notifications.events`; links to the
Airflow UI are built here from ids (never carried in events as free URLs), so
an event cannot smuggle a value through a query string. Every string that ends
up in a block is clipped to Slack's documented limits (header 150, section
text 3000, field 2000, button text 75, URL 3000, 10 fields, 10 context
elements, 50 blocks) so a long table list degrades instead of being rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bascule.durations import format_duration
from bascule.notifications.events import (
    ClockLevel,
    ClockWarning,
    Event,
    EventKind,
    FinalReport,
    GateDecided,
    GateDecision,
    GateWaiting,
    LagAlert,
    ReadinessSummary,
    ReplicationBrokenEvent,
    ReplicationRecovered,
    RunStarted,
    Severity,
    StepFinished,
    StepOutcome,
    StepStarted,
    TaskFailed,
    TaskRef,
    ValidationOutcome,
    ValidationResult,
)

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
# Slack truncates top-level text beyond 40k; notifications stay far below, keep it readable.
MAX_FALLBACK_TEXT = 3000
KNOWN_BLOCK_TYPES = frozenset({"header", "section", "context", "divider", "actions"})

_SEVERITY_ICON = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}

Block = dict[str, Any]


@dataclass(frozen=True)
class SlackMessage:
    """What goes to ``chat.postMessage`` besides channel and thread."""

    kind: EventKind
    text: str
    blocks: tuple[Block, ...]
    broadcast: bool = False

    def blocks_list(self) -> list[Block]:
        return [dict(b) for b in self.blocks]


@dataclass(frozen=True)
class AirflowLinks:
    """Builds Airflow 3 UI links; same shape as ``RuntimeTaskInstance.log_url``."""

    base_url: str = "http://localhost:8080"

    def run(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"

    def task(self, ref: TaskRef) -> str:
        url = f"{self.run(ref.dag_id, ref.run_id)}/tasks/{quote(ref.task_id)}"
        if ref.map_index >= 0:
            url += f"/mapped/{ref.map_index}"
        return url

    def required_action(self, ref: TaskRef) -> str:
        """The gate's Required Action page, where its assigned users answer it."""
        return f"{self.run(ref.dag_id, ref.run_id)}/tasks/{quote(ref.task_id)}/required_actions"

    def log(self, ref: TaskRef) -> str:
        url = self.task(ref)
        if ref.try_number:
            url += f"?try_number={ref.try_number}"
        return url


# --- block helpers -----------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, MAX_HEADER), "emoji": True}}


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(mrkdwn, MAX_SECTION_TEXT)}}


def fields_section(pairs: list[tuple[str, str]]) -> Block:
    items = [
        {"type": "mrkdwn", "text": _clip(f"*{label}*\n{value}", MAX_FIELD_TEXT)}
        for label, value in pairs[:MAX_FIELDS]
    ]
    return {"type": "section", "fields": items}


def context(*parts: str) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": _clip(p, MAX_SECTION_TEXT)} for p in parts[:MAX_CONTEXT_ELEMENTS]
        ],
    }


def button(text: str, url: str, action_id: str) -> Block:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": _clip(text, MAX_BUTTON_TEXT)},
                "url": url[:MAX_URL],
                "action_id": action_id,
            }
        ],
    }


def _code(identifier: str) -> str:
    return f"`{escape(identifier)}`"


def _dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(round(seconds))


def _run_context(event: Event) -> Block:
    return context(
        f"{_code(event.dag_id)} · run {_code(event.run_id)} · {event.at.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


def _users(names: tuple[str, ...]) -> str:
    return ", ".join(f"@{escape(n)}" for n in names) or "—"


# --- renderers ---------------------------------------------------------------

Rendered = tuple[str, list[Block]]


def _run_started(e: RunStarted, links: AirflowLinks) -> Rendered:
    title = f"Cutover {e.plan_id} started"
    pairs = [("Plan", _code(e.plan_id)), ("Downtime budget", _dur(e.downtime_budget_s))]
    if e.source or e.target:
        pairs.append(("Path", f"{e.source or '?'} → {e.target or '?'}"))
    blocks = [
        header(f"🛫 {title}"),
        fields_section(pairs),
        button("Open the run in Airflow", links.run(e.dag_id, e.run_id), "open_run"),
        _run_context(e),
    ]
    return f"{title} ({e.dag_id} / {e.run_id}). Updates follow in this thread.", blocks


def _gate_waiting(e: GateWaiting, links: AirflowLinks) -> Rendered:
    # <@U…> is what makes Slack page someone; the Airflow names follow for whoever reads the thread.
    mentions = " ".join(f"<@{m}>" for m in e.mentions)
    asked = f"{mentions} ({_users(e.asked)})" if mentions else _users(e.asked)
    text = (f"Gate {e.gate_id} is waiting for a GO / NO-GO from "
            f"{(mentions + ' ') if mentions else ''}{', '.join(e.asked) or 'the team'}")
    pairs = [("Gate", _code(e.gate_id)), ("Asked", asked)]
    if e.timeout_s is not None:
        pairs.append(("Times out after", _dur(e.timeout_s)))
    blocks = [
        section(f":vertical_traffic_light: *Decision needed* on gate {_code(e.gate_id)} — {asked}"),
        fields_section(pairs),
        button("Decide in Airflow", links.required_action(e.task), f"gate_{e.gate_id}"[:255]),
        _run_context(e),
    ]
    return text, blocks


def _gate_decided(e: GateDecided, links: AirflowLinks) -> Rendered:
    go = e.decision is GateDecision.GO
    label = "GO" if go else "NO-GO"
    icon = ":large_green_circle:" if go else ":red_circle:"
    pairs = [("Decision", f"*{label}*"), ("By", f"@{escape(e.decided_by)}")]
    if e.waited_s is not None:
        pairs.append(("Waited", _dur(e.waited_s)))
    if e.reason:
        pairs.append(("Reason", escape(e.reason)))
    blocks = [section(f"{icon} Gate {_code(e.gate_id)}: *{label}*"), fields_section(pairs), _run_context(e)]
    return f"Gate {e.gate_id}: {label} by {e.decided_by}" + (f" ({e.reason})" if e.reason else ""), blocks


def _step_started(e: StepStarted, links: AirflowLinks) -> Rendered:
    path = " (critical path)" if e.critical_path else ""
    blocks = [
        section(f":arrow_forward: Step {_code(e.step)} started{path} — <{links.task(e.task)}|task>"),
        _run_context(e),
    ]
    return f"Step {e.step} started{path}", blocks


_STEP_ICON = {
    StepOutcome.SUCCEEDED: ":white_check_mark:",
    StepOutcome.FAILED: ":x:",
    StepOutcome.SKIPPED: ":fast_forward:",
}


def _step_finished(e: StepFinished, links: AirflowLinks) -> Rendered:
    path = " (critical path)" if e.critical_path else ""
    blocks = [
        section(
            f"{_STEP_ICON[e.outcome]} Step {_code(e.step)} {e.outcome.value} in {_dur(e.duration_s)}{path}"
            f" — <{links.task(e.task)}|task>"
        ),
        _run_context(e),
    ]
    return f"Step {e.step} {e.outcome.value} in {_dur(e.duration_s)}{path}", blocks


_CLOCK_ICON = {
    ClockLevel.APPROACHING: ":hourglass_flowing_sand:",
    ClockLevel.CRITICAL: ":hourglass:",
    ClockLevel.EXCEEDED: ":alarm_clock:",
}


def _clock_warning(e: ClockWarning, links: AirflowLinks) -> Rendered:
    remaining = e.budget_s - e.elapsed_s
    left = f"{_dur(remaining)} left" if remaining >= 0 else f"over by {_dur(-remaining)}"
    text = f"Downtime clock {e.level.value}: {_dur(e.elapsed_s)} of {_dur(e.budget_s)} used, {left}"
    pairs = [
        ("Elapsed", _dur(e.elapsed_s)),
        ("Budget", _dur(e.budget_s)),
        ("Remaining", left),
        ("Frozen at", e.frozen_at.strftime("%H:%M:%S %Z")),
    ]
    blocks = [
        section(f"{_CLOCK_ICON[e.level]} *Downtime clock {e.level.value}*"),
        fields_section(pairs),
        _run_context(e),
    ]
    return text, blocks


def _lag_alert(e: LagAlert, links: AirflowLinks) -> Rendered:
    text = f"Replication lag ({e.method}) {e.lag_s:.1f}s is above {e.threshold_s:.1f}s"
    pairs = [
        ("Method", _code(e.method)),
        ("Lag", f"{e.lag_s:.1f} s"),
        ("Threshold", f"{e.threshold_s:.1f} s"),
    ]
    if e.lag_bytes is not None:
        pairs.append(("Lag bytes", f"{e.lag_bytes:,}"))
    blocks = [section(":snail: *Replication lag alert*"), fields_section(pairs), _run_context(e)]
    return text, blocks


def _replication_broken(e: ReplicationBrokenEvent, links: AirflowLinks) -> Rendered:
    cause = e.cause or "no cause reported"
    blocks = [
        section(f":rotating_light: *Replication broken* ({_code(e.method)})"),
        section(f"Cause: {escape(cause)}"),
        _run_context(e),
    ]
    return f"Replication broken ({e.method}): {cause}", blocks


def _replication_recovered(e: ReplicationRecovered, links: AirflowLinks) -> Rendered:
    lag = f", lag {e.lag_s:.1f} s" if e.lag_s is not None else ""
    text = f"Replication recovered ({e.method}, {e.direction}){lag}"
    return text, [section(f":white_check_mark: *Replication recovered* ({_code(e.method)}, {e.direction}){lag}"),
                  _run_context(e)]


_VALIDATION_ICON = {
    ValidationOutcome.PASSED: ":white_check_mark:",
    ValidationOutcome.PASSED_WITH_WARNINGS: ":large_yellow_circle:",
    ValidationOutcome.FAILED: ":x:",
}


def _validation_result(e: ValidationResult, links: AirflowLinks) -> Rendered:
    label = e.outcome.value.replace("_", " ")
    text = (
        f"Validation {label}: {e.checks_failed} of {e.checks_run} checks failed on {e.tables_checked} tables"
    )
    blocks = [
        section(f"{_VALIDATION_ICON[e.outcome]} *Validation {label}*"),
        fields_section(
            [
                ("Tables checked", str(e.tables_checked)),
                ("Checks run", str(e.checks_run)),
                ("Checks failed", str(e.checks_failed)),
            ]
        ),
    ]
    if e.failed_tables:
        shown = e.failed_tables[:40]
        more = f" and {len(e.failed_tables) - len(shown)} more" if len(e.failed_tables) > len(shown) else ""
        blocks.append(section("Failed: " + ", ".join(_code(t) for t in shown) + more))
    if e.task is not None:
        blocks.append(button("Validation task", links.task(e.task), "validation_task"))
    blocks.append(_run_context(e))
    return text, blocks


def _task_failed(e: TaskFailed, links: AirflowLinks) -> Rendered:
    cause = e.cause or "see the task log"
    try_part = f" (try {e.task.try_number})" if e.task.try_number else ""
    text = f"Task {e.task.task_id} failed{try_part}: {e.error_type}: {cause}"
    blocks = [
        section(f":x: *Task {_code(e.task.task_id)} failed*{try_part}"),
        section(f"{_code(e.error_type)} {escape(cause)}"),
        button("Open the log", links.log(e.task), "open_log"),
        _run_context(e),
    ]
    return text, blocks


_FINAL_ICON = {
    "completed": ":checkered_flag:",
    "rolled_back": ":leftwards_arrow_with_hook:",
    "aborted": ":octagonal_sign:",
}


def _final_report(e: FinalReport, links: AirflowLinks) -> Rendered:
    label = e.outcome.value.replace("_", " ")
    within = "within" if e.downtime_s <= e.downtime_budget_s else "over"
    text = (
        f"Cutover {label}: downtime {_dur(e.downtime_s)} ({within} budget {_dur(e.downtime_budget_s)}), "
        f"{e.tables_migrated} tables"
    )
    pairs = [
        ("Outcome", f"*{label}*"),
        ("Downtime", f"{_dur(e.downtime_s)} ({within} budget {_dur(e.downtime_budget_s)})"),
        ("Tables migrated", str(e.tables_migrated)),
        ("Validation", e.validation.value.replace("_", " ") if e.validation else "—"),
        ("Slack deliveries failed", str(e.notifications_failed)),
    ]
    blocks = [
        header(f"{_FINAL_ICON[e.outcome.value]} Cutover report: {label}"),
        fields_section(pairs),
        button("Open the run in Airflow", links.run(e.dag_id, e.run_id), "open_run"),
        _run_context(e),
    ]
    return text, blocks


def _readiness_summary(e: ReadinessSummary, links: AirflowLinks) -> Rendered:
    text = (f"Readiness of {e.plan_id}: {e.days_left} days to the night; milestones {e.on_time} on time, "
            f"{e.late} late, {e.overdue} overdue; rehearsals {e.rehearsals_done}/{e.rehearsals_planned}; "
            f"{len(e.risks)} risk(s)")
    pairs = [("Days to the night", str(e.days_left)),
             ("Milestones", f"{e.on_time} on time, {e.late} late, {e.overdue} overdue"),
             ("Rehearsals", f"{e.rehearsals_done} of {e.rehearsals_planned}"),
             ("Risks", "\n".join(f"• {r}" for r in e.risks[:8]) or "none")]
    blocks = [header(f"Weekly readiness: {e.plan_id}"), fields_section(pairs),
              button("Open the run in Airflow", links.run(e.dag_id, e.run_id), "open_run"), _run_context(e)]
    return text, blocks


_RENDERERS: dict[EventKind, Callable[[Any, AirflowLinks], Rendered]] = {
    EventKind.RUN_STARTED: _run_started,
    EventKind.GATE_WAITING: _gate_waiting,
    EventKind.GATE_DECIDED: _gate_decided,
    EventKind.STEP_STARTED: _step_started,
    EventKind.STEP_FINISHED: _step_finished,
    EventKind.CLOCK_WARNING: _clock_warning,
    EventKind.LAG_ALERT: _lag_alert,
    EventKind.REPLICATION_BROKEN: _replication_broken,
    EventKind.REPLICATION_RECOVERED: _replication_recovered,
    EventKind.VALIDATION_RESULT: _validation_result,
    EventKind.TASK_FAILED: _task_failed,
    EventKind.FINAL_REPORT: _final_report,
    EventKind.READINESS_SUMMARY: _readiness_summary,
}


def render(event: Event, links: AirflowLinks | None = None) -> SlackMessage:
    """Render one event; ``text`` is the notification/accessibility fallback Slack requires."""
    if not isinstance(event, Event):
        raise TypeError("render() takes a bascule notification event")
    text, blocks = _RENDERERS[event.kind](event, links or AirflowLinks())
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], context("(message shortened)")]
    icon = _SEVERITY_ICON[event.severity]
    return SlackMessage(
        kind=event.kind,
        text=_clip(f"{icon} {text}", MAX_FALLBACK_TEXT),
        blocks=tuple(blocks),
        # Critical events also show in the channel, not only inside the run's thread.
        broadcast=event.severity is Severity.CRITICAL or event.kind is EventKind.FINAL_REPORT,
    )
