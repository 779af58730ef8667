"""Typed notification events: the only thing a Slack message can be built from.

Privacy by construction: every field is an identifier that matches a strict
pattern (dag_id, task_id, gate id, ``schema.table``, a team member's user name),
a finite non-negative number, an Enum, a timezone-aware timestamp or a tuple of
those. There is no ``dict[str, Any]`` and no unchecked ``str``. The single kind
of free text, a *cause*, is passed through :func:`sanitize_error_text` when the
event is built, so an unsanitised cause cannot exist.

Validation runs in ``__post_init__`` from the annotations themselves
(``Annotated[str, Pattern(...)]``), so a new field without a validator is a
test failure rather than a silent hole.
"""

from __future__ import annotations

import enum
import math
import re
import types
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, ClassVar, Union, get_args, get_origin, get_type_hints

from bascule.privacy.sanitize import sanitize_error_text


class EventKind(enum.StrEnum):
    RUN_STARTED = "run_started"
    GATE_WAITING = "gate_waiting"
    GATE_DECIDED = "gate_decided"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    CLOCK_WARNING = "clock_warning"
    LAG_ALERT = "lag_alert"
    REPLICATION_BROKEN = "replication_broken"
    REPLICATION_RECOVERED = "replication_recovered"
    VALIDATION_RESULT = "validation_result"
    TASK_FAILED = "task_failed"
    FINAL_REPORT = "final_report"
    READINESS_SUMMARY = "readiness_summary"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class GateDecision(enum.StrEnum):
    GO = "go"
    NO_GO = "no_go"


class StepOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ClockLevel(enum.StrEnum):
    """How far the downtime clock (started at the freeze) has eaten into its budget."""

    APPROACHING = "approaching"
    CRITICAL = "critical"
    EXCEEDED = "exceeded"


class ValidationOutcome(enum.StrEnum):
    PASSED = "passed"
    PASSED_WITH_WARNINGS = "passed_with_warnings"
    FAILED = "failed"


class CutoverOutcome(enum.StrEnum):
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


# --- field validators -------------------------------------------------------


class EventValidationError(TypeError):
    """An event was built with a value its field cannot hold."""


@dataclass(frozen=True)
class Pattern:
    regex: str
    max_len: int = 250

    def check(self, name: str, value: str) -> str:
        if len(value) > self.max_len or not re.fullmatch(self.regex, value):
            # Never echo the value: it is exactly what might be a row value.
            raise EventValidationError(f"field {name!r} does not match its identifier pattern")
        return value


