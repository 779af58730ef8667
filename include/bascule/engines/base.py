"""What every engine dialect answers, as SQL text, bind parameters and facts.

A dialect never opens a connection: hooks run its SQL. That keeps the Oracle
dialect testable as text here, where no Oracle database runs. Engines import
nothing from Airflow nor from bascule's other layers: a dialect names the
provider hook that reaches its engine by import path, and the hooks build it.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Any

from bascule.engines.binds import bind_names, render_binds

Query = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class ConnectOptions:
    """How a hook wants its connection, in engine-neutral terms; each dialect spells them for its driver."""

    autocommit: bool = False
    application_name: str | None = None
    connect_timeout_s: int | None = None
    # A transaction pooler (PgBouncer) may sit between bascule and the database:
    # a statement must not rely on server-side state such as prepared statements.
    through_pooler: bool = False


class EngineDialect(abc.ABC):
    """What every dialect of one engine shares: its name, identifiers, bind variables, and the
    facts a hook needs to reach the engine (provider hook, driver errors, connect parameters)."""

    name: str
    # The Airflow provider hook that opens connections, by import path (never imported here),
    # and the keyword its constructor takes the connection id as.
    provider_hook: str
    provider_conn_arg: str
    # Top-level modules of the drivers whose exceptions are database errors (sanitised by hooks).
    driver_modules: tuple[str, ...]
    # SQLAlchemy's scheme with the driver bascule installs, and the kind of GX data source.
    sqlalchemy_scheme: str
    gx_data_source: str
    # Logical decoding of changes (incremental comparison, ADR 0021).
    supports_logical_decoding: bool = False
    # The preparation's stages run live (catalogue reads, clones, pgbench); elsewhere the DBA
    # runs the dialect's SQL (engines/oracle_assessment.py).
    runs_preparation_live: bool = False

    @abc.abstractmethod
    def quote_ident(self, name: str) -> str: ...

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote_ident(schema)}.{self.quote_ident(table)}"

    @abc.abstractmethod
    def param(self, name: str) -> str:
        """How this engine's driver spells the named bind variable ``name``."""

    # ---------------------------------------------------------------- reaching the engine

    def provider_hook_kwargs(self, *, database: str | None = None) -> dict[str, Any]:
        """Constructor keywords of the provider hook besides the connection id."""
        return {}

    @abc.abstractmethod
    def connect_parameters(self, options: ConnectOptions) -> dict[str, Any]:
        """Driver connect parameters for ``options``, merged into the Airflow connection's extra."""

    def is_driver_error(self, exc: BaseException) -> bool:
        return type(exc).__module__.split(".")[0] in self.driver_modules

    def error_code(self, exc: BaseException) -> str:
        """A value-free name of a database error: its class (SQLSTATE class name) by default."""
        return type(exc).__name__

    def sqlalchemy_url(self, uri: str) -> str:
        """The provider's URI with the driver bascule installs when it names none (``postgresql://``)."""
        scheme, sep, rest = uri.partition("://")
        if sep and "+" not in scheme and self.sqlalchemy_scheme.split("+", 1)[0] == scheme:
            return f"{self.sqlalchemy_scheme}://{rest}"
        return uri

    def read_only_sqlalchemy_url(self, url: str) -> str:
        """``url`` whose sessions refuse writes, where the engine can say so in a URL (PostgreSQL); Oracle
        has no session-wide read-only mode: its suites rely on the connection's user's grants."""
        return url

    def lob_text(self, value: Any) -> Any:
        """A large-object column's value as text (drivers that stream LOBs return a locator)."""
        return value

    # ---------------------------------------------------------------- SQL the team supplies

    def driver_sql(self, sql: str) -> str:
        """Plan-supplied SQL, whose bind variables are written ``:name``, spelt for this driver."""
        return render_binds(sql, self.param, escape_percent=False)

    def binds_of(self, sql: str) -> list[str]:
        return bind_names(sql)

    @abc.abstractmethod
    def server_name_sql(self) -> Query:
        """One row: the name of the server (cluster, instance) that answered, never a row value."""

    @abc.abstractmethod
    def ping_sql(self) -> Query:
        """The cheapest statement that proves a session answers."""


