"""I/O of the preparation months: catalogue reads, storage actions, clones and pgbench, on one database.

The hook reads its endpoint from an Airflow connection and connects through the
engine's provider hook (``MigrationDatabaseHook``); the SQL comes from the engine's
dialect module (``engines/postgres_assessment.py``, ``engines/oracle_assessment.py``).
Database errors are sanitised before they leave: a DETAIL line can quote a row.
The clone and client helpers (pg_dump, pgbench, COPY) are PostgreSQL's tools.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from bascule.engines.base import ConnectOptions
from bascule.hooks.database import MigrationDatabaseError, MigrationDatabaseHook
from bascule.privacy.sanitize import sanitize_error_text

PGBENCH = os.environ.get("BASCULE_PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
PG_BINDIR = Path(PGBENCH).parent
# libpq clients (pgbench, pg_dump) get the same session settings as the hook's own sessions.
_OPTIONS = "-c TimeZone=UTC -c DateStyle=ISO,YMD -c statement_timeout=0"


class PreparationDatabaseError(MigrationDatabaseError):
    """A database call of the preparation failed; the message is sanitised."""


def _safe(exc: BaseException) -> str:
    return sanitize_error_text(exc)


class AssessmentHook(MigrationDatabaseHook):
    """One database of the migration (source or target, or a clone of it), for the preparation stages.

    One autocommit connection, kept until :meth:`close`. Any error of a statement (not only
    the driver's) leaves as :class:`PreparationDatabaseError`, sanitised.
    """

    hook_name = "bascule preparation database"
    error_class = PreparationDatabaseError

    def __init__(self, *, db_conn_id: str, engine: str = "postgres", dbname: str | None = None,
                 connect_timeout_s: int = 10, **kwargs: Any) -> None:
        super().__init__(db_conn_id=db_conn_id, engine=engine, **kwargs)
        self.dbname = dbname
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None

    # ----------------------------------------------------------------- connection

    @cached_property
    def airflow_connection(self) -> Any:
        return self.get_connection(self.db_conn_id)

    @property
    def database(self) -> str:
        return self.dbname or self.airflow_connection.schema or "postgres"

    def for_database(self, dbname: str) -> AssessmentHook:
        """The same endpoint and credentials, on another database of the same server (a clone)."""
        return AssessmentHook(db_conn_id=self.db_conn_id, engine=self.engine, dbname=dbname,
                              connect_timeout_s=self.connect_timeout_s)

    def _connect(self) -> Any:
        # Errors are worded by the caller (conn): the provider hook is called unguarded here.
        options = ConnectOptions(autocommit=True, application_name="bascule-preparation",
                                 connect_timeout_s=self.connect_timeout_s)
        conn = self.provider_hook(database=self.database, options=options).get_conn()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for statement in self.dialect.preparation_session_sql():
                    cur.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> Any:
        if self._conn is None or getattr(self._conn, "closed", False):
            try:
                self._conn = self._connect()
            except Exception as exc:
                raise PreparationDatabaseError(
                    f"cannot connect to {self.db_conn_id} (database {self.database}): {_safe(exc)}") from None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AssessmentHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- statements

    def records(self, query: tuple[Any, dict[str, Any]]) -> list[tuple[Any, ...]]:
        statement, params = query
        try:
            cur = self.conn.cursor()
            cur.execute(statement, params or None)
            rows = [tuple(r) for r in cur.fetchall()]
            cur.close()
            return rows
        except PreparationDatabaseError:
            raise
        except Exception as exc:
            raise PreparationDatabaseError(f"{self.db_conn_id}/{self.database}: {_safe(exc)}") from None

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> None:
        try:
            self.conn.execute(statement, params or None)
        except PreparationDatabaseError:
            raise
        except Exception as exc:
            raise PreparationDatabaseError(f"{self.db_conn_id}/{self.database}: {_safe(exc)}") from None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.conn.transaction():
            yield self.conn

    def ping(self) -> None:
        self.records(self.dialect.ping_sql())

    # ----------------------------------------------------------------- facts not in SQL

    def data_directory_free_bytes(self) -> int | None:
        """Free bytes of the file system holding the data directory, or None if the role may not see it.

        PostgreSQL has no SQL function for free disk space; ``COPY FROM PROGRAM 'df'``
        runs it on the database server itself (superuser or pg_execute_server_program).
        """
        from bascule.engines import postgres_assessment as q

        try:
            ((path,),) = self.records(q.data_directory())
            self.execute(q.create_df_scratch())
            self.execute(q.truncate_df_scratch())
            self.execute(q.copy_df_output(str(path)))
            rows = self.records((q.read_df_scratch(), {}))
        except PreparationDatabaseError as exc:
            self.log.info("free space of %s not measurable: %s", self.db_conn_id, exc)
            return None
        for (line,) in rows:
            fields = str(line).split()
            if len(fields) >= 4 and fields[3].isdigit():
                return int(fields[3]) * 1024
        return None

    # ----------------------------------------------------------------- clones and clients

    def libpq_env(self, *, dbname: str | None = None, conn_id: str | None = None) -> dict[str, str]:
        """Environment for a libpq client (pgbench, pg_dump): the password never appears on a command line."""
        c = self.get_connection(conn_id) if conn_id else self.airflow_connection
        return {
            "PGHOST": c.host or "127.0.0.1", "PGPORT": str(c.port or 5432), "PGUSER": c.login or "",
            "PGPASSWORD": c.password or "", "PGDATABASE": dbname or self.database,
            "PGOPTIONS": _OPTIONS, "PGCONNECT_TIMEOUT": str(self.connect_timeout_s),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
        }

    def copy_database_with_dump(self, *, source_db: str, clone_db: str, timeout_s: float = 3600) -> None:
        """pg_dump | pg_restore into ``clone_db`` (already created): works while others use ``source_db``."""
        dump = shutil.which("pg_dump", path=str(PG_BINDIR)) or "pg_dump"
        restore = shutil.which("pg_restore", path=str(PG_BINDIR)) or "pg_restore"
        env = self.libpq_env(dbname=source_db)
        with subprocess.Popen([dump, "-Fc", "--no-subscriptions", "--no-publications", "-d", source_db],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as producer:
            consumer = subprocess.run([restore, "--no-owner", "--exit-on-error", "-d", clone_db],
                                      stdin=producer.stdout, capture_output=True, env=env, timeout=timeout_s)
            producer.stdout.close()  # type: ignore[union-attr]
            producer.wait(timeout=timeout_s)
            err = producer.stderr.read().decode(errors="replace") if producer.stderr else ""
        if producer.returncode or consumer.returncode:
            # The whole stderr: the sanitiser keeps only codes and known names, so no tail cut mid-line matters.
            text = sanitize_error_text(err + consumer.stderr.decode(errors="replace"))
            raise PreparationDatabaseError(f"copy of {source_db} into {clone_db} failed: {text}")

    def run_pgbench(self, args: Sequence[str], *, dbname: str, conn_id: str | None = None, cwd: Path,
                    timeout_s: float, pooled: bool = False) -> str:
        """Run pgbench as a client in ``cwd``; returns its stdout (summary figures only, no row values).

        ``pooled``: ``conn_id`` is a pooler (PgBouncer), which refuses the ``options`` startup parameter
        the session settings travel in; the application's own sessions do without them too."""
        env = self.libpq_env(dbname=dbname, conn_id=conn_id)
        if pooled:
            env.pop("PGOPTIONS")
        proc = subprocess.run([PGBENCH, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                              env=env)
        if proc.returncode != 0:
            raise PreparationDatabaseError(
                f"pgbench failed (exit {proc.returncode}): {sanitize_error_text(proc.stderr)}")
        return proc.stdout

    def copy_rows(self, *, source_table: Any, target: AssessmentHook, target_table: Any) -> int:
        """Stream a table's rows in COPY binary format to another database; returns bytes streamed."""
        import psycopg

        from bascule.engines import postgres_assessment as q

        moved = 0
        try:
            with self.conn.cursor().copy(q.copy_out_binary(source_table)) as out, \
                    target.conn.cursor().copy(q.copy_in_binary(target_table)) as into:
                for block in out:
                    moved += len(block)
                    into.write(block)
        except psycopg.Error as exc:
            raise PreparationDatabaseError(f"copy failed: {_safe(exc)}") from None
        return moved
