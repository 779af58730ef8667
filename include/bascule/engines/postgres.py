"""PostgreSQL dialect: the SQL bascule runs on PostgreSQL, tested live on the lab."""

from __future__ import annotations

import re
from typing import Any

from bascule.engines.base import (
    CANONICAL_HASH_GROUP,
    ColumnKind,
    ConnectOptions,
    Dialect,
    EngineDialect,
    HashColumn,
    HashMode,
    KeyRange,
    LogicalDecodingDialect,
    Query,
    ValidationDialect,
    _require_integer,
    hash_groups,
)
from bascule.engines.binds import render_binds
from bascule.engines.postgres_assessment import ARCHIVED_TABLE

# relreplident letters, spelt out for people reading an inventory.
REPLICA_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


class PostgresEngine(EngineDialect):
    """How bascule reaches PostgreSQL (PostgresHook, psycopg 3) and spells its names and binds.

    Shared by every PostgreSQL dialect (inventory and validation, cutover).
    """

    name = "postgres"
    provider_hook = "airflow.providers.postgres.hooks.postgres.PostgresHook"
    provider_conn_arg = "postgres_conn_id"
    driver_modules = ("psycopg", "psycopg2")
    sqlalchemy_scheme = "postgresql+psycopg"

    def read_only_sqlalchemy_url(self, url: str) -> str:
        """``url`` whose sessions start read-only (libpq ``options``): what a suite's SQL runs in."""
        from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query["options"] = f"{query.get('options', '')} -c default_transaction_read_only=on".strip()
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    gx_data_source = "postgres"
    supports_logical_decoding = True
    runs_preparation_live = True

    def quote_ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def param(self, name: str) -> str:
        return f"%({name})s"

    def provider_hook_kwargs(self, *, database: str | None = None) -> dict[str, Any]:
        # Another database of the same server (a clone, the archive, PgBouncer's follower entry).
        return {"database": database} if database else {}

    def connect_parameters(self, options: ConnectOptions) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if options.application_name:
            params["application_name"] = options.application_name
        if options.connect_timeout_s:
            params["connect_timeout"] = int(options.connect_timeout_s)
        if options.through_pooler:
            # PgBouncer's transaction pooling forbids server-side prepared statements.
            params["prepare_threshold"] = None
        return params

    def driver_sql(self, sql: str) -> str:
        # Once parameters are passed psycopg reads every % as a placeholder, in literals too.
        return render_binds(sql, self.param, escape_percent=True)

    def server_name_sql(self) -> Query:
        return "SELECT current_setting('cluster_name')", {}

    def ping_sql(self) -> Query:
        return "SELECT 1", {}


# --- Validation ---------------------------------------------------------------------------------------

_PG_KINDS: tuple[tuple[tuple[str, ...], ColumnKind], ...] = (
    (("smallint", "integer", "bigint"), ColumnKind.INTEGER),
    (("numeric",), ColumnKind.NUMERIC),
    (("real", "double precision"), ColumnKind.FLOAT),
    (("character varying", "character", "varchar", "char", "bpchar", "citext", "name"), ColumnKind.TEXT),
    (("text",), ColumnKind.LARGE_TEXT),
    (("date",), ColumnKind.DATE),
    (("timestamp with time zone",), ColumnKind.TIMESTAMPTZ),
    (("timestamp without time zone", "timestamp"), ColumnKind.TIMESTAMP),
    (("boolean",), ColumnKind.BOOLEAN),
    (("bytea",), ColumnKind.BINARY),
    (("json", "jsonb"), ColumnKind.JSON),
)

# Values' text depends on these; both sides pin the same ones (platform facts: t::text
# differs with TimeZone and DateStyle). extra_float_digits=1 is the shortest exact text.
_PG_SESSION = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
    # One query per table over millions of rows: compiling it would cost more than it saves.
    "SET jit = off",
    # A comparison only reads (slots are not transactions' writes): any write in it is refused by the server.
    "SET default_transaction_read_only = on",
)


