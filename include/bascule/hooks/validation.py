"""All database I/O of a comparison: one connection per side and per table, pinned session settings.

The comparison engine (``bascule.validation.compare``) decides what to ask; this
hook asks it, with the SQL of the engine's dialect. Only keys, counts and hashes
come back from the queries it runs; the one exception, logical decoding, extracts
the key columns inside PostgreSQL so no other value leaves the server (ADR 0021).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
from typing import Any, cast

from airflow.sdk import BaseHook

from bascule.engines.base import ConnectOptions, KeyRange, LogicalDecodingDialect
from bascule.engines.restricted import RestrictedDialect
from bascule.hooks.database import MigrationDatabaseError, MigrationDatabaseHook
from bascule.privacy.keys import KeyHasher, weak_key_reason
from bascule.privacy.sanitize import know_objects, sanitize_error_text


class ValidationDatabaseError(MigrationDatabaseError):
    """A database error during a comparison, its text already stripped of row values."""


def _plain(value: Any) -> Any:
    # Sums and keys arrive as Decimal from one engine and int from the other.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


class ComparisonSession:
    """One side's connection for one table (or one slot): the queries a comparison runs."""

    def __init__(self, hook: ValidationHook, conn: Any) -> None:
        self.hook = hook
        self.dialect = hook.dialect
        self.conn = conn

    def rows(self, query: tuple[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
        sql, params = query
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params or None)
                return [tuple(_plain(v) for v in row) for row in cur.fetchall()]
        except Exception as exc:  # any driver error may quote row values
            raise ValidationDatabaseError(
                f"{self.hook.db_conn_id}: {sanitize_error_text(exc)}"
            ) from None

    def execute(self, statement: str) -> None:
        """A statement that returns no rows (transaction control, SET)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement)
        except Exception as exc:  # same rule as rows(): the driver's text may quote values
            raise ValidationDatabaseError(
                f"{self.hook.db_conn_id}: {sanitize_error_text(exc)}"
            ) from None

    def columns(self, schema: str, table: str) -> list[tuple[str, str]]:
        columns = [(str(n), str(t)) for n, t in self.rows(self.dialect.table_columns_sql(schema, table))]
        know_objects([f"{schema}.{table}", *(n for n, _ in columns)])
        return columns

    def primary_key(self, schema: str, table: str) -> list[tuple[str, str]]:
        return [(str(n), str(t)) for n, t in self.rows(self.dialect.primary_key_sql(schema, table))]

    def bounds(self, schema: str, table: str, key_column: str) -> tuple[int | None, int | None]:
        lo, hi = self.rows(self.dialect.key_bounds_sql(schema, table, key_column))[0]
        return lo, hi

    def range_hashes(self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int, width: int,
                     within: KeyRange | None = None) -> dict[int, tuple[int, int]]:
        query = self.dialect.range_hashes_sql(schema, table, key_column=key_column, row_hash=row_hash,
                                              lo=lo, width=width, within=within)
        return {int(b): (int(n), int(h or 0)) for b, n, h in self.rows(query)}

    def range_hashes_by_blocks(self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int,
                               width: int, chunks: int, min_blocks: int) -> dict[int, tuple[int, int]] | None:
        """``range_hashes`` of the whole table read as ``chunks`` block ranges, one serial session each,
        all in this session's snapshot; None when the engine, the table or its size does not call for it.

        With workers, the planner ships every row to the leader, which aggregates alone
        (ADR 0065); here each session hashes and aggregates its own blocks, and only
        bucket sums come back. One exported snapshot makes the ranges one consistent
        read, as a parallel query is: a row updated meanwhile is counted once.
        """
        if chunks < 2 or not getattr(self.dialect, "supports_block_chunks", False) \
                or isinstance(self.dialect, RestrictedDialect):  # archived ranges: the plain path
            return None
        relkind, blocks = self.rows(self.dialect.heap_blocks_sql(schema, table))[0]
        if relkind != "r" or int(blocks) < chunks * min_blocks:
            return None
        starts = [int(blocks) * i // chunks for i in range(chunks)]
        # The last range is open: blocks a writer adds meanwhile are read too.
        ranges = [(first, nxt) for first, nxt in zip(starts, [*starts[1:], None], strict=True)]
        *begin, export = self.dialect.export_snapshot_sql()
        try:
            for statement in begin:
                self.execute(statement)
            snapshot = str(self.rows((export, {}))[0][0])
        except ValidationDatabaseError:
            # A server that refuses to export a snapshot: the single query, as before.
            self.execute("ROLLBACK")
            return None
        try:

            def one(block_range: tuple[int, int | None]) -> dict[int, tuple[int, int]]:
                with self.hook.session(parallel_workers=0) as chunk:
                    for statement in self.dialect.import_snapshot_sql(snapshot):
                        chunk.execute(statement)
                    query = self.dialect.block_range_hashes_sql(schema, table, key_column=key_column,
                                                                row_hash=row_hash, lo=lo, width=width,
                                                                blocks=block_range)
                    found = {int(b): (int(n), int(h or 0)) for b, n, h in chunk.rows(query)}
                    chunk.execute("COMMIT")
                    return found

            with ThreadPoolExecutor(max_workers=chunks, thread_name_prefix="bascule-blocks") as pool:
                parts = list(pool.map(one, ranges))
        finally:
            self.execute("COMMIT")
        total: dict[int, tuple[int, int]] = {}
        for part in parts:
            for bucket, (n, h) in part.items():
                n0, h0 = total.get(bucket, (0, 0))
                total[bucket] = (n0 + n, h0 + h)
        return total

    def hash_buckets(self, schema: str, table: str, *, key_columns: list[str], row_hash: str,
                     buckets: int) -> dict[int, tuple[int, int]]:
        query = self.dialect.hash_buckets_sql(schema, table, key_columns=key_columns, row_hash=row_hash,
                                              buckets=buckets)
        return {int(b): (int(n), int(h or 0)) for b, n, h in self.rows(query)}

    def leaf_rows(self, schema: str, table: str, *, key_columns: list[str], row_hash: str,
                  within: KeyRange | None = None, hash_bucket: tuple[int, int] | None = None,
                  ) -> dict[tuple[Any, ...], int]:
        query = self.dialect.leaf_rows_sql(schema, table, key_columns=key_columns, row_hash=row_hash,
                                           within=within, hash_bucket=hash_bucket)
        n = len(key_columns)
        return {tuple(r[:n]): int(r[n]) for r in self.rows(query)}

    def rows_by_keys(self, schema: str, table: str, *, key_columns: list[tuple[str, str]], row_hash: str,
                     keys: list[tuple[Any, ...]], batch: int = 1000) -> dict[tuple[Any, ...], int]:
        found: dict[tuple[Any, ...], int] = {}
        n = len(key_columns)
        for start in range(0, len(keys), batch):
            chunk = keys[start:start + batch]
            sql, params = self.dialect.rows_by_keys_sql(schema, table, key_columns=key_columns,
                                                        row_hash=row_hash, count=len(chunk))
            params = {**params, **self.dialect.bind_keys(key_columns, chunk)}
            found.update({tuple(r[:n]): int(r[n]) for r in self.rows((sql, params))})
        return found

    # --- logical decoding (PostgreSQL) ---

    def _require_decoding(self) -> LogicalDecodingDialect:
        if not self.dialect.supports_logical_decoding:
            raise NotImplementedError(
                f"{self.hook.db_conn_id}: incremental comparison needs logical decoding, which bascule "
                f"implements for PostgreSQL only (engine {self.hook.engine}); see docs/adr/0021"
            )
        # The session's dialect may be a RestrictedDialect around the engine's: it answers the same.
        return cast(LogicalDecodingDialect, self.dialect)

    def create_change_slot(self, slot: str) -> str:
        d = self._require_decoding()
        self.rows(d.drop_change_slot_sql(slot))
        return str(self.rows(d.create_change_slot_sql(slot))[0][0])

    def current_position(self) -> str:
        return str(self.rows(self._require_decoding().current_position_sql())[0][0])

    def advance_change_slot(self, slot: str, position: str) -> str:
        """Changes before ``position`` are proven: the slot no longer reads them (ADR 0070)."""
        return str(self.rows(self._require_decoding().advance_change_slot_sql(slot, position))[0][0])

    def unique_indexes(self, schema: str, table: str) -> dict[str, tuple[str, ...]]:
        """Valid unique indexes over plain columns: name -> columns (what proves uniqueness, ADR 0061)."""
        query = self._require_decoding().unique_indexes_sql(schema, table)
        return {str(name): tuple(str(c) for c in cols) for name, cols in self.rows(query)}

    def drop_change_slot(self, slot: str) -> None:
        self.rows(self._require_decoding().drop_change_slot_sql(slot))

    def change_slot_exists(self, slot: str) -> bool:
        return bool(self.rows(self._require_decoding().change_slot_exists_sql(slot))[0][0])

    def changed_keys(self, slot: str, key_columns: dict[str, list[str]], *, consume: bool = True,
                     ) -> Iterator[tuple[str, str, list[str]]]:
        """(qualified table, operation, key texts...) per decoded change of the tables given.

        The dialect's query cuts the key columns out of each change inside the
        database: the other columns' values never reach this process.
        """
        query = self._require_decoding().changed_keys_sql(slot, key_columns, consume=consume)
        for table, op, keys in self.rows(query):
            values = json.loads(keys) if keys else []
            yield str(table), str(op), values


class ValidationHook(MigrationDatabaseHook):
    """Source or target of a comparison: sessions with the session settings values' text depends on."""

    hook_name = "bascule validation database"
    error_class = ValidationDatabaseError

    def __init__(self, *, db_conn_id: str, engine: str, parallel_workers: int = 2, **kwargs: Any) -> None:
        super().__init__(db_conn_id=db_conn_id, engine=engine, **kwargs)
        self.parallel_workers = parallel_workers
        # Idle sessions by parallel-worker setting, while pooled() is open; None: every session is new.
        self._idle: dict[int, list[tuple[AbstractContextManager[Any], Any]]] | None = None
        self._idle_lock = threading.Lock()

    @contextmanager
    def pooled(self) -> Iterator[None]:
        """Within this block a closed session goes back to a pool and the next one reuses it.

        A comparison opens two sessions per table, and more for a first pass in block
        ranges (ADR 0065): connecting and pinning the settings each time is a fixed cost
        per table, paid again and again for small ones. Sessions are closed when the
        block ends; one whose use raised is closed at once, never reused.
        """
        if self._idle is not None:  # already pooled by an outer block
            yield
            return
        self._idle = {}
        try:
            yield
        finally:
            with self._idle_lock:
                idle, self._idle = self._idle, None
            for entries in idle.values():
                for cm, _conn in entries:
                    cm.__exit__(None, None, None)

    def _open(self, workers: int) -> tuple[AbstractContextManager[Any], Any]:
        setup = self.dialect.session_setup_sql(parallel_workers=workers)
        cm = self.database_session(setup=setup, options=ConnectOptions(autocommit=True))
        return cm, cm.__enter__()

    @contextmanager
    def session(self, *, parallel_workers: int | None = None) -> Iterator[ComparisonSession]:
        """An autocommit session with the settings values' text depends on pinned (and the hook's
        parallel workers per query, unless ``parallel_workers`` is given); reused inside ``pooled()``."""
        workers = self.parallel_workers if parallel_workers is None else parallel_workers
        entry = None
        with self._idle_lock:
            if self._idle is not None and self._idle.get(workers):
                entry = self._idle[workers].pop()
        if entry is None:
            entry = self._open(workers)
        cm, conn = entry
        try:
            yield ComparisonSession(self, conn)
        except BaseException:
            cm.__exit__(None, None, None)
            raise
        with self._idle_lock:
            if self._idle is not None:
                self._idle.setdefault(workers, []).append(entry)
                return
        cm.__exit__(None, None, None)


class KeyHashHook(BaseHook):
    """The HMAC secret for identifying keys, from the password of an Airflow connection."""

    conn_name_attr = "key_hash_conn_id"
    hook_name = "bascule key hash"

    def __init__(self, *, key_hash_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key_hash_conn_id = key_hash_conn_id

    def get_hasher(self, *, production: bool = False) -> KeyHasher:
        secret = self.get_connection(self.key_hash_conn_id).password
        if not secret:
            raise ValueError(f"connection {self.key_hash_conn_id!r}: password (the HMAC secret) is empty")
        if production:
            reason = weak_key_reason(secret)
            if reason:
                raise ValueError(f"connection {self.key_hash_conn_id!r}: the HMAC key {reason}")
        return KeyHasher(secret.encode())
