"""The migration plan: one YAML file per migration, loaded into typed, self-validating objects.

Every DAG parses the plan at import time, so loading must stay cheap and side-effect
free: the only I/O is reading the plan file and stat'ing the release migration. A bad
plan is reported as a single ``PlanError`` line naming the offending field, because
the people reading it are on a cutover call, not in a debugger.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import types
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bascule.durations import format_duration, parse_duration
from bascule.engines.binds import bind_names
from bascule.privacy.sanitize import SafeMessage, know_objects

__all__ = [
    "REQUIRED_GATES",
    "Downtime",
    "Endpoint",
    "Engine",
    "Calendar",
    "Decisions",
    "Milestone",
    "MilestoneId",
    "Rehearsals",
    "Gate",
    "ManualStep",
    "GoldenGate",
    "Notifications",
    "Plan",
    "PlanError",
    "PlanMode",
    "PostgresLogical",
    "Rehearsal",
    "Release",
    "Replication",
    "ReplicationMethod",
    "Scope",
    "SmokeCheck",
    "SmokeKind",
    "Storage",
    "TableMapping",
    "Validation",
    "default_plan_path",
    "load_plan",
]

PLAN_ENV_VAR = "BASCULE_PLAN"
REQUIRED_GATES: tuple[str, ...] = ("go_for_freeze", "go_live")


# --------------------------------------------------------------------------- errors


class PlanError(Exception, SafeMessage):
    """An invalid or unreadable plan, always renderable as ``<file>: <field>: <message>``."""

    def __init__(self, path: str | os.PathLike[str], field: str, message: str) -> None:
        self.path = os.fspath(path)
        self.field = _one_line(field)
        self.message = _one_line(message)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default Exception pickling replays ``args`` (one string) into a
        # three-argument constructor; Airflow ships exceptions between processes.
        return (type(self), (self.path, self.field, self.message))


class _FieldError(ValueError):
    """Raised inside model validators to blame a specific field below the model.

    Pydantic keeps the original exception in the error's ``ctx``, which is how the
    cross-field rules get a precise dotted path instead of the model's own location.
    """

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- enums


class PlanMode(enum.StrEnum):
    LAB = "lab"
    DEMO = "demo"
    PRODUCTION = "production"


class Engine(enum.StrEnum):
    POSTGRES = "postgres"
    ORACLE = "oracle"


class EndpointKind(enum.StrEnum):
    """How the application is switched from source to target at the cutover."""

    PGBOUNCER = "pgbouncer"
    COMMAND = "command"
    NONE = "none"


class SmokeKind(enum.StrEnum):
    """A smoke check reads (rows counted, never kept) or writes (always rolled back)."""

    READ = "read"
    WRITE = "write"


class ReplicationMethod(enum.StrEnum):
    POSTGRES_LOGICAL = "postgres-logical"
    GOLDENGATE = "goldengate"
    NONE = "none"


# Which engines each replication method can drive, on both sides.
_METHOD_ENGINE: dict[ReplicationMethod, Engine | None] = {
    ReplicationMethod.POSTGRES_LOGICAL: Engine.POSTGRES,
    ReplicationMethod.GOLDENGATE: Engine.ORACLE,
    ReplicationMethod.NONE: None,
}


# --------------------------------------------------------------------------- scalar types

SLUG_RE = r"^[a-z][a-z0-9_-]{0,62}$"
GATE_ID_RE = r"^[a-z][a-z0-9_]{0,62}$"
CONN_ID_RE = r"^[A-Za-z0-9_.-]+$"
# Oracle allows $ and # in unquoted identifiers; PostgreSQL allows $ after the first char.
IDENT_RE = r"^[A-Za-z_][A-Za-z0-9_$#]{0,127}$"
TABLE_RE = r"^[A-Za-z_][A-Za-z0-9_$#]*\.[A-Za-z_][A-Za-z0-9_$#]*$"
COLUMN_RE = r"^[A-Za-z_][A-Za-z0-9_$#]*\.[A-Za-z_][A-Za-z0-9_$#]*\.[A-Za-z_][A-Za-z0-9_$#]*$"
PG_NAME_RE = r"^[a-z_][a-z0-9_]{0,62}$"
# GoldenGate caps Extract and integrated/classic Replicat group names at 8 characters.
GG_GROUP_RE = r"^[A-Za-z][A-Za-z0-9_]{0,7}$"
USERNAME_RE = r"^[A-Za-z0-9_.@+-]{1,256}$"
TASK_ID_RE = r"^[a-z][a-z0-9_]{0,249}$"
SLACK_CHANNEL_RE = r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{8,})$"

_PATTERN_HINTS: dict[str, str] = {
    SLUG_RE: "must be a lowercase slug: a letter, then letters, digits, '_' or '-' (at most 63)",
    GATE_ID_RE: "must be a lowercase id: a letter, then letters, digits or '_'",
    CONN_ID_RE: "must be an Airflow connection id (letters, digits, '_', '.', '-')",
    IDENT_RE: "must be a plain SQL identifier",
    TABLE_RE: "must be 'schema.table'",
    COLUMN_RE: "must be 'schema.table.column'",
    PG_NAME_RE: "must be a lowercase PostgreSQL name (letters, digits, '_', at most 63)",
    GG_GROUP_RE: "must be a GoldenGate group name: a letter, then up to 7 letters, digits or '_'",
    USERNAME_RE: "must be an Airflow username",
    TASK_ID_RE: "must be a task id of the runbook: a lowercase letter, then letters, digits or '_'",
    SLACK_CHANNEL_RE: "must be '#channel-name' (lowercase, no spaces) or a channel id like C0123ABCD",
}

Slug = Annotated[str, StringConstraints(pattern=SLUG_RE)]
GateId = Annotated[str, StringConstraints(pattern=GATE_ID_RE)]
ConnId = Annotated[str, StringConstraints(pattern=CONN_ID_RE)]
Identifier = Annotated[str, StringConstraints(pattern=IDENT_RE)]
QualifiedTable = Annotated[str, StringConstraints(pattern=TABLE_RE)]
QualifiedColumn = Annotated[str, StringConstraints(pattern=COLUMN_RE)]
PgName = Annotated[str, StringConstraints(pattern=PG_NAME_RE)]
GgGroup = Annotated[str, StringConstraints(pattern=GG_GROUP_RE)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_RE)]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_RE)]
DagId = Literal["cutover", "rollback"]
SlackChannel = Annotated[str, StringConstraints(pattern=SLACK_CHANNEL_RE)]
# A Slack member id (U…, or W… on Enterprise Grid): what a <@…> mention needs to page someone.
SlackUserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,20}$")]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]

# Strict numbers: YAML turns "yes" into True and pydantic's lax mode would turn that
# into 1.0; a typo must not silently become a one-second threshold.
PositiveSeconds = Annotated[float, Field(strict=True, gt=0)]
NonNegativeSeconds = Annotated[float, Field(strict=True, ge=0)]
Fraction = Annotated[float, Field(strict=True, gt=0, lt=1)]


def _duration(value: object) -> float:
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


def _sql_default(value: object) -> object:
    # ``added: {visits: 0}`` in YAML is an int; the SQL text "0" is what was meant.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool):
        raise ValueError(f"must be SQL expression text; quote it, e.g. 'true' (got {value!r})")
    return value


SqlDefault = Annotated[str, BeforeValidator(_sql_default), StringConstraints(min_length=1)]


# --------------------------------------------------------------------------- sections


class _Section(BaseModel):
    # Frozen: one Plan object is shared by every task parsed from a DAG file.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Endpoint(_Section):
    """One side of the migration, as Airflow connections plus the application's role.

    ``allowed_writers`` are the roles that may keep writing to the scope through a freeze (ADR 0038):
    the replication role, bascule's own admin role, a superuser the site accepts. Every other role
    that can write loses that right at the freeze (given back at unfreeze), or fails the freeze when
    it cannot lose it (a superuser, an owner).
    """

    conn_id: ConnId
    engine: Engine
    app_conn_id: ConnId | None = None
    app_role: Identifier
    allowed_writers: tuple[Identifier, ...] = ()
    # The user conn_id logs in as: ``bascule plan grants`` prints its privileges. It writes through
    # the freeze (its record), so it must be one of allowed_writers.
    migration_user: Identifier | None = None

    @model_validator(mode="after")
    def _writers(self) -> Endpoint:
        if self.migration_user is not None and self.migration_user.lower() not in {
                w.lower() for w in self.allowed_writers}:
            raise _FieldError(("migration_user",), f"{self.migration_user!r} writes through the freeze: list it in "
                              "allowed_writers")
        seen: set[str] = set()
        for i, role in enumerate(self.allowed_writers):
            if role.lower() == self.app_role.lower():
                raise _FieldError(("allowed_writers", i), f"{role!r} is the application role: the freeze exists "
                                  "to stop it writing")
            if role.lower() in seen:
                raise _FieldError(("allowed_writers", i), f"role {role!r} is listed twice")
            seen.add(role.lower())
        return self


class Scope(_Section):
    schemas: Annotated[tuple[Identifier, ...], Field(min_length=1)]
    include_tables: tuple[QualifiedTable, ...] = ()
    exclude_tables: tuple[QualifiedTable, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Scope:
        seen: set[str] = set()
        for i, schema in enumerate(self.schemas):
            if schema.lower() in seen:
                raise _FieldError(("schemas", i), f"schema {schema!r} is listed twice")
            seen.add(schema.lower())
        for name in ("include_tables", "exclude_tables"):
            for i, table in enumerate(getattr(self, name)):
                if table.split(".", 1)[0].lower() not in seen:
                    raise _FieldError(
                        (name, i), f"table {table!r} is not in a scope schema ({', '.join(self.schemas)})"
                    )
        included = {t.lower() for t in self.include_tables}
        for i, table in enumerate(self.exclude_tables):
            if table.lower() in included:
                raise _FieldError(("exclude_tables", i), f"table {table!r} is both included and excluded")
        return self

    def contains(self, schema: str, table: str) -> bool:
        # Case-insensitive: Oracle reports unquoted names in upper case while plans
        # are usually written in lower case.
        if schema.lower() not in {s.lower() for s in self.schemas}:
            return False
        qualified = f"{schema}.{table}".lower()
        if self.include_tables and qualified not in {t.lower() for t in self.include_tables}:
            return False
        return qualified not in {t.lower() for t in self.exclude_tables}


class TableMapping(_Section):
    """How one table's columns change between the old and the new release."""

    renamed: dict[Identifier, Identifier] = Field(default_factory=dict)
    added: dict[Identifier, SqlDefault | None] = Field(default_factory=dict)
    dropped: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _no_conflicts(self) -> TableMapping:
        dropped: set[str] = set()
        for i, column in enumerate(self.dropped):
            if column in dropped:
                raise _FieldError(("dropped", i), f"column {column!r} is dropped twice")
            if column in self.renamed:
                raise _FieldError(("dropped", i), f"column {column!r} is both renamed and dropped")
            dropped.add(column)
        new_names = set(self.renamed.values())
        if len(new_names) != len(self.renamed):
            raise _FieldError(("renamed",), "two columns are renamed to the same new name")
        for column in self.added:
            if column in new_names:
                raise _FieldError(("added", column), f"column {column!r} is both added and a rename target")
            if column in self.renamed:
                raise _FieldError(("added", column), f"column {column!r} is both added and renamed")
        return self


