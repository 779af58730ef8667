"""Archived partitions: key ranges the comparison leaves out on both sides, and names in its report.

Storage optimisation (``bascule.preparation.storage``) archives old partitions
of the target into an archive database, verified by count and checksum, then
detaches and drops them; it records each one's partition-key range on the target
in ``bascule_meta.archived_partitions``. Without this module a comparison would
report every row of those ranges as missing on the target. With it, both sides'
reads of the partitioned table are restricted to rows outside the archived
ranges, and each archived partition is listed in the table's result as
"archived (verified at <time>, to <where>)": never skipped silently.

The restriction wraps the dialect's data queries (bounds, range hashes, hash
buckets, leaf rows, rows by keys, row count), which each read ``FROM <table>``
exactly once, into ``FROM (SELECT * FROM <table> WHERE <outside the ranges>)``;
the catalogue queries are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bascule.engines.base import Query

ARCHIVED_TABLE = "bascule_meta.archived_partitions"
RESTRICTED_QUERIES = frozenset({"key_bounds_sql", "count_rows_sql", "range_hashes_sql", "hash_buckets_sql",
                                "leaf_rows_sql", "rows_by_keys_sql"})
_TYPE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*(\(\d+(,\s*\d+)?\))?( with(out)? time zone)?$")


@dataclass(frozen=True)
class ArchivedRange:
    """One archived partition: ``range_from <= key_column < range_to`` (None: open on that side)."""

    object: str
    root: str
    key_column: str
    key_type: str
    range_from: str | None
    range_to: str | None
    archived_to: str
    rows: int
    verified_at: str

    def __post_init__(self) -> None:
        if not _TYPE_RE.match(self.key_type):
            raise ValueError(f"{ARCHIVED_TABLE}: {self.object}: key_type {self.key_type!r} is not a type name")
        if self.range_from is None and self.range_to is None:
            raise ValueError(f"{ARCHIVED_TABLE}: {self.object}: range_from and range_to are both empty")

    @property
    def status(self) -> str:
        return f"archived (verified at {self.verified_at}, to {self.archived_to})"

    def to_json(self) -> dict[str, Any]:
        return {"partition": self.object, "status": self.status, "archived_to": self.archived_to,
                "verified_at": self.verified_at, "rows_archived": self.rows, "key_column": self.key_column,
                "range_from": self.range_from, "range_to": self.range_to}


def read_query() -> Query:
    return (
        "SELECT object, root, key_column, key_type, range_from, range_to, archived_to, rows,"
        " to_char(verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        f" FROM {ARCHIVED_TABLE} ORDER BY root, object",
        {},
    )


def exists_query() -> Query:
    return "SELECT to_regclass(%(t)s) IS NOT NULL", {"t": ARCHIVED_TABLE}


def read_archived(session: Any) -> dict[str, list[ArchivedRange]]:
    """The target's archived ranges by root table (lower-case ``schema.table``); empty when none was recorded.

    PostgreSQL only, as is the storage apply that records them.
    """
    if session.hook.engine != "postgres" or not session.rows(exists_query())[0][0]:
        return {}
    out: dict[str, list[ArchivedRange]] = {}
    for row in session.rows(read_query()):
        r = ArchivedRange(object=str(row[0]), root=str(row[1]), key_column=str(row[2]), key_type=str(row[3]),
                          range_from=row[4], range_to=row[5], archived_to=str(row[6]), rows=int(row[7]),
                          verified_at=str(row[8]))
        out.setdefault(r.root.lower(), []).append(r)
    return out


def outside_predicate(dialect: Any, column: str, ranges: Sequence[ArchivedRange], *, prefix: str = "arc"
                      ) -> Query:
    """``column`` outside every range (a row whose key is NULL is outside), with its bind values."""
    col = dialect.quote_ident(column)
    params: dict[str, Any] = {}
    inside = []
    for i, r in enumerate(ranges):
        parts = []
        if r.range_from is not None:
            params[f"{prefix}_f{i}"] = r.range_from
            parts.append(f"{col} >= CAST({dialect.param(f'{prefix}_f{i}')} AS {r.key_type})")
        if r.range_to is not None:
            params[f"{prefix}_t{i}"] = r.range_to
            parts.append(f"{col} < CAST({dialect.param(f'{prefix}_t{i}')} AS {r.key_type})")
        inside.append("(" + " AND ".join(parts) + ")")
    return f"({col} IS NULL OR NOT ({' OR '.join(inside)}))", params


def restrict(query: Query, table_sql: str, predicate: Query) -> Query:
    """``query`` reading only the rows of ``table_sql`` that satisfy ``predicate``."""
    sql, params = query
    needle = f"FROM {table_sql}"
    if sql.count(needle) != 1:
        raise ValueError(f"cannot leave archived ranges out of a query that does not read {needle!r} once")
    head, tail = sql.split(needle)
    # The dialects alias the table as t where they refer to it; elsewhere a derived table needs a name.
    alias = "" if re.match(r" t\b", tail) else " b"
    where, extra = predicate
    return f"{head}FROM (SELECT * FROM {table_sql} WHERE {where}){alias}{tail}", {**params, **extra}


class RestrictedDialect:
    """A dialect whose data queries on one table leave the archived ranges out; all else passes through."""

    def __init__(self, inner: Any, *, schema: str, table: str, predicate: Query) -> None:
        self._inner = inner
        self._table = (schema, table)
        self._predicate = predicate

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in RESTRICTED_QUERIES:
            return attr

        def restricted(schema: str, table: str, *args: Any, **kwargs: Any) -> Query:
            query = attr(schema, table, *args, **kwargs)
            if (schema, table) != self._table:
                return query
            return restrict(query, self._inner.qualified(schema, table), self._predicate)

        return restricted


def source_column(column: str, renamed: Iterable[tuple[str, str]]) -> str:
    """The source's name of the target's ``column`` under the release's renames."""
    return next((old for old, new in renamed if new.lower() == column.lower()), column)


def key_column_of(ranges: Sequence[ArchivedRange]) -> str:
    columns = {r.key_column for r in ranges}
    if len(columns) != 1:
        raise ValueError(f"{ARCHIVED_TABLE}: partitions of {ranges[0].root} name different key columns: "
                         f"{', '.join(sorted(columns))}")
    return columns.pop()


def for_table(archived: Mapping[str, list[ArchivedRange]], qualified: str) -> list[ArchivedRange]:
    return list(archived.get(qualified.lower(), []))
