"""What every engine dialect answers, as SQL text and bind parameters.

A dialect never opens a connection: hooks run its SQL. That keeps the Oracle
dialect testable as text here, where no Oracle database runs.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from typing import Any

Query = tuple[str, dict[str, Any]]


class Dialect(abc.ABC):
    name: str

    @abc.abstractmethod
    def quote_ident(self, name: str) -> str: ...

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote_ident(schema)}.{self.quote_ident(table)}"

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


class HashMode(enum.StrEnum):
    """NATIVE: same engine, the engine's own text of each value (fast).
    CANONICAL: an engine-neutral text per value so that Oracle and PostgreSQL agree (slower)."""

    NATIVE = "native"
    CANONICAL = "canonical"


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


class ValidationDialect(abc.ABC):
    """The SQL a comparison needs from one engine. Mixed into each engine's Dialect."""

    @abc.abstractmethod
    def quote_ident(self, name: str) -> str: ...

    @abc.abstractmethod
    def qualified(self, schema: str, table: str) -> str: ...

    @abc.abstractmethod
    def param(self, name: str) -> str:
        """How this engine's driver spells the named bind variable ``name``."""

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
