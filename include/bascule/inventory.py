"""What each side holds: tables, sizes, keys, replica identity, sequences.

Only structure and counts: an inventory never carries a row value.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TableInventory:
    schema: str
    name: str
    rows: int
    total_bytes: int
    primary_key: tuple[str, ...]
    replica_identity: str
    partitioned: bool = False
    partitions: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class SequenceInventory:
    schema: str
    name: str
    last_value: int | None
    increment_by: int


@dataclass(frozen=True)
class SideInventory:
    side: str
    conn_id: str
    engine: str
    server_version: str
    tables: tuple[TableInventory, ...]
    sequences: tuple[SequenceInventory, ...] = field(default_factory=tuple)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def total_bytes(self) -> int:
        return sum(t.total_bytes for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        # Lists, not tuples: XCom would otherwise wrap each tuple in a typed envelope.
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        data["total_rows"] = self.total_rows
        data["total_bytes"] = self.total_bytes
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SideInventory:
        return cls(
            side=data["side"], conn_id=data["conn_id"], engine=data["engine"],
            server_version=data["server_version"],
            tables=tuple(TableInventory(**{**t, "primary_key": tuple(t["primary_key"])}) for t in data["tables"]),
            sequences=tuple(SequenceInventory(**s) for s in data["sequences"]),
        )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def render_inventory(source: SideInventory, target: SideInventory) -> str:
    """A side-by-side table people can read in a task log or a terminal."""
    names = sorted({t.qualified for t in source.tables} | {t.qualified for t in target.tables})
    src = {t.qualified: t for t in source.tables}
    tgt = {t.qualified: t for t in target.tables}
    header = ("table", "source rows", "source size", "target rows", "target size", "primary key", "replica id")
    rows: list[tuple[str, ...]] = []
    for name in names:
        s, t = src.get(name), tgt.get(name)
        ref = s or t
        assert ref is not None
        label = name + (f" ({ref.partitions} partitions)" if ref.partitioned else "")
        rows.append((
            label,
            f"{s.rows:,}" if s else "-", human_bytes(s.total_bytes) if s else "-",
            f"{t.rows:,}" if t else "-", human_bytes(t.total_bytes) if t else "-",
            ",".join(ref.primary_key) or "NONE", ref.replica_identity,
        ))
    rows.append(("total", f"{source.total_rows:,}", human_bytes(source.total_bytes),
                 f"{target.total_rows:,}", human_bytes(target.total_bytes), "", ""))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    right = {1, 2, 3, 4}

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [
        f"source: {source.conn_id} ({source.engine} {source.server_version})   "
        f"target: {target.conn_id} ({target.engine} {target.server_version})",
        fmt(header), rule, *(fmt(r) for r in rows[:-1]), rule, fmt(rows[-1]),
    ]
    seqs = sorted({f"{q.schema}.{q.name}" for q in (*source.sequences, *target.sequences)})
    if seqs:
        s_seq = {f"{q.schema}.{q.name}": q for q in source.sequences}
        t_seq = {f"{q.schema}.{q.name}": q for q in target.sequences}
        lines += ["", "sequences: last value on source -> target ('unused': never called yet)"]
        width = max(len(n) for n in seqs)
        for n in seqs:
            sv = s_seq[n].last_value if n in s_seq else None
            tv = t_seq[n].last_value if n in t_seq else None
            lines.append(f"  {n.ljust(width)}  {_seq(sv, n in s_seq):>12} -> {_seq(tv, n in t_seq)}")
    return "\n".join(lines)


def _seq(value: int | None, present: bool) -> str:
    if not present:
        return "missing"
    return "unused" if value is None else f"{value:,}"