class Release(_Section):
    """The new application release's schema change, applied to the target."""

    migration: Text
    column_mapping: dict[QualifiedTable, TableMapping] = Field(default_factory=dict)

    @field_validator("migration")
    @classmethod
    def _migration_exists(cls, value: str, info: ValidationInfo) -> str:
        # Only a stat: the file belongs to the release and may be large; the DAG
        # reads it when the task runs. Without a plan directory (a Plan built in
        # code) there is nothing to resolve a relative path against.
        plan_dir = (info.context or {}).get("plan_dir")
        if plan_dir is None:
            return value
        resolved = Path(os.path.normpath(Path(plan_dir) / value))
        if not resolved.exists():
            raise ValueError(f"no such file: {resolved}")
        if not resolved.is_file():
            raise ValueError(f"not a file: {resolved}")
        return value


class PostgresLogical(_Section):
    publication: PgName = "bascule_pub"
    subscription: PgName = "bascule_sub"
    replication_conn_id: ConnId


class GoldenGate(_Section):
    conn_id: ConnId
    extract: GgGroup
    replicat: GgGroup
    heartbeat_connection: ConnId
    # The schema owning GG_LAG / GG_HEARTBEAT_HISTORY on the target (ADD HEARTBEATTABLE's); None: the
    # migration user's own schema (synonyms).
    heartbeat_owner: Identifier | None = None
    # The rollback window's reverse path (target -> source), created stopped by the GoldenGate
    # administrator during the preparation; bascule starts them after GO LIVE (docs/replication.md).
    reverse_extract: GgGroup | None = None
    reverse_replicat: GgGroup | None = None

    @model_validator(mode="after")
    def _reverse_pair(self) -> GoldenGate:
        if (self.reverse_extract is None) != (self.reverse_replicat is None):
            raise _FieldError(("reverse_extract" if self.reverse_extract is None else "reverse_replicat",),
                              "name both the reverse extract and the reverse replicat, or neither")
        return self