# The planner takes a bucket expression such as (key - lo) / width to have as many groups as
# the key has values, so it sorts every row (Partial GroupAggregate under Gather Merge, ~1.8x a
# plain scan): our GROUP BYs never have more groups than CompareSettings.max_buckets, so sorting
# is off in every comparison session. With workers, it also fears a Gather of millions of partial
# groups, so we tell it moving tuples between processes is free: the workers hash the rows, but
# whether they also aggregate is its cost call, and on most tables it ships every row to the
# leader, which aggregates alone (ADR 0065). The first pass over a big plain table therefore runs
# in block ranges on serial sessions instead (``block_range_hashes_sql``).
_PG_NO_SORT = ("SET enable_sort = off",)
_PG_PARALLEL_HASH = (
    "SET parallel_setup_cost = 0",
    "SET parallel_tuple_cost = 0",
)


class PostgresValidation(ValidationDialect, LogicalDecodingDialect):
    """PostgreSQL half of the comparison: ``hashtextextended`` over the row's text, parallel-safe."""

    def session_setup_sql(self, *, parallel_workers: int) -> list[str]:
        workers = _require_integer(parallel_workers, "parallel_workers")
        statements = [*_PG_SESSION, f"SET max_parallel_workers_per_gather = {max(0, workers)}", *_PG_NO_SORT]
        if workers > 0:
            statements += _PG_PARALLEL_HASH
        return statements

    def table_columns_sql(self, schema: str, table: str) -> Query:
        return (
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
              FROM pg_attribute a
             WHERE a.attrelid = to_regclass(%(rel)s) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum
            """,
            {"rel": self.qualified(schema, table)},
        )

    def primary_key_sql(self, schema: str, table: str) -> Query:
        return (
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass(%(rel)s) AND i.indisprimary
             ORDER BY k.ord
            """,
            {"rel": self.qualified(schema, table)},
        )

    def column_kind(self, declared_type: str) -> ColumnKind:
        base = declared_type.split("(", 1)[0].strip().lower()
        if base.endswith("[]"):
            return ColumnKind.OTHER
        for names, kind in _PG_KINDS:
            if base in names:
                return kind
        return ColumnKind.OTHER

    def value_expr(self, column: HashColumn, mode: HashMode, alias: str = "t") -> str:
        c = f"{alias}.{self.quote_ident(column.name)}"
        if mode is HashMode.NATIVE and not column.canonical:
            return c
        kind = column.kind
        if kind is ColumnKind.INTEGER:
            return f"{c}::text"
        if kind is ColumnKind.NUMERIC:
            return f"trim_scale({c})::text"
        if kind is ColumnKind.FLOAT:
            return f"{c}::float8::text"
        if kind is ColumnKind.TEXT:
            # Oracle stores '' as NULL: the canonical form does the same.
            return f"nullif({c}::text, '')"
        if kind is ColumnKind.LARGE_TEXT:
            return f"md5(nullif({c}, ''))"
        if kind is ColumnKind.DATE:
            return f"to_char({c}, 'YYYY-MM-DD')"
        if kind is ColumnKind.TIMESTAMP:
            return f"to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"
        if kind is ColumnKind.TIMESTAMPTZ:
            return f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        if kind is ColumnKind.BOOLEAN:
            return f"CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' END"
        if kind is ColumnKind.BINARY:
            return f"md5({c})"
        return f"{c}::text"

    def row_hash_expr(self, columns: list[HashColumn], mode: HashMode, alias: str = "t") -> str:
        if not columns:
            raise ValueError("columns must not be empty")
        if mode is HashMode.NATIVE:
            # The row constructor's text quotes values and leaves NULL empty: '' and NULL,
            # 'a' and 'a ' all differ. hashtextextended is parallel-safe.
            values = ", ".join(self.value_expr(c, mode, alias) for c in columns)
            return f"hashtextextended(ROW({values})::text, 0)"
        # Each value's MD5 (32 hex digits, '-' for NULL: a prefix-free field no value can forge), then
        # the MD5 of at most CANONICAL_HASH_GROUP fields, group by group: Oracle's layout exactly,
        # which never builds a whole row's text (its VARCHAR2 stops at 4000 bytes; ADR 0022).
        fields = [f"coalesce(md5({self.value_expr(c, mode, alias)}), '-')" for c in columns]
        groups = [" || ".join(g) for g in hash_groups(fields, CANONICAL_HASH_GROUP)]
        text = groups[0] if len(groups) == 1 else " || ".join(f"md5({g})" for g in groups)
        # 60 bits of the MD5: non-negative on both engines, so sums agree (Oracle: TO_NUMBER(.., 'X..')).
        return f"('x' || lpad(substr(md5({text}), 1, 15), 16, '0'))::bit(64)::bigint"

    def key_bounds_sql(self, schema: str, table: str, key_column: str) -> Query:
        k = self.quote_ident(key_column)
        return f"SELECT min({k})::bigint, max({k})::bigint FROM {self.qualified(schema, table)}", {}

    def _range_where(self, key: str, within: KeyRange | None, params: dict[str, Any]) -> str:
        if within is None:
            return ""
        params["r_lo"], params["r_hi"] = _require_integer(within.lo, "lo"), _require_integer(within.hi, "hi")
        return f" WHERE t.{key} >= %(r_lo)s AND t.{key} < %(r_hi)s"

    def range_hashes_sql(
        self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int, width: int,
        within: KeyRange | None = None,
    ) -> Query:
        k = self.quote_ident(key_column)
        params: dict[str, Any] = {"lo": _require_integer(lo, "lo"), "width": _require_integer(width, "width")}
        where = self._range_where(k, within, params)
        return (
            f"SELECT ((t.{k} - %(lo)s) / %(width)s)::bigint AS bucket, count(*), sum({row_hash})"
            f" FROM {self.qualified(schema, table)} t{where} GROUP BY 1",
            params,
        )

    supports_block_chunks = True

    def heap_blocks_sql(self, schema: str, table: str) -> Query:
        """One row (relkind, blocks in the main fork): only a plain table ('r') is split by blocks."""
        return (
            "SELECT c.relkind::text, (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint"
            " FROM pg_class c WHERE c.oid = to_regclass(%(rel)s)",
            {"rel": self.qualified(schema, table)},
        )

    def export_snapshot_sql(self) -> list[str]:
        """Statements that open a transaction whose snapshot other sessions can share; the last returns its id."""
        return ["BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT pg_export_snapshot()"]

    def import_snapshot_sql(self, snapshot: str) -> list[str]:
        if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
            raise ValueError(f"not a snapshot id: {snapshot!r}")
        return ["BEGIN ISOLATION LEVEL REPEATABLE READ", f"SET TRANSACTION SNAPSHOT '{snapshot}'"]

    def block_range_hashes_sql(
        self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int, width: int,
        blocks: tuple[int, int | None],
    ) -> Query:
        """``range_hashes_sql`` over the rows in heap blocks [first, last) only (last None: to the end).

        A TID range scan reads just those blocks; run serially in several sessions, each
        process hashes and aggregates its own rows, as parallel workers with a partial
        aggregate would, and the sums add up in Python.
        """
        k = self.quote_ident(key_column)
        first, last = blocks
        params: dict[str, Any] = {"lo": _require_integer(lo, "lo"), "width": _require_integer(width, "width"),
                                  "b_first": f"({_require_integer(first, 'first block')},0)"}
        where = " WHERE t.ctid >= %(b_first)s::tid"
        if last is not None:
            params["b_last"] = f"({_require_integer(last, 'last block')},0)"
            where += " AND t.ctid < %(b_last)s::tid"
        return (
            f"SELECT ((t.{k} - %(lo)s) / %(width)s)::bigint AS bucket, count(*), sum({row_hash})"
            f" FROM {self.qualified(schema, table)} t{where} GROUP BY 1",
            params,
        )

    def _key_hash(self, key_columns: list[str]) -> str:
        keys = ", ".join(f"t.{self.quote_ident(c)}" for c in key_columns)
        return f"abs(hashtextextended(ROW({keys})::text, 1) % %(buckets)s)"

    def hash_buckets_sql(
        self, schema: str, table: str, *, key_columns: list[str], row_hash: str, buckets: int,
    ) -> Query:
        return (
            f"SELECT {self._key_hash(key_columns)} AS bucket, count(*), sum({row_hash})"
            f" FROM {self.qualified(schema, table)} t GROUP BY 1",
            {"buckets": _require_integer(buckets, "buckets")},
        )

    def leaf_rows_sql(
        self, schema: str, table: str, *, key_columns: list[str], row_hash: str,
        within: KeyRange | None = None, hash_bucket: tuple[int, int] | None = None,
    ) -> Query:
        keys = ", ".join(f"t.{self.quote_ident(c)}" for c in key_columns)
        params: dict[str, Any] = {}
        where = self._range_where(self.quote_ident(key_columns[0]), within, params)
        if hash_bucket is not None:
            params["buckets"], params["bucket"] = hash_bucket
            where += (" AND " if where else " WHERE ") + f"{self._key_hash(key_columns)} = %(bucket)s"
        return f"SELECT {keys}, {row_hash} FROM {self.qualified(schema, table)} t{where}", params

    def rows_by_keys_sql(
        self, schema: str, table: str, *, key_columns: list[tuple[str, str]], row_hash: str, count: int,
    ) -> Query:
        # Arrays, not one bind per key: one plan whatever the count, and an index lookup per key.
        keys = ", ".join(f"t.{self.quote_ident(n)}" for n, _ in key_columns)
        arrays = ", ".join(f"%(k{i})s::{typ}[]" for i, (_, typ) in enumerate(key_columns))
        cols = ", ".join(f"k{i}" for i in range(len(key_columns)))
        return (
            f"SELECT {keys}, {row_hash} FROM {self.qualified(schema, table)} t"
            f" WHERE ({keys}) IN (SELECT {cols} FROM unnest({arrays}) AS u({cols}))",
            {},
        )

    def bind_keys(self, key_columns: list[tuple[str, str]], keys: list[tuple[Any, ...]]) -> dict[str, Any]:
        return {f"k{i}": [k[i] for k in keys] for i in range(len(key_columns))}

    # Logical decoding of the keys touched since a full comparison (ADR 0021).

    def create_change_slot_sql(self, slot: str) -> Query:
        return "SELECT lsn::text FROM pg_create_logical_replication_slot(%(slot)s, 'test_decoding')", {"slot": slot}

    def drop_change_slot_sql(self, slot: str) -> Query:
        return (
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %(slot)s",
            {"slot": slot},
        )

    def change_slot_exists_sql(self, slot: str) -> Query:
        return "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %(slot)s", {"slot": slot}

    def read_changes_sql(self, slot: str, *, consume: bool = True) -> Query:
        # Consumed (get): the slot then holds no WAL back for what was read. Peeked: read again by a
        # retry, the same changes come back (the window's deltas, ADR 0061).
        function = "pg_logical_slot_get_changes" if consume else "pg_logical_slot_peek_changes"
        return (
            f"SELECT data FROM {function}(%(slot)s, NULL, NULL,"
            " 'include-xids', '0', 'skip-empty-xacts', '1')",
            {"slot": slot},
        )

    def current_position_sql(self) -> Query:
        return "SELECT pg_current_wal_lsn()::text", {}

    def advance_change_slot_sql(self, slot: str, position: str) -> Query:
        # PostgreSQL stops at the flushed position if asked further, and refuses to move a slot back.
        return ("SELECT end_lsn::text FROM pg_replication_slot_advance(%(slot)s, %(position)s::pg_lsn)",
                {"slot": slot, "position": position})

    def unique_indexes_sql(self, schema: str, table: str) -> Query:
        """One row per valid, total (no predicate, no expression) unique index: its name and columns."""
        return (
            """
            SELECT ic.relname, array_agg(a.attname::text ORDER BY k.ord)
              FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass(%(rel)s) AND i.indisunique AND i.indisvalid
               AND i.indpred IS NULL AND i.indexprs IS NULL
             GROUP BY ic.relname
            """,
            {"rel": self.qualified(schema, table)},
        )

    def literal_keys_sql(self, columns: list[tuple[str, str]], keys: list[tuple[str, ...]]) -> str:
        """``SELECT * FROM unnest(ARRAY[...]::type[], ...)`` of ``keys`` (texts) as literals: a GX batch's
        query takes no binds. Quoted by doubling quotes (standard_conforming_strings is on since 9.1)."""
        arrays = []
        for i, (_, typ) in enumerate(columns):
            items = ", ".join("'" + str(k[i]).replace("'", "''") + "'" for k in keys)
            arrays.append(f"ARRAY[{items}]::text[]::{typ}[]")
        return f"SELECT * FROM unnest({', '.join(arrays)})"

    def changed_keys_sql(self, slot: str, key_columns: dict[str, list[str]], *, consume: bool = True) -> Query:
        """(qualified table, operation, JSON array per key column of its key texts) per decoded change
        of the tables given, consumed from ``slot`` (else peeked).

        The key columns are cut out of each change by a regular expression inside
        PostgreSQL: the other columns' values never leave the server (ADR 0021).
        """
        slot_sql, params = self.read_changes_sql(slot, consume=consume)
        cases = []
        for i, (table, cols) in enumerate(sorted(key_columns.items())):
            params[f"t{i}"] = table
            arrays = []
            for j, col in enumerate(cols):
                params[f"re{i}_{j}"] = "(?:^| )" + re.escape(col) + r"\[[^]]*\]:('(?:[^']|'')*'|[^ ]+)"
                arrays.append(f"to_jsonb(ARRAY(SELECT x[1] FROM regexp_matches(c.data, %(re{i}_{j})s, 'g') x))")
            cases.append(f"WHEN %(t{i})s THEN jsonb_build_array({', '.join(arrays)})")
        # Changes to a partition are decoded under the partition's name: fold them into the root.
        sql = (
            f"SELECT r.name, m[2], CASE r.name {' '.join(cases)} END::text"
            f" FROM ({slot_sql}) c CROSS JOIN LATERAL regexp_match(c.data, '^table ([^ ]+): ([A-Z]+):') m"
            " CROSS JOIN LATERAL (SELECT coalesce((SELECT n.nspname || '.' || k.relname FROM pg_class k"
            " JOIN pg_namespace n ON n.oid = k.relnamespace WHERE k.oid = coalesce("
            "pg_partition_root(to_regclass(m[1])), to_regclass(m[1]))), m[1]) AS name) r"
        )
        return sql, params

    # Archived partitions, recorded on the target by the storage stage (bascule.preparation.storage).

    def archived_ranges_exist_sql(self) -> Query | None:
        return "SELECT to_regclass(%(t)s) IS NOT NULL", {"t": ARCHIVED_TABLE}

    def archived_ranges_sql(self) -> Query:
        return (
            "SELECT object, root, key_column, key_type, range_from, range_to, archived_to, rows,"
            " to_char(verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            f" FROM {ARCHIVED_TABLE} ORDER BY root, object",
            {},
        )

    def physical_limit_sql(self, schema: str, table: str) -> Query:
        """The physical limit of a one-pass comparison (the bench's reference)."""
        return f"SELECT sum(hashtextextended(t::text, 0)) FROM {self.qualified(schema, table)} t", {}