class Dialect(EngineDialect):
    """Inventory: tables, sizes, keys and sequences of the schemas in scope."""

    @abc.abstractmethod
    def server_version_sql(self) -> Query: ...

    @abc.abstractmethod
    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        """Rows of (schema, table, partitioned, partitions, total_bytes, primary_key csv, replica_identity)."""

    @abc.abstractmethod
    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        """Rows of (schema, sequence, last_value, increment_by)."""

    def count_rows_sql(self, schema: str, table: str) -> Query:
        return f"SELECT count(*) FROM {self.qualified(schema, table)}", {}

    def replica_identity_name(self, code: str) -> str:
        """The inventory's replica identity code spelt out for people reading it."""
        return code

    @abc.abstractmethod
    def preparation_session_sql(self) -> list[str]:
        """Session settings of the preparation's connections (long catalogue reads, clones)."""


# --- Validation: range hashes, leaf rows, key re-checks ---------------------------------------------


class ColumnKind(enum.StrEnum):
    """What a column's values are, whatever the engine calls the type: drives the canonical form."""

    INTEGER = "integer"
    NUMERIC = "numeric"
    FLOAT = "float"
    TEXT = "text"
    LARGE_TEXT = "large_text"
    DATE = "date"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    BOOLEAN = "boolean"
    BINARY = "binary"
    JSON = "json"
    OTHER = "other"
    # A type no SQL expression can read (Oracle's LONG, LONG RAW: ORA-00997): never hashed, refused by name.
    UNREADABLE = "unreadable"


class HashMode(enum.StrEnum):
    """NATIVE: same engine, the engine's own text of each value (fast).
    CANONICAL: an engine-neutral text per value so that Oracle and PostgreSQL agree (slower)."""

    NATIVE = "native"
    CANONICAL = "canonical"


# The canonical row hash (both engines, ADR 0022) hashes each value to 32 hex digits of MD5 ('-' for
# NULL), then the concatenation of at most this many of them: 100 x 32 bytes stays under Oracle's
# 4000-byte VARCHAR2 whatever MAX_STRING_SIZE is. Wider tables hash each group, then the groups.
CANONICAL_HASH_GROUP = 100


def hash_groups(fields: list[str], size: int) -> list[list[str]]:
    """``fields`` cut into consecutive groups of at most ``size`` (the row hash's layout)."""
    return [fields[i:i + size] for i in range(0, len(fields), size)]


@dataclass(frozen=True)
class HashColumn:
    """One column fed to the row hash, under this side's name, with its kind.

    ``canonical`` forces the canonical form for this column even in NATIVE mode:
    used when the two sides declare different types (numeric(10,2) against
    numeric(12,4)) whose native texts would differ for equal values.
    """

    name: str
    kind: ColumnKind
    canonical: bool = False


@dataclass(frozen=True)
class KeyRange:
    """Half-open range ``lo <= leading key < hi`` on an integer leading key column."""

    lo: int
    hi: int


def _require_integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer (got {type(value).__name__})")
    return value


