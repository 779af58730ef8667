"""The comparison engine: range hashes pushed down to both databases, bisection to the differing keys.

For each table, one pass on each side (in parallel, one connection each) returns
``(bucket, rows, sum of row hashes)`` for every range of the leading key: the
database does the hashing, only a few hundred numbers come back. Ranges whose
numbers differ are split again (one GROUP BY query per differing range) until
they hold at most ``leaf_rows`` rows, whose ``(key, row hash)`` pairs are then
fetched and matched: missing on the target, extra on the target, changed.
Memory is bounded by the bucket count and ``leaf_rows``, never by the table.

A "wait and confirm" pass re-reads the differing keys after
``wait_and_confirm_s`` and keeps only those that still differ: a row still in
flight through replication is not a difference (GoldenGate Veridata's idea).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from bascule.engines.base import KeyRange, bucket_layout
from bascule.engines.restricted import RestrictedDialect, outside_predicate
from bascule.hooks.validation import ComparisonSession, ValidationHook
from bascule.privacy.keys import KeyHasher, KeyRenderer, key_is_hashed
from bascule.validation.archived import ArchivedRange, for_table, key_column_of, source_column
from bascule.validation.canonical import TableSetupError, TableSpec, build_table_spec
from bascule.validation.report import ComparisonReport, DiffKind, TableResult, TableStatus

T = TypeVar("T")
Key = tuple[Any, ...]


@dataclass(frozen=True)
class CompareSettings:
    chunk_rows: int = 100_000
    leaf_rows: int = 2_000
    fanout: int = 64
    max_buckets: int = 20_000
    parallelism: int = 1
    parallel_workers: int = 2
    wait_and_confirm_s: float = 0.0
    max_keys: int = 1_000
    # Below this many heap blocks (8 kB) per range, the first pass stays one query with workers (ADR 0065).
    chunk_min_blocks: int = 1_024

    def __post_init__(self) -> None:
        for name in ("chunk_rows", "leaf_rows", "fanout", "max_buckets", "parallelism", "max_keys",
                     "chunk_min_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer (got {value!r})")
        if self.fanout < 2:
            raise ValueError(f"fanout must be >= 2 (got {self.fanout})")
        if self.wait_and_confirm_s < 0:
            raise ValueError(f"wait_and_confirm_s must be >= 0 (got {self.wait_and_confirm_s})")

    @classmethod
    def from_plan(cls, plan: Any, **overrides: Any) -> CompareSettings:
        v = plan.validation
        values = {"chunk_rows": v.chunk_rows, "parallelism": v.parallelism,
                  "wait_and_confirm_s": float(v.wait_and_confirm_s)}
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class TableRef:
    """A table in scope, with the release's column mapping for it (if any)."""

    schema: str
    table: str
    renamed: tuple[tuple[str, str], ...] = ()
    added: tuple[tuple[str, str | None], ...] = ()
    dropped: tuple[str, ...] = ()
    # The catalog's size on the source (bytes, 0 if unknown): only the order tables are started in.
    size_bytes: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def tables_from_plan(plan: Any, names: Iterable[tuple[str, str]],
                     sizes: Mapping[tuple[str, str], int] | None = None) -> list[TableRef]:
    """TableRefs for the (schema, table) names in scope, each with its release mapping (and size, if known)."""
    mapping = {} if plan.release is None else {k.lower(): v for k, v in plan.release.column_mapping.items()}
    refs = []
    for schema, table in names:
        if not plan.scope.contains(schema, table):
            continue
        m = mapping.get(f"{schema}.{table}".lower())
        refs.append(TableRef(
            schema=schema, table=table,
            renamed=tuple(m.renamed.items()) if m else (),
            added=tuple(m.added.items()) if m else (),
            dropped=tuple(m.dropped) if m else (),
            size_bytes=int((sizes or {}).get((schema, table)) or 0),
        ))
    return refs


def start_order(tables: Sequence[TableRef]) -> list[int]:
    """Indexes of ``tables``, largest first (ties in the given order).

    The pool starts tables in this order. Started in name order, the largest table can
    start last and run alone at the end while the other threads idle; largest first,
    the small tables fill in beside it and all threads finish together.
    """
    return sorted(range(len(tables)), key=lambda i: -tables[i].size_bytes)


