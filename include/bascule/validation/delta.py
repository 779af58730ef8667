"""The window checks only what changed since the last full check (ADR 0061).

At T-minus, while replication still streams, the target's suites run in full and a
change tracker starts on the target just before them: a logical-decoding slot of its
own (:class:`DeltaTracker`), peeked, never consumed, so that a retry of a step in the
window reads the same changes again. In the window, after the drain, each suite runs
on the rows the tracker names, and the expectations that are not about single rows
are proven another way:

- **row-level** (ranges, sets, not-null, formats, comparisons of columns of one row,
  and an ``unexpected_rows_expectation`` whose query looks at one row of the batch,
  and at most at rows of other tables it finds by equality): a GX batch restricted
  to the rows changed since, plus the rows pointing at a row of another table that
  changed (its deletion can break them);
- **uniqueness**: a valid unique index on exactly those columns proves it for every
  row; without one, a single column's values of the changed rows are looked up in
  the whole table (an ``unexpected_rows_expectation`` on the restricted batch);
- **whole-table facts that cost no scan of the rows** (the row count, the columns):
  re-run on the whole table;
- anything else (``mostly`` < 1, means, quantiles, distinct counts, ...) has no delta
  method: ``bascule plan check`` rejects it unless the plan lists its suite in
  ``validation.suites_in_full``, which then runs whole in the window.

An engine without a change tracker (Oracle) runs every suite whole in the window.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bascule.engines.base import TableChanges
from bascule.hooks.validation import ValidationHook
from bascule.today import utc_now

# Expectations about one row at a time: a violation is a row, and a row that did not change since a
# full run that passed cannot be one.
ROW_TYPES = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
    "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_be_between", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_values_to_match_regex_list",
    "expect_column_values_to_not_match_regex_list", "expect_column_values_to_match_like_pattern",
    "expect_column_values_to_not_match_like_pattern", "expect_column_values_to_match_like_pattern_list",
    "expect_column_values_to_not_match_like_pattern_list", "expect_column_values_to_match_strftime_format",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_values_to_be_dateutil_parseable", "expect_column_values_to_be_json_parseable",
    "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_to_be_in_set", "expect_multicolumn_sum_to_equal",
    "expect_select_column_values_to_be_unique_within_record",
})
UNIQUE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
# Whole-table facts read from a count or the catalog: cheap enough to re-run whole in the window.
WHOLE_TYPES = frozenset({
    "expect_table_row_count_to_equal", "expect_table_row_count_to_be_between",
    "expect_table_columns_to_match_ordered_list", "expect_table_columns_to_match_set",
    "expect_column_to_exist", "expect_table_column_count_to_equal", "expect_table_column_count_to_be_between",
    "expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list",
})
UNEXPECTED_ROWS = "unexpected_rows_expectation"
_BATCH = "bascule_batch"
_SLOT_PREFIX = {"suites": "bascule_dsu_", "constraints": "bascule_dfk_"}


class DeltaError(RuntimeError):
    """The window's delta cannot be read (no slot: T-minus did not start the tracker)."""


def delta_slot(plan_name: str, purpose: str) -> str:
    """The slot of one of the window's deltas (``suites`` or ``constraints``): one reader each, because a
    slot is read by one session at a time and both run side by side in the window."""
    return (_SLOT_PREFIX[purpose] + re.sub(r"[^a-z0-9_]", "_", plan_name.lower()))[:63]


# --------------------------------------------------------------------------- which expectation, proven how


@dataclass(frozen=True)
class Reference:
    """A table an ``unexpected_rows_expectation`` looks into, and the equalities tying it to the row:
    (column of the batch's row, column of the other table)."""

    table: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DeltaMethod:
    """How one expectation is proven in the window: ``rows``, ``unique``, ``whole`` or None (none)."""

    kind: str | None
    reason: str = ""
    references: tuple[Reference, ...] = field(default_factory=tuple)


