"""Cutover I/O on a source or target database: restore point, freeze, unfreeze,
sequences, constraints and triggers (SQL from ``engines/*_cutover.py``).

Durable state lives in the database being acted on (``bascule_meta``): a task
retried on another worker, or after a crash, finds the freeze it started and
the grants it must give back. Only identifiers, positions, counts and catalog
names leave this hook.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from bascule.engines.postgres_cutover import (
    META_SCHEMA,
    CutoverDialect,
    Grant,
    cutover_dialect_for,
    grants_from_json,
    grants_to_json,
)


class CutoverDatabaseError(RuntimeError):
    """A cutover statement failed; the database's text is sanitised (a DETAIL can carry row values)."""


class FreezeError(RuntimeError):
    """The freeze could not be made complete; the message names what still lets the application write."""


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
    frozen_at: datetime  # database clock, after the application's sessions were ended
    position: str  # LSN / SCN at that moment: every acknowledged application write lies before it
    revoked: tuple[Grant, ...]
    terminated_sessions: int
    already_frozen: bool

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "freeze_id": self.freeze_id, "frozen_at": self.frozen_at.isoformat(),
                "position": self.position, "revoked": len(self.revoked),
                "terminated_sessions": self.terminated_sessions, "already_frozen": self.already_frozen}


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


