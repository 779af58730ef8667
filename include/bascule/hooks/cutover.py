"""Cutover I/O on a source or target database: restore point, freeze, unfreeze,
sequences, constraints and triggers (SQL from ``engines/*_cutover.py``).

One flow per operation for every engine: each step an engine does its own way
is a method of its cutover dialect (``engines/cutover_base.py``), which may have
nothing to do for it. Durable state lives in the database being acted on
(``bascule_meta``): a task retried on another worker, or after a crash, finds
the freeze it started and the grants it must give back. Only identifiers,
positions, counts and catalog names leave this hook.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from bascule.engines import cutover_dialect_for
from bascule.engines.base import ConnectOptions, EngineDialect, TableChanges
from bascule.engines.cutover_base import PUBLIC, CutoverDialect, FreezeFinding, Grant, KeySet, Statement
from bascule.hooks.database import MigrationDatabaseError, MigrationDatabaseHook
from bascule.privacy.sanitize import SafeMessage
from bascule.today import utc_now

# The probe goes through the application's endpoint: maybe a transaction pooler, no prepared statement.
_PROBE_OPTIONS = ConnectOptions(through_pooler=True, application_name="bascule-probe", connect_timeout_s=5)


class CutoverDatabaseError(MigrationDatabaseError):
    """A cutover statement failed; the database's text is sanitised (a DETAIL can carry row values)."""


class FreezeError(RuntimeError, SafeMessage):
    """The freeze could not be made complete; the message names what still lets the application write."""


class ProbeError(RuntimeError, SafeMessage):
    """The probe write through the endpoint did not commit: writes are not proven open."""


