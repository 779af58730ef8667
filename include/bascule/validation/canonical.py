"""What is compared for one table: key, column pairs, canonical forms, and what is not compared and why.

Pure: built from the two sides' catalogs and the plan's release column mapping,
so that every column of either side ends up in exactly one place of the report:
compared, not compared with a reason (dropped or added by the release), or
unmapped (which fails the comparison: a column is never silently skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bascule.engines.base import ColumnKind, HashColumn, HashMode, ValidationDialect

# Kinds whose native text is the same for every declared size (varchar(20) and
# varchar(32) print 'abc' alike); for the others a different declaration means
# a different text (numeric(10,2) '1.50' against numeric(12,4) '1.5000').
_SIZE_NEUTRAL = {ColumnKind.INTEGER, ColumnKind.TEXT, ColumnKind.LARGE_TEXT, ColumnKind.DATE,
                 ColumnKind.BOOLEAN}


class TableSetupError(ValueError):
    """A table cannot be compared as declared (no key, keys differ, mapping names a missing column)."""


@dataclass(frozen=True)
class ColumnPair:
    source: HashColumn
    target: HashColumn
    source_type: str
    target_type: str

    @property
    def label(self) -> str:
        s, t = self.source.name, self.target.name
        return s if s == t else f"{s}->{t}"


@dataclass(frozen=True)
class TableSpec:
    schema: str
    table: str
    mode: HashMode
    key_source: tuple[tuple[str, str], ...]
    key_target: tuple[tuple[str, str], ...]
    integer_key: bool
    pairs: tuple[ColumnPair, ...]
    not_compared: dict[str, str] = field(default_factory=dict)
    unmapped: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def source_columns(self) -> list[HashColumn]:
        return [p.source for p in self.pairs]

    @property
    def target_columns(self) -> list[HashColumn]:
        return [p.target for p in self.pairs]


def build_table_spec(
    *,
    schema: str,
    table: str,
    source_columns: list[tuple[str, str]],
    target_columns: list[tuple[str, str]],
    source_key: list[tuple[str, str]],
    target_key: list[tuple[str, str]],
    source_dialect: ValidationDialect,
    target_dialect: ValidationDialect,
    renamed: dict[str, str] | None = None,
    added: dict[str, str | None] | None = None,
    dropped: tuple[str, ...] | list[str] = (),
    cross_engine: bool = False,
) -> TableSpec:
    qualified = f"{schema}.{table}"
    renamed = {k.lower(): v for k, v in (renamed or {}).items()}
    added = {k.lower(): v for k, v in (added or {}).items()}
    dropped_set = {c.lower() for c in dropped}
    if not source_columns:
        raise TableSetupError(f"{qualified}: not found on the source (or no columns visible)")
    if not target_columns:
        raise TableSetupError(f"{qualified}: not found on the target (or no columns visible)")
    if not source_key:
        raise TableSetupError(f"{qualified}: no primary key on the source: rows cannot be matched")
    tgt_by_name = {n.lower(): (n, t) for n, t in target_columns}
    mode = HashMode.CANONICAL if cross_engine else HashMode.NATIVE

    pairs: list[ColumnPair] = []
    not_compared: dict[str, str] = {}
    unmapped: list[str] = []
    matched_target: set[str] = set()
    for name, typ in source_columns:
        low = name.lower()
        if low in dropped_set:
            not_compared[name] = "dropped by the release (source only)"
            continue
        target_name = renamed.get(low, name)
        found = tgt_by_name.get(target_name.lower())
        if found is None:
            if low in renamed:
                raise TableSetupError(
                    f"{qualified}: release.column_mapping renames {name} to {target_name}, "
                    "which the target does not have")
            unmapped.append(f"source.{name}")
            continue
        matched_target.add(found[0].lower())
        s_kind, t_kind = source_dialect.column_kind(typ), target_dialect.column_kind(found[1])
        if ColumnKind.UNREADABLE in (s_kind, t_kind):
            raise TableSetupError(f"{qualified}: column {name} is a LONG, which no SQL expression reads "
                                  "(ORA-00997): convert it to CLOB/BLOB before the move, or drop it in "
                                  "release.column_mapping")
        differ = s_kind is not t_kind or (
            s_kind not in _SIZE_NEUTRAL and typ.lower() != found[1].lower())
        canonical = cross_engine or differ
        pairs.append(ColumnPair(
            source=HashColumn(name, s_kind, canonical), target=HashColumn(found[0], t_kind, canonical),
            source_type=typ, target_type=found[1],
        ))
    for name, _typ in target_columns:
        low = name.lower()
        if low in matched_target:
            continue
        if low in added:
            default = added[low]
            not_compared[name] = "added by the release (target only" + (
                f", default {default})" if default is not None else ", no default)")
            continue
        unmapped.append(f"target.{name}")
    for column in dropped_set:
        if column not in {n.lower() for n, _ in source_columns}:
            raise TableSetupError(f"{qualified}: release.column_mapping drops {column}, "
                                  "which the source does not have")
    if not pairs:
        raise TableSetupError(f"{qualified}: no column is mapped between source and target")

    mapped_key = [(renamed.get(n.lower(), n)).lower() for n, _ in source_key]
    if [n.lower() for n, _ in target_key] != mapped_key:
        raise TableSetupError(
            f"{qualified}: primary keys differ: source ({', '.join(n for n, _ in source_key)}), "
            f"target ({', '.join(n for n, _ in target_key) or 'none'})")
    integer_key = (source_dialect.column_kind(source_key[0][1]) is ColumnKind.INTEGER
                   and target_dialect.column_kind(target_key[0][1]) is ColumnKind.INTEGER)
    return TableSpec(
        schema=schema, table=table, mode=mode, key_source=tuple(source_key), key_target=tuple(target_key),
        integer_key=integer_key, pairs=tuple(pairs), not_compared=not_compared, unmapped=tuple(unmapped),
    )