class Replication(_Section):
    method: ReplicationMethod
    lag_threshold_s: PositiveSeconds = 5.0
    stable_window_s: NonNegativeSeconds = 10.0
    heartbeat_interval_s: PositiveSeconds = 2.0
    poll_interval_s: PositiveSeconds = 0.5
    postgres_logical: PostgresLogical | None = None
    goldengate: GoldenGate | None = None

    @model_validator(mode="after")
    def _heartbeat_resolves_threshold(self) -> Replication:
        # Lag is measured from heartbeats; with a heartbeat slower than the threshold
        # the measured lag can never settle below it and the cutover would never start.
        if self.heartbeat_interval_s >= self.lag_threshold_s:
            raise _FieldError(
                ("heartbeat_interval_s",),
                f"must be < lag_threshold_s ({self.lag_threshold_s:g}) (got {self.heartbeat_interval_s:g})",
            )
        return self


class Validation(_Section):
    chunk_rows: Annotated[int, Field(strict=True, gt=0)] = 100_000
    parallelism: Annotated[int, Field(strict=True, ge=1)] = 2
    key_hash_conn_id: ConnId = "bascule_key_hmac"
    identifying_keys: tuple[QualifiedColumn, ...] = ()
    # Keys go into reports as keyed hashes unless every column of the key is listed here (ADR 0041).
    surrogate_keys: tuple[QualifiedColumn, ...] = ()
    wait_and_confirm_s: NonNegativeSeconds = 5.0
    suites: tuple[Slug, ...] = ()
    # Suites run whole inside the window, cost accepted: those with an expectation that has no delta
    # method (ADR 0061); every other suite runs at T-minus in full and on the changed rows in the window.
    suites_in_full: tuple[Slug, ...] = ()

    @model_validator(mode="after")
    def _in_full_are_suites(self) -> Validation:
        for i, name in enumerate(self.suites_in_full):
            if name not in self.suites:
                raise _FieldError(("suites_in_full", i), f"{name!r} is not one of validation.suites")
        return self


