"""Storage optimisation: sizes, unused/duplicate/redundant indexes, bloat, archive candidates; then the gated apply.

Detection reads catalogues and statistics only (never a list of what was planted):
- *unused* comes from the **source**'s ``pg_stat_*_indexes``, where the hospital's
  workload runs; a freshly loaded target shows every index unused. Indexes that
  back a constraint or are the only index on a foreign key's columns are kept;
- *duplicate*: same table, same keys, opclasses, expressions and predicate;
- *redundant*: a plain index whose keys are a left prefix of another index with
  the same predicate (the wider index serves the same lookups);
- *bloat*: a statistical estimate per table (see ``table_bloat_estimate``);
- *archive candidates*: partitions of date-RANGE-partitioned tables whose whole
  range is older than the retention.

Applying (a separate, gated task) works on the **target** only: DROP INDEX, and
archiving = copy to an archive database on another cluster (the plan's
``storage.archive_conn_id``: a backup of the target must no longer carry it), verify
count and checksum, then detach and drop; the manifest records what went where. Sizes are measured before and after.
Each archived partition's key range is also recorded on the target itself, in
``bascule_meta.archived_partitions``, before it is detached: the comparison
(``bascule.validation.archived``) reads it there to leave those ranges out on both
sides and name them, wherever its worker runs.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bascule.engines import postgres_assessment as q
from bascule.preparation.assessment import parse_upper_bound
from bascule.preparation.findings import Finding, FindingSet, Severity

STAGE = "storage"
DEFAULT_RETENTION_MONTHS = 24
BLOAT_MIN_BYTES = 1 << 20
BLOAT_MIN_RATIO = 0.2
class ActionKind(enum.StrEnum):
    DROP_INDEX = "drop_index"
    ARCHIVE_PARTITION = "archive_partition"


@dataclass(frozen=True)
class IndexFact:
    schema: str
    table: str
    name: str
    bytes: int
    scans: int
    unique: bool
    primary: bool
    constraint: bool
    keys: tuple[int, ...]
    opclasses: tuple[str, ...]
    exprs: str | None
    predicate: str | None
    valid: bool
    fk: str | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def protected(self) -> bool:
        return self.unique or self.primary or self.constraint


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    object: str
    reason: str
    bytes: int
    table: str | None = None
    root: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(kind=ActionKind(data["kind"]), object=data["object"], reason=data["reason"],
                   bytes=int(data["bytes"]), table=data.get("table"), root=data.get("root"))


@dataclass(frozen=True)
class StorageAnalysis:
    tables: tuple[dict[str, Any], ...]
    actions: tuple[Action, ...]
    notes: tuple[Finding, ...]
    bloat: tuple[dict[str, Any], ...]
    target_bytes: int
    source_bytes: int
    stats_since: str | None
    kept: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def projected_savings(self) -> int:
        return sum(a.bytes for a in self.actions)

    def to_json(self) -> dict[str, Any]:
        return {
            "tables": list(self.tables), "actions": [a.to_json() for a in self.actions],
            "bloat": list(self.bloat), "target_bytes": self.target_bytes, "source_bytes": self.source_bytes,
            "projected_savings_bytes": self.projected_savings,
            "projected_savings_pct": round(100 * self.projected_savings / self.target_bytes, 1)
            if self.target_bytes else 0.0,
            "stats_since": self.stats_since, "kept": list(self.kept),
            "notes": [n.to_json() for n in self.notes],
        }

    def findings(self) -> FindingSet:
        out = list(self.notes)
        for a in self.actions:
            out.append(Finding("storage", a.object, Severity.WARNING, f"{a.kind.value}: {a.reason} "
                               f"({a.bytes / 1048576:.1f} MB on the target)",
                               "apply it at the storage_apply gate" if a.kind is ActionKind.DROP_INDEX else
                               "archive it at the storage_apply gate (copied, verified, then detached)"))
        return FindingSet(STAGE, tuple(out), {"projected_savings_bytes": self.projected_savings,
                                              "target_bytes": self.target_bytes})

    def markdown(self) -> str:
        pct = 100 * self.projected_savings / self.target_bytes if self.target_bytes else 0
        lines = [f"**Storage**: target {self.target_bytes / 1048576:.1f} MB (source {self.source_bytes / 1048576:.1f} MB);"
                 f" {len(self.actions)} action(s) would save {self.projected_savings / 1048576:.1f} MB ({pct:.1f}%)",
                 "", "| action | object | reason | MB |", "|---|---|---|---|"]
        for a in self.actions:
            lines.append(f"| {a.kind.value} | `{a.object}` | {a.reason} | {a.bytes / 1048576:.1f} |")
        return "\n".join(lines)


def _int_list(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in str(text or "").split())


def read_indexes(reader: Any, schemas: Sequence[str]) -> list[IndexFact]:
    return [IndexFact(schema=r[0], table=r[1], name=r[2], bytes=int(r[3]), scans=int(r[4]), unique=bool(r[5]),
                      primary=bool(r[6]), constraint=bool(r[7]), keys=_int_list(r[8]),
                      opclasses=tuple(str(r[9] or "").split()), exprs=r[10], predicate=r[11], valid=bool(r[12]),
                      fk=r[13]) for r in reader.records(q.index_usage(list(schemas)))]


def classify_indexes(source_indexes: Sequence[IndexFact]) -> tuple[list[tuple[IndexFact, str]],
                                                                    list[tuple[IndexFact, str]]]:
    """(indexes to drop with the reason, indexes kept on purpose with the reason), from the source's facts."""
    drop: dict[str, tuple[IndexFact, str]] = {}
    kept: list[tuple[IndexFact, str]] = []
    # An index that takes over the lookups of a dropped, used duplicate or prefix must stay.
    serving: dict[str, str] = {}
    by_table: dict[tuple[str, str], list[IndexFact]] = defaultdict(list)
    for ix in source_indexes:
        by_table[(ix.schema, ix.table)].append(ix)
    for indexes in by_table.values():
        # Exact duplicates: keep the constraint-backed one, else the most used, else the first name.
        groups: dict[tuple, list[IndexFact]] = defaultdict(list)
        for ix in indexes:
            groups[(ix.keys, ix.opclasses, ix.exprs, ix.predicate)].append(ix)
        for same in groups.values():
            if len(same) < 2:
                continue
            keep = sorted(same, key=lambda i: (not i.protected, -i.scans, i.name))[0]
            for ix in same:
                if ix is not keep and not ix.protected:
                    drop[ix.qualified] = (ix, f"duplicate of {keep.qualified}")
                    if ix.scans > 0:
                        serving[keep.qualified] = ix.qualified
        # Left prefixes of a wider index with the same predicate.
        for ix in indexes:
            if ix.qualified in drop or ix.protected or ix.exprs:
                continue
            for wider in indexes:
                if (wider is not ix and wider.qualified not in drop and not wider.exprs and wider.valid
                        and len(wider.keys) > len(ix.keys) and wider.keys[:len(ix.keys)] == ix.keys
                        and wider.opclasses[:len(ix.opclasses)] == ix.opclasses
                        and wider.predicate == ix.predicate):
                    drop[ix.qualified] = (ix, f"left prefix of {wider.qualified}")
                    if ix.scans > 0:
                        serving[wider.qualified] = ix.qualified
                    break
        # Unused since the source's statistics began.
        for ix in indexes:
            if ix.qualified in drop or ix.scans > 0:
                continue
            if ix.qualified in serving:
                kept.append((ix, f"takes over the lookups of {serving[ix.qualified]}"))
            elif ix.protected:
                kept.append((ix, "unused but enforces a constraint"))
            elif ix.fk and not any(o is not ix and o.qualified not in drop and o.keys[:len(ix.keys)] == ix.keys
                                   for o in indexes):
                kept.append((ix, f"unused but the only index on foreign key {ix.fk} (deletes of the parent need it)"))
            else:
                drop[ix.qualified] = (ix, "never scanned on the source since its statistics began")
    return list(drop.values()), kept


