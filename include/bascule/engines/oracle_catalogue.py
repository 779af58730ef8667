"""Every Oracle statement bascule emits, for one set of names: the catalogue the grants and the parser read.

The statements are made by the very dialect methods the night and the preparation call
(:class:`~bascule.engines.oracle_cutover.OracleCutoverDialect`,
:class:`~bascule.engines.oracle.OracleDialect`, ``oracle_assessment``, ``goldengate_sql``), with
the plan's names. ``bascule plan grants`` derives the privileges from them (ADR 0023), and the unit
test that parses them with sqlglot's Oracle dialect (ADR 0022) fails when a dialect method is missing
from here, so neither can drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bascule.engines import goldengate_sql
from bascule.engines import oracle_assessment as assessment
from bascule.engines.base import ColumnKind, HashColumn, HashMode, KeyRange, Query
from bascule.engines.cutover_base import Grant, Statement
from bascule.engines.oracle import OracleDialect
from bascule.engines.oracle_cutover import OracleCutoverDialect

# When each statement runs, as the grants command groups them.
PREPARATION = "preparation"
NIGHT = "night"


@dataclass(frozen=True)
class Names:
    """The names the statements are made for: one side of a plan, or generated inputs in a test."""

    schemas: tuple[str, ...]
    app_role: str
    allowed: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    heartbeat_owner: str | None = None
    # Sample tables whose comparison SQL is emitted: (schema, table, columns (name, kind), key columns).
    tables: tuple[tuple[str, str, tuple[tuple[str, ColumnKind], ...], tuple[str, ...]], ...] = ()
    writers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Emitted:
    """One statement, the method that made it, and when it runs (:data:`PREPARATION` or :data:`NIGHT`)."""

    source: str
    when: str
    sql: str
    binds: dict[str, object]


def _as_query(statement: Statement) -> Query:
    return (statement, {}) if isinstance(statement, str) else statement


SAMPLE_COLUMNS: tuple[tuple[str, ColumnKind], ...] = (
    ("ID", ColumnKind.INTEGER), ("DOSE", ColumnKind.NUMERIC), ("RATIO", ColumnKind.FLOAT),
    ("NAME", ColumnKind.TEXT), ("NOTE", ColumnKind.LARGE_TEXT), ("BORN", ColumnKind.DATE),
    ("SEEN", ColumnKind.TIMESTAMP), ("SEEN_TZ", ColumnKind.TIMESTAMPTZ), ("FLAG", ColumnKind.BOOLEAN),
    ("SCAN", ColumnKind.BINARY), ("DOC", ColumnKind.JSON), ("OTHER", ColumnKind.OTHER),
)


def default_tables(schemas: Sequence[str]) -> tuple[tuple[str, str, tuple[tuple[str, ColumnKind], ...],
                                                           tuple[str, ...]], ...]:
    """A sample table in the first schema with one column of each kind the comparison hashes."""
    return ((schemas[0], "SAMPLE", SAMPLE_COLUMNS, ("ID",)),)


def oracle_statements(names: Names) -> list[Emitted]:
    """Every statement for ``names``, in no particular order, each once per distinct text."""
    out: list[Emitted] = []
    seen: set[tuple[str, str]] = set()

    def add(source: str, when: str, statements: Statement | Sequence[Statement] | None) -> None:
        if statements is None:
            return
        items = [statements] if isinstance(statements, (str, tuple)) else list(statements)
        for item in items:
            sql, binds = _as_query(item)
            if (source, sql) not in seen:
                seen.add((source, sql))
                out.append(Emitted(source, when, sql, dict(binds)))

    for source, when, make in _producers(names):
        add(source, when, make())
    return out


def statement_makers(names: Names) -> set[str]:
    """The name of every maker the catalogue calls, those that emit nothing on Oracle included."""
    return {source for source, _when, _make in _producers(names)}


def _producers(n: Names) -> Iterator[tuple[str, str, Callable[[], Statement | Sequence[Statement] | None]]]:
    cut, ora = OracleCutoverDialect(), OracleDialect()
    schemas, role, allowed, services = list(n.schemas), n.app_role, list(n.allowed), list(n.services)
    writers = list(n.writers) or [role]
    at = datetime(2026, 1, 1, tzinfo=UTC)
    grants = [Grant("table", schemas[0], "T", "INSERT"), Grant("table", schemas[0], "T", "UPDATE"),
              Grant("table", schemas[0], "T", "DELETE"), Grant("sequence", schemas[0], "S", "SELECT"),
              Grant("sequence", schemas[0], "S", "ALTER"),
              Grant("column", schemas[0], "T", "UPDATE", column="C", grantee="OTHER_USER"),
              Grant("table", schemas[0], "T", "INSERT", grantable=True, grantee="PUBLIC")]

    # ------------------------------------------------------------------ the night (cutover hook)
    yield "cutover_session_sql", NIGHT, cut.cutover_session_sql
    yield "ping_sql", NIGHT, cut.ping_sql
    yield "server_name_sql", NIGHT, cut.server_name_sql
    yield "restore_point_prepare_sql", NIGHT, cut.restore_point_prepare_sql
    yield "restore_point_lock_sql", NIGHT, cut.restore_point_lock_sql
    yield "restore_point_lookup_sql", NIGHT, lambda: cut.restore_point_lookup_sql("BASCULE_NIGHT")
    yield "create_restore_point_sql", NIGHT, lambda: cut.create_restore_point_sql("BASCULE_NIGHT")
    yield "restore_point_made_sql", NIGHT, lambda: cut.restore_point_made_sql("BASCULE_NIGHT", [])
    yield "current_position_sql", NIGHT, cut.current_position_sql
    yield "ensure_meta_sql", NIGHT, cut.ensure_meta_sql
    yield "freeze_lock_sql", NIGHT, cut.freeze_lock_sql
    yield "role_attributes_sql", NIGHT, lambda: cut.role_attributes_sql(role)
    yield "active_freeze_sql", NIGHT, lambda: cut.active_freeze_sql(role)
    yield "write_grants_sql", NIGHT, lambda: [cut.write_grants_sql(role, schemas, allowed),
                                              cut.write_grants_sql(role, schemas)]
    yield "record_freeze_sql", NIGHT, lambda: [cut.record_freeze_sql(role, grants, can_login=True),
                                               cut.record_freeze_sql(role, grants, can_login=True,
                                                                     services=services, started=at)]
    yield "record_freeze_statements", NIGHT, lambda: cut.record_freeze_statements(
        role, grants, can_login=True, services=services, started=at)
    yield "update_freeze_grants_sql", NIGHT, lambda: cut.update_freeze_grants_sql(1, grants)
    yield "before_revoke_sql", NIGHT, lambda: cut.before_revoke_sql(services)
    yield "enable_restricted_session_sql", NIGHT, cut.enable_restricted_session_sql
    yield "stop_service_sql", NIGHT, lambda: [cut.stop_service_sql(s) for s in services]
    yield "revoke_sql", NIGHT, lambda: [cut.revoke_sql(role, g) for g in grants]
    yield "lock_role_sql", NIGHT, lambda: cut.lock_role_sql(role)
    yield "sessions_sql", NIGHT, lambda: [cut.sessions_sql(role), cut.sessions_sql(role, writers, allowed),
                                          cut.sessions_sql(role, writers, allowed, everyone=True)]
    yield "end_sessions_sql", NIGHT, lambda: cut.end_sessions_sql(role, [(12, 345, 1), (13, 7, 2)])
    yield "kill_session_sql", NIGHT, lambda: cut.kill_session_sql(12, 345, 1)
    yield "freeze_findings_sql", NIGHT, lambda: [cut.freeze_findings_sql(role, schemas, allowed),
                                                 cut.freeze_findings_sql(role, schemas)]
    yield "remaining_write_rights_sql", NIGHT, lambda: cut.remaining_write_rights_sql(role, schemas)
    yield "mark_frozen_sql", NIGHT, lambda: [cut.mark_frozen_sql(1), cut.mark_frozen_sql(1, at)]
    yield "mark_frozen_statements", NIGHT, lambda: cut.mark_frozen_statements(1, at)
    yield "grant_sql", NIGHT, lambda: [cut.grant_sql(role, g) for g in grants]
    yield "restore_role_sql", NIGHT, lambda: [cut.restore_role_sql(role, can_login=True),
                                              cut.restore_role_sql(role, can_login=False)]
    yield "probe_prepare_sql", NIGHT, lambda: cut.probe_prepare_sql(role)
    yield "probe_write_sql", NIGHT, lambda: cut.probe_write_sql("run", "target")
    yield "after_restore_sql", NIGHT, lambda: cut.after_restore_sql(services)
    yield "start_service_sql", NIGHT, lambda: [cut.start_service_sql(s) for s in services]
    yield "disable_restricted_session_sql", NIGHT, cut.disable_restricted_session_sql
    yield "release_freeze_sql", NIGHT, lambda: cut.release_freeze_sql(1)
    yield "lend_rights_sql", NIGHT, lambda: cut.lend_rights_sql(role, grants)
    yield "database_identity_sql", NIGHT, cut.database_identity_sql
    yield "sequence_values_sql", NIGHT, lambda: cut.sequence_values_sql(schemas)
    yield "sequence_last_value_sql", NIGHT, lambda: cut.sequence_last_value_sql(schemas[0], "S")
    yield "advance_sequence_sql", NIGHT, lambda: cut.advance_sequence_sql(schemas[0], "S", 1000)
    yield "invalid_constraints_sql", NIGHT, lambda: cut.invalid_constraints_sql(schemas)
    yield "disabled_triggers_sql", NIGHT, lambda: cut.disabled_triggers_sql(schemas)
    yield "validate_constraint_sql", NIGHT, lambda: cut.validate_constraint_sql(schemas[0], "T", "T_FK")
    yield "foreign_keys_sql", NIGHT, lambda: cut.foreign_keys_sql(schemas)

    # ------------------------------------------------------------- validation (T-minus and window)
    yield "session_setup_sql", NIGHT, lambda: ora.session_setup_sql(parallel_workers=8)
    yield "server_version_sql", NIGHT, ora.server_version_sql
    yield "table_columns_sql", NIGHT, lambda: ora.table_columns_sql(schemas[0], "T")
    yield "primary_key_sql", NIGHT, lambda: ora.primary_key_sql(schemas[0], "T")
    yield "count_rows_sql", NIGHT, lambda: ora.count_rows_sql(schemas[0], "T")
    yield "archived_ranges_exist_sql", NIGHT, ora.archived_ranges_exist_sql
    for schema, table, columns, keys in n.tables or default_tables(schemas):
        yield from _comparison(ora, schema, table, columns, keys)

    # ------------------------------------------------------------------ inventory and replication
    yield "inventory_tables_sql", PREPARATION, lambda: ora.inventory_tables_sql(schemas)
    yield "inventory_sequences_sql", PREPARATION, lambda: ora.inventory_sequences_sql(schemas)
    yield "preparation_session_sql", PREPARATION, ora.preparation_session_sql
    owner = n.heartbeat_owner
    yield "goldengate_sql.CURRENT_SCN", NIGHT, lambda: goldengate_sql.CURRENT_SCN
    yield "goldengate_sql.SCN_TO_UTC", NIGHT, lambda: (goldengate_sql.SCN_TO_UTC, {"scn": 1})
    yield "goldengate_sql.gg_lag_sql", NIGHT, lambda: (goldengate_sql.gg_lag_sql(owner),
                                                       {"remote_database": None})
    yield "goldengate_sql.gg_lag_history_sql", NIGHT, lambda: (goldengate_sql.gg_lag_history_sql(owner),
                                                               {"since": at, "remote_database": None})
    yield "goldengate_sql.applied_heartbeat_watermark_sql", NIGHT, lambda: (
        goldengate_sql.applied_heartbeat_watermark_sql(owner), {"incoming_path": None})

    # ------------------------------------------------------------------------ the preparation
    for name in assessment.ASSESSMENT_QUERIES:
        fn = getattr(assessment, name)
        yield f"oracle_assessment.{name}", PREPARATION, (
            (lambda fn=fn: fn(schemas)) if name in assessment.SCHEMA_QUERIES else fn)
    yield "oracle_assessment.charset_overflow_count", PREPARATION, lambda: assessment.charset_overflow_count(
        schemas[0], "PATIENTS", "FAMILY_NAME", 100)
    yield "oracle_assessment.goldengate_privileges", PREPARATION, lambda: assessment.goldengate_privileges("GGADMIN")
    yield "oracle_assessment.start_capture", PREPARATION, lambda: assessment.start_capture("night", "CAPDIR", 3600)
    yield "oracle_assessment.finish_capture", PREPARATION, assessment.finish_capture
    yield "oracle_assessment.prepare_replay", PREPARATION, lambda: assessment.prepare_replay("night", "CAPDIR")
    yield "oracle_assessment.start_replay", PREPARATION, assessment.start_replay
    yield "oracle_assessment.replay_report", PREPARATION, assessment.replay_report
    yield "oracle_assessment.sqlpa_compare", PREPARATION, lambda: assessment.sqlpa_compare("task", "sts")


def _comparison(ora: OracleDialect, schema: str, table: str, columns: Sequence[tuple[str, ColumnKind]],
                keys: Sequence[str]) -> Iterator[tuple[str, str, Callable[[], Statement | Sequence[Statement]]]]:
    cols = [HashColumn(name, kind) for name, kind in columns]
    for mode in HashMode:
        h = ora.row_hash_expr(cols, mode)
        tag = f"[{mode.value}]"
        yield f"key_bounds_sql{tag}", NIGHT, lambda: ora.key_bounds_sql(schema, table, keys[0])
        yield f"range_hashes_sql{tag}", NIGHT, lambda h=h: [
            ora.range_hashes_sql(schema, table, key_column=keys[0], row_hash=h, lo=1, width=250000),
            ora.range_hashes_sql(schema, table, key_column=keys[0], row_hash=h, lo=1, width=100,
                                 within=KeyRange(1, 1001))]
        yield f"hash_buckets_sql{tag}", NIGHT, lambda h=h: ora.hash_buckets_sql(
            schema, table, key_columns=list(keys), row_hash=h, buckets=64)
        yield f"leaf_rows_sql{tag}", NIGHT, lambda h=h: [
            ora.leaf_rows_sql(schema, table, key_columns=list(keys), row_hash=h, within=KeyRange(1, 101)),
            ora.leaf_rows_sql(schema, table, key_columns=list(keys), row_hash=h, hash_bucket=(64, 3))]
        yield f"rows_by_keys_sql{tag}", NIGHT, lambda h=h: _with_keys(ora, schema, table, keys, h)


def _with_keys(ora: OracleDialect, schema: str, table: str, keys: Sequence[str], row_hash: str) -> Query:
    """rows_by_keys_sql with the key binds the hook adds (bind_keys), as the database receives it."""
    key_columns = [(k, "NUMBER") for k in keys]
    sql, binds = ora.rows_by_keys_sql(schema, table, key_columns=key_columns, row_hash=row_hash, count=3)
    return sql, {**binds, **ora.bind_keys(key_columns, [tuple(range(len(keys)))] * 3)}
