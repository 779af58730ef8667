"""What every engine answers for the cutover: restore point, freeze, unfreeze, sequences, constraints.

The cutover hook (``bascule.hooks.cutover``) runs one freeze flow and one unfreeze
flow for every engine; each step it cannot write the same way everywhere is a
method here. A method returns a statement, a list of statements (empty where the
engine has nothing to do), or ``None`` where the engine needs no such step.
Text only: identifiers are checked and quoted here, values travel as binds, and no
statement selects a row value (grants, role attributes, positions, counts, names).
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bascule.engines.base import EngineDialect, Query

# PostgreSQL's schema name; Oracle spells it upper case (unquoted identifiers are).
META_SCHEMA = "bascule_meta"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")
# A grant's grantee when it was granted to every role.
PUBLIC = "PUBLIC"
# What a freeze records and gives back (Grant.kind): object rights, column rights, a membership in a
# role that keeps its rights, and default privileges of future tables and sequences (ADR 0038).
GRANT_KINDS = ("table", "sequence", "column", "membership", "default_table", "default_sequence")

Statement = Query | str


def check_name(value: str, *, field: str) -> str:
    """A plain identifier (role, schema, restore point): anything else is refused, not quoted around."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{field} must be a plain identifier of at most 63 characters (got {value!r})")
    return value


def catalog_name(value: str, *, field: str) -> str:
    """A name read from the database's catalog (a grantee, a role, a column): any text the engine allows,
    always quoted where it becomes SQL (never checked against the plan's identifier rule: a site's
    roles may be called ``john.doe``). Only what no catalog holds is refused."""
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 128:
        raise ValueError(f"{field} is not a catalog name (got {value!r})")
    return value


@dataclass(frozen=True, order=True)
class Grant:
    """One write right a freeze took, as recorded, so that unfreeze gives back exactly it.

    ``kind`` is one of :data:`GRANT_KINDS`:

    - ``table`` / ``sequence``: ``privilege`` on ``schema.name``;
    - ``column``: ``privilege`` (INSERT, UPDATE) on ``column`` of ``schema.name``;
    - ``membership``: ``grantee`` is a member of role ``name`` (``privilege`` is ``MEMBER``,
      ``grantable`` its admin option);
    - ``default_table`` / ``default_sequence``: ``privilege`` that role ``name`` grants by default on the
      tables (sequences) it creates in ``schema`` (``""``: in every schema).

    ``grantee`` is who held it: ``""`` is the freeze's own role (the application's), :data:`PUBLIC`
    is every role. Both extra fields are left out of the stored JSON when empty, so a record made
    before they existed reads back the same.
    """

    kind: str
    schema: str
    name: str
    privilege: str
    grantable: bool = False
    column: str = ""
    grantee: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("column", "grantee"):
            if not data[key]:
                del data[key]
        return data

    def holder(self, role: str) -> str:
        """Who held the right: the grantee, or ``role`` (the freeze's own) when it is not named."""
        return self.grantee or role


def grants_to_json(grants: Sequence[Grant]) -> str:
    return json.dumps([g.as_dict() for g in sorted(grants)])


def grants_from_json(value: str | list[dict[str, Any]]) -> list[Grant]:
    data = json.loads(value) if isinstance(value, str) else value
    return sorted(Grant(**{k: ("" if v is None and k in ("column", "grantee") else v) for k, v in item.items()})
                  for item in data)


@dataclass(frozen=True)
class FreezeFinding:
    """Something that can still write after a freeze (:meth:`CutoverDialect.freeze_findings_sql`'s row).

    ``kind``: ``writer`` (a role that can still write in scope, ``detail`` says how),
    ``security definer`` (a function that runs as a writer and that a role not allowed to write
    may execute), ``default privileges`` (future tables a role not allowed would write),
    ``prepared transactions`` (``subject`` is how many, ``detail`` their owners). Names and counts only.
    """

    kind: str
    subject: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class FreezeRecord:
    """The open freeze of a role as the database records it (``active_freeze_sql``'s row)."""

    freeze_id: int
    grants: tuple[Grant, ...]  # what the freeze took away, given back by unfreeze
    can_login: bool
    conn_limit: int | None  # PostgreSQL's connection limit; None where the engine has none
    services: tuple[str, ...]  # Oracle services stopped by the freeze; () elsewhere
    frozen_at: datetime | None
    position: str | None



@dataclass(frozen=True)
class KeySet:
    """Keys (as text) of some rows: ``columns`` are the (quoted) columns they are matched on, with the
    types their texts are cast to. A restriction of a query to the rows changed since a full check."""

    columns: tuple[tuple[str, str], ...]
    keys: tuple[tuple[str, ...], ...]