def _months_before(day: date, months: int) -> datetime:
    index = day.year * 12 + (day.month - 1) - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def archive_candidates(reader: Any, schemas: Sequence[str], *, retention_months: int,
                       reference_date: date, tables: Iterable[str] | None = None) -> list[tuple[str, str, int, str]]:
    """(schema.partition, schema.root, bytes, reason) of partitions entirely older than the retention."""
    cutoff = _months_before(reference_date, retention_months)
    wanted = {t.lower() for t in tables} if tables else None
    out = []
    for schema, root, part, bound, nbytes, _rows in reader.records(q.old_range_partitions(list(schemas))):
        if wanted is not None and f"{schema}.{root}".lower() not in wanted:
            continue
        upper = parse_upper_bound(bound)
        if upper is not None and upper <= cutoff:
            out.append((f"{schema}.{part}", f"{schema}.{root}", int(nbytes),
                        f"all rows before {upper.date().isoformat()}, older than the {retention_months}-month retention"))
    return out


def analyse_storage(*, source: Any, target: Any, schemas: Sequence[str], today: date,
                    retention_months: int = DEFAULT_RETENTION_MONTHS,
                    archive_tables: Iterable[str] | None = None) -> StorageAnalysis:
    """Detect what the target can shed. ``today`` is where retention is measured from:
    ``bascule.today.retention_today(plan)`` (the real date in production, the lab's fixed date in the lab)."""
    schemas = list(schemas)
    notes: list[Finding] = []
    stats_reset, started = source.records(q.stats_age())[0]
    since = stats_reset or started
    notes.append(Finding("storage", "source statistics", Severity.PASS,
                         f"index usage counted on the source since {since}"))
    tables = [{"table": f"{r[0]}.{r[1]}", "kind": r[2], "heap_bytes": int(r[3]), "toast_bytes": int(r[4]),
               "index_bytes": int(r[5]), "total_bytes": int(r[6]), "rows_estimate": int(r[7])}
              for r in target.records(q.table_sizes(schemas))]
    target_sizes = {ix.qualified: ix.bytes for ix in read_indexes(target, schemas)}
    to_drop, kept = classify_indexes(read_indexes(source, schemas))
    actions = [Action(ActionKind.DROP_INDEX, ix.qualified, reason, target_sizes.get(ix.qualified, 0),
                      table=f"{ix.schema}.{ix.table}")
               for ix, reason in sorted(to_drop, key=lambda x: x[0].qualified) if ix.qualified in target_sizes]
    for part, root, _src_bytes, reason in archive_candidates(target, schemas, retention_months=retention_months,
                                                              reference_date=today, tables=archive_tables):
        actions.append(Action(ActionKind.ARCHIVE_PARTITION, part, reason, _src_bytes, table=part, root=root))
    # An index dropped on an archived partition's parent is partly counted twice otherwise: the partition
    # size already includes its share of every index.
    archived = {a.object for a in actions if a.kind is ActionKind.ARCHIVE_PARTITION}
    if archived:
        leaf_share = _index_bytes_on(target, archived, {a.object for a in actions if a.kind is ActionKind.DROP_INDEX})
        actions = [Action(a.kind, a.object, a.reason, max(0, a.bytes - leaf_share.get(a.object, 0)), a.table, a.root)
                   if a.kind is ActionKind.DROP_INDEX else a for a in actions]
    bloat = []
    for schema, table, nbytes, expected, live, dead in source.records(q.table_bloat_estimate(schemas)):
        if expected is None:
            continue
        waste = max(0, int(nbytes) - int(expected))
        entry = {"table": f"{schema}.{table}", "bytes": int(nbytes), "expected_bytes": int(expected),
                 "bloat_bytes": waste, "dead_tuples": int(dead), "live_tuples": int(live)}
        if waste >= BLOAT_MIN_BYTES and waste >= BLOAT_MIN_RATIO * int(nbytes):
            bloat.append(entry)
            notes.append(Finding("bloat", f"{schema}.{table}", Severity.WARNING,
                                 f"about {waste / 1048576:.1f} MB of {int(nbytes) / 1048576:.1f} MB is bloat "
                                 f"({int(dead)} dead tuples) on the source",
                                 "nothing to do on the target: the logical load rewrites it compactly; "
                                 "on the source, VACUUM (or pg_repack) if it stays in service"))
    for ix, reason in kept:
        notes.append(Finding("storage", ix.qualified, Severity.PASS, f"kept: {reason}"))
    (target_bytes, _), (source_bytes, _) = target.records(q.scope_bytes(schemas))[0], source.records(
        q.scope_bytes(schemas))[0]
    return StorageAnalysis(tables=tuple(tables), actions=tuple(actions), notes=tuple(notes), bloat=tuple(bloat),
                           target_bytes=int(target_bytes), source_bytes=int(source_bytes),
                           stats_since=None if since is None else str(since),
                           kept=tuple({"index": ix.qualified, "reason": r} for ix, r in kept))


