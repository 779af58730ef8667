"""Oracle dialect: the SQL bascule runs on Oracle 19c, tested as text.

Bind variables are named (``:s0``) because oracledb does not bind lists.
"""

from __future__ import annotations

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
    Query,
    ValidationDialect,
    _require_integer,
    hash_groups,
)


def _in_list(prefix: str, values: list[str]) -> tuple[str, dict[str, str]]:
    binds = {f"{prefix}{i}": v.upper() for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in binds), binds


class OracleEngine(EngineDialect):
    """How bascule reaches Oracle (OracleHook, python-oracledb) and spells its names and binds.

    Shared by every Oracle dialect (inventory and validation, cutover).
    """

    name = "oracle"
    provider_hook = "airflow.providers.oracle.hooks.oracle.OracleHook"
    provider_conn_arg = "oracle_conn_id"
    driver_modules = ("oracledb", "cx_Oracle")
    sqlalchemy_scheme = "oracle+oracledb"
    gx_data_source = "sql"

    def quote_ident(self, name: str) -> str:
        # Unquoted Oracle identifiers are stored upper case; quoting preserves them.
        return '"' + name.upper().replace('"', '""') + '"'

    def param(self, name: str) -> str:
        return f":{name}"

    def connect_parameters(self, options: ConnectOptions) -> dict[str, Any]:
        # OracleHook reads only the extras it knows; "module" names the session in v$session.
        return {"module": options.application_name} if options.application_name else {}

    def error_code(self, exc: BaseException) -> str:
        # oracledb's message carries the statement's values after the code: the code alone.
        error = exc.args[0] if exc.args else None
        code = getattr(error, "full_code", None)
        return str(code) if code else type(exc).__name__

    def lob_text(self, value: Any) -> Any:
        # A CLOB column arrives as a LOB locator unless fetched as a string.
        return value.read() if hasattr(value, "read") else value

    def server_name_sql(self) -> Query:
        return "SELECT SYS_CONTEXT('USERENV', 'INSTANCE_NAME') FROM dual", {}

    def ping_sql(self) -> Query:
        return "SELECT 1 FROM dual", {}


# --- Validation ---------------------------------------------------------------------------------------

_ORA_KINDS: tuple[tuple[tuple[str, ...], ColumnKind], ...] = (
    (("INTEGER", "SMALLINT"), ColumnKind.INTEGER),
    (("NUMBER", "DECIMAL", "NUMERIC"), ColumnKind.NUMERIC),
    (("BINARY_FLOAT", "BINARY_DOUBLE", "FLOAT"), ColumnKind.FLOAT),
    (("VARCHAR2", "NVARCHAR2", "CHAR", "NCHAR", "VARCHAR"), ColumnKind.TEXT),
    (("CLOB", "NCLOB"), ColumnKind.LARGE_TEXT),
    # LONG and LONG RAW cannot appear in any SQL expression (ORA-00997): no hash can read them. The
    # assessment names them (convert to CLOB/BLOB before the move); the comparison refuses them by name.
    (("LONG", "LONG RAW"), ColumnKind.UNREADABLE),
    # Oracle DATE carries a time of day to the second: it is a timestamp, not a date.
    (("DATE",), ColumnKind.TIMESTAMP),
    (("TIMESTAMP",), ColumnKind.TIMESTAMP),
    (("TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH LOCAL TIME ZONE"), ColumnKind.TIMESTAMPTZ),
    (("BOOLEAN",), ColumnKind.BOOLEAN),
    (("RAW", "BLOB"), ColumnKind.BINARY),
    (("JSON",), ColumnKind.JSON),
)

_TS_FORMAT = "'YYYY-MM-DD HH24:MI:SS.FF6'"
# The native row hash (Oracle on both sides) writes each value's 64-bit hash as 20 digits ('-' for
# NULL): 190 of them fill 3800 bytes, under the 4000-byte VARCHAR2 of MAX_STRING_SIZE=STANDARD.
NATIVE_HASH_GROUP = 190
_U32 = "4294967295"


def _hash64(text: str) -> str:
    """Two 32-bit ORA_HASH seeds make one 64-bit hash: one seed alone lets a change go unnoticed once
    in 4 billion. ``text`` must stay a VARCHAR2 (at most 4000 bytes): callers hash values one by one."""
    return f"(ORA_HASH({text}, {_U32}, 0) * 4294967296 + ORA_HASH({text}, {_U32}, 1))"