class Downtime(_Section):
    budget: Duration = 7200.0
    warn_at: tuple[Fraction, ...] = (0.5, 0.75, 0.9)
    point_of_no_return: GateId = "go_live"

    @field_validator("warn_at")
    @classmethod
    def _ascending(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for before, after in zip(value, value[1:], strict=False):
            if after <= before:
                raise ValueError(f"must be strictly ascending (got {list(value)})")
        return value


class Storage(_Section):
    """The storage stage of the preparation: what counts as old enough to archive."""

    # Partitions whose whole range ends at least this many months before ``as_of``
    # are archive candidates.
    retention_months: Annotated[int, Field(strict=True, ge=1)] = 24
    # The day "old" is measured from. Unset (production): the real date, so retention
    # follows the calendar. A lab plan sets the date its synthetic data is laid out
    # from, so the same commit archives the same partitions on any day (bascule.today).
    as_of: date | None = None
    # Where archived partitions go: a database on ANOTHER cluster than the target's, so that a backup
    # of the target no longer carries them (checked again when applying, by the clusters' identifiers).
    # Unset: the storage stage may drop indexes but refuses to archive.
    archive_conn_id: ConnId | None = None
    # A replication connection (a role with REPLICATION) to the target's cluster: the backup check
    # (bascule.hooks.backup) times a full pg_basebackup through it and restores it into a scratch cluster.
    backup_conn_id: ConnId | None = None


class MilestoneId(enum.StrEnum):
    """The preparation's milestones, in the order they must be reached (ADR 0048)."""

    PLATFORM_INSTALLED = "platform_installed"
    ASSESSMENT_SIGNED_OFF = "assessment_signed_off"
    SCHEMA_SIGNED_OFF = "schema_signed_off"
    INITIAL_LOAD_COMPLETE = "initial_load_complete"
    REPLAY_PASSED = "replay_passed"
    STORAGE_APPLIED = "storage_applied"
    GO_NO_GO_MEETING = "go_no_go_meeting"

    @property
    def manual(self) -> bool:
        """Reached outside any stage bascule runs: its owner confirms it (``dags/milestones.py``)."""
        return self in (MilestoneId.PLATFORM_INSTALLED, MilestoneId.GO_NO_GO_MEETING)

    @property
    def invalidated_by(self) -> tuple[MilestoneId, ...]:
        """The milestones whose renewal makes this one stale: every one before it, because each builds
        on them (a schema signed off again after the initial load means the load must be done again)."""
        order = list(MilestoneId)
        return tuple(order[: order.index(self)])


class Milestone(_Section):
    """One milestone: the day it is planned for, and what "done" means (the evidence its stage records)."""

    date: date
    done: Text
    owner: Username | None = None


class Rehearsals(_Section):
    """Full rehearsals of the night on the rehearsal environment, at a fixed cadence."""

    first: date
    count: Annotated[int, Field(strict=True, ge=1, le=52)] = 3
    every_days: Annotated[int, Field(strict=True, ge=1)] = 14
    # The last rehearsal is no later than this many days before the night: time to act on what it found.
    last_by_days: Annotated[int, Field(strict=True, ge=0)] = 7
    # At the night, the last green rehearsal must be at most this old (days); defaults to every_days +
    # last_by_days, the gap a plan that keeps its cadence never exceeds.
    max_age_days: Annotated[int, Field(strict=True, ge=1)] | None = None

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i * self.every_days) for i in range(self.count)]

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_age_days or (self.every_days + self.last_by_days))


class Calendar(_Section):
    """The three months before the night: the night itself, the milestones, the rehearsals.

    Checked when the plan loads: milestones in their order, rehearsals after the initial load and before
    the go/no-go meeting, the last one ``last_by_days`` before the night, everything before the night.
    """

    cutover: datetime
    timezone: Annotated[str, StringConstraints(min_length=1)] = "UTC"
    milestones: dict[MilestoneId, Milestone]
    rehearsals: Rehearsals

    @field_validator("cutover")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry its UTC offset, e.g. 2027-03-06T22:00:00+01:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"must be an IANA time zone such as Europe/Paris (got {value!r})") from None
        return value

    @model_validator(mode="after")
    def _in_order(self) -> Calendar:
        missing = [m.value for m in MilestoneId if m not in self.milestones]
        if missing:
            raise _FieldError(("milestones", missing[0]), "is required: the calendar names every milestone "
                              f"({', '.join(m.value for m in MilestoneId)})")
        for mid in MilestoneId:
            if mid.manual and self.milestones[mid].owner is None:
                raise _FieldError(("milestones", mid.value, "owner"), "is required: this milestone is confirmed "
                                  "by its owner in the milestones DAG")
        night = self.night_date
        previous: tuple[MilestoneId, date] | None = None
        for mid in MilestoneId:
            day = self.milestones[mid].date
            if previous is not None and day < previous[1]:
                raise _FieldError(("milestones", mid.value, "date"),
                                  f"{day} is before {previous[0].value} ({previous[1]}): milestones come in the "
                                  f"order {', '.join(m.value for m in MilestoneId)}")
            if day >= night:
                raise _FieldError(("milestones", mid.value, "date"),
                                  f"{day} is not before the night ({night})")
            previous = (mid, day)
        dates = self.rehearsals.dates()
        loaded = self.milestones[MilestoneId.INITIAL_LOAD_COMPLETE].date
        if dates[0] < loaded:
            raise _FieldError(("rehearsals", "first"), f"{dates[0]} is before initial_load_complete ({loaded}): "
                              "a rehearsal needs the data loaded")
        latest = night - timedelta(days=self.rehearsals.last_by_days)
        if dates[-1] > latest:
            raise _FieldError(("rehearsals",), f"the last of {len(dates)} rehearsals falls on {dates[-1]}, after "
                              f"{latest} ({self.rehearsals.last_by_days} days before the night on {night})")
        meeting = self.milestones[MilestoneId.GO_NO_GO_MEETING].date
        if dates[-1] > meeting:
            raise _FieldError(("rehearsals",), f"the last rehearsal ({dates[-1]}) is after the go/no-go meeting "
                              f"({meeting}): the meeting decides on its result")
        return self

    @property
    def night_date(self) -> date:
        from zoneinfo import ZoneInfo

        return self.cutover.astimezone(ZoneInfo(self.timezone)).date()

    def timeline(self) -> list[tuple[date, str]]:
        """Every dated event, in order: milestones, rehearsals, the night."""
        events = [(m.date, mid.value) for mid, m in self.milestones.items()]
        dates = self.rehearsals.dates()
        events += [(d, f"rehearsal {i}/{len(dates)}") for i, d in enumerate(dates, 1)]
        events.append((self.night_date, "cutover night"))
        return sorted(events, key=lambda e: (e[0], e[1] == "cutover night"))


class Gate(_Section):
    title: Text
    assigned_users: Annotated[tuple[Username, ...], Field(min_length=1)]
    timeout: Duration | None = None
    description: str | None = None
    # Where a gate of the plan's own sits: after this task of ``dag`` (the runbook's own gates, such as
    # go_for_freeze, have their place in the registry and leave these unset). GO goes on; NO-GO fails the
    # gate, and inside the downtime window the night rolls back.
    after: TaskId | None = None
    dag: DagId = "cutover"


