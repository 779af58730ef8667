"""Archived partitions: key ranges the comparison leaves out on both sides, and names in its report.

Storage optimisation (``bascule.preparation.storage``) archives old partitions
of the target into an archive database, verified by count and checksum, then
detaches and drops them; it records each one's partition-key range on the target
in ``bascule_meta.archived_partitions``. Without this module a comparison would
report every row of those ranges as missing on the target. With it, both sides'
reads of the partitioned table are restricted to rows outside the archived
ranges, and each archived partition is listed in the table's result as
"archived (verified at <time>, to <where>)": never skipped silently.

The restriction (``bascule.engines.restricted``) wraps the dialect's data queries
(bounds, range hashes, hash buckets, leaf rows, rows by keys, row count); the
catalogue queries are left alone. The SQL that reads the record is the dialect's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bascule.engines.postgres_assessment import ARCHIVED_TABLE

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


def read_archived(session: Any) -> dict[str, list[ArchivedRange]]:
    """The target's archived ranges by root table (lower-case ``schema.table``); empty when none was recorded.

    Only where the engine's storage stage archives partitions (PostgreSQL): elsewhere the
    dialect has no record to read.
    """
    exists = session.dialect.archived_ranges_exist_sql()
    if exists is None or not session.rows(exists)[0][0]:
        return {}
    out: dict[str, list[ArchivedRange]] = {}
    for row in session.rows(session.dialect.archived_ranges_sql()):
        r = ArchivedRange(object=str(row[0]), root=str(row[1]), key_column=str(row[2]), key_type=str(row[3]),
                          range_from=row[4], range_to=row[5], archived_to=str(row[6]), rows=int(row[7]),
                          verified_at=str(row[8]))
        out.setdefault(r.root.lower(), []).append(r)
    return out


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