class ValidationDialect(EngineDialect):
    """The SQL a comparison needs from one engine. Mixed into each engine's Dialect."""

    # Whether the first pass over a big table can be split into block ranges read by several
    # sessions sharing one snapshot (``heap_blocks_sql``, ``block_range_hashes_sql``, ADR 0065).
    supports_block_chunks: bool = False

    @abc.abstractmethod
    def session_setup_sql(self, *, parallel_workers: int) -> list[str]:
        """Statements that pin every session setting a value's text depends on (time zone, formats)."""

    @abc.abstractmethod
    def table_columns_sql(self, schema: str, table: str) -> Query:
        """Rows of (column, declared type) in column order."""

    @abc.abstractmethod
    def primary_key_sql(self, schema: str, table: str) -> Query:
        """Rows of (column, declared type) of the primary key, in key order."""

    @abc.abstractmethod
    def column_kind(self, declared_type: str) -> ColumnKind: ...

    @abc.abstractmethod
    def value_expr(self, column: HashColumn, mode: HashMode, alias: str = "t") -> str:
        """The expression hashed for one column."""

    @abc.abstractmethod
    def row_hash_expr(self, columns: list[HashColumn], mode: HashMode, alias: str = "t") -> str:
        """A 64-bit (or 60-bit in CANONICAL mode) integer hash of the row's compared columns."""

    @abc.abstractmethod
    def key_bounds_sql(self, schema: str, table: str, key_column: str) -> Query:
        """One row (min, max) of the leading key column: read from the index, not the table."""

    @abc.abstractmethod
    def range_hashes_sql(
        self, schema: str, table: str, *, key_column: str, row_hash: str, lo: int, width: int,
        within: KeyRange | None = None,
    ) -> Query:
        """Rows of (bucket, rows, hash sum) for buckets ``floor((key - lo) / width)``, in one pass."""

    @abc.abstractmethod
    def hash_buckets_sql(
        self, schema: str, table: str, *, key_columns: list[str], row_hash: str, buckets: int,
    ) -> Query:
        """Rows of (bucket, rows, hash sum) for buckets by a hash of the key (non-integer leading keys)."""

    @abc.abstractmethod
    def leaf_rows_sql(
        self, schema: str, table: str, *, key_columns: list[str], row_hash: str,
        within: KeyRange | None = None, hash_bucket: tuple[int, int] | None = None,
    ) -> Query:
        """Rows of (key columns..., row hash) of one range or one hash bucket (buckets, bucket)."""

    @abc.abstractmethod
    def rows_by_keys_sql(
        self, schema: str, table: str, *, key_columns: list[tuple[str, str]], row_hash: str, count: int,
    ) -> Query:
        """Rows of (key columns..., row hash) for ``count`` keys bound as ``k<column index>_<row index>``
        or as arrays: see the engine. ``key_columns`` holds (name, declared type)."""

    def bind_keys(self, key_columns: list[tuple[str, str]], keys: list[tuple[Any, ...]]) -> dict[str, Any]:
        """Bind values for :meth:`rows_by_keys_sql`."""
        return {f"k{c}_{r}": key[c] for r, key in enumerate(keys) for c in range(len(key_columns))}

    # --- archived partitions (the storage stage's record, left out of a comparison) ---

    def archived_ranges_exist_sql(self) -> Query | None:
        """One row (bool): whether the target records archived partitions. None: the engine's
        storage stage archives nothing, so there is nothing to read."""
        return None

    def archived_ranges_sql(self) -> Query:
        """Rows (object, root, key column, key type, range from, range to, archived to, rows, verified at)."""
        raise NotImplementedError(f"{self.name}: bascule archives partitions on PostgreSQL only")



@dataclass(frozen=True)
class TableChanges:
    """What a change tracker saw of one table since a full check: its primary key's (name, type), the
    keys (as text) of the rows inserted, updated or deleted, or why the table must be checked whole
    (a TRUNCATE). Shared by the window's deltas (ADR 0061): the suites and the foreign keys."""

    key_columns: tuple[tuple[str, str], ...]
    keys: frozenset[tuple[str, ...]] = frozenset()
    whole: str | None = None


class LogicalDecodingDialect(abc.ABC):
    """Logical decoding of the keys touched since a full comparison (ADR 0021), where the engine has it
    (``EngineDialect.supports_logical_decoding``). Mixed into that engine's validation dialect."""

    @abc.abstractmethod
    def create_change_slot_sql(self, slot: str) -> Query:
        """One row: the position the slot starts from."""

    @abc.abstractmethod
    def drop_change_slot_sql(self, slot: str) -> Query: ...

    @abc.abstractmethod
    def change_slot_exists_sql(self, slot: str) -> Query:
        """One row: how many slots of that name exist."""

    @abc.abstractmethod
    def changed_keys_sql(self, slot: str, key_columns: dict[str, list[str]], *, consume: bool = True) -> Query:
        """Rows (qualified table, operation, JSON array per key column of key texts) per decoded change;
        ``consume=False`` peeks, leaving the changes in the slot."""

    @abc.abstractmethod
    def current_position_sql(self) -> Query:
        """One row: the engine's current log position, as text."""

    @abc.abstractmethod
    def advance_change_slot_sql(self, slot: str, position: str) -> Query:
        """Move the slot on to ``position`` (changes before it are no longer read); one row."""

    @abc.abstractmethod
    def unique_indexes_sql(self, schema: str, table: str) -> Query:
        """One row per valid unique index over plain columns: (index name, array of column names)."""

    @abc.abstractmethod
    def literal_keys_sql(self, columns: list[tuple[str, str]], keys: list[tuple[str, ...]]) -> str:
        """A query of the keys (texts, cast to the columns' types) as literals, one column per key column."""


def bucket_layout(lo: int, hi: int, buckets: int) -> tuple[int, int]:
    """(lo, width) so that ``floor((key - lo) / width)`` spreads [lo, hi] over at most ``buckets`` buckets."""
    lo, hi, buckets = (_require_integer(lo, "lo"), _require_integer(hi, "hi"),
                       _require_integer(buckets, "buckets"))
    if hi < lo:
        raise ValueError(f"hi must be >= lo (got lo={lo}, hi={hi})")
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1 (got {buckets})")
    span = hi - lo + 1
    return lo, max(1, -(-span // buckets))
