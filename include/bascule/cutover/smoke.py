"""Smoke tests through the application's endpoint: the plan's checks (``cutover.smoke``).

Run as the application role, through the endpoint (in the lab the PgBouncer
``clinic_smoke`` entry, which follows every switch but is never paused), on
whichever engine answers: the SQL is the team's, from the plan, and reaches the
database through the common hook and the engine's provider hook. A read keeps
its row count; a write runs in a transaction that is always rolled back and
keeps the number of rows it affected. A check's ``key`` keeps its one integer
value, a surrogate id. Only counts, keys, the server's name and error class
names (SQLSTATE class names, ORA- codes) come back: never a value of the chart.

On a side closed to the application until GO LIVE (the target, ADR 0038) a
write through the endpoint is refused by design. Its write checks then run as
the application role on bascule's own session there, in a transaction that
first gives the role back the rights its closure took and is always rolled
back: nobody else ever sees those rights, and the check still proves that the
role, with exactly what it will get at GO LIVE, can write. The reads still go
through the endpoint. Where the engine cannot lend rights that way (Oracle:
GRANT commits), the write checks are skipped and reported as such; the probe
write at GO LIVE proves the application's writes then.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bascule.engines.base import ConnectOptions
from bascule.hooks.cutover import LentRights
from bascule.hooks.database import MigrationDatabaseHook
from bascule.plan import SmokeCheck, SmokeKind
from bascule.privacy.sanitize import SafeMessage

# How the write checks ran (SmokeResult.write_path).
THROUGH_ENDPOINT = "endpoint"
LENT = "lent"  # as the application, rights lent in a transaction rolled back (a side closed until GO LIVE)
SKIPPED = "skipped"  # closed, and the engine cannot lend rights: not run

# A pooler may sit in between: no server-side prepared statement, and a session that says who it is.
_OPTIONS = ConnectOptions(through_pooler=True, application_name="bascule-smoke", connect_timeout_s=10)


class SmokeCheckFailed(Exception, SafeMessage):
    """A check answered, but not as the plan says (too few rows, no key); the message holds no value."""


@dataclass(frozen=True)
class SmokeResult:
    server: str  # name of the server that answered (cluster_name, instance name; '' if unset)
    chart: dict[str, int]  # rows returned per read check
    writes: dict[str, int]  # rows affected per write check, rolled back
    keys: dict[str, int | None]  # the checks' keys (surrogate ids), None where not reached
    read_ok: bool
    write_ok: bool
    read_error: str | None  # error class name (or what failed) of the first read that failed
    write_error: str | None  # error class name of the first write refused (e.g. InsufficientPrivilege)
    failed: tuple[str, ...] = field(default_factory=tuple)  # names of the checks that failed
    seconds: float = 0.0
    write_path: str = THROUGH_ENDPOINT
    skipped: tuple[str, ...] = field(default_factory=tuple)  # write checks not run (write_path "skipped")

    @property
    def ok(self) -> bool:
        return self.read_ok and self.write_ok

    def __getattr__(self, name: str) -> Any:
        # The plan names its keys (patient_id, observation_id): they read as attributes too.
        keys = self.__dict__.get("keys") or {}
        if name in keys:
            return keys[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or key {name!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"server": self.server, "chart": dict(self.chart), "writes": dict(self.writes),
                "keys": dict(self.keys), "read_ok": self.read_ok, "write_ok": self.write_ok,
                "read_error": self.read_error, "write_error": self.write_error, "failed": list(self.failed),
                "seconds": round(self.seconds, 3), "ok": self.ok, "write_path": self.write_path,
                "skipped": list(self.skipped)}


def _integer(rows: Sequence[Sequence[Any]], check: SmokeCheck) -> int:
    """The one integer the check returned, or SmokeCheckFailed (saying what came back, not the value)."""
    if len(rows) != 1 or len(rows[0]) != 1:
        raise SmokeCheckFailed(f"{check.name}: key {check.key} needs one row of one column "
                               f"(got {len(rows)} row(s))")
    value = rows[0][0]
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SmokeCheckFailed(f"{check.name}: key {check.key} is not an integer "
                               f"({'NULL' if value is None else type(value).__name__})")
    return value


def _run_check(hook: MigrationDatabaseHook, conn: Any, check: SmokeCheck, keys: dict[str, int | None],
               setup: Sequence[Any] = ()) -> tuple[int, int | None]:
    """(rows returned or affected, key or None) of one check, after ``setup`` in the same transaction;
    rolled back whatever happens (``setup`` too)."""
    d = hook.engine_dialect
    params = {name: keys[name] for name in d.binds_of(check.sql)}
    cur = conn.cursor()
    try:
        for statement in setup:
            sql, binds = (statement, None) if isinstance(statement, str) else statement
            cur.execute(sql, binds or None)
        cur.execute(d.driver_sql(check.sql), params or None)
        if check.kind is SmokeKind.READ:
            rows = cur.fetchall()
            count = len(rows)
            if count < check.required_rows:
                raise SmokeCheckFailed(f"{check.name}: {count} row(s), at least {check.required_rows} expected")
        else:
            count = int(cur.rowcount)
            rows = cur.fetchall() if check.key and cur.description else []
            if count < 1:
                raise SmokeCheckFailed(f"{check.name}: the write affected no row")
        return count, _integer(rows, check) if check.key else None
    finally:
        cur.close()
        # Reads hold nothing; a write must never commit.
        conn.rollback()


def run_smoke(hook: MigrationDatabaseHook, checks: Sequence[SmokeCheck], *, database: str | None = None,
              lent: LentRights | None = None) -> SmokeResult:
    """The checks in order, on one connection of ``hook`` (the application's, through the endpoint).

    A read that fails stops the run (the checks after it may need its key); a write
    that fails is recorded and the run goes on. Database errors are named by class.
    With ``lent`` (a side closed until GO LIVE) the writes run on its session, each after its
    statements in a transaction rolled back, or are skipped when it has no session.
    """
    d = hook.engine_dialect
    started = time.monotonic()
    chart: dict[str, int] = {}
    writes: dict[str, int] = {}
    keys: dict[str, int | None] = {c.key: None for c in checks if c.key}
    errors: dict[SmokeKind, str] = {}
    failed: list[str] = []
    skipped: list[str] = []
    write_path = THROUGH_ENDPOINT if lent is None else (LENT if lent.conn is not None else SKIPPED)
    with hook.database_session(database=database, options=_OPTIONS) as conn:
        rows = hook.rows(conn, d.server_name_sql())
        conn.rollback()
        server = "" if not rows or rows[0][0] is None else str(rows[0][0])
        for check in checks:
            try:
                if check.kind is SmokeKind.WRITE and lent is not None:
                    if lent.conn is None:
                        skipped.append(check.name)
                        continue
                    count, key = _run_check(lent.hook, lent.conn, check, keys, setup=lent.statements)
                else:
                    count, key = _run_check(hook, conn, check, keys)
            except SmokeCheckFailed as exc:
                errors.setdefault(check.kind, str(exc))
            except Exception as exc:
                if not d.is_driver_error(exc):
                    raise
                # The class only (e.g. InsufficientPrivilege): messages can carry values.
                errors.setdefault(check.kind, d.error_code(exc))
            else:
                (chart if check.kind is SmokeKind.READ else writes)[check.name] = count
                if check.key:
                    keys[check.key] = key
                continue
            failed.append(check.name)
            if check.kind is SmokeKind.READ:
                break
    return SmokeResult(server=server, chart=chart, writes=writes, keys=keys,
                       read_ok=SmokeKind.READ not in errors,
                       write_ok=SmokeKind.WRITE not in errors and not (
                           SmokeKind.READ in errors and any(c.kind is SmokeKind.WRITE for c in checks)),
                       read_error=errors.get(SmokeKind.READ), write_error=errors.get(SmokeKind.WRITE),
                       failed=tuple(failed), seconds=time.monotonic() - started, write_path=write_path,
                       skipped=tuple(skipped))


def smoke_through(app_conn_id: str, *, checks: Sequence[SmokeCheck], engine: str, database: str | None = None,
                  lent: LentRights | None = None) -> SmokeResult:
    """The plan's smoke checks through an Airflow connection (the endpoint's application connection),
    on ``database`` of that server if given (the endpoint's follower entry); ``lent``: see :func:`run_smoke`."""
    return run_smoke(MigrationDatabaseHook(db_conn_id=app_conn_id, engine=engine), checks, database=database,
                     lent=lent)