def _md5_hex(text: str) -> str:
    """32 lower-case hex digits, as PostgreSQL's md5(): STANDARD_HASH reads a VARCHAR2 or RAW."""
    return f"LOWER(RAWTOHEX(STANDARD_HASH({text}, 'MD5')))"


class OracleValidation(ValidationDialect):
    """Oracle half of the comparison, as text: ORA_HASH for same-engine, STANDARD_HASH for canonical.

    Values are rendered to text by explicit TO_CHAR formats (never the session's NLS
    defaults), and the session's NLS settings are pinned anyway for whatever is left.
    """

    def session_setup_sql(self, *, parallel_workers: int) -> list[str]:
        workers = _require_integer(parallel_workers, "parallel_workers")
        statements = [
            "ALTER SESSION SET TIME_ZONE = 'UTC'",
            "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS'",
            "ALTER SESSION SET NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6'",
            "ALTER SESSION SET NLS_TIMESTAMP_TZ_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF6 TZH:TZM'",
            "ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,'",
        ]
        if workers > 1:
            statements.append(f"ALTER SESSION FORCE PARALLEL QUERY PARALLEL {workers}")
        return statements

    def table_columns_sql(self, schema: str, table: str) -> Query:
        return (
            """
            SELECT column_name,
                   data_type || CASE WHEN data_type = 'NUMBER' AND data_scale = 0 THEN '(INTEGER)' ELSE '' END
              FROM all_tab_columns
             WHERE owner = :owner AND table_name = :table_name
             ORDER BY column_id
            """,
            {"owner": schema.upper(), "table_name": table.upper()},
        )

    def primary_key_sql(self, schema: str, table: str) -> Query:
        return (
            """
            SELECT cc.column_name, tc.data_type
              FROM all_constraints c
              JOIN all_cons_columns cc ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name
              JOIN all_tab_columns tc
                ON tc.owner = c.owner AND tc.table_name = c.table_name AND tc.column_name = cc.column_name
             WHERE c.owner = :owner AND c.table_name = :table_name AND c.constraint_type = 'P'
             ORDER BY cc.position
            """,
            {"owner": schema.upper(), "table_name": table.upper()},
        )

    def column_kind(self, declared_type: str) -> ColumnKind:
        t = declared_type.upper().strip()
        if t.startswith("NUMBER") and "(INTEGER)" in t:
            return ColumnKind.INTEGER
        base = t.split("(", 1)[0].strip()
        if base.startswith("TIMESTAMP"):
            return ColumnKind.TIMESTAMPTZ if "TIME ZONE" in t else ColumnKind.TIMESTAMP
        for names, kind in _ORA_KINDS:
            if base in names:
                return kind
        return ColumnKind.OTHER

    def value_expr(self, column: HashColumn, mode: HashMode, alias: str = "t") -> str:
        c = f"{alias}.{self.quote_ident(column.name)}"
        kind = column.kind
        if kind is ColumnKind.INTEGER:
            return f"TO_CHAR({c})"
        if kind is ColumnKind.NUMERIC:
            # TM9 drops trailing zeros but writes .5 for 0.5: PostgreSQL's trim_scale writes 0.5.
            return f"REGEXP_REPLACE(TO_CHAR({c}, 'TM9'), '^(-?)\\.', '\\10.')"
        if kind is ColumnKind.FLOAT:
            return f"TO_CHAR({c}, 'TM9')"
        if kind is ColumnKind.TEXT:
            return c
        if kind is ColumnKind.LARGE_TEXT:
            # A CLOB is read whole by DBMS_CRYPTO.HASH (its CLOB overload, no 4000-byte limit): its
            # MD5 stands for it, as md5(nullif(c, '')) does on PostgreSQL (same bytes in AL32UTF8).
            # An empty CLOB is '' there, hence NULL. Needs EXECUTE on DBMS_CRYPTO.
            return (f"CASE WHEN {c} IS NULL OR DBMS_LOB.GETLENGTH({c}) = 0 THEN NULL"
                    f" ELSE LOWER(RAWTOHEX(DBMS_CRYPTO.HASH({c}, 2))) END")
        if kind is ColumnKind.DATE:
            return f"TO_CHAR({c}, 'YYYY-MM-DD')"
        if kind is ColumnKind.TIMESTAMP:
            return f"TO_CHAR(CAST({c} AS TIMESTAMP(6)), {_TS_FORMAT})"
        if kind is ColumnKind.TIMESTAMPTZ:
            return f"TO_CHAR(CAST(SYS_EXTRACT_UTC({c}) AS TIMESTAMP(6)), {_TS_FORMAT})"
        if kind is ColumnKind.BOOLEAN:
            return f"CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' END"
        if kind is ColumnKind.BINARY:
            return f"CASE WHEN {c} IS NULL THEN NULL ELSE LOWER(RAWTOHEX(DBMS_CRYPTO.HASH({c}, 2))) END"
        if kind is ColumnKind.UNREADABLE:
            raise ValueError(f"column {column.name}: a LONG cannot be read by any SQL expression (ORA-00997), "
                             "so no hash compares it: convert it to CLOB/BLOB before the move")
        return f"TO_CHAR({c})"

    def _field(self, value: str, mode: HashMode) -> str:
        """One value's fixed-width hash, or '-' for NULL: a prefix-free field, so the concatenation
        of fields needs no separator and no value can forge one."""
        if mode is HashMode.NATIVE:
            return f"CASE WHEN ({value}) IS NULL THEN '-' ELSE TO_CHAR({_hash64(value)}, 'FM{'0' * 20}') END"
        return f"CASE WHEN ({value}) IS NULL THEN '-' ELSE {_md5_hex(value)} END"

    def row_hash_expr(self, columns: list[HashColumn], mode: HashMode, alias: str = "t") -> str:
        # Each value is hashed on its own, then the fixed-width hashes are (ADR 0022): a whole row's
        # text never exists, so no row reaches ORA-01489 (4000 bytes) whatever MAX_STRING_SIZE is.
        if not columns:
            raise ValueError("columns must not be empty")
        fields = [self._field(self.value_expr(c, mode, alias), mode) for c in columns]
        # The fields are read once: the row's hash is 60 bits of one MD5 (two ORA_HASH seeds over the
        # row would evaluate every value twice). The canonical layout is PostgreSQL's, group for group.
        size = NATIVE_HASH_GROUP if mode is HashMode.NATIVE else CANONICAL_HASH_GROUP
        groups = [" || ".join(g) for g in hash_groups(fields, size)]
        text = groups[0] if len(groups) == 1 else " || ".join(_md5_hex(g) for g in groups)
        return f"TO_NUMBER(SUBSTR(RAWTOHEX(STANDARD_HASH({text}, 'MD5')), 1, 15), 'XXXXXXXXXXXXXXX')"

    def key_bounds_sql(self, schema: str, table: str, key_column: str) -> Query:
        k = self.quote_ident(key_column)
        return f"SELECT MIN({k}), MAX({k}) FROM {self.qualified(schema, table)}", {}

    def _range_where(self, key: str, within: KeyRange | None, params: dict[str, Any]) -> str:
        if within is None:
            return ""
        params["r_lo"], params["r_hi"] = _require_integer(within.lo, "lo"), _require_integer(within.hi, "hi")
        return f" WHERE t.{key} >= :r_lo AND t.{key} < :r_hi"

    def range_hashes_sql(
        self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int, width: int,
        within: KeyRange | None = None,
    ) -> Query:
        k = self.quote_ident(key_column)
        params: dict[str, Any] = {"lo": _require_integer(lo, "lo"), "width": _require_integer(width, "width")}
        where = self._range_where(k, within, params)
        # The bucket is computed once, in an inline view, and grouped by its name: a GROUP BY that
        # repeats the SELECT's bind variables is a different expression to Oracle (ORA-00979).
        return (
            f"SELECT bucket, COUNT(*), SUM(row_hash) FROM (SELECT FLOOR((t.{k} - :lo) / :width) AS bucket,"
            f" {row_hash} AS row_hash FROM {self.qualified(schema, table)} t{where}) GROUP BY bucket",
            params,
        )

    def _key_hash(self, key_columns: list[str]) -> str:
        # A composite key is hashed value by value (fixed-width fields), so two long text keys
        # never make a VARCHAR2 past 4000 bytes.
        if len(key_columns) == 1:
            keys = f"TO_CHAR(t.{self.quote_ident(key_columns[0])})"
        else:
            keys = " || ".join(
                f"NVL(TO_CHAR(ORA_HASH(TO_CHAR(t.{self.quote_ident(c)}), {_U32}, 7), 'FM{'0' * 10}'), '-')"
                for c in key_columns)
        return f"MOD(ORA_HASH({keys}, {_U32}, 7), :buckets)"

    def hash_buckets_sql(
        self, schema: str, table: str, *, key_columns: list[str], row_hash: str, buckets: int,
    ) -> Query:
        bucket = self._key_hash(key_columns)
        return (
            f"SELECT bucket, COUNT(*), SUM(row_hash) FROM (SELECT {bucket} AS bucket, {row_hash} AS row_hash"
            f" FROM {self.qualified(schema, table)} t) GROUP BY bucket",
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
            where += (" AND " if where else " WHERE ") + f"{self._key_hash(key_columns)} = :bucket"
        return f"SELECT {keys}, {row_hash} FROM {self.qualified(schema, table)} t{where}", params

    def rows_by_keys_sql(
        self, schema: str, table: str, *, key_columns: list[tuple[str, str]], row_hash: str, count: int,
    ) -> Query:
        # oracledb binds no arrays into SQL: one bind per key value, in batches (IN lists cap at 1000).
        count = _require_integer(count, "count")
        if not 1 <= count <= 1000:
            raise ValueError(f"count must be between 1 and 1000 for Oracle (got {count})")
        keys = ", ".join(f"t.{self.quote_ident(n)}" for n, _ in key_columns)
        tuples = ", ".join(
            "(" + ", ".join(f":k{c}_{r}" for c in range(len(key_columns))) + ")" for r in range(count)
        )
        return (f"SELECT {keys}, {row_hash} FROM {self.qualified(schema, table)} t WHERE ({keys}) IN ({tuples})",
                {})


class OracleDialect(OracleEngine, Dialect, OracleValidation):
    def server_version_sql(self) -> Query:
        # version (12.2.0.1.0, 19.0.0.0.0) exists on every release; version_full only from 18c.
        return "SELECT version FROM product_component_version WHERE product LIKE 'Oracle Database%'", {}

    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        owners, binds = _in_list("s", schemas)
        # Supplemental logging of the primary key plays the part of PostgreSQL's
        # replica identity for GoldenGate.
        return (
            f"""
            SELECT t.owner,
                   t.table_name,
                   CASE t.partitioned WHEN 'YES' THEN 1 ELSE 0 END AS partitioned,
                   (SELECT count(*) FROM all_tab_partitions p
                     WHERE p.table_owner = t.owner AND p.table_name = t.table_name) AS partitions,
                   (SELECT nvl(sum(s.bytes), 0) FROM dba_segments s
                     WHERE s.owner = t.owner
                       AND (s.segment_name = t.table_name
                            OR s.segment_name IN (SELECT i.index_name FROM all_indexes i
                                                   WHERE i.table_owner = t.owner AND i.table_name = t.table_name)
                            OR s.segment_name IN (SELECT l.segment_name FROM all_lobs l
                                                   WHERE l.owner = t.owner AND l.table_name = t.table_name)))
                       AS total_bytes,
                   (SELECT listagg(cc.column_name, ',') WITHIN GROUP (ORDER BY cc.position)
                      FROM all_constraints c
                      JOIN all_cons_columns cc
                        ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name
                     WHERE c.owner = t.owner AND c.table_name = t.table_name AND c.constraint_type = 'P')
                       AS primary_key,
                   CASE WHEN EXISTS (SELECT 1 FROM all_log_groups g
                                      WHERE g.owner = t.owner AND g.table_name = t.table_name
                                        AND g.log_group_type IN ('PRIMARY KEY LOGGING', 'ALL COLUMN LOGGING'))
                        THEN 'supplemental' ELSE 'none' END AS replica_identity
              FROM all_tables t
             WHERE t.owner IN ({owners})
               AND t.nested = 'NO'
               AND t.secondary = 'N'
             ORDER BY 1, 2
            """,
            binds,
        )

    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        owners, binds = _in_list("s", schemas)
        # last_number is the next value to be cached, not the last one handed
        # out: an upper bound, which is what advancing a sequence needs.
        return (
            f"""
            SELECT sequence_owner, sequence_name, last_number, increment_by
              FROM all_sequences
             WHERE sequence_owner IN ({owners})
             ORDER BY 1, 2
            """,
            binds,
        )

    def preparation_session_sql(self) -> list[str]:
        # The Oracle catalogue reads format what they return themselves (TO_CHAR).
        return []