class _Pair:
    """Source and target sessions for one table, queried at the same time."""

    def __init__(self, source: ComparisonSession, target: ComparisonSession, pool: ThreadPoolExecutor) -> None:
        self.source, self.target, self.pool = source, target, pool
        self.queries = 0

    def both(self, fn: Callable[[ComparisonSession, str], T]) -> tuple[T, T]:
        self.queries += 1
        fut = self.pool.submit(fn, self.target, "target")
        src = fn(self.source, "source")
        return src, fut.result()


class _Diffs:
    def __init__(self, result: TableResult, max_keys: int) -> None:
        self.result = result
        self.max_keys = max_keys
        self.keys: dict[DiffKind, list[Key]] = {k: [] for k in DiffKind}

    def add(self, kind: DiffKind, key: Key) -> None:
        self.result.counts[kind.value] += 1
        if len(self.keys[kind]) < self.max_keys:
            self.keys[kind].append(key)
        else:
            self.result.keys_truncated = True

    def add_leaves(self, src: dict[Key, int], tgt: dict[Key, int]) -> None:
        for key, h in src.items():
            other = tgt.get(key)
            if other is None:
                self.add(DiffKind.MISSING_ON_TARGET, key)
            elif other != h:
                self.add(DiffKind.CHANGED, key)
        for key in tgt.keys() - src.keys():
            self.add(DiffKind.EXTRA_ON_TARGET, key)

    def complete(self) -> bool:
        # With more differences than we list, a confirm pass over the listed ones proves nothing.
        return not self.result.keys_truncated