def _index_bytes_on(target: Any, partitions: set[str], indexes: set[str]) -> dict[str, int]:
    rows = target.records(q.index_bytes_on_partitions(partitions))
    return {name: int(b) for name, b in rows if name in indexes}


# --------------------------------------------------------------------------- apply (target only)


@dataclass(frozen=True)
class ApplyResult:
    before_bytes: int
    after_bytes: int
    applied: tuple[dict[str, Any], ...]
    archive: dict[str, Any]

    @property
    def reduction_pct(self) -> float:
        return round(100 * (self.before_bytes - self.after_bytes) / self.before_bytes, 2) if self.before_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"before_bytes": self.before_bytes, "after_bytes": self.after_bytes,
                "reduction_pct": self.reduction_pct, "applied": list(self.applied), "archive": self.archive}


class ArchiveMismatch(RuntimeError):
    """The archived copy does not match the partition: nothing was detached or dropped."""


class ArchiveOnTargetCluster(ValueError):
    """The archive connection reaches the target's own cluster: a backup of the target would still carry it."""


def _check_archive_outside(target: Any, archive: Any) -> None:
    # The system identifier is the cluster's, not the server's address: a second name or port for the same
    # cluster (a pooler, a VIP) is seen through. Checked before anything is copied.
    (mine,), = target.records(q.cluster_identity())
    (theirs,), = archive.records(q.cluster_identity())
    if str(mine) == str(theirs):
        raise ArchiveOnTargetCluster(
            f"storage.archive_conn_id ({getattr(archive, 'db_conn_id', '?')}) reaches the target's own cluster "
            f"(system identifier {mine}): archive to a database on another cluster, or a backup of the target "
            "still carries every archived partition")


