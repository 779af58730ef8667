"""Schema comparison of source and target: tables, columns, constraints, indexes, sequences, views, functions.

Each side is read into a :class:`SchemaSnapshot` (names and definitions only),
the two are compared object by object, and every difference is marked EXPECTED
when the release explains it: the plan's ``release.column_mapping`` (added,
renamed, dropped columns and what is built on them), the objects the release
migration creates or alters (read from its SQL text), and an explicit
``expected`` list for the rest.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bascule.engines import postgres_assessment as q
from bascule.plan import Plan
from bascule.preparation.findings import Finding, FindingSet, Severity

STAGE = "schema_comparison"


class Kind(enum.StrEnum):
    TABLE = "table"
    COLUMN = "column"
    CONSTRAINT = "constraint"
    INDEX = "index"
    SEQUENCE = "sequence"
    VIEW = "view"
    FUNCTION = "function"


class Change(enum.StrEnum):
    ONLY_SOURCE = "only on source"
    ONLY_TARGET = "only on target"
    DIFFERS = "differs"


class CatalogueReader(Protocol):
    def records(self, query: tuple[Any, dict[str, Any]]) -> list[tuple[Any, ...]]: ...


@dataclass(frozen=True)
class SchemaSnapshot:
    """``objects[kind][qualified name] = definition text`` for one side."""

    objects: Mapping[str, Mapping[str, str]]

    def count(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.objects.items()}

    def to_json(self) -> dict[str, Any]:
        return {"objects": {k: dict(v) for k, v in self.objects.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SchemaSnapshot:
        return cls(objects={k: dict(v) for k, v in data["objects"].items()})


def snapshot(reader: CatalogueReader, schemas: Sequence[str]) -> SchemaSnapshot:
    schemas = list(schemas)
    objects: dict[str, dict[str, str]] = {k.value: {} for k in Kind}
    for schema, table, relkind, bound in reader.records(q.catalogue_tables(schemas)):
        kind = {"p": "partitioned table", "r": "table", "f": "foreign table"}[relkind]
        objects[Kind.TABLE][f"{schema}.{table}"] = kind + (f" {bound}" if bound else "")
    for schema, table, col, typ, notnull, default, coll in reader.records(q.catalogue_columns(schemas)):
        text = typ + (" NOT NULL" if notnull else "") + (f" DEFAULT {default}" if default else "")
        objects[Kind.COLUMN][f"{schema}.{table}.{col}"] = text + (f' COLLATE "{coll}"' if coll else "")
    for schema, table, name, _contype, definition in reader.records(q.catalogue_constraints(schemas)):
        objects[Kind.CONSTRAINT][f"{schema}.{table}.{name}"] = definition
    for schema, table, name, definition in reader.records(q.catalogue_indexes(schemas)):
        objects[Kind.INDEX][f"{schema}.{table}.{name}"] = definition
    for schema, name, dtype, inc, lo, hi, cycle, owned in reader.records(q.catalogue_sequences(schemas)):
        objects[Kind.SEQUENCE][f"{schema}.{name}"] = (
            f"{dtype} INCREMENT {inc} MINVALUE {lo} MAXVALUE {hi}" + (" CYCLE" if cycle else "")
            + (f" OWNED BY {owned}" if owned else ""))
    for schema, name, relkind, definition in reader.records(q.catalogue_views(schemas)):
        kind = "MATERIALIZED VIEW" if relkind == "m" else "VIEW"
        objects[Kind.VIEW][f"{schema}.{name}"] = f"{kind} AS {' '.join(str(definition).split())}"
    for schema, signature, result, body_md5 in reader.records(q.catalogue_functions(schemas)):
        objects[Kind.FUNCTION][f"{schema}.{signature}"] = f"RETURNS {result} body md5 {body_md5}"
    return SchemaSnapshot(objects=objects)


# --------------------------------------------------------------------------- what the release explains


@dataclass(frozen=True)
class ReleaseObjects:
    """Names the release migration creates or alters, read from its SQL text."""

    indexes: frozenset[str] = frozenset()
    constraints: frozenset[str] = frozenset()
    columns: frozenset[str] = frozenset()
    tables: frozenset[str] = frozenset()


_IDENT = r'"?([A-Za-z_][\w$]*)"?'
_QNAME = r'(?:"?[A-Za-z_][\w$]*"?\.)?' + _IDENT
_CREATE_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
                           + _IDENT, re.IGNORECASE)
_ADD_CONSTRAINT = re.compile(r"ADD\s+CONSTRAINT\s+" + _IDENT, re.IGNORECASE)
_ALTER_TABLE = re.compile(r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?((?:\"?[A-Za-z_][\w$]*\"?\.)?"
                          r"\"?[A-Za-z_][\w$]*\"?)\s+(.*?);", re.IGNORECASE | re.DOTALL)
_COLUMN_CHANGE = re.compile(r"(?:ADD|ALTER|DROP)\s+COLUMN\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?" + _IDENT,
                            re.IGNORECASE)
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:\"?[A-Za-z_][\w$]*\"?\.)?"
                           r"\"?[A-Za-z_][\w$]*\"?)", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


def release_objects(sql_text: str, *, default_schema: str = "public") -> ReleaseObjects:
    """Objects named by a release migration. A heuristic over the SQL text, not a parser (ADR 0050)."""
    text = _COMMENT.sub("", sql_text)

    def qualify(name: str) -> str:
        name = name.replace('"', "")
        return name if "." in name else f"{default_schema}.{name}"

    columns = set()
    for table, body in _ALTER_TABLE.findall(text):
        for col in _COLUMN_CHANGE.findall(body):
            columns.add(f"{qualify(table)}.{col}")
    return ReleaseObjects(
        indexes=frozenset(_CREATE_INDEX.findall(text)),
        constraints=frozenset(_ADD_CONSTRAINT.findall(text)),
        columns=frozenset(columns),
        tables=frozenset(qualify(t) for t in _CREATE_TABLE.findall(text)),
    )


def release_objects_for(plan: Plan) -> ReleaseObjects:
    if plan.release is None:
        return ReleaseObjects()
    path = plan.release_migration_path
    if path is None or not Path(path).exists():
        return ReleaseObjects()
    return release_objects(path.read_text(), default_schema=plan.scope.schemas[0])


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True)
class Difference:
    kind: Kind
    object: str
    change: Change
    source: str | None
    target: str | None
    expected: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value, "change": self.change.value}


@dataclass(frozen=True)
class SchemaDiff:
    differences: tuple[Difference, ...]
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def unexpected(self) -> list[Difference]:
        return [d for d in self.differences if not d.expected]

    @property
    def expected(self) -> list[Difference]:
        return [d for d in self.differences if d.expected]

    def to_json(self) -> dict[str, Any]:
        return {"differences": [d.to_json() for d in self.differences], "counts": dict(self.counts),
                "unexpected": len(self.unexpected), "expected": len(self.expected)}

    def render(self) -> str:
        """A readable diff: one block per object, ``-`` the source's definition, ``+`` the target's."""
        lines = [f"schema comparison: {len(self.differences)} difference(s), {len(self.expected)} expected, "
                 f"{len(self.unexpected)} unexpected"]
        for kind in Kind:
            items = [d for d in self.differences if d.kind is kind]
            if not items:
                continue
            lines.append(f"\n{_PLURAL.get(kind, kind.value + 's')}:")
            for d in items:
                tag = "EXPECTED  " if d.expected else "UNEXPECTED"
                lines.append(f"  {tag} {d.object} ({d.change.value})" + (f"  [{d.reason}]" if d.reason else ""))
                if d.source is not None:
                    lines.append(f"    - {d.source}")
                if d.target is not None:
                    lines.append(f"    + {d.target}")
        return "\n".join(lines)

    def findings(self) -> FindingSet:
        out: list[Finding] = []
        for d in self.differences:
            if d.expected:
                out.append(Finding("schema_diff", f"{d.kind.value} {d.object}", Severity.PASS,
                                   f"{d.change.value}: expected ({d.reason})"))
                continue
            breaks_apply = d.change is Change.ONLY_SOURCE and d.kind in (Kind.TABLE, Kind.COLUMN)
            out.append(Finding(
                "schema_diff", f"{d.kind.value} {d.object}",
                Severity.BLOCKER if breaks_apply else Severity.WARNING,
                f"{d.change.value}: not explained by the release"
                + (" (replication would stop on it)" if breaks_apply else ""),
                "align the target with the source, or declare the difference as expected "
                "(release column_mapping, the release migration, or the expected list)",
            ))
        if not self.differences:
            out.append(Finding("schema_diff", "schema", Severity.PASS, "source and target schemas are identical"))
        return FindingSet(STAGE, tuple(out), {"unexpected": len(self.unexpected), "expected": len(self.expected),
                                              "objects": dict(self.counts)})


_PLURAL = {Kind.INDEX: "indexes"}


def _norm(text: str) -> str:
    return " ".join(text.split())


def compare(
    source: SchemaSnapshot,
    target: SchemaSnapshot,
    *,
    plan: Plan | None = None,
    release: ReleaseObjects | None = None,
    expected: Iterable[str] = (),
) -> SchemaDiff:
    """Every object that is missing on one side or defined differently, each marked expected or not."""
    explain = _Explainer(plan, release or ReleaseObjects(), expected)
    diffs: list[Difference] = []
    for kind in Kind:
        s, t = source.objects.get(kind, {}), target.objects.get(kind, {})
        for name in sorted(set(s) | set(t)):
            a, b = s.get(name), t.get(name)
            if a is not None and b is not None and _norm(a) == _norm(b):
                continue
            change = Change.ONLY_TARGET if a is None else Change.ONLY_SOURCE if b is None else Change.DIFFERS
            reason = explain(kind, name, change, a, b)
            diffs.append(Difference(kind, name, change, a, b, reason is not None, reason))
    counts = {"source": source.count(), "target": target.count()}
    return SchemaDiff(tuple(diffs), counts)


class _Explainer:
    def __init__(self, plan: Plan | None, release: ReleaseObjects, expected: Iterable[str]) -> None:
        self.release = release
        self.expected = {e.lower() for e in expected}
        self.added: set[str] = set()
        self.renamed_from: set[str] = set()
        self.renamed_to: set[str] = set()
        self.dropped: set[str] = set()
        self.mapped_tables: set[str] = set()
        if plan is not None and plan.release is not None:
            for table, mapping in plan.release.column_mapping.items():
                self.mapped_tables.add(table.lower())
                self.added |= {f"{table}.{c}".lower() for c in mapping.added}
                self.renamed_from |= {f"{table}.{c}".lower() for c in mapping.renamed}
                self.renamed_to |= {f"{table}.{c}".lower() for c in mapping.renamed.values()}
                self.dropped |= {f"{table}.{c}".lower() for c in mapping.dropped}

    def _mentions_release_column(self, name: str, definition: str | None) -> str | None:
        table = ".".join(name.split(".")[:2]).lower()
        for col in self.added | self.renamed_to:
            if col.rsplit(".", 1)[0] == table and definition and re.search(
                    rf"\b{re.escape(col.rsplit('.', 1)[1])}\b", definition, re.IGNORECASE):
                return col
        return None

    def __call__(self, kind: Kind, name: str, change: Change, a: str | None, b: str | None) -> str | None:
        low = name.lower()
        short = low.rsplit(".", 1)[-1]
        if low in self.expected or f"{kind.value}:{low}" in self.expected or short in self.expected:
            return "declared expected"
        if kind is Kind.COLUMN:
            if change is Change.ONLY_TARGET and low in self.added:
                return "release column_mapping: added"
            if change is Change.ONLY_TARGET and low in self.renamed_to:
                return "release column_mapping: rename target"
            if change is Change.ONLY_SOURCE and low in self.renamed_from:
                return "release column_mapping: renamed"
            if change is Change.ONLY_SOURCE and low in self.dropped:
                return "release column_mapping: dropped"
            if low in {c.lower() for c in self.release.columns}:
                return "altered by the release migration"
        if kind in (Kind.INDEX, Kind.CONSTRAINT) and change is not Change.ONLY_SOURCE:
            pool = self.release.indexes if kind is Kind.INDEX else self.release.constraints
            if short in {p.lower() for p in pool}:
                return "created by the release migration"
            col = self._mentions_release_column(name, b)
            if col:
                return f"built on the release column {col}"
        if kind is Kind.TABLE and change is Change.ONLY_TARGET and low in {t.lower() for t in self.release.tables}:
            return "created by the release migration"
        return None