class ManualStep(_Section):
    """A task a person does by hand at its place in the night ("stop the HL7 interface engine"), confirmed
    in the Airflow UI by one of its owners before the night goes on."""

    title: Text
    owners: Annotated[tuple[Username, ...], Field(min_length=1)]
    after: TaskId
    dag: DagId = "cutover"
    timeout: Duration | None = None
    description: str | None = None


class Decisions(_Section):
    """The key that signs each gate's answer (ADR 0037): an Airflow connection whose password only the
    workers can read (the secrets backend), at least 32 bytes."""

    key_conn_id: ConnId = "bascule_decision_key"


class Notifications(_Section):
    slack_conn_id: ConnId = "bascule_slack"
    channel: SlackChannel
    webhook_conn_id: ConnId | None = None
    # Airflow user -> Slack member id. A waiting gate mentions its assigned users as <@U…>, which pages them;
    # a plain @name is only text (ADR 0047).
    slack_users: dict[Username, SlackUserId] = Field(default_factory=dict)


class PgBouncerEndpoint(_Section):
    admin_conn_id: ConnId = "bascule_endpoint_admin"
    app_conn_id: ConnId = "bascule_endpoint_app"
    database: PgName = "clinic"


class AppEndpoint(_Section):
    """The application's way in: PgBouncer (lab), or a command (DNS, alias, Oracle service)."""

    kind: EndpointKind = EndpointKind.NONE
    pgbouncer: PgBouncerEndpoint | None = None
    # Run as `command <verb> [side]`, verb one of current, pause, resume, point_to.
    command: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _kind_has_its_settings(self) -> AppEndpoint:
        if self.kind is EndpointKind.PGBOUNCER and self.pgbouncer is None:
            raise _FieldError(("pgbouncer",), "is required when kind is pgbouncer")
        if self.kind is EndpointKind.COMMAND and not self.command:
            raise _FieldError(("command",), "is required when kind is command")
        return self


class SmokeCheck(_Section):
    """One smoke test run through the application's endpoint, as the application, after a switch.

    The SQL is the team's, in the engine's own dialect; bind variables are written
    ``:name`` whatever the engine. A ``read`` must return at least ``min_rows`` rows:
    only their count is kept. A ``write`` runs in a transaction that is always rolled
    back and must affect at least one row. ``key`` keeps the check's single integer
    value (a surrogate id, never a patient value): a read's key can be bound as
    ``:key`` in the checks after it; a write's (``RETURNING``) is only reported.
    """

    name: GateId
    kind: SmokeKind
    sql: Text
    key: GateId | None = None
    min_rows: Annotated[int, Field(strict=True, ge=0)] | None = None

    @field_validator("sql")
    @classmethod
    def _one_statement(cls, value: str) -> str:
        # Sent as it is: a trailing ';' is a syntax error to Oracle's driver.
        if value.rstrip().endswith(";"):
            raise ValueError("must be one statement without a trailing ';'")
        return value

    @model_validator(mode="after")
    def _kind_rules(self) -> SmokeCheck:
        if self.kind is SmokeKind.WRITE and self.min_rows is not None:
            raise _FieldError(("min_rows",), "is only for read checks (a write must affect at least one row)")
        return self

    @property
    def required_rows(self) -> int:
        return 1 if self.min_rows is None else self.min_rows


class Cutover(_Section):
    endpoint: AppEndpoint = Field(default_factory=AppEndpoint)
    # Logical replication does not carry sequences: the target's are moved past the
    # source's by this many values, so no key handed out after go-live can collide.
    sequence_margin: Annotated[int, Field(strict=True, ge=0)] = 1000
    # Run in order through the endpoint after each switch (a chart read, a rolled-back write).
    smoke: tuple[SmokeCheck, ...] = ()
    # After GO LIVE, how long reverse replication is watched and the fallback kept possible, before the
    # gate ``close_rollback_window`` may retire it (dags/post_go_live.py, ADR 0057).
    rollback_window: Duration = 7 * 86400.0

    @model_validator(mode="after")
    def _smoke_binds(self) -> Cutover:
        names: set[str] = set()
        keys: dict[str, SmokeKind] = {}
        for i, check in enumerate(self.smoke):
            if check.name in names:
                raise _FieldError(("smoke", i, "name"), f"check {check.name!r} is listed twice")
            names.add(check.name)
            for bind in bind_names(check.sql):
                if keys.get(bind) is SmokeKind.READ:
                    continue
                why = ("is the key of a write, rolled back before the next check" if bind in keys
                       else "is no key of an earlier read check")
                readable = sorted(k for k, kind in keys.items() if kind is SmokeKind.READ)
                raise _FieldError(("smoke", i, "sql"),
                                  f"binds :{bind}, which {why} (keys: {', '.join(readable) or 'none'})")
            if check.key is not None:
                if check.key in keys:
                    raise _FieldError(("smoke", i, "key"), f"key {check.key!r} is named by an earlier check")
                keys[check.key] = check.kind
        return self


class Rehearsal(_Section):
    """Where rehearsals run: a restored copy of production and the new platform, with their own endpoint.

    A rehearsal (``{"rehearsal": true}``) uses only these: the same runbook, the same gates and checks,
    on other databases. A production plan may not name its production connections here.
    """

    source: Endpoint
    target: Endpoint
    replication: PostgresLogical | GoldenGate | None = None
    endpoint: AppEndpoint = Field(default_factory=AppEndpoint)
    # The site's command that makes the rehearsal environment fresh before each scheduled rehearsal (restore
    # the latest backup of production there, put the new platform back to its initial state), as arguments;
    # run by the rehearsal DAG with the workers' own environment first on PATH (ADR 0058). Empty: refreshed
    # by hand, and the DAG says so.
    refresh: tuple[Text, ...] = ()
    refresh_timeout: Duration = 6 * 3600.0


