"""The hook for source and target databases, whatever their engine, and the base of every other one.

It wraps the providers' own hooks (PostgresHook, OracleHook) for connections and
secrets, and runs the SQL of the engine's dialect. Which provider hook, which
connect parameters, which exceptions are the driver's: all of it comes from the
dialect (``bascule.engines``), so no hook compares an engine's name. A driver's
error text can quote a row (a DETAIL line, a bind value): it leaves a hook only
sanitised, as the hook's own error class. Only identifiers and counts leave it:
no query here selects a row value.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from bascule.engines import dialect_for
from bascule.engines.base import ConnectOptions, Dialect, EngineDialect
from bascule.inventory import SequenceInventory, SideInventory, TableInventory
from bascule.privacy.sanitize import SafeMessage, know_objects, sanitize_error_text

Statement = tuple[Any, dict[str, Any]] | str


class MigrationDatabaseError(RuntimeError, SafeMessage):
    """A database call failed; the driver's text is sanitised (a DETAIL can carry row values)."""


class MigrationDatabaseHook(BaseHook):
    """Source or target database of a migration: connections, sessions and sanitised errors.

    Subclasses (cutover, validation, preparation) add their statements; they set
    ``error_class`` to the error their callers catch.
    """

    conn_name_attr = "db_conn_id"
    hook_name = "bascule migration database"
    error_class: type[Exception] = MigrationDatabaseError

    def __init__(self, *, db_conn_id: str, engine: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db_conn_id = db_conn_id
        self.engine = str(getattr(engine, "value", engine))

    @cached_property
    def dialect(self) -> Dialect:
        return dialect_for(self.engine)

    @property
    def engine_dialect(self) -> EngineDialect:
        """The facts connecting needs; every dialect of the engine carries them."""
        return self.dialect

    # ----------------------------------------------------------------- connections

    def provider_hook(self, *, database: str | None = None, options: ConnectOptions | None = None) -> Any:
        """The engine's provider hook on ``db_conn_id``, on ``database`` of the same server if given,
        with the connect parameters ``options`` asks for merged into the connection's extra."""
        d = self.engine_dialect
        module, _, name = d.provider_hook.rpartition(".")
        kwargs: dict[str, Any] = {d.provider_conn_arg: self.db_conn_id, **d.provider_hook_kwargs(database=database)}
        extra = d.connect_parameters(options) if options is not None else {}
        if extra:
            conn = copy.copy(self.get_connection(self.db_conn_id))
            conn.extra = json.dumps({**conn.extra_dejson, **extra})
            kwargs["connection"] = conn
        return getattr(importlib.import_module(module), name)(**kwargs)

    @cached_property
    def sql_hook(self) -> Any:
        return self.provider_hook()

    def get_conn(self) -> Any:
        return self.sql_hook.get_conn()

    def connect(self, *, database: str | None = None, options: ConnectOptions | None = None) -> Any:
        """A new driver connection; database errors come out as ``error_class``, sanitised."""
        own_hook = database is not None or bool(options and self.engine_dialect.connect_parameters(options))
        with self.guarded(doing="cannot connect"):
            if own_hook:
                conn = self.provider_hook(database=database, options=options).get_conn()
            else:
                conn = self.get_conn()  # the cached provider hook: no second look-up of the connection
            if options is not None and options.autocommit:
                conn.autocommit = True
        return conn

    @contextmanager
    def database_session(self, *, setup: Sequence[str] = (), database: str | None = None,
                         options: ConnectOptions | None = None) -> Iterator[Any]:
        """A connection with ``setup`` run (and committed) first, closed afterwards; database errors
        inside come out as ``error_class``, sanitised. Other exceptions pass unchanged."""
        conn = self.connect(database=database, options=options)
        try:
            if setup:
                with self.guarded(doing="session setup failed"):
                    with conn.cursor() as cur:
                        for statement in setup:
                            cur.execute(statement)
                    if not getattr(conn, "autocommit", False):
                        conn.commit()
            with self.guarded():
                yield conn
        finally:
            conn.close()

    @contextmanager
    def guarded(self, *, doing: str | None = None) -> Iterator[None]:
        """Driver errors raised inside become ``error_class`` with the text sanitised and no cause."""
        try:
            yield
        except Exception as exc:
            if not self.engine_dialect.is_driver_error(exc):
                raise
            # from None: the original exception (and its DETAIL) stays out of the traceback.
            raise self.error_class(self.describe_error(exc, doing=doing)) from None

    def describe_error(self, exc: BaseException, *, doing: str | None = None) -> str:
        what = f"{doing}: " if doing else ""
        return f"{self.db_conn_id}: {what}{sanitize_error_text(exc)}"

    @staticmethod
    def rows(conn: Any, query: Statement) -> list[tuple[Any, ...]]:
        """Run one statement on ``conn``; its rows, or [] for a statement that returns none."""
        sql, params = (query, {}) if isinstance(query, str) else query
        cur = conn.cursor()
        try:
            cur.execute(sql, params or None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
        finally:
            cur.close()

    # ----------------------------------------------------------------- inventory

    def records(self, query: tuple[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
        sql, params = query
        return [tuple(r) for r in self.sql_hook.get_records(sql, parameters=params or None)]

    def inventory(
        self, *, side: str, schemas: list[str], keep: Callable[[str, str], bool] | None = None
    ) -> SideInventory:
        """Tables (exact row counts) and sequences of the schemas; ``keep(schema, table)`` narrows the scope."""
        (version,) = self.records(self.dialect.server_version_sql())[0]
        tables = []
        for schema, name, partitioned, partitions, total_bytes, pk, replident in self.records(
            self.dialect.inventory_tables_sql(schemas)
        ):
            if keep is not None and not keep(schema, name):
                continue
            know_objects([f"{schema}.{name}", *(pk.split(",") if pk else ())])
            (rows,) = self.records(self.dialect.count_rows_sql(schema, name))[0]
            tables.append(TableInventory(
                schema=schema, name=name, rows=int(rows), total_bytes=int(total_bytes or 0),
                primary_key=tuple(pk.split(",")) if pk else (),
                replica_identity=self.dialect.replica_identity_name(replident),
                partitioned=bool(partitioned), partitions=int(partitions or 0),
            ))
        sequences = tuple(
            SequenceInventory(schema=s, name=n, last_value=None if lv is None else int(lv), increment_by=int(inc))
            for s, n, lv, inc in self.records(self.dialect.inventory_sequences_sql(schemas))
        )
        return SideInventory(side=side, conn_id=self.db_conn_id, engine=self.engine,
                             server_version=str(version), tables=tuple(tables), sequences=sequences)