class Comparator:
    """Compares tables between a source and a target hook; :meth:`compare` is what the DAG task calls."""

    def __init__(
        self,
        *,
        source: ValidationHook,
        target: ValidationHook,
        settings: CompareSettings,
        identifying_keys: Sequence[str] = (),
        surrogate_keys: Sequence[str] = (),
        hasher: KeyHasher | None = None,
        sleep: Callable[[float], None] = time.sleep,
        archived: Mapping[str, list[ArchivedRange]] | None = None,
    ) -> None:
        self.source, self.target, self.settings = source, target, settings
        self.archived = dict(archived or {})
        self.identifying_keys = tuple(identifying_keys)
        self.surrogate_keys = tuple(surrogate_keys)
        self.hasher = hasher
        self.sleep = sleep
        self.cross_engine = source.engine != target.engine

    # --- set-up ---

    def spec(self, pair: _Pair, ref: TableRef) -> TableSpec:
        (s_cols, s_key), (t_cols, t_key) = pair.both(
            lambda s, _side: (s.columns(ref.schema, ref.table), s.primary_key(ref.schema, ref.table)))
        return build_table_spec(
            schema=ref.schema, table=ref.table, source_columns=s_cols, target_columns=t_cols,
            source_key=s_key, target_key=t_key, source_dialect=self.source.dialect,
            target_dialect=self.target.dialect, renamed=dict(ref.renamed), added=dict(ref.added),
            dropped=ref.dropped, cross_engine=self.cross_engine,
        )

    def _renderer(self, spec: TableSpec) -> KeyRenderer:
        names = [n for n, _ in spec.key_source]
        hashed = key_is_hashed(spec.qualified, names, surrogate=self.surrogate_keys,
                               identifying=self.identifying_keys)
        return KeyRenderer(spec.qualified, names, hashed=hashed, hasher=self.hasher)

    # --- public ---

    def compare(self, tables: Sequence[TableRef], *, kind: str = "full") -> ComparisonReport:
        started = time.monotonic()
        report = ComparisonReport(kind=kind, source_conn_id=self.source.db_conn_id,
                                  target_conn_id=self.target.db_conn_id,
                                  wait_and_confirm_s=self.settings.wait_and_confirm_s)
        with self.source.pooled(), self.target.pooled(), \
                ThreadPoolExecutor(max_workers=self.settings.parallelism, thread_name_prefix="bascule-cmp") as pool:
            futures = {i: pool.submit(self.compare_table, tables[i]) for i in start_order(tables)}
            report.tables = [futures[i].result() for i in range(len(tables))]
        report.seconds = time.monotonic() - started
        return report

    def compare_table(self, ref: TableRef) -> TableResult:
        return self._with_pair(ref, self._full)

    def recheck(self, ref: TableRef, keys: Iterable[Key]) -> TableResult:
        """Compare only the rows with these keys (texts or values of the key columns, in key order)."""
        wanted = list(dict.fromkeys(tuple(k) for k in keys))

        def run(pair: _Pair, spec: TableSpec, result: TableResult, diffs: _Diffs) -> None:
            result.rechecked_keys = len(wanted)
            if wanted:
                src, tgt = self._by_keys(pair, spec, wanted)
                result.rows_source, result.rows_target = len(src), len(tgt)
                diffs.add_leaves(src, tgt)

        return self._with_pair(ref, run)

    # --- machinery ---

    def _with_pair(self, ref: TableRef, run: Callable[[_Pair, TableSpec, TableResult, _Diffs], None]
                   ) -> TableResult:
        started = time.monotonic()
        result = TableResult(table=ref.qualified)
        try:
            with self.source.session() as s, self.target.session() as t, \
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="bascule-tgt") as pool:
                pair = _Pair(s, t, pool)
                result.archived = self._leave_out_archived(s, t, ref)
                spec = self.spec(pair, ref)
                renderer = self._renderer(spec)
                result.mode = spec.mode.value
                result.key_columns = [n for n, _ in spec.key_source]
                result.keys_hashed = renderer.hashed
                result.columns_compared = [p.label for p in spec.pairs]
                result.not_compared = dict(spec.not_compared)
                result.unmapped = list(spec.unmapped)
                diffs = _Diffs(result, self.settings.max_keys)
                run(pair, spec, result, diffs)
                if result.differences and self.settings.wait_and_confirm_s > 0 and diffs.complete():
                    self._confirm(pair, spec, diffs)
                result.queries = pair.queries
                result.keys = {k.value: [renderer.render(key) for key in sorted(v, key=_sort_key)]
                               for k, v in diffs.keys.items()}
                if result.differences:
                    result.status = TableStatus.DIFFERENT
                elif result.unmapped:
                    result.status = TableStatus.UNMAPPED_COLUMNS
        except (TableSetupError, Exception) as exc:  # a table's failure is reported, the others go on
            result.set_error(exc)
        result.seconds = time.monotonic() - started
        return result

    def _leave_out_archived(self, s: ComparisonSession, t: ComparisonSession, ref: TableRef
                            ) -> list[dict[str, Any]]:
        ranges = for_table(self.archived, ref.qualified)
        if not ranges:
            return []
        column = key_column_of(ranges)
        s.dialect = RestrictedDialect(s.dialect, schema=ref.schema, table=ref.table, predicate=outside_predicate(
            s.dialect, source_column(column, ref.renamed), ranges))
        t.dialect = RestrictedDialect(t.dialect, schema=ref.schema, table=ref.table,
                                      predicate=outside_predicate(t.dialect, column, ranges))
        return [r.to_json() for r in ranges]

    def _hashes(self, spec: TableSpec) -> tuple[str, str]:
        return (self.source.dialect.row_hash_expr(spec.source_columns, spec.mode),
                self.target.dialect.row_hash_expr(spec.target_columns, spec.mode))

    def _full(self, pair: _Pair, spec: TableSpec, result: TableResult, diffs: _Diffs) -> None:
        hs, ht = self._hashes(spec)
        names = {"source": ([n for n, _ in spec.key_source], hs), "target": ([n for n, _ in spec.key_target], ht)}
        if not spec.integer_key:
            self._full_hashed(pair, spec, result, diffs, names)
            return
        (slo, shi), (tlo, thi) = pair.both(lambda s, side: s.bounds(spec.schema, spec.table, names[side][0][0]))
        present = [v for v in (slo, tlo) if v is not None]
        if not present:
            return
        lo = min(present)
        hi = max(v for v in (shi, thi) if v is not None)
        span = hi - lo + 1
        buckets = min(self.settings.max_buckets, max(1, -(-span // self.settings.chunk_rows)))
        lo, width = bucket_layout(lo, hi, buckets)
        def first_pass(s: ComparisonSession, side: str) -> dict[int, tuple[int, int]]:
            # A big plain table: block ranges on serial sessions, one snapshot (ADR 0065); else one query.
            split = s.range_hashes_by_blocks(
                spec.schema, spec.table, key_column=names[side][0][0], row_hash=names[side][1], lo=lo,
                width=width, chunks=self.settings.parallel_workers + 1, min_blocks=self.settings.chunk_min_blocks)
            if split is not None:
                result.block_chunks[side] = self.settings.parallel_workers + 1
                return split
            return s.range_hashes(spec.schema, spec.table, key_column=names[side][0][0],
                                  row_hash=names[side][1], lo=lo, width=width)

        src, tgt = pair.both(first_pass)
        result.rows_source = sum(n for n, _ in src.values())
        result.rows_target = sum(n for n, _ in tgt.values())
        result.ranges = len(src.keys() | tgt.keys())
        differing = sorted(b for b in src.keys() | tgt.keys() if src.get(b) != tgt.get(b))
        result.ranges_differing = len(differing)
        for b in differing:
            rows = max(src.get(b, (0, 0))[0], tgt.get(b, (0, 0))[0])
            self._drill(pair, spec, names, diffs, KeyRange(lo + b * width, lo + (b + 1) * width), rows)

    def _drill(self, pair: _Pair, spec: TableSpec, names: dict[str, tuple[list[str], str]], diffs: _Diffs,
               within: KeyRange, rows: int) -> None:
        span = within.hi - within.lo
        if rows <= self.settings.leaf_rows or span <= self.settings.fanout:
            src, tgt = pair.both(lambda s, side: s.leaf_rows(
                spec.schema, spec.table, key_columns=names[side][0], row_hash=names[side][1], within=within))
            diffs.add_leaves(src, tgt)
            return
        sub = min(self.settings.fanout, -(-rows // self.settings.leaf_rows))
        lo, width = bucket_layout(within.lo, within.hi - 1, sub)
        src, tgt = pair.both(lambda s, side: s.range_hashes(
            spec.schema, spec.table, key_column=names[side][0][0], row_hash=names[side][1], lo=lo, width=width,
            within=within))
        for b in sorted(b for b in src.keys() | tgt.keys() if src.get(b) != tgt.get(b)):
            n = max(src.get(b, (0, 0))[0], tgt.get(b, (0, 0))[0])
            self._drill(pair, spec, names, diffs,
                        KeyRange(lo + b * width, min(within.hi, lo + (b + 1) * width)), n)

    def _full_hashed(self, pair: _Pair, spec: TableSpec, result: TableResult, diffs: _Diffs,
                     names: dict[str, tuple[list[str], str]]) -> None:
        # A non-integer leading key has no arithmetic ranges: buckets by a hash of the key,
        # and a differing bucket is read whole (one scan each, so buckets are kept small).
        s_rows, t_rows = pair.both(lambda s, _side: s.rows(s.dialect.count_rows_sql(spec.schema, spec.table))[0][0])
        buckets = min(self.settings.max_buckets, max(1, -(-max(s_rows, t_rows) // self.settings.chunk_rows)))
        src, tgt = pair.both(lambda s, side: s.hash_buckets(
            spec.schema, spec.table, key_columns=names[side][0], row_hash=names[side][1], buckets=buckets))
        result.rows_source = sum(n for n, _ in src.values())
        result.rows_target = sum(n for n, _ in tgt.values())
        result.ranges = len(src.keys() | tgt.keys())
        differing = sorted(b for b in src.keys() | tgt.keys() if src.get(b) != tgt.get(b))
        result.ranges_differing = len(differing)
        for b in differing:
            s_leaf, t_leaf = pair.both(lambda s, side, b=b: s.leaf_rows(
                spec.schema, spec.table, key_columns=names[side][0], row_hash=names[side][1],
                hash_bucket=(buckets, b)))
            diffs.add_leaves(s_leaf, t_leaf)

    def _by_keys(self, pair: _Pair, spec: TableSpec, keys: list[Key]) -> tuple[dict[Key, int], dict[Key, int]]:
        hs, ht = self._hashes(spec)
        cols = {"source": (list(spec.key_source), hs), "target": (list(spec.key_target), ht)}
        return pair.both(lambda s, side: s.rows_by_keys(spec.schema, spec.table, key_columns=cols[side][0],
                                                        row_hash=cols[side][1], keys=keys))

    def _confirm(self, pair: _Pair, spec: TableSpec, diffs: _Diffs) -> None:
        self.sleep(self.settings.wait_and_confirm_s)
        before = {k for keys in diffs.keys.values() for k in keys}
        src, tgt = self._by_keys(pair, spec, sorted(before, key=_sort_key))
        result = diffs.result
        kept = _Diffs(result, self.settings.max_keys)
        result.counts = {k.value: 0 for k in DiffKind}
        kept.add_leaves(src, tgt)
        # Only keys that differed both times count: a row that started differing while we
        # waited is in flight now and is the next comparison's business.
        for kind in DiffKind:
            still = [k for k in kept.keys[kind] if k in before]
            result.counts[kind.value] = len(still)
            diffs.keys[kind] = still
        result.in_flight_resolved = len(before) - result.differences


def _sort_key(key: Key) -> tuple[str, ...]:
    return tuple(f"{type(v).__name__}:{v!s:>40}" for v in key)