# --------------------------------------------------------------------------- the plan


class Plan(_Section):
    """A validated migration plan. Build it with :func:`load_plan`."""

    version: Literal[1]
    name: Slug
    mode: PlanMode
    description: str | None = None
    source: Endpoint
    target: Endpoint
    scope: Scope
    release: Release | None = None
    replication: Replication
    validation: Validation = Field(default_factory=Validation)
    downtime: Downtime = Field(default_factory=Downtime)
    storage: Storage = Field(default_factory=Storage)
    gates: dict[GateId, Gate]
    manual_steps: dict[GateId, ManualStep] = Field(default_factory=dict)
    decisions: Decisions = Field(default_factory=Decisions)
    rehearsal: Rehearsal | None = None
    notifications: Notifications | None = None
    cutover: Cutover = Field(default_factory=Cutover)
    calendar: Calendar | None = None

    _path: Path | None = PrivateAttr(default=None)
    _production: Plan | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_field(self) -> Plan:
        # Checked in field order so the first error reported is the earliest in the file.
        # Ignoring case: Airflow finds AIRFLOW_CONN_<ID> whatever the case it was asked in.
        if self.source.conn_id.lower() == self.target.conn_id.lower():
            same = (f"both {self.source.conn_id!r}" if self.source.conn_id == self.target.conn_id
                    else f"{self.source.conn_id!r} and {self.target.conn_id!r} differ only in case, "
                         "and Airflow looks connections up ignoring case")
            raise _FieldError(("target", "conn_id"), f"must differ from source.conn_id ({same})")
        archive = (self.storage.archive_conn_id or "").lower()
        if archive and archive in {c.lower() for c in (self.target.conn_id, self.target.app_conn_id) if c}:
            raise _FieldError(("storage", "archive_conn_id"), "must name a database outside the target's cluster, "
                              f"not the target's own connection ({self.storage.archive_conn_id!r})")
        if self.release is not None:
            for table in self.release.column_mapping:
                schema, name = table.split(".", 1)
                if schema.lower() not in {s.lower() for s in self.scope.schemas}:
                    raise _FieldError(
                        ("release", "column_mapping", table),
                        f"table {table!r} is not in a scope schema ({', '.join(self.scope.schemas)})",
                    )
                if not self.scope.contains(schema, name):
                    raise _FieldError(
                        ("release", "column_mapping", table), f"table {table!r} is excluded from scope"
                    )
        self._check_replication()
        for i, key in enumerate(self.validation.identifying_keys):
            schema, table, _ = key.split(".", 2)
            if not self.scope.contains(schema, table):
                raise _FieldError(
                    ("validation", "identifying_keys", i), f"table {schema}.{table} is not in scope"
                )
        identifying = {k.lower() for k in self.validation.identifying_keys}
        for i, key in enumerate(self.validation.surrogate_keys):
            schema, table, _ = key.split(".", 2)
            if not self.scope.contains(schema, table):
                raise _FieldError(("validation", "surrogate_keys", i), f"table {schema}.{table} is not in scope")
            if key.lower() in identifying:
                raise _FieldError(("validation", "surrogate_keys", i),
                                  f"{key} is also in identifying_keys: a column is one or the other")
        self._check_rehearsal()
        for step_id in self.manual_steps:
            if step_id in self.gates:
                raise _FieldError(("manual_steps", step_id), f"{step_id!r} is also a gate: give it another id")
        for gate_id in REQUIRED_GATES:
            if gate_id not in self.gates:
                raise _FieldError(("gates", gate_id), "required gate is missing")
        if self.downtime.point_of_no_return not in self.gates:
            raise _FieldError(
                ("downtime", "point_of_no_return"),
                f"must name a gate, one of {', '.join(self.gates)} (got {self.downtime.point_of_no_return!r})",
            )
        if self.mode is PlanMode.PRODUCTION and self.storage.as_of is not None:
            # Retention in production follows the real calendar; a pinned date would
            # archive too little (or, set ahead, too much) without anyone noticing.
            raise _FieldError(("storage", "as_of"), "only lab and demo plans may pin the date; "
                              "production measures retention from the real date")
        if self.mode is PlanMode.PRODUCTION and self.notifications is None:
            # Gates wait for humans; in production nobody may be left unaware of one.
            raise _FieldError(("notifications",), "is required in production mode")
        if self.mode is PlanMode.PRODUCTION and self.calendar is None:
            # The night starts for real only on the milestones' evidence (ADR 0048): without a
            # calendar there is nothing to check it against.
            raise _FieldError(("calendar",), "is required in production mode: the night's date, the milestones "
                              "and the rehearsals")
        # The error sanitiser keeps the names of objects it knows, and drops every other word.
        know_objects(self.object_names())
        return self

    def _check_rehearsal(self) -> None:
        r = self.rehearsal
        if r is None:
            return
        if (r.source.engine, r.target.engine) != (self.source.engine, self.target.engine):
            raise _FieldError(("rehearsal",), "must use the same engines as the night "
                              f"({self.source.engine.value} -> {self.target.engine.value})")
        if r.replication is not None and not isinstance(r.replication, type(self._replication_section())):
            raise _FieldError(("rehearsal", "replication"), f"must be a {self.replication.method.value} section")
        if self.mode is PlanMode.PRODUCTION:
            # A rehearsal freezes its source: on production connections it would freeze production.
            production = {c.lower() for c in self.connection_ids()}
            named = [("source", r.source.conn_id), ("source", r.source.app_conn_id),
                     ("target", r.target.conn_id), ("target", r.target.app_conn_id)]
            named += [("replication", getattr(r.replication, n, None))
                      for n in ("replication_conn_id", "conn_id", "heartbeat_connection")]
            if r.endpoint.pgbouncer is not None:
                named += [("endpoint", r.endpoint.pgbouncer.admin_conn_id), ("endpoint", r.endpoint.pgbouncer.app_conn_id)]
            for field, conn_id in named:
                if conn_id and conn_id.lower() in production:
                    raise _FieldError(("rehearsal", field), f"{conn_id!r} is a production connection: a "
                                      "rehearsal runs on a restored copy, never on production")

    def _replication_section(self) -> Any:
        return self.replication.postgres_logical or self.replication.goldengate

    def connection_ids(self) -> set[str]:
        """Every connection id the night uses on the databases, as written in the plan."""
        ids = {self.source.conn_id, self.target.conn_id}
        ids |= {c for c in (self.source.app_conn_id, self.target.app_conn_id) if c}
        section = self._replication_section()
        for name in ("replication_conn_id", "conn_id", "heartbeat_connection"):
            if section is not None and getattr(section, name, None):
                ids.add(getattr(section, name))
        endpoint = self.cutover.endpoint.pgbouncer
        if endpoint is not None:
            ids |= {endpoint.admin_conn_id, endpoint.app_conn_id}
        return ids

    def object_names(self) -> set[str]:
        """Every schema, table, column and role the plan names: names, never values."""
        names: set[str] = {*self.scope.schemas, *self.scope.include_tables, *self.scope.exclude_tables}
        names |= {self.source.app_role, self.target.app_role, *self.source.allowed_writers,
                  *self.target.allowed_writers, *self.validation.identifying_keys,
                  *self.validation.surrogate_keys}
        if self.release is not None:
            for table, mapping in self.release.column_mapping.items():
                names |= {table, *mapping.renamed, *mapping.renamed.values(), *mapping.added, *mapping.dropped}
        return names

    def for_rehearsal(self) -> Plan:
        """This plan on its rehearsal environment: its connections, replication and endpoint, nothing else."""
        r = self.rehearsal
        if r is None:
            raise PlanError(self._path or self.name, "rehearsal",
                            "the plan names no rehearsal environment: a rehearsal never runs on production")
        update: dict[str, Any] = {"source": r.source, "target": r.target,
                                  "cutover": self.cutover.model_copy(update={"endpoint": r.endpoint})}
        if r.replication is not None:
            key = "postgres_logical" if isinstance(r.replication, PostgresLogical) else "goldengate"
            update["replication"] = self.replication.model_copy(update={key: r.replication})
        copy = self.model_copy(update=update)
        copy._path = self._path
        copy._production = self
        return copy

    @property
    def production(self) -> Plan:
        """The plan whose rehearsal environment this is (``for_rehearsal``), or the plan itself."""
        return self._production or self

    def _check_replication(self) -> None:
        method = self.replication.method
        wanted = _METHOD_ENGINE[method]
        if wanted is not None and (self.source.engine, self.target.engine) != (wanted, wanted):
            raise _FieldError(
                ("replication", "method"),
                f"{method.value} needs {wanted.value} on both sides "
                f"(source is {self.source.engine.value}, target is {self.target.engine.value})",
            )
        sections = {
            ReplicationMethod.POSTGRES_LOGICAL: ("postgres_logical", self.replication.postgres_logical),
            ReplicationMethod.GOLDENGATE: ("goldengate", self.replication.goldengate),
        }
        for section_method, (section, value) in sections.items():
            if section_method is method and value is None:
                raise _FieldError(("replication", section), f"is required when method is {method.value}")
            if section_method is not method and value is not None:
                raise _FieldError(
                    ("replication", section),
                    f"only allowed when method is {section_method.value} (got {method.value})",
                )

    # ----------------------------------------------------------------- accessors

    @property
    def path(self) -> Path | None:
        """Absolute path of the plan file, or None for a plan built in code."""
        return self._path

    @property
    def allows_auto_answer(self) -> bool:
        """Gates may be answered by automation only outside production."""
        return self.mode in (PlanMode.LAB, PlanMode.DEMO)

    @property
    def budget_seconds(self) -> float:
        return self.downtime.budget

    @property
    def release_migration_path(self) -> Path | None:
        if self.release is None:
            return None
        base = self._path.parent if self._path is not None else Path.cwd()
        return Path(os.path.normpath(base / self.release.migration))

    def manual_step(self, step_id: str) -> ManualStep:
        """A manual step the plan declares, or a calendar milestone its owner confirms (``milestone_<id>``)."""
        if step_id in self.manual_steps:
            return self.manual_steps[step_id]
        prefix = "milestone_"
        if self.calendar is not None and step_id.startswith(prefix):
            milestone = self.calendar.milestones.get(MilestoneId(step_id.removeprefix(prefix)))
            if milestone is not None and milestone.owner is not None:
                return ManualStep(title=f"Milestone {step_id.removeprefix(prefix)}: {milestone.done}",
                                  owners=(milestone.owner,), after="milestones", description=milestone.done)
        raise KeyError(f"plan {self.name!r} has no manual step {step_id!r}")

    def gate(self, gate_id: str) -> Gate:
        try:
            return self.gates[gate_id]
        except KeyError:
            raise KeyError(
                f"plan {self.name!r} has no gate {gate_id!r} (gates: {', '.join(self.gates)})"
            ) from None

    def is_table_in_scope(self, schema: str, table: str) -> bool:
        return self.scope.contains(schema, table)

    def to_summary(self) -> dict[str, Any]:
        """JSON-able overview for XCom, notifications and reports; connection ids only, no secrets."""
        return {
            "name": self.name,
            "mode": self.mode.value,
            "path": str(self._path) if self._path is not None else None,
            "description": self.description,
            "source": {"engine": self.source.engine.value, "conn_id": self.source.conn_id,
                       "allowed_writers": list(self.source.allowed_writers)},
            "target": {"engine": self.target.engine.value, "conn_id": self.target.conn_id,
                       "allowed_writers": list(self.target.allowed_writers)},
            "schemas": list(self.scope.schemas),
            "include_tables": list(self.scope.include_tables),
            "exclude_tables": list(self.scope.exclude_tables),
            "release_migration": self.release.migration if self.release else None,
            "replication_method": self.replication.method.value,
            "lag_threshold_s": self.replication.lag_threshold_s,
            "budget_seconds": self.budget_seconds,
            "budget": format_duration(self.budget_seconds),
            "warn_at": list(self.downtime.warn_at),
            "point_of_no_return": self.downtime.point_of_no_return,
            "allows_auto_answer": self.allows_auto_answer,
            "gates": {
                gate_id: {
                    "title": gate.title,
                    "assigned_users": list(gate.assigned_users),
                    "timeout_seconds": gate.timeout,
                }
                for gate_id, gate in self.gates.items()
            },
            "notification_channel": self.notifications.channel if self.notifications else None,
        }


