"""The calls a DAG task makes (and the bench times): full and incremental comparisons of a plan's scope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bascule.hooks.validation import KeyHashHook, ValidationHook
from bascule.privacy.keys import KeyHasher
from bascule.validation.archived import ArchivedRange, read_archived
from bascule.validation.compare import Comparator, CompareSettings, TableRef, tables_from_plan
from bascule.validation.incremental import ChangeTracker, incremental_compare, slot_name

# bascule's own bookkeeping (the replication heartbeat): never part of what is compared.
EXCLUDED_SCHEMAS = frozenset({"bascule_meta"})


def hooks_for(plan: Any, *, parallel_workers: int = 2) -> tuple[ValidationHook, ValidationHook]:
    return (
        ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value,
                       parallel_workers=parallel_workers),
        ValidationHook(db_conn_id=plan.target.conn_id, engine=plan.target.engine.value,
                       parallel_workers=parallel_workers),
    )


def tables_in_scope(plan: Any, source: ValidationHook) -> list[TableRef]:
    """The plan's tables as the source's catalog lists them (partitions folded into their root)."""
    schemas = [s for s in plan.scope.schemas if s.lower() not in EXCLUDED_SCHEMAS]
    rows = source.records(source.dialect.inventory_tables_sql(schemas))
    # (schema, table, partitioned, partitions, total_bytes, ...): the size orders the comparisons.
    return tables_from_plan(plan, [(r[0], r[1]) for r in rows], sizes={(r[0], r[1]): r[4] for r in rows})


def archived_ranges(target: ValidationHook) -> dict[str, list[ArchivedRange]]:
    """The partitions archived off the target (recorded there by the storage apply), by root table."""
    with target.session() as session:
        return read_archived(session)


def comparator_for(plan: Any, *, hasher: KeyHasher | None = None, exclude_archived: bool = True,
                   **overrides: Any) -> Comparator:
    """``exclude_archived=False`` compares archived ranges too (they then show as missing on the target)."""
    settings = CompareSettings.from_plan(plan, **overrides)
    source, target = hooks_for(plan, parallel_workers=settings.parallel_workers)
    if hasher is None:
        # Every key not marked surrogate is hashed: a comparison always needs the key, and a production
        # night refuses a weak or known one.
        hasher = KeyHashHook(key_hash_conn_id=plan.validation.key_hash_conn_id).get_hasher(
            production=plan.production.mode.value == "production")
    return Comparator(source=source, target=target, settings=settings,
                      identifying_keys=plan.validation.identifying_keys,
                      surrogate_keys=plan.validation.surrogate_keys, hasher=hasher,
                      archived=archived_ranges(target) if exclude_archived else None)


def full_comparison(plan: Any, *, track_changes: bool = True, tables: list[str] | None = None,
                    hasher: KeyHasher | None = None, exclude_archived: bool = True,
                    **overrides: Any) -> dict[str, Any]:
    """Compare every table in scope; with ``track_changes``, first start the slots an incremental
    comparison reads. Archived partitions' ranges are left out and listed. Returns the JSON report."""
    comparator = comparator_for(plan, hasher=hasher, exclude_archived=exclude_archived, **overrides)
    refs = _select(tables_in_scope(plan, comparator.source), tables)
    tracking = None
    if track_changes:
        tracking = ChangeTracker(source=comparator.source, target=comparator.target,
                                 slot=slot_name(plan.name)).start()
    report = comparator.compare(refs)
    report.tracking = tracking
    return report.to_json()


def incremental_comparison(plan: Any, previous: dict[str, Any] | None, *, tables: list[str] | None = None,
                           hasher: KeyHasher | None = None, exclude_archived: bool = True, consume: bool = True,
                           **overrides: Any) -> dict[str, Any]:
    """Re-check what changed since the comparison whose report is ``previous`` (``consume=False``: the
    catch-up before the freeze, which moves the slots on only once the pass is through, ADR 0070)."""
    comparator = comparator_for(plan, hasher=hasher, exclude_archived=exclude_archived, **overrides)
    refs = _select(tables_in_scope(plan, comparator.source), tables)
    slot = (previous or {}).get("tracking", {}) or {}
    tracker = ChangeTracker(source=comparator.source, target=comparator.target,
                            slot=slot.get("slot") or slot_name(plan.name))
    return incremental_compare(comparator, tracker, refs, previous, consume=consume).to_json()


def stop_tracking(plan: Any) -> None:
    source, target = hooks_for(plan)
    ChangeTracker(source=source, target=target, slot=slot_name(plan.name)).stop()


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return path


def _select(refs: list[TableRef], tables: list[str] | None) -> list[TableRef]:
    if not tables:
        return refs
    known = {r.qualified.lower(): r for r in refs}
    unknown = [t for t in tables if t.lower() not in known]
    if unknown:
        raise ValueError(f"tables not in scope: {', '.join(unknown)}")
    return [known[t.lower()] for t in tables]
