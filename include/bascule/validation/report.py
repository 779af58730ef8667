"""Comparison reports: per table rows compared, ranges, differences (keys or keyed hashes) and time.

Only identifiers, counts, durations and keys go in; a key that identifies a
person is an HMAC (``bascule.privacy.keys``). Errors are sanitised before
they are stored. The JSON goes to XCom; :func:`render_summary` is the log's view.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from bascule.privacy.sanitize import SafeMessage, sanitize_error_text


class TableStatus(enum.StrEnum):
    EQUAL = "equal"
    DIFFERENT = "different"
    UNMAPPED_COLUMNS = "unmapped_columns"
    ERROR = "error"


class DiffKind(enum.StrEnum):
    MISSING_ON_TARGET = "missing_on_target"
    EXTRA_ON_TARGET = "extra_on_target"
    CHANGED = "changed"


@dataclass
class TableResult:
    table: str
    status: TableStatus = TableStatus.EQUAL
    mode: str = "native"
    key_columns: list[str] = field(default_factory=list)
    keys_hashed: bool = False
    rows_source: int = 0
    rows_target: int = 0
    ranges: int = 0
    ranges_differing: int = 0
    queries: int = 0
    columns_compared: list[str] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in DiffKind})
    keys: dict[str, list[Any]] = field(default_factory=lambda: {k.value: [] for k in DiffKind})
    keys_truncated: bool = False
    in_flight_resolved: int = 0
    rechecked_keys: int | None = None
    full_recheck_reason: str | None = None
    archived: list[dict[str, Any]] = field(default_factory=list)
    # Sessions the first pass was split into, per side ("source"/"target"), when it was (ADR 0065).
    block_chunks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    @property
    def differences(self) -> int:
        return sum(self.counts.values())

    @property
    def rows_compared(self) -> int:
        return max(self.rows_source, self.rows_target)

    @property
    def failed(self) -> bool:
        return self.status is not TableStatus.EQUAL

    def set_error(self, exc: BaseException) -> None:
        self.status = TableStatus.ERROR
        self.error = sanitize_error_text(exc)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["differences"] = self.differences
        out["rows_compared"] = self.rows_compared
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class ComparisonReport:
    kind: str  # "full" or "incremental"
    source_conn_id: str
    target_conn_id: str
    tables: list[TableResult] = field(default_factory=list)
    seconds: float = 0.0
    wait_and_confirm_s: float = 0.0
    tracking: dict[str, Any] | None = None

    @property
    def failed_tables(self) -> list[str]:
        return [t.table for t in self.tables if t.failed]

    @property
    def ok(self) -> bool:
        return not self.failed_tables

    @property
    def differences(self) -> int:
        return sum(t.differences for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "source_conn_id": self.source_conn_id,
            "target_conn_id": self.target_conn_id,
            "seconds": round(self.seconds, 3),
            "wait_and_confirm_s": self.wait_and_confirm_s,
            "differences": self.differences,
            "rows_compared": sum(t.rows_compared for t in self.tables),
            "failed_tables": self.failed_tables,
            "archived": [a for t in self.tables for a in t.archived],
            "tracking": self.tracking,
            "tables": [t.to_json() for t in self.tables],
        }


class ValidationFailed(AirflowFailException, SafeMessage):
    """A comparison or a suite run found differences: names the tables and where the full report is.

    An AirflowFailException: differences are data, not a transient fault, so the task is not retried.
    """

    def __init__(self, what: str, tables: list[str], where: str) -> None:
        self.tables = list(tables)
        self.where = where
        super().__init__(f"{what} failed for {len(tables)} table(s): {', '.join(tables)}; full report: {where}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.args[0].split(" failed", 1)[0], self.tables, self.where))


def render_summary(report: dict[str, Any]) -> str:
    """A fixed-width table for the task log: identifiers and numbers only, never a key list."""
    lines = [
        f"{report['kind']} comparison {report['source_conn_id']} -> {report['target_conn_id']}: "
        f"{'OK' if report['ok'] else 'DIFFERENCES'} in {report['seconds']:.1f} s, "
        f"{report['rows_compared']} rows, {report['differences']} differences",
        f"{'table':<28} {'status':<17} {'rows src':>10} {'rows tgt':>10} {'ranges':>7} {'diff rng':>8} "
        f"{'missing':>7} {'extra':>6} {'changed':>7} {'secs':>7}",
    ]
    for t in report["tables"]:
        c = t["counts"]
        lines.append(
            f"{t['table']:<28} {t['status']:<17} {t['rows_source']:>10} {t['rows_target']:>10} "
            f"{t['ranges']:>7} {t['ranges_differing']:>8} {c['missing_on_target']:>7} "
            f"{c['extra_on_target']:>6} {c['changed']:>7} {t['seconds']:>7.2f}"
        )
        if t["not_compared"]:
            lines.append("    not compared: " + "; ".join(f"{k} ({v})" for k, v in t["not_compared"].items()))
        if t["unmapped"]:
            lines.append("    UNMAPPED (fails): " + ", ".join(t["unmapped"]))
        for a in t.get("archived", []):
            lines.append(f"    left out: {a['partition']} ({a['rows_archived']} rows) {a['status']}")
        if t.get("full_recheck_reason"):
            lines.append(f"    full re-check: {t['full_recheck_reason']}")
        if t["in_flight_resolved"]:
            lines.append(f"    {t['in_flight_resolved']} difference(s) resolved while waiting (in flight)")
        if t["error"]:
            lines.append(f"    error: {t['error']}")
    return "\n".join(lines)