# --------------------------------------------------------------------------- loading


def default_plan_path() -> Path:
    """``$BASCULE_PLAN`` if set, else the lab plan shipped in the repository."""
    configured = os.environ.get(PLAN_ENV_VAR, "").strip()
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "include" / "plans" / "lab.yaml"


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read, parse and validate a plan file; raise :class:`PlanError` on any problem."""
    shown = os.fspath(path)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(shown, "(file)", "no such file") from None
    except IsADirectoryError:
        raise PlanError(shown, "(file)", "is a directory, not a plan file") from None
    except UnicodeDecodeError:
        raise PlanError(shown, "(file)", "is not UTF-8 text") from None
    except OSError as exc:
        raise PlanError(shown, "(file)", f"cannot read: {exc.strerror or exc}") from None

    try:
        # _PlanLoader derives from SafeLoader: no arbitrary Python objects from a plan file.
        data = yaml.load(text, Loader=_PlanLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PlanError(shown, "(yaml)", f"{where}{exc.problem or exc.context or 'invalid YAML'}") from None
    except yaml.YAMLError as exc:
        raise PlanError(shown, "(yaml)", str(exc)) from None

    if not isinstance(data, dict):
        got = "an empty file" if data is None else _describe_input(data)
        raise PlanError(shown, "(root)", f"must be a mapping of plan fields (got {got})")

    absolute = file.absolute()
    try:
        plan = Plan.model_validate(data, context={"plan_dir": absolute.parent})
    except ValidationError as exc:
        field, message = _explain(exc.errors()[0])
        raise PlanError(shown, field, message) from None
    plan._path = absolute
    return plan


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


def _construct_mapping(loader: _PlanLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable: SafeConstructor reports it below with its position
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_PlanLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --------------------------------------------------------------------------- error rendering


def _explain(error: Any) -> tuple[str, str]:
    """Turn pydantic's first error into (dotted field path, human message)."""
    loc = tuple(part for part in error["loc"] if not _is_internal(part))
    ctx = error.get("ctx") or {}
    kind = error["type"]
    got = _describe_input(error.get("input"))
    if kind == "value_error" and isinstance(ctx.get("error"), _FieldError):
        cause = ctx["error"]
        return _dotted(loc + cause.loc), cause.message
    if kind == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}"
        suggestion = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1)
        if suggestion:
            message += f" (did you mean {suggestion[0]!r}?)"
        return _dotted(loc), message
    return _dotted(loc), _message(kind, ctx, got, error)


