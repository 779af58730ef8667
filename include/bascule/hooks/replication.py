"""I/O for PostgreSQL logical replication: one publisher, one subscriber, kept-open connections.

Sensors poll every half second for hours; opening a connection (SCRAM handshake)
per poll would cost more than the queries. The hook therefore keeps one autocommit
psycopg connection per side, built from the Airflow Connection, and reconnects
after a failure. Statements are never logged: ``CREATE SUBSCRIPTION`` carries
the replication password in its CONNECTION string.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from airflow.sdk import BaseHook
from psycopg import sql

Statement = str | sql.Composable
Query = tuple[str, dict[str, Any]]

# Bound every statement: a poll that hangs would hide a broken flow behind a timeout.
_OPTIONS = "-c statement_timeout=30000 -c lock_timeout=10000 -c TimeZone=UTC -c DateStyle=ISO,YMD"


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PostgresLogicalReplicationHook(BaseHook):
    """Publisher and subscriber of one logical replication flow (either direction)."""

    conn_name_attr = "publisher_conn_id"
    hook_name = "bascule PostgreSQL logical replication"

    def __init__(self, *, publisher_conn_id: str, subscriber_conn_id: str, replication_conn_id: str,
                 connect_timeout_s: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publisher_conn_id = publisher_conn_id
        self.subscriber_conn_id = subscriber_conn_id
        self.replication_conn_id = replication_conn_id
        self.connect_timeout_s = connect_timeout_s
        self._conns: dict[str, psycopg.Connection] = {}
        self._lock = threading.Lock()

    # -- connections -----------------------------------------------------------------

    def _conn_id(self, side: str) -> str:
        if side == "publisher":
            return self.publisher_conn_id
        if side == "subscriber":
            return self.subscriber_conn_id
        raise ValueError(f"side must be 'publisher' or 'subscriber' (got {side!r})")

    def _connect(self, side: str) -> psycopg.Connection:
        c = self.get_connection(self._conn_id(side))
        return psycopg.connect(
            host=c.host or "127.0.0.1", port=int(c.port or 5432), user=c.login, password=c.password,
            dbname=c.schema or "postgres", autocommit=True, connect_timeout=self.connect_timeout_s,
            application_name=f"bascule-{side}", options=_OPTIONS,
        )

    def connection(self, side: str) -> psycopg.Connection:
        with self._lock:
            conn = self._conns.get(side)
            if conn is None or conn.closed or conn.broken:
                conn = self._connect(side)
                self._conns[side] = conn
            return conn

    def _run(self, side: str, statement: Statement, params: dict[str, Any] | None, fetch: bool) -> list[tuple]:
        conn = self.connection(side)
        try:
            cur = conn.execute(statement, params or None)  # type: ignore[arg-type]
            return [tuple(r) for r in cur.fetchall()] if fetch and cur.description else []
        except psycopg.OperationalError:
            # The next call reconnects; the caller decides whether this is breakage.
            self._discard(side)
            raise

    def _discard(self, side: str) -> None:
        with self._lock:
            conn = self._conns.pop(side, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def records(self, side: str, query: Query) -> list[tuple]:
        return self._run(side, query[0], query[1], fetch=True)

    def execute(self, side: str, statement: Statement, params: dict[str, Any] | None = None) -> list[tuple]:
        return self._run(side, statement, params, fetch=True)

    def execute_many(self, side: str, statements: Sequence[Statement]) -> None:
        for statement in statements:
            self._run(side, statement, None, fetch=False)

    def close(self) -> None:
        for side in list(self._conns):
            self._discard(side)

    # -- the subscription's connection string ----------------------------------------------

    def subscription_conninfo(self) -> str:
        """libpq conninfo the subscriber uses to reach the publisher, from the replication connection."""
        c = self.get_connection(self.replication_conn_id)
        if not c.login:
            raise ValueError(f"connection {self.replication_conn_id!r}: login is empty")
        parts = {
            "host": c.host or "127.0.0.1", "port": str(c.port or 5432), "dbname": c.schema or "postgres",
            "user": c.login,
        }
        if c.password:
            parts["password"] = c.password
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items())

    def replication_login(self) -> str:
        return str(self.get_connection(self.replication_conn_id).login)


@dataclass(frozen=True)
class FlowEvent:
    """What a run did to a replication flow on purpose (``bascule_meta.replication_flow_events``)."""

    event: str
    dag_id: str | None
    run_id: str | None
    at: Any

    @property
    def quiet(self) -> bool:
        """Stopped or retired on purpose: a monitor must not report the flow as broken."""
        return self.event in ("stopped", "retired")

    def describe(self) -> str:
        when = self.at.isoformat(timespec="seconds") if hasattr(self.at, "isoformat") else str(self.at)
        return f"{self.event} on purpose by {self.dag_id} run {self.run_id} at {when}"


class ReplicationHistoryHook(BaseHook):
    """The ``bascule_meta.replication_history`` table on the target: readings only, never row values."""

    conn_name_attr = "history_conn_id"
    hook_name = "bascule replication history"

    def __init__(self, *, history_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history_conn_id = history_conn_id

    def _sql_hook(self) -> Any:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=self.history_conn_id)

    def record(self, row: dict[str, Any], *, method: str, direction: str) -> list[tuple[Any, float]]:
        """Insert one reading; return the recent ``(observed_at, lag_seconds)`` history, newest first."""
        from bascule.engines import postgres_replication as q

        with self._sql_hook().get_conn() as conn:
            conn.autocommit = True
            cur = conn.cursor()
            for stmt in (q.create_meta_schema(), q.create_history_table()):
                cur.execute(stmt)
            cur.execute(q.insert_history(), {**row, "method": method, "direction": direction})
            sql_text, params = q.recent_history(method, direction, 50)
            cur.execute(sql_text, params)
            return [tuple(r) for r in cur.fetchall()]

    def recent(self, *, method: str, direction: str, limit: int = 5000) -> list[tuple[Any, float]]:
        """The latest ``(observed_at, lag_seconds)`` readings of a flow, newest first; none without a history."""
        from bascule.engines import postgres_replication as q

        with self._sql_hook().get_conn() as conn:
            cur = conn.cursor()
            cur.execute(*q.history_table_exists())
            if not cur.fetchone()[0]:
                return []
            cur.execute(*q.recent_history(method, direction, limit))
            return [tuple(r) for r in cur.fetchall()]

    def record_flow_event(self, *, method: str, direction: str, event: str, dag_id: str | None,
                          run_id: str | None) -> None:
        """Record what a run did to a flow on purpose: ``started``, ``stopped``, ``resumed`` or ``retired``."""
        from bascule.engines import postgres_replication as q

        with self._sql_hook().get_conn() as conn:
            conn.autocommit = True
            cur = conn.cursor()
            for stmt in (q.create_meta_schema(), q.create_flow_events_table()):
                cur.execute(stmt)
            cur.execute(q.insert_flow_event(), {"method": method, "direction": direction, "event": event,
                                                "dag_id": dag_id, "run_id": run_id})

    def last_flow_event(self, *, method: str, direction: str) -> FlowEvent | None:
        """The last thing a run did to this flow on purpose, or None (never recorded)."""
        from bascule.engines import postgres_replication as q

        with self._sql_hook().get_conn() as conn:
            cur = conn.cursor()
            cur.execute(*q.flow_events_table_exists())
            if not cur.fetchone()[0]:
                return None
            cur.execute(*q.last_flow_event(method, direction))
            row = cur.fetchone()
        return None if row is None else FlowEvent(event=row[0], dag_id=row[1], run_id=row[2], at=row[3])