class CutoverDatabaseHook(BaseHook):
    """A migration's source or target, for the cutover's own statements.

    ``db_conn_id`` is a privileged connection (the plan's ``conn_id``): it
    revokes, alters roles and ends sessions.
    """

    conn_name_attr = "db_conn_id"
    hook_name = "bascule cutover database"

    def __init__(self, *, db_conn_id: str, engine: str, session_wait_s: float = 15.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db_conn_id = db_conn_id
        self.engine = str(getattr(engine, "value", engine))
        self.session_wait_s = session_wait_s

    @cached_property
    def dialect(self) -> CutoverDialect:
        return cutover_dialect_for(self.engine)

    @cached_property
    def sql_hook(self) -> Any:
        if self.engine == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=self.db_conn_id)
        from airflow.providers.oracle.hooks.oracle import OracleHook

        return OracleHook(oracle_conn_id=self.db_conn_id)

    def get_conn(self) -> Any:
        return self.sql_hook.get_conn()

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        conn = self.get_conn()
        try:
            yield from self._guarded(conn)
        finally:
            conn.close()

    def _guarded(self, conn: Any) -> Iterator[Any]:
        from bascule.notifications.sanitize import sanitize_error_text

        try:
            if self.engine == "postgres":
                # The freeze must not be held up by, nor hold up, the application.
                with conn.cursor() as cur:
                    cur.execute("SET lock_timeout = '10s'")
                conn.commit()
            yield conn
        except (FreezeError, CutoverDatabaseError):
            raise
        except Exception as exc:
            if type(exc).__module__.split(".")[0] not in ("psycopg", "psycopg2", "oracledb"):
                raise
            # from None: the original exception (and its DETAIL) stays out of the traceback.
            raise CutoverDatabaseError(f"{self.db_conn_id}: {type(exc).__name__}: "
                                       f"{sanitize_error_text(str(exc))}") from None

    @staticmethod
    def _rows(conn: Any, query: tuple[str, dict[str, Any]] | str) -> list[tuple[Any, ...]]:
        sql, params = (query, {}) if isinstance(query, str) else query
        cur = conn.cursor()
        try:
            cur.execute(sql, params or None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            cur.close()

    def _ensure_meta(self, conn: Any) -> None:
        for stmt in self.dialect.ensure_meta_sql():
            self._rows(conn, stmt)
        conn.commit()

    # ------------------------------------------------------- restore point
    def create_restore_point(self, name: str) -> RestorePoint:
        """Create the named restore point once; a retry returns the one already made."""
        d = self.dialect
        with self._session() as conn:
            if self.engine == "oracle":
                found = self._rows(conn, d.restore_point_lookup_sql(name))  # type: ignore[attr-defined]
                created = not found
                if created:
                    self._rows(conn, d.create_restore_point_sql(name))
                    found = self._rows(conn, d.restore_point_lookup_sql(name))  # type: ignore[attr-defined]
                scn, at, _guaranteed = found[0]
                return RestorePoint(name=name.upper(), position=str(scn), created_at=at, created=created)
            self._ensure_meta(conn)
            self._rows(conn, f"LOCK TABLE {META_SCHEMA}.restore_points IN SHARE ROW EXCLUSIVE MODE")
            found = self._rows(conn, d.restore_point_lookup_sql(name))  # type: ignore[attr-defined]
            if found:
                conn.commit()
                return RestorePoint(name=name, position=str(found[0][0]), created_at=found[0][1], created=False)
            (lsn,) = self._rows(conn, d.create_restore_point_sql(name))[0]
            position, at = self._rows(conn, d.record_restore_point_sql(name, lsn))[0]  # type: ignore[attr-defined]
            conn.commit()
            return RestorePoint(name=name, position=str(position), created_at=at, created=True)

    # -------------------------------------------------------------- freeze
    def active_freeze(self, role: str) -> tuple[int, list[Grant]] | None:
        with self._session() as conn:
            self._ensure_meta(conn)
            row = self._rows(conn, self.dialect.active_freeze_sql(role))
            conn.commit()
        return (int(row[0][0]), grants_from_json(row[0][1])) if row else None

    def freeze(self, *, role: str, schemas: Sequence[str], services: Sequence[str] = ()) -> FreezeState:
        """Stop ``role`` writing to ``schemas``: revoke, forbid login, end its sessions. Idempotent.

        The grants taken away are recorded in ``bascule_meta.freeze_state`` in the
        same transaction as the REVOKEs, so unfreeze can give back exactly those.
        """
        if not schemas:
            raise FreezeError("freeze: schemas is empty: name the schemas the application writes to")
        if self.engine == "oracle":
            return self._oracle_freeze(role=role, schemas=schemas, services=services)
        d: Any = self.dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            self._rows(conn, f"LOCK TABLE {META_SCHEMA}.freeze_state IN SHARE ROW EXCLUSIVE MODE")
            if not self._rows(conn, d.role_attributes_sql(role)):
                raise FreezeError(f"freeze: application role {role!r} does not exist on {self.db_conn_id}")
            active = self._rows(conn, d.active_freeze_sql(role))
            current = [Grant(k, s, n, p, bool(g)) for k, s, n, p, g in self._rows(conn, d.write_grants_sql(role, schemas))]
            if active:
                freeze_id, recorded = int(active[0][0]), grants_from_json(active[0][1])
                extra = sorted(set(current) - set(recorded))
                if extra:
                    # Granted again while frozen (by hand, a deploy): revoke them too,
                    # and remember them, so unfreeze still restores the full set.
                    recorded = sorted(set(recorded) | set(extra))
                    self._rows(conn, (f"UPDATE {META_SCHEMA}.freeze_state SET grants = %(g)s::jsonb "
                                      "WHERE freeze_id = %(id)s",
                                      {"g": grants_to_json(recorded), "id": freeze_id}))
                revoked = tuple(recorded)
            else:
                can_login, conn_limit = self._rows(conn, d.role_attributes_sql(role))[0]
                (freeze_id,) = self._rows(conn, d.record_freeze_sql(role, current, can_login=bool(can_login),
                                                                     conn_limit=int(conn_limit)))[0]
                revoked = tuple(current)
            for grant in current:
                self._rows(conn, d.revoke_sql(role, grant))
            self._rows(conn, d.lock_role_sql(role))
            conn.commit()
            terminated = self._end_sessions(conn, role)
            left = self._rows(conn, d.remaining_write_rights_sql(role, schemas))
            conn.commit()
            if left:
                names = ", ".join(f"{p} on {s}.{n}" for s, n, p in left[:10])
                raise FreezeError(f"freeze of {role!r} is incomplete: it can still use {names}"
                                  f"{' ...' if len(left) > 10 else ''} (inherited from another role or PUBLIC?)")
            frozen_at, position = self._rows(conn, d.mark_frozen_sql(freeze_id))[0]
            conn.commit()
        return FreezeState(role=role, freeze_id=int(freeze_id), frozen_at=frozen_at, position=str(position),
                           revoked=revoked, terminated_sessions=terminated, already_frozen=bool(active))

    def _end_sessions(self, conn: Any, role: str) -> int:
        d: Any = self.dialect
        terminated = 0
        deadline = time.monotonic() + self.session_wait_s
        while True:
            (n,) = self._rows(conn, d.terminate_sessions_sql(role))[0]
            conn.commit()
            terminated += int(n)
            (left,) = self._rows(conn, d.sessions_sql(role))[0]
            conn.commit()
            if int(left) == 0:
                return terminated
            if time.monotonic() > deadline:
                raise FreezeError(f"freeze: {left} session(s) of {role!r} survived pg_terminate_backend "
                                  f"for {self.session_wait_s:.0f} s")
            time.sleep(0.1)

    def unfreeze(self, *, role: str, services: Sequence[str] = ()) -> UnfreezeResult:
        """Give back exactly the grants and login the freeze took away. Idempotent."""
        if self.engine == "oracle":
            return self._oracle_unfreeze(role=role, services=services)
        d: Any = self.dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            self._rows(conn, f"LOCK TABLE {META_SCHEMA}.freeze_state IN SHARE ROW EXCLUSIVE MODE")
            active = self._rows(conn, d.active_freeze_sql(role))
            if not active:
                conn.commit()
                return UnfreezeResult(role=role, was_frozen=False)
            freeze_id, grants_json, can_login, conn_limit = active[0][:4]
            grants = grants_from_json(grants_json)
            for grant in grants:
                self._rows(conn, d.grant_sql(role, grant))
            self._rows(conn, d.restore_role_sql(role, can_login=bool(can_login), conn_limit=int(conn_limit)))
            self._rows(conn, d.release_freeze_sql(int(freeze_id)))
            conn.commit()
        return UnfreezeResult(role=role, was_frozen=True, restored=tuple(grants))

    # Oracle: same contract, through restricted session, services and account lock.
    # Written against the dialect's tested text; never run against a live Oracle here.
    def _oracle_freeze(self, *, role: str, schemas: Sequence[str], services: Sequence[str]) -> FreezeState:
        d: Any = self.dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            active = self._rows(conn, d.active_freeze_sql(role))
            current = [Grant(k, s, n, p, bool(g)) for k, s, n, p, g in self._rows(conn, d.write_grants_sql(role, schemas))]
            if not active:
                (status,) = self._rows(conn, d.account_status_sql(role))[0]
                self._rows(conn, d.record_freeze_sql(role, current, can_login="LOCKED" not in str(status),
                                                     services=services))
                conn.commit()
                active = self._rows(conn, d.active_freeze_sql(role))
            freeze_id, grants_json = int(active[0][0]), active[0][1]
            grants_json = grants_json.read() if hasattr(grants_json, "read") else grants_json
            self._rows(conn, d.enable_restricted_session_sql())
            for service in services:
                self._rows(conn, d.stop_service_sql(service))
            for grant in current:
                self._rows(conn, d.revoke_sql(role, grant))
            self._rows(conn, d.lock_role_sql(role))
            sessions = self._rows(conn, d.sessions_sql(role))
            for sid, serial, inst in sessions:
                with contextlib.suppress(Exception):  # ORA-00030: already gone
                    self._rows(conn, d.kill_session_sql(sid, serial, inst))
            self._rows(conn, d.mark_frozen_sql(freeze_id))
            conn.commit()
            row = self._rows(conn, d.active_freeze_sql(role))[0]
        return FreezeState(role=role, freeze_id=freeze_id, frozen_at=row[4], position=str(row[5]),
                           revoked=tuple(grants_from_json(grants_json)), terminated_sessions=len(sessions),
                           already_frozen=not current)

    def _oracle_unfreeze(self, *, role: str, services: Sequence[str]) -> UnfreezeResult:
        d: Any = self.dialect
        with self._session() as conn:
            self._ensure_meta(conn)
            active = self._rows(conn, d.active_freeze_sql(role))
            if not active:
                return UnfreezeResult(role=role, was_frozen=False)
            freeze_id, grants_json, can_login, recorded_services = active[0][:4]
            grants_json = grants_json.read() if hasattr(grants_json, "read") else grants_json
            grants = grants_from_json(grants_json)
            for grant in grants:
                self._rows(conn, d.grant_sql(role, grant))
            self._rows(conn, d.restore_role_sql(role, can_login=bool(can_login)))
            for service in [s for s in str(recorded_services or "").split(",") if s] or services:
                self._rows(conn, d.start_service_sql(service))
            self._rows(conn, d.disable_restricted_session_sql())
            self._rows(conn, d.release_freeze_sql(int(freeze_id)))
            conn.commit()
        return UnfreezeResult(role=role, was_frozen=True, restored=tuple(grants))

    # ----------------------------------------------------------- sequences
    def sequence_values(self, schemas: Sequence[str]) -> list[SequenceValue]:
        with self._session() as conn:
            rows = self._rows(conn, self.dialect.sequence_values_sql(schemas))
            conn.commit()
        return [SequenceValue(str(s), str(n), None if v is None else int(v), int(i)) for s, n, v, i in rows]

    def advance_sequence(self, schema: str, name: str, value: int) -> bool:
        """Set the sequence to ``value`` unless it is already there or beyond; True if it moved."""
        with self._session() as conn:
            if self.engine == "oracle":
                current = {(s.schema, s.name): s.last_value for s in self.sequence_values([schema])}
                if (current.get((schema.upper(), name.upper())) or 0) >= value:
                    return False
                self._rows(conn, self.dialect.advance_sequence_sql(schema, name, value))
                return True
            moved = self._rows(conn, self.dialect.advance_sequence_sql(schema, name, value))
            conn.commit()
        return bool(moved)

    # --------------------------------------------------------- constraints
    def invalid_constraints(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        with self._session() as conn:
            rows = self._rows(conn, self.dialect.invalid_constraints_sql(schemas))
            conn.commit()
        return [CatalogFinding(str(s), str(t), str(n), str(k)) for s, t, n, k in rows]

    def disabled_triggers(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        with self._session() as conn:
            rows = self._rows(conn, self.dialect.disabled_triggers_sql(schemas))
            conn.commit()
        return [CatalogFinding(str(s), str(t), str(n), str(k)) for s, t, n, k in rows]

    def validate_constraint(self, schema: str, table: str, constraint: str) -> None:
        with self._session() as conn:
            self._rows(conn, self.dialect.validate_constraint_sql(schema, table, constraint))
            conn.commit()

    def foreign_key_orphans(self, schemas: Sequence[str]) -> list[CatalogFinding]:
        """Foreign keys with child rows lacking a parent (PostgreSQL): counts only."""
        d: Any = self.dialect
        out = []
        with self._session() as conn:
            for schema, table, name, cols, rschema, rtable, rcols in self._rows(conn, d.foreign_keys_sql(schemas)):
                (orphans,) = self._rows(conn, d.orphan_count_sql(schema, table, cols.split(","), rschema, rtable,
                                                                rcols.split(",")))[0]
                if int(orphans):
                    out.append(CatalogFinding(str(schema), str(table), str(name), "f",
                                              {"orphan_rows": int(orphans)}))
            conn.commit()
        return out