def _message(kind: str, ctx: dict[str, Any], got: str, error: Any) -> str:
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        # Field(gt=0) on a float field reports 0.0; the plan author wrote 0.
        shown = f"{limit:g}" if isinstance(limit, float) else str(limit)
        return f"must be {bounds[kind]} {shown} (got {got})"
    if kind == "missing":
        return "is required"
    if kind == "enum":
        choices = str(ctx.get("expected", "")).replace(" or ", ", ").replace("'", "")
        return f"must be one of {choices} (got {got})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')} (got {got})"
    if kind == "string_pattern_mismatch":
        return f"{_PATTERN_HINTS.get(ctx.get('pattern', ''), 'has an invalid format')} (got {got})"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind == "too_long":
        return f"is too long (at most {ctx.get('max_length')})"
    if kind == "string_type":
        return f"must be text (got {got})"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"must be a number (got {got})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number (got {got})"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list (got {got})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping (got {got})"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return str(error.get("msg", "is invalid"))


_INTERNAL_LOC = re.compile(r"^[a-z][a-z-]*\[.*\]$")


def _is_internal(part: str | int) -> bool:
    # Pydantic inserts schema steps into ``loc`` (``[key]``, ``function-after[...]``,
    # union member tags); a plan author never wrote those.
    return isinstance(part, str) and (part == "[key]" or _INTERNAL_LOC.match(part) is not None)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _describe_input(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) is Annotated:
        return _unwrap(get_args(tp)[0])
    if get_origin(tp) in (Union, types.UnionType):
        members = [arg for arg in get_args(tp) if arg is not type(None)]
        return _unwrap(members[0]) if len(members) == 1 else tp
    return tp


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """Field names of the section at ``loc``, to suggest a fix for a misspelt key."""
    tp: Any = Plan
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is tuple:
            tp = get_args(tp)[0]
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []
