"""PgBouncer's admin console and its ``[databases]`` include file: all endpoint I/O.

The admin console speaks only the simple query protocol, hence libpq's
``send_query`` through psycopg's ``pgconn``. Every command sent is checked against a short allow-list: a
typo must fail here with a clear message, not as PgBouncer's "unknown command".
"""

from __future__ import annotations

import re
import select
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from bascule.hooks.pgbouncer_config import DatabaseTarget, rewrite_databases

_COMMAND = re.compile(r"(PAUSE|RESUME|DISABLE|ENABLE|KILL|RECONNECT|WAIT_CLOSE) [A-Za-z_][A-Za-z0-9_]*"
                      r"|RELOAD|SHOW (DATABASES|POOLS|CLIENTS|SERVERS|STATS|VERSION)")


class PgBouncerError(RuntimeError):
    """A PgBouncer admin command failed or the endpoint is not in the state it should be."""


class PgBouncerTimeout(PgBouncerError):
    """An admin command (PAUSE) did not complete in time."""


def _bounded_simple_query(pgconn: Any, statement: str, timeout_s: float) -> list[dict[str, str | None]]:
    # libpq's own calls, because the admin console honours no cancel request:
    # the only way to bound a PAUSE is to stop waiting for it.
    from psycopg import pq

    pgconn.send_query(statement.encode())
    deadline = time.monotonic() + timeout_s
    rows: list[dict[str, str | None]] = []
    error = None
    while True:
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PgBouncerTimeout(f"PgBouncer `{statement}` did not finish within {timeout_s:.0f} s")
            select.select([pgconn.socket], [], [], remaining)
            pgconn.consume_input()
        res = pgconn.get_result()
        if res is None:
            break
        if res.status == pq.ExecStatus.TUPLES_OK:
            names = [res.fname(i).decode() for i in range(res.nfields)]
            for r in range(res.ntuples):
                values = [res.get_value(r, c) for c in range(res.nfields)]
                rows.append({n: None if v is None else v.decode() for n, v in zip(names, values, strict=True)})
        elif res.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.EMPTY_QUERY):
            error = res.error_message.decode(errors="replace").strip()
    if error:
        raise PgBouncerError(f"PgBouncer `{statement}` failed: {error}")
    return rows


@dataclass(frozen=True)
class PoolEntry:
    """One row of ``SHOW DATABASES``: where an entry points and whether it is held."""

    name: str
    target: DatabaseTarget | None
    paused: bool
    disabled: bool
    current_connections: int


class PgBouncerHook(BaseHook):
    """PgBouncer admin console (``pgbouncer`` virtual database) of one endpoint.

    The connection's extra ``databases_file`` names the ``%include``d file holding
    the ``[databases]`` section; a switch rewrites it and RELOADs.
    """

    conn_name_attr = "pgbouncer_conn_id"
    default_conn_name = "bascule_endpoint_admin"
    conn_type = "postgres"
    hook_name = "PgBouncer admin console"

    def __init__(self, *, pgbouncer_conn_id: str = default_conn_name, command_timeout_s: float = 60.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if command_timeout_s <= 0:
            raise ValueError(f"command_timeout_s must be > 0 (got {command_timeout_s})")
        self.pgbouncer_conn_id = pgbouncer_conn_id
        self.command_timeout_s = command_timeout_s

    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.pgbouncer_conn_id)

    @property
    def databases_file(self) -> Path:
        path = self.connection.extra_dejson.get("databases_file")
        if not path:
            raise PgBouncerError(f"connection {self.pgbouncer_conn_id!r}: extra field 'databases_file' is missing "
                                 "(the PgBouncer [databases] include file a switch rewrites)")
        return Path(path)

    def get_conn(self) -> Any:
        import psycopg

        c = self.connection
        return psycopg.connect(
            host=c.host, port=c.port, user=c.login, password=c.password, dbname=c.schema or "pgbouncer",
            autocommit=True, connect_timeout=10,
        )

    def command(self, statement: str) -> list[dict[str, str | None]]:
        """Run one admin command; rows as dicts of text (empty for commands without a result)."""
        if not _COMMAND.fullmatch(statement):
            raise PgBouncerError(f"not an allowed PgBouncer admin command: {statement!r}")
        with self.get_conn() as conn:
            return _bounded_simple_query(conn.pgconn, statement, self.command_timeout_s)

    def databases(self) -> dict[str, PoolEntry]:
        out = {}
        for row in self.command("SHOW DATABASES"):
            target = None
            if row.get("host") and row.get("port"):
                target = DatabaseTarget(host=str(row["host"]), port=int(row["port"]), dbname=str(row["database"]))
            out[row["name"]] = PoolEntry(name=row["name"], target=target, paused=bool(int(row["paused"])),
                                         disabled=bool(int(row["disabled"])),
                                         current_connections=int(row["current_connections"]))
        return out

    def entry(self, database: str) -> PoolEntry:
        entries = self.databases()
        if database not in entries:
            raise PgBouncerError(f"PgBouncer has no database entry {database!r} (has: {', '.join(sorted(entries))})")
        return entries[database]

    def pause(self, database: str) -> bool:
        """PAUSE unless already paused; True if this call paused it.

        PAUSE returns once in-flight transactions end. If one stays open past
        the timeout the pause is undone (RESUME), so a failed pause never leaves
        a half-paused pool behind: the caller ends the sessions and retries.
        """
        if self.entry(database).paused:
            return False
        try:
            self.command(f"PAUSE {database}")
        except PgBouncerTimeout:
            self.command(f"RESUME {database}")
            raise
        return True

    def resume(self, database: str) -> bool:
        if not self.entry(database).paused:
            return False
        self.command(f"RESUME {database}")
        return True

    def reload(self) -> None:
        self.command("RELOAD")

    def repoint(self, entries: Mapping[str, DatabaseTarget]) -> bool:
        """Make each entry point at its target (file and live pooler); True if anything changed."""
        changed = rewrite_databases(self.databases_file, entries)
        live = self.databases()
        if changed or any(name not in live or live[name].target != t for name, t in entries.items()):
            self.reload()
            changed = True
            live = self.databases()
        wrong = sorted(name for name, t in entries.items() if name not in live or live[name].target != t)
        if wrong:
            raise PgBouncerError(f"after RELOAD PgBouncer entries {wrong} still do not point where "
                                 f"{self.databases_file} says: is that the file this PgBouncer includes?")
        return changed