class PostgresDialect(PostgresEngine, Dialect, PostgresValidation):
    def server_version_sql(self) -> Query:
        return "SELECT split_part(current_setting('server_version'), ' ', 1)", {}

    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        # Partitions are folded into their root: replication publishes through the
        # root (publish_via_partition_root) and validation compares the root.
        return (
            """
            SELECT n.nspname,
                   c.relname,
                   c.relkind = 'p' AS partitioned,
                   (SELECT count(*) FROM pg_partition_tree(c.oid) pt WHERE pt.isleaf AND pt.relid <> c.oid)
                       AS partitions,
                   CASE WHEN c.relkind = 'p'
                        THEN (SELECT coalesce(sum(pg_total_relation_size(pt.relid)), 0)
                                FROM pg_partition_tree(c.oid) pt)
                        ELSE pg_total_relation_size(c.oid) END::bigint AS total_bytes,
                   (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                      FROM pg_index i
                      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
                   c.relreplident::text AS replica_identity
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND NOT c.relispartition
               AND n.nspname = ANY(%(schemas)s)
             ORDER BY 1, 2
            """,
            {"schemas": list(schemas)},
        )

    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        return (
            """
            SELECT schemaname, sequencename, last_value, increment_by
              FROM pg_sequences
             WHERE schemaname = ANY(%(schemas)s)
             ORDER BY 1, 2
            """,
            {"schemas": list(schemas)},
        )

    def replica_identity_name(self, code: str) -> str:
        return REPLICA_IDENTITY.get(code, code)

    def preparation_session_sql(self) -> list[str]:
        # What pg_dump and pgbench get as PGOPTIONS: UTC, ISO dates, no statement timeout.
        return ["SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET statement_timeout = 0"]