class CutoverDialect(EngineDialect):
    """The cutover questions every engine answers with SQL text."""

    # ------------------------------------------------------------------ session
    @abc.abstractmethod
    def cutover_session_sql(self) -> list[str]:
        """Session settings of every cutover session (the freeze must not wait on, nor hold up, the app)."""

    # ------------------------------------------------------------ restore point
    def restore_point_name(self, name: str) -> str:
        """The name as the engine stores it."""
        return check_name(name, field="restore point name")

    @abc.abstractmethod
    def restore_point_prepare_sql(self) -> list[str]:
        """Statements (committed) before a restore point is looked up: where bascule records it."""

    @abc.abstractmethod
    def restore_point_lock_sql(self) -> list[str]:
        """Statements that serialise two tasks making the same restore point."""

    @abc.abstractmethod
    def restore_point_lookup_sql(self, name: str) -> Query:
        """Zero or one row starting (position, created_at) of the named restore point."""

    @abc.abstractmethod
    def create_restore_point_sql(self, name: str) -> Query: ...

    @abc.abstractmethod
    def restore_point_made_sql(self, name: str, created: Sequence[tuple[Any, ...]]) -> Query:
        """One row starting (position, created_at) of the restore point just made; ``created`` holds
        the rows :meth:`create_restore_point_sql` returned."""

    # ------------------------------------------------------------------- freeze
    @abc.abstractmethod
    def ensure_meta_sql(self) -> list[str]:
        """Statements (idempotent, committed) that create the freeze's state table."""

    @abc.abstractmethod
    def freeze_lock_sql(self) -> list[str]:
        """Statements that serialise two freezes (or a freeze and an unfreeze) of the same database."""

    @abc.abstractmethod
    def role_attributes_sql(self, role: str) -> Query:
        """Zero rows if the role does not exist, else one row (can_login, connection limit or NULL)."""

    @abc.abstractmethod
    def active_freeze_sql(self, role: str) -> Query:
        """Zero or one row (freeze_id, grants json, can_login, limit or services, frozen_at, position)."""

    @abc.abstractmethod
    def freeze_record(self, row: Sequence[Any]) -> FreezeRecord:
        """:meth:`active_freeze_sql`'s row, read (a LOB column included)."""

    @abc.abstractmethod
    def write_grants_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        """Rows (kind, schema, name, privilege, grantable, column, grantee) of every write right on the
        scope that a freeze takes (see :class:`Grant`): held by ``role`` or by any other role that is
        not an allowed writer (``allowed``, the session's own user, superusers and owners are never
        stripped: a finding names them instead). ``grantee`` is empty (or NULL) for ``role`` itself."""

    @abc.abstractmethod
    def record_freeze_sql(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                          conn_limit: int | None = None, services: Sequence[str] = (),
                          started: datetime | None = None) -> Query:
        """Record a new freeze; ``started`` (the worker's UTC clock before the first REVOKE) is kept
        as its ``frozen_at``: the downtime starts there (ADR 0038)."""

    def record_freeze_statements(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                                 conn_limit: int | None = None, services: Sequence[str] = (),
                                 started: datetime | None = None) -> list[Query]:
        """Statements that record a new freeze; the last one returns a row starting with its freeze_id."""
        return [self.record_freeze_sql(role, grants, can_login=can_login, conn_limit=conn_limit,
                                       services=services, started=started)]

    @abc.abstractmethod
    def update_freeze_grants_sql(self, freeze_id: int, grants: Sequence[Grant]) -> Query:
        """Record ``grants`` as what the open freeze took away (grants given again while frozen)."""

    @abc.abstractmethod
    def before_revoke_sql(self, services: Sequence[str]) -> list[Statement]:
        """Statements that close the engine's other doors before the grants go (Oracle's restricted
        session and services)."""

    @abc.abstractmethod
    def revoke_sql(self, role: str, grant: Grant) -> str: ...

    @abc.abstractmethod
    def grant_sql(self, role: str, grant: Grant) -> str: ...

    @abc.abstractmethod
    def lock_role_sql(self, role: str) -> str:
        """Forbid the role to log in."""

    @abc.abstractmethod
    def restore_role_sql(self, role: str, *, can_login: bool, conn_limit: int | None = None) -> str: ...

    @abc.abstractmethod
    def sessions_sql(self, role: str, writers: Sequence[str] = (), allowed: Sequence[str] = (),
                     everyone: bool = False) -> Query:
        """One row per session to end (the identifiers :meth:`end_sessions_sql` needs): every session
        whose login is ``role`` or a member of one of ``writers`` (a member may have SET ROLE to it),
        or any login at all when ``everyone`` (a right was PUBLIC's), but never one of ``allowed``
        nor the session's own user. With no ``writers``, the sessions of ``role``."""

    @abc.abstractmethod
    def end_sessions_sql(self, role: str, sessions: Sequence[tuple[Any, ...]], writers: Sequence[str] = (),
                         allowed: Sequence[str] = (), everyone: bool = False) -> list[Statement]:
        """Statements that end ``sessions`` (rows of :meth:`sessions_sql` with the same arguments).
        Whether they ended is decided by counting again, not by these statements' outcome."""

    def ending_failure_tolerated(self, exc: BaseException) -> bool:
        """Whether a statement of :meth:`end_sessions_sql` that raised ``exc`` may be passed over, the
        recount deciding. Only an error that means the session is already gone: any other fails the
        freeze at once, named. None by default."""
        return False

    @abc.abstractmethod
    def remaining_write_rights_sql(self, role: str, schemas: Sequence[str]) -> Query:
        """Rows (schema, name, privilege) the role can still use, directly, through roles or PUBLIC.
        Narrower than :meth:`freeze_findings_sql`, which the freeze uses."""

    @abc.abstractmethod
    def freeze_findings_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        """The freeze's proof, in one round trip: rows (kind, subject, detail) of :class:`FreezeFinding`,
        none when nothing but ``allowed`` (and the session's own user) can write to the scope any more.
        Looks at every role (``role`` even without login, others that can log in): object and column
        rights, memberships (inheriting or by SET ROLE), PUBLIC, ownership, superuser or system
        privileges; definer-rights code owned by a writer; default privileges; prepared transactions."""

    @abc.abstractmethod
    def mark_frozen_sql(self, freeze_id: int, started: datetime | None = None) -> Query: ...

    def mark_frozen_statements(self, freeze_id: int, started: datetime | None = None) -> list[Query]:
        """Statements that take the frozen position once; the last returns (frozen_at, position).
        ``frozen_at`` is the one recorded with the freeze, else ``started``."""
        return [self.mark_frozen_sql(freeze_id, started)]

    @abc.abstractmethod
    def after_restore_sql(self, services: Sequence[str]) -> list[Statement]:
        """Statements of an unfreeze after the grants and login are back (Oracle reopens services)."""

    @abc.abstractmethod
    def release_freeze_sql(self, freeze_id: int) -> Query: ...

    # ------------------------------------------------------- reopening, proven
    @abc.abstractmethod
    def probe_prepare_sql(self, role: str) -> list[Statement]:
        """Statements (idempotent) that give ``role`` the right to write bascule's probe table, and only
        that table, outside the application's schemas (run by unfreeze, before the reopening)."""

    @abc.abstractmethod
    def probe_write_sql(self, run_id: str, side: str) -> Query:
        """The probe write, run as the application through the endpoint and committed: the downtime
        ends when it returns. It touches bascule's own table only."""

    def lend_rights_sql(self, role: str, grants: Sequence[Grant]) -> list[Statement] | None:
        """Statements that, inside one transaction of bascule's own session that is then rolled back,
        give ``role`` back ``grants`` and act as ``role``: a smoke write on a side closed until GO LIVE
        proves the application's rights without opening them to anyone. None where the engine cannot
        (its GRANT commits)."""
        return None

    # ---------------------------------------------------------------- identity
    @abc.abstractmethod
    def database_identity_sql(self) -> Query:
        """One row (system identity, database identity) as text: two connections reach the same
        database exactly when both are equal."""

    # ---------------------------------------------------------------- sequences
    @abc.abstractmethod
    def sequence_values_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, sequence, last_value or None, increment_by)."""

    @abc.abstractmethod
    def sequence_last_value_sql(self, schema: str, name: str) -> Query | None:
        """Zero or one row (last value) read before :meth:`advance_sequence_sql`, for an engine whose
        statement cannot refuse to move a sequence backwards; None when the statement itself refuses."""

    @abc.abstractmethod
    def advance_sequence_sql(self, schema: str, name: str, value: int) -> Query:
        """Move the sequence to ``value``. Where it compares itself, it returns a row only if it moved."""

    # -------------------------------------------------------------- constraints
    @abc.abstractmethod
    def invalid_constraints_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, table, constraint, type) of constraints not enabled or not validated."""

    @abc.abstractmethod
    def disabled_triggers_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, table, trigger, state) of user triggers that would not fire for the application."""

    @abc.abstractmethod
    def validate_constraint_sql(self, schema: str, table: str, constraint: str) -> str: ...

    def foreign_keys_sql(self, schemas: Sequence[str]) -> Query | None:
        """Rows (schema, table, constraint, columns csv, ref schema, ref table, ref columns csv) of the
        foreign keys whose child rows must be counted for orphans; None where replication enforces them."""
        return None

    def orphan_count_sql(self, schema: str, table: str, columns: Sequence[str], ref_schema: str,
                         ref_table: str, ref_columns: Sequence[str], *, among: Sequence[KeySet] = ()) -> Query:
        """One row (count) of child rows whose parent is missing; with ``among``, only of the child rows
        whose columns hold one of those keys (the rows changed since a full count, ADR 0061)."""
        raise NotImplementedError(f"{self.name}: no orphan count (foreign_keys_sql is None)")
