"""Data queries restricted to rows outside key ranges: how a comparison leaves archived partitions out.

A :class:`RestrictedDialect` wraps a dialect: its data queries on one table
(bounds, range hashes, hash buckets, leaf rows, rows by keys, row count), which
each read ``FROM <table>`` exactly once, read ``FROM (SELECT * FROM <table> WHERE
<outside the ranges>)`` instead; the catalogue queries pass through unchanged.
Range bounds travel as binds, cast to the range's key type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from bascule.engines.base import Query

RESTRICTED_QUERIES = frozenset({"key_bounds_sql", "count_rows_sql", "range_hashes_sql", "hash_buckets_sql",
                                "leaf_rows_sql", "rows_by_keys_sql"})


class KeyRangeBounds(Protocol):
    """``range_from <= key < range_to`` (None: open on that side), ``key_type`` a checked type name."""

    @property
    def key_type(self) -> str: ...

    @property
    def range_from(self) -> str | None: ...

    @property
    def range_to(self) -> str | None: ...


def outside_predicate(dialect: Any, column: str, ranges: Sequence[KeyRangeBounds], *, prefix: str = "arc"
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