def delta_method(expectation: Mapping[str, Any]) -> DeltaMethod:
    """The delta method of one suite expectation (``{type, kwargs}``), or why it has none."""
    kind = str(expectation.get("type", ""))
    kwargs = expectation.get("kwargs") or {}
    mostly = kwargs.get("mostly", 1)
    if isinstance(mostly, int | float) and mostly < 1 and kind not in WHOLE_TYPES:
        return DeltaMethod(None, f"mostly={mostly} is a share of the whole table")
    if kind in ROW_TYPES:
        return DeltaMethod("rows", "row-level: the rows changed since the baseline")
    if kind in UNIQUE_TYPES:
        return DeltaMethod("unique", "a unique index, else the changed rows' values looked up in the table")
    if kind in WHOLE_TYPES:
        return DeltaMethod("whole", "a count or the catalog: re-run on the whole table")
    if kind == UNEXPECTED_ROWS:
        references, why = row_local_references(str(kwargs.get("unexpected_rows_query", "")))
        if references is None:
            return DeltaMethod(None, why)
        return DeltaMethod("rows", "the query looks at one row (and rows it finds by equality)", references)
    return DeltaMethod(None, f"{kind} is not about one row, and has no delta method")


def row_local_references(query: str) -> tuple[tuple[Reference, ...] | None, str]:
    """The other tables an unexpected-rows query looks into, if it judges each row of ``{batch}`` on its
    own: one SELECT from the batch, no aggregate, window, GROUP BY or join, and every other table read in
    a subquery tied to the row by equalities ANDed in its WHERE. None and why, otherwise."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(query.replace("{batch}", f"{_BATCH} AS subselect"), read="postgres")
    except sqlglot.errors.ParseError:
        return None, "its query does not parse"
    if not isinstance(tree, exp.Select):
        return None, "its query is not one SELECT"
    for node, what in ((exp.AggFunc, "an aggregate"), (exp.Group, "GROUP BY"), (exp.Having, "HAVING"),
                       (exp.Window, "a window function")):
        if tree.find(node) is not None:
            return None, f"its query uses {what}: it judges several rows together"
    source = tree.args.get("from_") or tree.args.get("from")
    if tree.args.get("joins") or source is None or not isinstance(source.this, exp.Table) \
            or source.this.name != _BATCH:
        return None, "its query reads something else than {batch} alone in its FROM"
    references = []
    for sub in tree.find_all(exp.Select):
        if sub is tree:
            continue
        sub_from = sub.args.get("from_") or sub.args.get("from")
        if sub.args.get("joins") or sub_from is None or not isinstance(sub_from.this, exp.Table):
            return None, "a subquery of its query joins, or reads no single table"
        other = sub_from.this
        if other.name == _BATCH or not other.db:
            return None, "a subquery reads the batch, or a table not named schema.table"
        alias = other.alias_or_name
        pairs = []
        where = sub.args.get("where")
        for conjunct in (where.this.flatten() if where is not None and isinstance(where.this, exp.And)
                         else [where.this] if where is not None else []):
            if not isinstance(conjunct, exp.EQ):
                continue
            left, right = conjunct.this, conjunct.expression
            if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                continue
            if right.table == "subselect":
                left, right = right, left
            if left.table == "subselect" and right.table in ("", alias, other.name):
                pairs.append((left.name, right.name))
        if not pairs:
            return None, f"its subquery on {other.db}.{other.name} is not tied to the row by an equality"
        references.append(Reference(f"{other.db}.{other.name}", tuple(pairs)))
    return tuple(references), ""


def suite_delta_findings(doc: Mapping[str, Any]) -> list[str]:
    """Each expectation of a suite document with no delta method: ``expectations[i] (type): why``."""
    out = []
    for i, expectation in enumerate(doc.get("expectations") or []):
        method = delta_method(expectation)
        if method.kind is None:
            out.append(f"expectations[{i}] ({expectation.get('type')}): {method.reason}")
    return out


# --------------------------------------------------------------------------- the tracker


class DeltaTracker:
    """A logical-decoding slot on one database naming the rows changed since it started; peeked."""

    def __init__(self, *, hook: ValidationHook, slot: str) -> None:
        self.hook = hook
        self.slot = slot

    def start(self) -> dict[str, Any]:
        with self.hook.session() as s:
            position = s.create_change_slot(self.slot)
        return {"slot": self.slot, "position": position, "started_at": utc_now().isoformat()}

    def stop(self) -> None:
        with self.hook.session() as s:
            s.drop_change_slot(self.slot)

    def advance(self, position: str) -> str:
        """The changes before ``position`` were checked before the freeze: the window no longer reads them."""
        with self.hook.session() as s:
            return s.advance_change_slot(self.slot, position)

    def changes(self, tables: Sequence[tuple[str, str]]) -> tuple[dict[str, TableChanges], dict[str, Any]]:
        """Per ``schema.table``, its primary key and the keys changed since :meth:`start` (read, not
        consumed), and where the reading stopped. A table without a primary key is to be checked whole."""
        from bascule.validation.incremental import unquote_key_text

        with self.hook.session() as s:
            if not s.change_slot_exists(self.slot):
                raise DeltaError(f"{self.hook.db_conn_id}: change slot {self.slot} does not exist: the baseline "
                                 "(T-minus) did not start it, so the window cannot know what changed")
            primary = {f"{schema}.{table}": tuple(s.primary_key(schema, table)) for schema, table in tables}
            position = s.current_position()
            wanted = {name.lower(): name for name, key in primary.items() if key}
            keys: dict[str, set[tuple[str, ...]]] = defaultdict(set)
            whole = {name: "it has no primary key" for name, key in primary.items() if not key}
            decoded = 0
            columns = {name: [c for c, _ in primary[name]] for name in wanted.values()}
            for table, op, values in s.changed_keys(self.slot, columns, consume=False) if columns else ():
                name = wanted.get(table.lower().replace('"', ""))
                if name is None:
                    continue
                decoded += 1
                if op == "TRUNCATE":
                    whole[name] = "a TRUNCATE since the baseline"
                    continue
                for row in zip(*values, strict=False):
                    keys[name].add(tuple(unquote_key_text(v) for v in row))
        changed = {name: TableChanges(key_columns=key, keys=frozenset(keys.get(name, ())), whole=whole.get(name))
                   for name, key in primary.items()}
        return changed, {"slot": self.slot, "to_position": position, "changes_decoded": decoded,
                         "rows_changed": sum(len(c.keys) for c in changed.values())}


# --------------------------------------------------------------------------- the suites in the window


@dataclass
class SuitePlan:
    """How one suite runs in the window: whole, or split into a delta document and a whole-table one."""

    name: str
    table: str
    whole_reason: str | None = None
    delta: dict[str, Any] | None = None
    delta_query: str | None = None
    whole_table: dict[str, Any] | None = None
    proven_by_index: list[str] = field(default_factory=list)
    rows_in_scope: int = 0


def plan_suite(doc: dict[str, Any], *, changed: Mapping[str, TableChanges], in_full: bool,
               unique_indexes: Mapping[str, tuple[str, ...]], literal_keys: Any, quote: Any) -> SuitePlan:
    """Split a suite (parameters filled in) into what the window runs; pure but for the two callables
    (the dialect's literal key query and identifier quoting)."""
    from bascule.validation.suites import suite_table

    schema, table = suite_table(doc)
    name = f"{schema}.{table}"
    out = SuitePlan(name=doc["name"], table=name)
    if in_full:
        out.whole_reason = "the plan runs it in full in the window (validation.suites_in_full)"
        return out
    own = _changes_of(changed, name)
    if own is None or own.whole:
        out.whole_reason = own.whole if own is not None else f"{name} is not tracked"
        return out
    key_names = [c for c, _ in own.key_columns]
    rows: list[dict[str, Any]] = []
    whole: list[dict[str, Any]] = []
    scopes: list[tuple[list[str], TableChanges, list[tuple[str, str]] | None]] = [(key_names, own, None)]
    for i, expectation in enumerate(doc["expectations"]):
        method = delta_method(expectation)
        if method.kind is None:
            out.whole_reason = f"expectations[{i}]: {method.reason}"
            return out
        if method.kind == "whole":
            whole.append(expectation)
        elif method.kind == "unique":
            kwargs = expectation["kwargs"]
            columns = list(kwargs.get("column_list") or [kwargs.get("column")])
            index = next((ix for ix, cols in sorted(unique_indexes.items()) if set(cols) == set(columns)), None)
            if index is not None:
                out.proven_by_index.append(f"{','.join(columns)}: unique index {index}")
            elif len(columns) == 1:
                rows.append(_unique_by_lookup(expectation, name, columns[0], key_names, quote))
            else:
                out.whole_reason = f"expectations[{i}]: compound uniqueness without a unique index"
                return out
        else:
            for ref in method.references:
                other = _changes_of(changed, ref.table)
                if ref.table.lower() == name.lower():
                    out.whole_reason = f"expectations[{i}]: its query reads other rows of {name}"
                    return out
                if other is None or other.whole:
                    out.whole_reason = (f"expectations[{i}]: {ref.table} "
                                        + (other.whole if other is not None else "is not tracked"))
                    return out
                by_other = {o: mine for mine, o in ref.pairs}
                if not {c for c, _ in other.key_columns} <= set(by_other):
                    out.whole_reason = (f"expectations[{i}]: its query finds {ref.table}'s rows by other columns "
                                        "than its primary key")
                    return out
                scopes.append(([by_other[c] for c, _ in other.key_columns], other, list(other.key_columns)))
            rows.append(expectation)
    if whole:
        out.whole_table = {**doc, "name": f"{doc['name']}__whole", "expectations": whole}
    branches, in_scope = [], 0
    for columns, changes, types in _merged(scopes):
        if not changes.keys:
            continue
        in_scope += len(changes.keys)
        typed = [(c, t) for c, (_, t) in zip(columns, types or changes.key_columns, strict=True)]
        cols = ", ".join(f"t.{quote(c)}" for c, _ in typed)
        branches.append(f"SELECT t.* FROM {quote(schema)}.{quote(table)} t WHERE ({cols}) IN "
                        f"({literal_keys(typed, sorted(changes.keys))})")
    out.rows_in_scope = in_scope
    if rows and branches:
        # One semi-join per key set, which the table's indexes serve (an OR of them would filter a scan of
        # the whole table). UNION ALL: a row in two sets is checked twice, which changes no verdict (the
        # batch holds row-level checks only; counts run on the whole table).
        out.delta = {**doc, "name": f"{doc['name']}__delta", "expectations": rows}
        out.delta_query = " UNION ALL ".join(branches)
    return out


def _merged(scopes: list[tuple[list[str], TableChanges, list[tuple[str, str]] | None]]
            ) -> list[tuple[list[str], TableChanges, list[tuple[str, str]] | None]]:
    # The same referenced table through the same columns twice (two queries) is one predicate.
    seen: dict[tuple[str, ...], int] = {}
    out: list[tuple[list[str], TableChanges, list[tuple[str, str]] | None]] = []
    for columns, changes, types in scopes:
        key = (*columns, str(id(changes)))
        if key not in seen:
            seen[key] = len(out)
            out.append((columns, changes, types))
    return out


def _unique_by_lookup(expectation: Mapping[str, Any], table: str, column: str, key: list[str], quote: Any
                      ) -> dict[str, Any]:
    """Uniqueness of one column without a unique index: a changed row's value found on another row."""
    schema, name = table.split(".", 1)
    other_row = " OR ".join(f"o.{quote(k)} IS DISTINCT FROM subselect.{quote(k)}" for k in key)
    query = (f"SELECT subselect.{quote(column)} FROM {{batch}} JOIN {quote(schema)}.{quote(name)} o "
             f"ON o.{quote(column)} = subselect.{quote(column)} AND ({other_row})")
    return {"type": UNEXPECTED_ROWS, "kwargs": {"unexpected_rows_query": query,
                                                "description": f"{column} unique (changed rows)"},
            "meta": {"bascule": {"from": str(expectation.get("type"))}}}


def _changes_of(changed: Mapping[str, TableChanges], name: str) -> TableChanges | None:
    lowered = {k.lower(): v for k, v in changed.items()}
    return lowered.get(name.lower())


def referenced_tables(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The suites' tables and the tables their queries look into: what the tracker must report on."""
    from bascule.validation.suites import suite_table

    names: dict[str, tuple[str, str]] = {}
    for doc in docs:
        schema, table = suite_table(doc)  # type: ignore[arg-type]
        names.setdefault(f"{schema}.{table}".lower(), (schema, table))
        for expectation in doc["expectations"]:
            for ref in delta_method(expectation).references:
                schema, table = ref.table.split(".", 1)
                names.setdefault(ref.table.lower(), (schema, table))
    return list(names.values())