def apply_storage_actions(target: Any, actions: Sequence[Action], *, schemas: Sequence[str],
                          archive: Any | None = None, manifest_path: Path | None = None,
                          log: Callable[[str], None] = print) -> ApplyResult:
    """Drop indexes and archive partitions on the target; idempotent (a second run finds nothing left to do).

    ``archive`` is a hook on the archive database (the plan's ``storage.archive_conn_id``), which must live on
    another cluster than the target: the point of archiving is that the target's backups no longer carry the
    old partitions. The caller owns (and closes) it.
    """
    (before, _), = target.records(q.scope_bytes(list(schemas)))
    applied: list[dict[str, Any]] = []
    archives = [a for a in actions if a.kind is ActionKind.ARCHIVE_PARTITION]
    if archives:
        if archive is None:
            raise ValueError(f"{len(archives)} partition(s) to archive but no archive database: set "
                             "storage.archive_conn_id in the plan (a database outside the target's cluster)")
        _check_archive_outside(target, archive)
        archive.execute(q.create_archive_manifest())
    for action in actions:
        if action.kind is ActionKind.DROP_INDEX:
            schema, name = action.object.split(".", 1)
            target.execute(q.drop_index(schema, name))
            applied.append({"kind": action.kind.value, "object": action.object, "bytes": action.bytes})
            log(f"storage: dropped index {action.object}")
    for action in archives:
        applied.append(_archive_partition(target, archive, action, log=log))
    manifest = [] if not archives else [
        {"object": o, "root": r, "archived_to": t, "rows": int(n), "checksum": str(c), "archived_at": str(at)}
        for o, r, t, n, c, at in archive.records(q.archive_manifest())]
    (after, _), = target.records(q.scope_bytes(list(schemas)))
    archive_info = {"database": archive.database if archives else None,
                    "conn_id": getattr(archive, "db_conn_id", None) if archives else None, "manifest": manifest}
    if manifest_path is not None and archives:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(archive_info, indent=2))
        archive_info["manifest_file"] = str(manifest_path)
    return ApplyResult(int(before), int(after), tuple(applied), archive_info)


