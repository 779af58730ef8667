"""DDL made on the source during preparation, carried to the target; logical replication carries none.

Detects tables, partitions and indexes present on the publisher and missing on the
subscriber, creates them from the publisher's catalogue (``pg_get_expr`` of the
partition bound, ``pg_get_indexdef``, ``pg_get_constraintdef``, ``format_type``),
then republishes the scope and runs ``ALTER SUBSCRIPTION ... REFRESH PUBLICATION``
so new tables get their initial copy. A new partition needs no refresh (its rows
are published through the root) but must exist on the target before its first
row arrives, or the apply worker stops on "no partition of relation found".

Reported, not carried: unlogged tables, materialised views and large objects
(replication skips them), and sequences (the cutover sets them). Objects are
matched by name; the target's own extra objects (the release migration) are left
alone. Everything is idempotent (``IF NOT EXISTS``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bascule.engines import postgres_replication as q
from bascule.replication.postgres_logical import PostgresLogicalReplication


@dataclass
class DdlSyncResult:
    missing_tables: list[str] = field(default_factory=list)
    missing_partitions: list[str] = field(default_factory=list)
    missing_indexes: list[str] = field(default_factory=list)
    not_replicated: list[dict[str, str]] = field(default_factory=list)
    applied: bool = False
    refreshed: bool = False

    @property
    def changes(self) -> int:
        return len(self.missing_tables) + len(self.missing_partitions) + len(self.missing_indexes)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "changes": self.changes}


def _relations(replication: PostgresLogicalReplication, side: str) -> dict[str, tuple]:
    return {f"{s}.{n}": (s, n, kind, is_part, parent, bound, partkey)
            for s, n, kind, is_part, parent, bound, partkey
            in replication.hook.records(side, q.relations(replication.schemas))}


def _in_scope(replication: PostgresLogicalReplication, rels: dict[str, tuple], name: str) -> bool:
    # A partition belongs to the scope through its top-level root.
    seen = set()
    while rels[name][3] and rels[name][4] in rels and name not in seen:
        seen.add(name)
        name = rels[name][4]
    schema, table = name.split(".", 1)
    return replication._in_scope(schema, table)


def sync_schema_changes(replication: PostgresLogicalReplication, *, apply: bool = True,
                        refresh: bool = True) -> DdlSyncResult:
    """Find what the target lacks; with ``apply``, create it there and refresh the subscription."""
    hook = replication.hook
    result = DdlSyncResult()
    src, dst = _relations(replication, "publisher"), _relations(replication, "subscriber")
    for name, (_s, _n, _kind, is_part, _parent, _bound, _partkey) in src.items():
        if name in dst or not _in_scope(replication, src, name):
            continue
        (result.missing_partitions if is_part else result.missing_tables).append(name)

    dst_indexes = {f"{s}.{i}" for s, i, *_ in hook.records("subscriber", q.standalone_indexes(replication.schemas))}
    index_defs = []
    for schema, index, table, indexdef, is_constraint in hook.records(
            "publisher", q.standalone_indexes(replication.schemas)):
        name = f"{schema}.{index}"
        if name in dst_indexes or f"{schema}.{table}" not in src or not _in_scope(replication, src, f"{schema}.{table}"):
            continue
        # Constraint indexes of new tables come with their CREATE TABLE.
        if is_constraint and f"{schema}.{table}" in result.missing_tables:
            continue
        result.missing_indexes.append(name)
        index_defs.append(indexdef)

    result.not_replicated = [
        {"kind": kind, "object": obj}
        for kind, obj in hook.records("publisher", q.objects_replication_skips(replication.schemas))
    ]
    if not apply or not result.changes:
        return result

    statements, foreign_keys = [], []
    for name in result.missing_tables:
        schema, table, _kind, _is_part, _parent, _bound, partkey = src[name]
        columns = hook.records("publisher", q.table_columns(schema, table))
        constraints = hook.records("publisher", q.table_constraints(schema, table))
        create, *fks = q.create_table(schema, table, columns, constraints, partkey)
        statements.append(create)
        foreign_keys.extend(fks)  # after every new table exists: they may reference each other
    statements.extend(foreign_keys)
    for name in result.missing_partitions:
        schema, table, _kind, _is_part, parent, bound, partkey = src[name]
        statements.append(q.create_partition(schema, table, parent, bound, partkey))
    statements.extend(q.create_index_if_missing(d) for d in index_defs)
    hook.execute_many("subscriber", statements)
    result.applied = True

    if replication.subscription_facts() is None:
        return result  # nothing subscribed yet: the start of replication publishes the new tables
    if refresh and result.missing_tables:
        replication.create_publication()
        replication.refresh()
        result.refreshed = True
    elif refresh and result.missing_partitions:
        # Nothing new to copy (rows go through the root), but the refresh is cheap and
        # keeps pg_subscription_rel in step with the publication.
        replication.refresh(copy_data=False)
        result.refreshed = True
    return result