@dataclass(frozen=True)
class LentRights:
    """A side closed until GO LIVE: bascule's own session there, and the statements that lend the
    application its rights for one transaction that is always rolled back (``conn`` None: cannot)."""

    conn: Any | None
    statements: tuple[Statement, ...]
    hook: MigrationDatabaseHook


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a connection reaches: the system's identity and the database's within it."""

    system: str  # PostgreSQL's system_identifier; Oracle's DBID
    database: str  # PostgreSQL's database oid; Oracle's PDB GUID ('-' outside a CDB)

    def as_dict(self) -> dict[str, str]:
        return {"system": self.system, "database": self.database}


@dataclass(frozen=True)
class RestorePoint:
    name: str
    position: str  # LSN (PostgreSQL) or SCN (Oracle)
    created_at: datetime
    created: bool  # False when a retry found it already there

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "position": self.position, "created_at": self.created_at.isoformat(),
                "created": self.created}


@dataclass(frozen=True)
class FreezeState:
    role: str
    freeze_id: int
    # The worker's UTC clock right before the first REVOKE was sent: writes start being refused
    # after it (ADR 0038). A retry returns the first freeze's.
    frozen_at: datetime
    position: str  # LSN / SCN once the sessions are gone and the proof holds: every acknowledged write lies before it
    revoked: tuple[Grant, ...]
    terminated_sessions: int
    already_frozen: bool
    login_locked: bool = True  # False for a side closed until GO LIVE (its reads go on)

    @property
    def other_writers(self) -> tuple[str, ...]:
        """Roles other than the application's whose write rights were taken too."""
        return tuple(sorted({g.grantee for g in self.revoked if g.grantee}))

    def as_dict(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for g in self.revoked:
            kinds[g.kind] = kinds.get(g.kind, 0) + 1
        return {"role": self.role, "freeze_id": self.freeze_id, "frozen_at": self.frozen_at.isoformat(),
                "position": self.position, "revoked": len(self.revoked), "revoked_by_kind": kinds,
                "other_writers": list(self.other_writers), "terminated_sessions": self.terminated_sessions,
                "already_frozen": self.already_frozen, "login_locked": self.login_locked}


@dataclass(frozen=True)
class UnfreezeResult:
    role: str
    was_frozen: bool
    restored: tuple[Grant, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "was_frozen": self.was_frozen, "restored": len(self.restored)}


@dataclass(frozen=True)
class SequenceValue:
    schema: str
    name: str
    last_value: int | None
    increment_by: int


@dataclass(frozen=True)
class CatalogFinding:
    """A constraint or trigger that is not as the application expects on the target."""

    schema: str
    table: str
    name: str
    kind: str  # constraint type letter, or the trigger state
    detail: dict[str, Any] = field(default_factory=dict)


class CutoverDatabaseHook(MigrationDatabaseHook):
    """A migration's source or target, for the cutover's own statements.

    ``db_conn_id`` is a privileged connection (the plan's ``conn_id``): it
    revokes, alters roles and ends sessions.
    """

    hook_name = "bascule cutover database"
    error_class = CutoverDatabaseError

    def __init__(self, *, db_conn_id: str, engine: str, session_wait_s: float = 15.0,
                 allowed_writers: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(db_conn_id=db_conn_id, engine=engine, **kwargs)
        self.session_wait_s = session_wait_s
        # Roles that may keep writing through a freeze (the plan's side.allowed_writers: replication,
        # bascule's admin, a superuser the site accepts); the session's own user always may.
        self.allowed_writers = tuple(allowed_writers)

    @cached_property
    def cutover_dialect(self) -> CutoverDialect:
        return cutover_dialect_for(self.engine)

    @property
    def engine_dialect(self) -> EngineDialect:
        return self.cutover_dialect

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        with self.database_session(setup=self.cutover_dialect.cutover_session_sql()) as conn:
            yield conn

    def _run(self, conn: Any, statements: Sequence[Statement]) -> list[tuple[Any, ...]]:
        """Run ``statements`` in order; the rows of the last one ([] when there is none)."""
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            rows = self.rows(conn, statement)
        return rows

    def _ensure_meta(self, conn: Any) -> None:
        self._run(conn, self.cutover_dialect.ensure_meta_sql())
        conn.commit()

    # ------------------------------------------------------- restore point
    def create_restore_point(self, name: str) -> RestorePoint:
        """Create the named restore point once; a retry returns the one already made."""
        d = self.cutover_dialect
        stored = d.restore_point_name(name)
        with self._session() as conn:
            self._run(conn, d.restore_point_prepare_sql())
            conn.commit()
            self._run(conn, d.restore_point_lock_sql())
            found = self.rows(conn, d.restore_point_lookup_sql(name))
            if found:
                conn.commit()
                return RestorePoint(name=stored, position=str(found[0][0]), created_at=found[0][1], created=False)
            created = self.rows(conn, d.create_restore_point_sql(name))
            position, at = self.rows(conn, d.restore_point_made_sql(name, created))[0][:2]
            conn.commit()
        return RestorePoint(name=stored, position=str(position), created_at=at, created=True)

    # -------------------------------------------------------------- freeze
    def active_freeze(self, role: str) -> tuple[int, list[Grant]] | None:
        d = self.cutover_dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            row = self.rows(conn, d.active_freeze_sql(role))
            conn.commit()
        if not row:
            return None
        record = d.freeze_record(row[0])
        return record.freeze_id, list(record.grants)

    def freeze(self, *, role: str, schemas: Sequence[str], services: Sequence[str] = (),
               lock_login: bool = True) -> FreezeState:
        """Stop every writer but the allowed ones writing to ``schemas``, and prove it. Idempotent.

        1. Revoke, in one transaction with their record in ``bascule_meta.freeze_state`` (so that
           unfreeze gives back exactly those): the write rights on the scope of ``role`` and of every
           other role that is not an allowed writer (table, sequence and column grants, PUBLIC's,
           default privileges of future tables, memberships in roles that keep their rights); forbid
           ``role`` to log in unless ``lock_login`` is False (a side closed until GO LIVE, whose reads
           go on). The downtime's start is taken on this worker's UTC clock right before.
        2. End the sessions of ``role`` and of every login that is a member of a writer (a member may
           have SET ROLE to it), the allowed ones excepted; the recount decides.
        3. Prove it (:meth:`CutoverDialect.freeze_findings_sql`): no role but the allowed ones can
           still write (superuser, owner, inherited, SET ROLE, PUBLIC, column, system privilege), no
           definer-rights code of a writer runs for another role, no default privilege would give a
           future table away, no prepared transaction is open. Any finding fails the freeze
           (:class:`FreezeError`) before the position is taken: the night rolls back.
        4. Take the frozen position once.

        ``services`` are the engine's named ways in that the freeze closes too (Oracle).
        """
        if not schemas:
            raise FreezeError("freeze: schemas is empty: name the schemas the application writes to")
        d = self.cutover_dialect
        allowed = self.allowed_writers
        with self._session() as conn:
            self._ensure_meta(conn)
            self._run(conn, d.freeze_lock_sql())
            attributes = self.rows(conn, d.role_attributes_sql(role))
            if not attributes:
                raise FreezeError(f"freeze: application role {role!r} does not exist on {self.db_conn_id}")
            active = self.rows(conn, d.active_freeze_sql(role))
            current = [self._taken(row) for row in self.rows(conn, d.write_grants_sql(role, schemas, allowed))]
            started: datetime | None = None
            if active:
                record = d.freeze_record(active[0])
                freeze_id, recorded = record.freeze_id, list(record.grants)
                extra = sorted(set(current) - set(recorded))
                if extra:
                    # Granted again while frozen (by hand, a deploy): revoke them too,
                    # and remember them, so unfreeze still restores the full set.
                    recorded = sorted(set(recorded) | set(extra))
                    self.rows(conn, d.update_freeze_grants_sql(freeze_id, recorded))
                revoked = tuple(recorded)
            else:
                can_login, conn_limit = attributes[0][:2]
                # The downtime starts here: the REVOKEs below refuse writes once committed.
                started = utc_now()
                returned = self._run(conn, d.record_freeze_statements(
                    role, current, can_login=bool(can_login),
                    conn_limit=None if conn_limit is None else int(conn_limit), services=services,
                    started=started))
                freeze_id = int(returned[0][0])
                revoked = tuple(current)
            self._run(conn, d.before_revoke_sql(services))
            for grant in current:
                self.rows(conn, d.revoke_sql(role, grant))
            if lock_login:
                self.rows(conn, d.lock_role_sql(role))
            conn.commit()
            writers = sorted({g.holder(role) for g in revoked if g.holder(role).upper() != PUBLIC})
            everyone = any(g.holder(role).upper() == PUBLIC for g in revoked)
            terminated = self._end_sessions(conn, role, writers=writers, everyone=everyone)
            findings = [FreezeFinding(str(k), str(sub), "" if det is None else str(det))
                        for k, sub, det in self.rows(conn, d.freeze_findings_sql(role, schemas, allowed))]
            conn.commit()
            if findings:
                shown = "; ".join(str(f) for f in findings[:10])
                raise FreezeError(f"freeze of {role!r} on {self.db_conn_id} is not proven, the night must not go "
                                  f"on: {shown}{' ...' if len(findings) > 10 else ''} (allowed writers: "
                                  f"{', '.join(allowed) or 'none'})")
            frozen_at, position = self._run(conn, d.mark_frozen_statements(freeze_id, started or utc_now()))[0][:2]
            conn.commit()
        return FreezeState(role=role, freeze_id=freeze_id, frozen_at=frozen_at, position=str(position),
                           revoked=revoked, terminated_sessions=terminated, already_frozen=bool(active),
                           login_locked=lock_login)

    def close_writes(self, *, role: str, schemas: Sequence[str]) -> FreezeState:
        """Close a side to every writer but the allowed ones, its reads left open (no login lock):
        the target, from T-minus until GO LIVE and again after every rollback. Same record, same
        proof, and :meth:`unfreeze` opens it."""
        return self.freeze(role=role, schemas=schemas, lock_login=False)

    @staticmethod
    def _taken(row: Sequence[Any]) -> Grant:
        kind, schema, name, privilege, grantable, column, grantee = row[:7]
        return Grant(str(kind), str(schema or ""), str(name), str(privilege), bool(grantable),
                     column=str(column or ""), grantee=str(grantee or ""))

    def _end_sessions(self, conn: Any, role: str, *, writers: Sequence[str] = (), everyone: bool = False) -> int:
        """End every session of ``role`` and of the logins that are members of ``writers`` (all but
        the allowed ones when ``everyone``); the number that ended. Counting again decides, not the
        statements' outcome: a session gone before its turn makes its statement fail, which is fine
        if nothing is left; sessions that outlive ``session_wait_s`` fail the freeze, counted."""
        d = self.cutover_dialect
        scope = {"writers": writers, "allowed": self.allowed_writers, "everyone": everyone}
        deadline = time.monotonic() + self.session_wait_s
        sessions = self.rows(conn, d.sessions_sql(role, **scope))
        conn.commit()
        ended, failure = 0, None
        while sessions:
            for statement in d.end_sessions_sql(role, sessions, **scope):
                try:
                    self.rows(conn, statement)
                except Exception as exc:
                    if not d.is_driver_error(exc):
                        raise
                    conn.rollback()  # what failed must not abort the next statement (PostgreSQL)
                    if not d.ending_failure_tolerated(exc):
                        raise FreezeError(f"freeze: ending a session of {role!r} on {self.db_conn_id} failed "
                                          f"with {d.error_code(exc)}: the night must not go on") from None
                    failure = d.error_code(exc)
            conn.commit()
            left = self.rows(conn, d.sessions_sql(role, **scope))
            conn.commit()
            ended += max(0, len(sessions) - len(left))
            if left and time.monotonic() > deadline:
                cause = f"; the last attempt failed with {failure}" if failure else ""
                others = f" and of members of {', '.join(w for w in writers if w != role)}" if (
                    set(writers) - {role}) else ""
                raise FreezeError(f"freeze: {len(left)} session(s) of {role!r}{others} survived being ended "
                                  f"for {self.session_wait_s:.0f} s{cause}")
            if left:
                time.sleep(0.1)
            sessions = left
        return ended

    def unfreeze(self, *, role: str, services: Sequence[str] = ()) -> UnfreezeResult:
        """Give back exactly the grants and login the freeze took away. Idempotent.

        Services the freeze recorded are started again; ``services`` stands in for a freeze
        that recorded none.
        """
        d = self.cutover_dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            self._run(conn, d.freeze_lock_sql())
            active = self.rows(conn, d.active_freeze_sql(role))
            if not active:
                conn.commit()
                return UnfreezeResult(role=role, was_frozen=False)
            record = d.freeze_record(active[0])
            for grant in record.grants:
                self.rows(conn, d.grant_sql(role, grant))
            self.rows(conn, d.restore_role_sql(role, can_login=record.can_login, conn_limit=record.conn_limit))
            # The application may write bascule's probe table, so that reopening can prove itself.
            self._run(conn, d.probe_prepare_sql(role))
            self._run(conn, d.after_restore_sql(record.services or tuple(services)))
            self.rows(conn, d.release_freeze_sql(record.freeze_id))
            conn.commit()
        return UnfreezeResult(role=role, was_frozen=True, restored=record.grants)

    # ------------------------------------------------------- reopening, proven
    def probe_write(self, *, run_id: str, side: str, database: str | None = None, wait_s: float = 10.0) -> datetime:
        """Commit bascule's probe write through this connection (the application's, through the
        endpoint): the worker's UTC clock right after the commit returned, where the downtime ends.

        Tried again for up to ``wait_s`` (an endpoint that just resumed may still be reconnecting);
        after that :class:`ProbeError`, naming the last error class only.
        """
        d = self.cutover_dialect
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with self.database_session(database=database, options=_PROBE_OPTIONS) as conn:
                    self.rows(conn, d.probe_write_sql(run_id, side))
                    conn.commit()
                return utc_now()
            except self.error_class as exc:
                if time.monotonic() > deadline:
                    raise ProbeError(f"the probe write through {self.db_conn_id} did not commit within "
                                     f"{wait_s:.0f} s: {exc}") from None
                time.sleep(0.2)

    @contextlib.contextmanager
    def lent_rights(self, role: str) -> Iterator[LentRights | None]:
        """None when ``role`` has no open freeze here (its side is open: write through the endpoint).
        Otherwise a session of this (privileged) connection and the statements that, at the start of
        each of its transactions, give ``role`` back what its freeze took and act as ``role``
        (:meth:`CutoverDialect.lend_rights_sql`); ``conn`` is None where the engine cannot lend rights
        inside a transaction it rolls back. The caller rolls every such transaction back.
        """
        active = self.active_freeze(role)
        if active is None:
            yield None
            return
        lend = self.cutover_dialect.lend_rights_sql(role, active[1])
        if lend is None:
            yield LentRights(conn=None, statements=(), hook=self)
            return
        with self._session() as conn:
            yield LentRights(conn=conn, statements=tuple(lend), hook=self)

    # ---------------------------------------------------------------- identity
    def database_identity(self) -> DatabaseIdentity:
        with self._session() as conn:
            system, database = self.rows(conn, self.cutover_dialect.database_identity_sql())[0][:2]
            conn.commit()
        return DatabaseIdentity(system=str(system), database=str(database))

    # ----------------------------------------------------------- sequences
    def sequence_values(self, schemas: Sequence[str]) -> list[SequenceValue]:
        with self._session() as conn:
            rows = self.rows(conn, self.cutover_dialect.sequence_values_sql(schemas))
            conn.commit()
        return [SequenceValue(str(s), str(n), None if v is None else int(v), int(i)) for s, n, v, i in rows]

    def advance_sequence(self, schema: str, name: str, value: int) -> bool:
        """Set the sequence to ``value`` unless it is already there or beyond; True if it moved."""
        d = self.cutover_dialect
        with self._session() as conn:
            guard = d.sequence_last_value_sql(schema, name)
            if guard is not None:
                found = self.rows(conn, guard)
                if found and found[0][0] is not None and int(found[0][0]) >= value:
                    conn.commit()
                    return False
            moved = self.rows(conn, d.advance_sequence_sql(schema, name, value))
            conn.commit()
        # A statement that compares itself returns a row only when it moved; else the guard decided.
        return bool(moved) or guard is not None

    # --------------------------------------------------------- constraints
    def invalid_constraints(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        with self._session() as conn:
            rows = self.rows(conn, self.cutover_dialect.invalid_constraints_sql(schemas))
            conn.commit()
        return [CatalogFinding(str(s), str(t), str(n), str(k)) for s, t, n, k in rows]

    def disabled_triggers(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        with self._session() as conn:
            rows = self.rows(conn, self.cutover_dialect.disabled_triggers_sql(schemas))
            conn.commit()
        return [CatalogFinding(str(s), str(t), str(n), str(k)) for s, t, n, k in rows]

    def validate_constraint(self, schema: str, table: str, constraint: str) -> None:
        with self._session() as conn:
            self.rows(conn, self.cutover_dialect.validate_constraint_sql(schema, table, constraint))
            conn.commit()

    def foreign_key_orphans(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        """Foreign keys with child rows lacking a parent: counts only. Empty where the engine's
        replication enforces foreign keys (the dialect has no foreign keys to count)."""
        d = self.cutover_dialect
        foreign_keys = d.foreign_keys_sql(schemas)
        if foreign_keys is None:
            return []
        out = []
        with self._session() as conn:
            for schema, table, name, cols, rschema, rtable, rcols in self.rows(conn, foreign_keys):
                (orphans,) = self.rows(conn, d.orphan_count_sql(schema, table, cols.split(","), rschema, rtable,
                                                                rcols.split(",")))[0]
                if int(orphans):
                    out.append(CatalogFinding(str(schema), str(table), str(name), "f",
                                              {"orphan_rows": int(orphans)}))
            conn.commit()
        return out

    def foreign_key_orphans_changed(self, schemas: Sequence[str], changed: Mapping[str, TableChanges]
                                    ) -> tuple[list[CatalogFinding], list[dict[str, Any]]]:
        """:meth:`foreign_key_orphans`, counted only among the child rows a change can have orphaned since
        the last full count (ADR 0061): the child rows changed, and the child rows pointing at a parent key
        changed (deleted, or its key updated). A TRUNCATE on either side, or a key that references other
        columns than the parent's primary key (a deleted parent's other columns are not decoded), counts
        that foreign key whole. Returns the findings and, per foreign key, how it was checked."""
        d = self.cutover_dialect
        foreign_keys = d.foreign_keys_sql(schemas)
        if foreign_keys is None:
            return [], []
        lowered = {name.lower(): c for name, c in changed.items()}
        out, scopes = [], []
        with self._session() as conn:
            for schema, table, name, cols, rschema, rtable, rcols in self.rows(conn, foreign_keys):
                columns, ref_columns = cols.split(","), rcols.split(",")
                child = lowered.get(f"{schema}.{table}".lower())
                parent = lowered.get(f"{rschema}.{rtable}".lower())
                among, whole = [], None
                if child is None or parent is None:
                    # Nothing known of its changes: only a whole count proves it.
                    whole = f"{schema}.{table}" if child is None else f"{rschema}.{rtable}"
                    whole += " is not tracked"
                elif child.whole or parent.whole:
                    whole = child.whole or parent.whole
                if whole is None and child is not None and child.keys:
                    among.append(KeySet(columns=tuple((d.quote_ident(n), t) for n, t in child.key_columns),
                                        keys=tuple(sorted(child.keys))))
                if whole is None and parent is not None and parent.keys:
                    by_ref = {_unquoted(r): c for c, r in zip(columns, ref_columns, strict=True)}
                    if set(by_ref) != {n for n, _ in parent.key_columns}:
                        whole = "it references other columns than the parent's primary key"
                    else:
                        among.append(KeySet(columns=tuple((by_ref[n], t) for n, t in parent.key_columns),
                                            keys=tuple(sorted(parent.keys))))
                scope: dict[str, Any] = {"foreign_key": f"{schema}.{table}.{name}"}
                if whole is None and not among:
                    scopes.append({**scope, "checked": "unchanged since the full count"})
                    continue
                query = d.orphan_count_sql(schema, table, columns, rschema, rtable, ref_columns,
                                           among=() if whole else among)
                (orphans,) = self.rows(conn, query)[0]
                scopes.append({**scope, "checked": f"whole: {whole}" if whole else "changed rows",
                               "rows_in_scope": None if whole else sum(len(k.keys) for k in among)})
                if int(orphans):
                    out.append(CatalogFinding(str(schema), str(table), str(name), "f",
                                              {"orphan_rows": int(orphans)}))
            conn.commit()
        return out, scopes


def _unquoted(name: str) -> str:
    """A column name as the catalog's ``quote_ident`` returned it, unquoted."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name