def _archive_partition(target: Any, archive: Any, action: Action, *, log: Callable[[str], None]) -> dict[str, Any]:
    schema, part = action.object.split(".", 1)
    root_schema, root = (action.root or "").split(".", 1)
    done = archive.records(q.archived_rows(action.object))
    exists = target.records(q.relation_exists(action.object))[0][0]
    if done and not exists:
        return {"kind": action.kind.value, "object": action.object, "rows": int(done[0][0]), "already": True}
    columns = target.records(q.table_columns_ddl(schema, part))
    ddl = ", ".join(f'"{c}" {t}' for c, t in columns)
    archive.execute(q.create_schema(schema))
    archive.execute(q.drop_table(schema, part))
    archive.execute(q.create_archive_table_like(schema, part, ddl))
    target.copy_rows(source_table=q.relation(schema, part), target=archive, target_table=q.relation(schema, part))
    (n_src, c_src), = target.records(q.relation_checksum(schema, part))
    (n_arc, c_arc), = archive.records(q.relation_checksum(schema, part))
    if (int(n_src), str(c_src)) != (int(n_arc), str(c_arc)):
        raise ArchiveMismatch(f"archive of {action.object}: {n_arc} rows / checksum differs from the partition's "
                              f"{n_src} rows: the partition was left in place")
    archive.execute(*q.record_archive(partition=action.object, root=action.root,
                                      archived_to=f"{archive.database}.{schema}.{part}", rows=int(n_src),
                                      checksum=c_src))
    _record_archived_range(target, action, archived_to=f"{archive.database}.{schema}.{part}", rows=int(n_src),
                           checksum=c_src)
    target.execute(q.detach_partition(root_schema, root, part))
    target.execute(q.drop_table(schema, part))
    log(f"storage: archived {action.object} ({int(n_src)} rows, checksum verified) into {archive.database}")
    return {"kind": action.kind.value, "object": action.object, "rows": int(n_src), "checksum": str(c_src),
            "archived_to": f"{archive.database}.{schema}.{part}", "bytes": action.bytes}


def _bound_value(text: str) -> str | None:
    # MINVALUE/MAXVALUE leave that side open; a literal is printed quoted, with '' for a quote.
    if text.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _record_archived_range(target: Any, action: Action, *, archived_to: str, rows: int, checksum: Any) -> None:
    """Record, on the target, the key range the partition held: the comparison leaves it out on both sides."""
    found = target.records(q.partition_bound(action.object))
    if not found:
        raise ArchiveMismatch(f"archive of {action.object}: not a partition on the target; nothing was detached")
    column, key_type, bounds, natts, strategy = found[0]
    if strategy != "r" or int(natts) != 1 or not bounds:
        raise ArchiveMismatch(f"archive of {action.object}: only a single-column RANGE partition's key range can "
                              "be recorded for validation; the partition was left in place")
    for statement in q.create_archived_ranges():
        target.execute(statement)
    target.execute(*q.record_archived_range(
        partition=action.object, root=action.root, key_column=column, key_type=key_type,
        range_from=_bound_value(bounds[0]), range_to=_bound_value(bounds[1]), archived_to=archived_to, rows=rows,
        checksum=checksum))