@dataclass(frozen=True)
class NonNegative:
    def check(self, name: str, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise EventValidationError(f"field {name!r} must be a finite number >= 0")
        return value


@dataclass(frozen=True)
class Sanitised:
    max_chars: int = 240

    def check(self, name: str, value: str) -> str:
        return sanitize_error_text(value, max_chars=self.max_chars)


_ID = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
DagId = Annotated[str, Pattern(_ID)]
TaskId = Annotated[str, Pattern(_ID)]
GateId = Annotated[str, Pattern(_ID, 100)]
StepName = Annotated[str, Pattern(_ID, 100)]
PlanId = Annotated[str, Pattern(_ID, 100)]
# Airflow run ids look like ``manual__2026-05-01T22:00:00+00:00``.
RunId = Annotated[str, Pattern(r"[A-Za-z0-9_][A-Za-z0-9_.:+\-]*")]
TableName = Annotated[str, Pattern(r"[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*", 130)]
UserName = Annotated[str, Pattern(r"[A-Za-z0-9_][A-Za-z0-9_.@\-]*", 64)]
MethodName = Annotated[str, Pattern(r"[a-z][a-z0-9_]*", 40)]
ErrorType = Annotated[str, Pattern(r"[A-Za-z_][A-Za-z0-9_.]*", 120)]
Seconds = Annotated[float, NonNegative()]
Count = Annotated[int, NonNegative()]
Cause = Annotated[str, Sanitised()]
# What a person typed with a NO-GO: free text, so it goes through the sanitiser like any error text.
Reason = Annotated[str, Sanitised(300)]
SlackUserId = Annotated[str, Pattern(r"[UW][A-Z0-9]{2,20}", 21)]

_NONE = type(None)


def _validate(name: str, value: object, hint: object) -> object:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        if base is str:
            if not isinstance(value, str):
                raise EventValidationError(f"field {name!r} must be a str")
        else:
            value = _validate(name, value, base)
        for m in meta:
            value = m.check(name, value)
        return value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None:
            if _NONE in args:
                return None
            raise EventValidationError(f"field {name!r} is required")
        (inner,) = [a for a in args if a is not _NONE]
        return _validate(name, value, inner)
    if origin is tuple:
        if not isinstance(value, tuple | list):
            raise EventValidationError(f"field {name!r} must be a tuple")
        (inner, _ellipsis) = get_args(hint)
        return tuple(_validate(f"{name}[]", v, inner) for v in value)
    if hint is str:
        # Every str field must carry a Pattern or Sanitised marker; a bare str is a bug.
        raise EventValidationError(f"field {name!r} is an unchecked str")
    if hint is bool:
        if not isinstance(value, bool):
            raise EventValidationError(f"field {name!r} must be a bool")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventValidationError(f"field {name!r} must be an int")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EventValidationError(f"field {name!r} must be a number")
        return float(value)
    if hint is datetime:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise EventValidationError(f"field {name!r} must be a timezone-aware datetime")
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if not isinstance(value, hint):
            raise EventValidationError(f"field {name!r} must be a {hint.__name__}")
        return value
    if isinstance(hint, type) and issubclass(hint, _Typed):
        if not isinstance(value, hint):
            raise EventValidationError(f"field {name!r} must be a {hint.__name__}")
        return value
    if isinstance(hint, str):
        # Plain ``str`` declared as a type name rather than a marker.
        raise EventValidationError(f"field {name!r} is an unchecked str")
    raise EventValidationError(f"field {name!r} has an unsupported type")


@cache
def _hints(cls: type) -> dict[str, object]:
    return get_type_hints(cls, include_extras=True)


class _Typed:
    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            checked = _validate(f.name, getattr(self, f.name), hints[f.name])
            # Frozen dataclass: normalised values (tuples, sanitised text) are set once, here.
            object.__setattr__(self, f.name, checked)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class TaskRef(_Typed):
    """Where a task instance lives, enough to build its Airflow UI / log link."""

    dag_id: DagId
    run_id: RunId
    task_id: TaskId
    map_index: int = -1
    try_number: int | None = None


@dataclass(frozen=True, kw_only=True)
class Event(_Typed):
    """Base of every event. ``dag_id`` + ``run_id`` select the Slack thread."""

    kind: ClassVar[EventKind]
    severity: ClassVar[Severity] = Severity.INFO

    dag_id: DagId
    run_id: RunId
    at: datetime = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.at is None:
            object.__setattr__(self, "at", _now())
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    """The thread's parent message: one per DAG run."""

    kind: ClassVar[EventKind] = EventKind.RUN_STARTED
    plan_id: PlanId
    source: MethodName | None = None
    target: MethodName | None = None
    downtime_budget_s: Seconds | None = None


@dataclass(frozen=True, kw_only=True)
class GateWaiting(Event):
    kind: ClassVar[EventKind] = EventKind.GATE_WAITING
    severity: ClassVar[Severity] = Severity.WARNING
    gate_id: GateId
    asked: tuple[UserName, ...]
    task: TaskRef
    timeout_s: Seconds | None = None
    # The asked users' Slack member ids (the plan's notifications.slack_users): <@U…> mentions page them.
    mentions: tuple[SlackUserId, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GateDecided(Event):
    kind: ClassVar[EventKind] = EventKind.GATE_DECIDED
    gate_id: GateId
    decision: GateDecision
    decided_by: UserName
    waited_s: Seconds | None = None
    reason: Reason | None = None


@dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    kind: ClassVar[EventKind] = EventKind.STEP_STARTED
    step: StepName
    task: TaskRef
    critical_path: bool = True


@dataclass(frozen=True, kw_only=True)
class StepFinished(Event):
    kind: ClassVar[EventKind] = EventKind.STEP_FINISHED
    step: StepName
    task: TaskRef
    outcome: StepOutcome
    duration_s: Seconds
    critical_path: bool = True


@dataclass(frozen=True, kw_only=True)
class ClockWarning(Event):
    """Emitted by bascule's own downtime clock, which starts at the freeze."""

    kind: ClassVar[EventKind] = EventKind.CLOCK_WARNING
    severity: ClassVar[Severity] = Severity.WARNING
    level: ClockLevel
    elapsed_s: Seconds
    budget_s: Seconds
    frozen_at: datetime


@dataclass(frozen=True, kw_only=True)
class LagAlert(Event):
    kind: ClassVar[EventKind] = EventKind.LAG_ALERT
    severity: ClassVar[Severity] = Severity.WARNING
    method: MethodName
    lag_s: Seconds
    threshold_s: Seconds
    lag_bytes: Count | None = None


@dataclass(frozen=True, kw_only=True)
class ReplicationBrokenEvent(Event):
    kind: ClassVar[EventKind] = EventKind.REPLICATION_BROKEN
    severity: ClassVar[Severity] = Severity.CRITICAL
    method: MethodName
    cause: Cause


@dataclass(frozen=True, kw_only=True)
class ReplicationRecovered(Event):
    """The monitor's flow is healthy again: the reply that closes the flow's thread."""

    kind: ClassVar[EventKind] = EventKind.REPLICATION_RECOVERED
    method: MethodName
    direction: MethodName
    lag_s: Seconds | None = None


@dataclass(frozen=True, kw_only=True)
class ValidationResult(Event):
    kind: ClassVar[EventKind] = EventKind.VALIDATION_RESULT
    outcome: ValidationOutcome
    tables_checked: Count
    checks_run: Count
    checks_failed: Count
    failed_tables: tuple[TableName, ...] = ()
    task: TaskRef | None = None


@dataclass(frozen=True, kw_only=True)
class TaskFailed(Event):
    kind: ClassVar[EventKind] = EventKind.TASK_FAILED
    severity: ClassVar[Severity] = Severity.CRITICAL
    task: TaskRef
    error_type: ErrorType
    cause: Cause = ""


@dataclass(frozen=True, kw_only=True)
class FinalReport(Event):
    kind: ClassVar[EventKind] = EventKind.FINAL_REPORT
    outcome: CutoverOutcome
    downtime_s: Seconds
    downtime_budget_s: Seconds
    tables_migrated: Count
    validation: ValidationOutcome | None = None
    notifications_failed: Count = 0


@dataclass(frozen=True, kw_only=True)
class ReadinessSummary(Event):
    """The weekly readiness, one message (ADR 0059): days left, milestones, rehearsals, the risks' lines."""

    kind: ClassVar[EventKind] = EventKind.READINESS_SUMMARY
    plan_id: PlanId
    days_left: int
    on_time: Count
    late: Count
    overdue: Count
    rehearsals_done: Count
    rehearsals_planned: Count
    risks: tuple[Cause, ...] = ()


EVENT_TYPES: dict[EventKind, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        GateWaiting,
        GateDecided,
        StepStarted,
        StepFinished,
        ClockWarning,
        LagAlert,
        ReplicationBrokenEvent,
        ReplicationRecovered,
        ValidationResult,
        TaskFailed,
        FinalReport,
        ReadinessSummary,
    )
}

