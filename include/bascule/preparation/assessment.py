"""Pre-flight assessment: can this source be replicated into this target, tonight and on the night?

Reads catalogue facts from both sides (through anything with ``records(query)``,
normally :class:`bascule.hooks.assessment.AssessmentHook`) and turns them into
findings, each PASS, WARNING or BLOCKER with a fix hint and the object's name.
The rules are PostgreSQL logical replication's own limits (PostgreSQL 15
documentation, "Logical Replication - Restrictions"); the Oracle/GoldenGate
queries live in ``engines/oracle_assessment.py``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from bascule.engines import postgres_assessment as q
from bascule.plan import Plan, ReplicationMethod
from bascule.preparation.findings import Finding, FindingSet, Severity

STAGE = "assessment"
# The initial copy writes the data, its indexes and the WAL that carries them
# before checkpoints recycle it: 1.3x the source's size is the margin we ask for.
FREE_SPACE_HEADROOM = 1.3
# Partitions must exist for the month after the night too: the new platform takes
# traffic from the first minute and nobody creates partitions during a hypercare week.
PARTITION_HORIZON = timedelta(days=31)
TOAST_WARNING_BYTES = 1 << 30
_REG_TYPES = {"regclass", "regproc", "regprocedure", "regoper", "regoperator", "regtype", "regconfig",
              "regdictionary", "regnamespace", "regrole", "regcollation"}
_VARCHAR = re.compile(r"^character varying\((\d+)\)$")
_UPPER = re.compile(r"TO \((?:'([^']*)'|(MAXVALUE))\)")


class CatalogueReader(Protocol):
    def records(self, query: tuple[Any, dict[str, Any]]) -> list[tuple[Any, ...]]: ...


def _side_name(plan: Plan, side: str) -> str:
    return (plan.source if side == "source" else plan.target).conn_id


def assess_postgres(
    *,
    plan: Plan,
    source: CatalogueReader,
    target: CatalogueReader,
    cutover_date: date | datetime | None = None,
    replication_role: str | None = None,
    target_free_bytes: int | None | Callable[[], int | None] = None,
) -> FindingSet:
    """All checks of a PostgreSQL to PostgreSQL migration; connectivity failures end the side's checks."""
    schemas = list(plan.scope.schemas)
    findings: list[Finding] = []
    facts: dict[str, Any] = {"schemas": schemas, "method": plan.replication.method.value}
    server: dict[str, tuple] = {}
    for side, reader in (("source", source), ("target", target)):
        try:
            server[side] = reader.records(q.server_facts())[0]
        except Exception as exc:  # the hook already sanitised it
            findings.append(Finding("connectivity", _side_name(plan, side), Severity.BLOCKER,
                                    f"cannot query the {side}: {exc}",
                                    f"check the Airflow connection {_side_name(plan, side)}, the network "
                                    "path and pg_hba.conf", side))
    if len(server) < 2:
        return FindingSet(STAGE, tuple(findings), facts)
    for side in ("source", "target"):
        version, num, user, _superuser, _repl, db = server[side]
        facts[f"{side}_version"] = version
        findings.append(Finding("connectivity", _side_name(plan, side), Severity.PASS,
                                f"connected as {user} to database {db}, PostgreSQL {version}", side=side))
    if server["target"][1] // 10000 < server["source"][1] // 10000:
        findings.append(Finding("version", "target", Severity.WARNING,
                                f"target PostgreSQL {server['target'][0]} is older than the source "
                                f"{server['source'][0]}",
                                "replicate only into the same or a newer major version; upgrade the target",
                                "target"))
    logical = plan.replication.method is ReplicationMethod.POSTGRES_LOGICAL
    src_tables = [(s, t) for s, t, *_ in source.records(q.tables_identity(schemas))
                  if plan.scope.contains(s, t)]
    findings += _privileges(plan, source, target, server, schemas, replication_role, logical)
    if logical:
        findings += _settings(source, target)
        findings += _identity(plan, source)
    findings += _columns(plan, source, target, schemas, logical)
    sizes, size_findings = _sizes(plan, source, target, schemas, target_free_bytes)
    facts.update(sizes)
    findings += size_findings
    findings += _locale(source, target, schemas)
    findings += _special(plan, source, target, schemas, cutover_date, logical)
    facts["tables_in_scope"] = len({t for t in src_tables})
    return FindingSet(STAGE, tuple(findings), facts)


# --------------------------------------------------------------------------- privileges and settings


def _privileges(plan: Plan, source: CatalogueReader, target: CatalogueReader, server: dict[str, tuple],
                schemas: list[str], replication_role: str | None, logical: bool) -> list[Finding]:
    out: list[Finding] = []
    _, _, src_user, src_super, src_repl, _ = server["source"]
    _, _, tgt_user, tgt_super, _, _ = server["target"]
    if logical and not tgt_super:
        out.append(Finding("privileges", f"target role {tgt_user}", Severity.BLOCKER,
                           "PostgreSQL 15 lets only a superuser CREATE SUBSCRIPTION",
                           f"ALTER ROLE {tgt_user} SUPERUSER on the target for the migration window "
                           "(or use PostgreSQL 16's pg_create_subscription)", "target"))
    role = replication_role or src_user
    row = source.records(q.role_facts(role))
    if not row:
        out.append(Finding("privileges", f"source role {role}", Severity.BLOCKER,
                           "the replication role does not exist on the source",
                           f"CREATE ROLE {role} LOGIN REPLICATION", "source"))
    else:
        _, login, repl, sup = row[0]
        if logical and not (repl or sup):
            out.append(Finding("privileges", f"source role {role}", Severity.BLOCKER,
                               "the replication role lacks REPLICATION", f"ALTER ROLE {role} REPLICATION",
                               "source"))
        elif not login:
            out.append(Finding("privileges", f"source role {role}", Severity.BLOCKER,
                               "the replication role cannot log in", f"ALTER ROLE {role} LOGIN", "source"))
        else:
            out.append(Finding("privileges", f"source role {role}", Severity.PASS,
                               "may log in and stream changes", side="source"))
        denied = [f"{s}.{t}" for s, t in source.records(q.role_can_select(role, schemas))
                  if plan.scope.contains(s, t)]
        if denied:
            out.append(Finding("privileges", ", ".join(denied[:10]) + (" ..." if len(denied) > 10 else ""),
                               Severity.BLOCKER,
                               f"the replication role {role} cannot SELECT {len(denied)} table(s): "
                               "the initial copy reads them",
                               f"GRANT SELECT ON ALL TABLES IN SCHEMA ... TO {role}", "source"))
    for schema, exists, can_create in target.records(q.schema_create_privilege(schemas)):
        if not exists:
            out.append(Finding("privileges", f"target schema {schema}", Severity.BLOCKER,
                               "the schema does not exist on the target",
                               "apply the source DDL and the release migration to the target first", "target"))
        elif not can_create:
            out.append(Finding("privileges", f"target schema {schema}", Severity.WARNING,
                               f"{tgt_user} may not CREATE in the schema (bascule's metadata and fixes need it)",
                               f"GRANT CREATE ON SCHEMA {schema} TO {tgt_user}", "target"))
    return out


def _setting(rows: list[tuple], name: str) -> str | None:
    return next((str(v) for n, v in rows if n == name), None)


def _settings(source: CatalogueReader, target: CatalogueReader) -> list[Finding]:
    out: list[Finding] = []
    src = source.records(q.replication_settings())
    tgt = target.records(q.replication_settings())
    wal = _setting(src, "wal_level")
    if wal != "logical":
        out.append(Finding("wal_level", "source wal_level", Severity.BLOCKER,
                           f"wal_level is {wal}: logical decoding needs 'logical'",
                           "ALTER SYSTEM SET wal_level = logical; then restart the source (plan the restart)",
                           "source"))
    else:
        out.append(Finding("wal_level", "source wal_level", Severity.PASS, "wal_level is logical", side="source"))
    for name, rows, side, fix in (
        ("max_replication_slots", src, "source", "ALTER SYSTEM SET max_replication_slots = 10; restart"),
        ("max_wal_senders", src, "source", "ALTER SYSTEM SET max_wal_senders = 10; restart"),
        ("max_logical_replication_workers", tgt, "target",
         "ALTER SYSTEM SET max_logical_replication_workers = 4; restart"),
    ):
        value = _setting(rows, name)
        if value is None or int(value) < 1:
            out.append(Finding("wal_level", f"{side} {name}", Severity.BLOCKER,
                               f"{name} is {value}: replication needs at least 1", fix, side))
    return out


# --------------------------------------------------------------------------- identity and columns


def _identity(plan: Plan, source: CatalogueReader) -> list[Finding]:
    out: list[Finding] = []
    ok = 0
    for schema, table, relkind, has_pk, ident, is_partition in source.records(
            q.tables_identity(list(plan.scope.schemas))):
        if relkind == "p" or not (is_partition or plan.scope.contains(schema, table)):
            continue
        name = f"{schema}.{table}"
        if ident in ("d", "n") and not has_pk or ident == "n":
            out.append(Finding("replica_identity", name, Severity.BLOCKER,
                               "table has no primary key and no replica identity: once published, "
                               "every UPDATE and DELETE on it fails on the source",
                               f"add a primary key (ALTER TABLE {name} ADD PRIMARY KEY (...)) or "
                               f"ALTER TABLE {name} REPLICA IDENTITY USING INDEX <unique not-null index>",
                               "source"))
        elif ident == "f":
            out.append(Finding("replica_identity", name, Severity.WARNING,
                               "replica identity FULL: each UPDATE/DELETE is applied by a scan of the table",
                               f"add a primary key to {name}", "source"))
        else:
            ok += 1
    out.append(Finding("replica_identity", f"{ok} table(s)", Severity.PASS,
                       "have a primary key or a replica identity index", side="source"))
    return out


def _columns(plan: Plan, source: CatalogueReader, target: CatalogueReader, schemas: list[str],
             logical: bool) -> list[Finding]:
    out: list[Finding] = []
    src_cols: dict[tuple[str, str], dict[str, tuple]] = defaultdict(dict)
    tgt_cols: dict[tuple[str, str], dict[str, tuple]] = defaultdict(dict)
    for row in source.records(q.columns_with_types(schemas)):
        if plan.scope.contains(row[0], row[1]):
            src_cols[(row[0], row[1])][row[2]] = row
    for row in target.records(q.columns_with_types(schemas)):
        tgt_cols[(row[0], row[1])][row[2]] = row
    type_schemas = sorted({r[5] for cols in src_cols.values() for r in cols.values()
                           if r[5] not in ("pg_catalog", "information_schema")})
    tgt_types = {(s, n) for s, n, _ in target.records(q.user_types(type_schemas))} if type_schemas else set()
    problems = 0
    for (schema, table), cols in sorted(src_cols.items()):
        name = f"{schema}.{table}"
        if (schema, table) not in tgt_cols:
            out.append(Finding("columns", name, Severity.BLOCKER, "table is missing on the target",
                               "create it on the target (source DDL + release migration) before the load",
                               "target"))
            problems += 1
            continue
        target_cols = tgt_cols[(schema, table)]
        for col, (_, _, _, typ, typtype, typschema, generated, _cat) in cols.items():
            obj = f"{name}.{col}"
            if typ.split("(")[0] in _REG_TYPES:
                out.append(Finding("column_types", obj, Severity.BLOCKER,
                                   f"type {typ} holds OIDs that mean something else on the target",
                                   "store the object's name (text) instead of its OID", "source"))
                problems += 1
            if typschema not in ("pg_catalog", "information_schema") and (typschema, typ.split("(")[0].split(".")[-1]
                                                                          ) not in tgt_types:
                out.append(Finding("column_types", obj, Severity.BLOCKER,
                                   f"user-defined type {typschema}.{typ} (kind {typtype}) is missing on the target",
                                   "create the type on the target with the same definition first", "target"))
                problems += 1
            if generated == "s":
                out.append(Finding("column_types", obj, Severity.WARNING,
                                   "generated column: PostgreSQL 15 does not replicate it; the target computes it",
                                   "check the target defines the same generation expression", "target"))
            if logical and col not in target_cols:
                out.append(Finding("column_types", obj, Severity.BLOCKER,
                                   "column missing on the target: logical replication matches columns by name "
                                   "and stops on a missing one",
                                   "keep the column on the target until after the cutover, then drop it", "target"))
                problems += 1
                continue
            if col in target_cols and target_cols[col][3] != typ:
                out.append(_type_change(obj, typ, target_cols[col][3]))
                problems += out[-1].severity is not Severity.PASS
        for col, row in target_cols.items():
            if col not in cols and row[6] == "" and logical:
                # A NOT NULL column without a default on the target would reject every replicated row;
                # nullability is not in this query, so the schema comparison reports it.
                pass
    if problems == 0:
        out.append(Finding("column_types", f"{len(src_cols)} table(s)", Severity.PASS,
                           "every column type can be carried to the target"))
    return out


def _type_change(obj: str, source_type: str, target_type: str) -> Finding:
    s, t = _VARCHAR.match(source_type), _VARCHAR.match(target_type)
    if s and t:
        if int(t.group(1)) >= int(s.group(1)):
            return Finding("column_types", obj, Severity.PASS, f"widened from {source_type} to {target_type}")
        return Finding("column_types", obj, Severity.BLOCKER,
                       f"narrowed from {source_type} to {target_type}: longer values fail to apply",
                       "keep the target at least as wide as the source", "target")
    if source_type.startswith("character varying") and target_type == "text":
        return Finding("column_types", obj, Severity.PASS, f"widened from {source_type} to text")
    return Finding("column_types", obj, Severity.WARNING,
                   f"type changes from {source_type} to {target_type}: values are applied through their text form",
                   "check every source value converts (validation compares them after the load)", "target")


# --------------------------------------------------------------------------- sizes


def _sizes(plan: Plan, source: CatalogueReader, target: CatalogueReader, schemas: list[str],
           target_free_bytes: int | None | Callable[[], int | None]) -> tuple[dict[str, Any], list[Finding]]:
    out: list[Finding] = []
    tables = [r for r in source.records(q.table_sizes(schemas)) if plan.scope.contains(r[0], r[1])]
    toast_total = sum(int(r[4]) for r in tables)
    for schema, table, _kind, _heap, toast, _idx, total, _rows in tables:
        if int(toast) > TOAST_WARNING_BYTES and int(toast) > int(total) / 2:
            out.append(Finding("lob_sizes", f"{schema}.{table}", Severity.WARNING,
                               f"TOAST holds {_mb(toast)} of {_mb(total)}: the initial copy of this table is "
                               "dominated by large values", "start its copy first, or copy it in key ranges", "source"))
    biggest = max(tables, key=lambda r: int(r[4]), default=None)
    out.append(Finding("lob_sizes", "TOAST", Severity.PASS,
                       f"{_mb(toast_total)} of TOAST in scope"
                       + (f", the most in {biggest[0]}.{biggest[1]} ({_mb(biggest[4])})" if biggest else ""),
                       side="source"))
    lo_count, lo_bytes = source.records(q.large_objects())[0]
    if int(lo_count):
        out.append(Finding("large_objects", "pg_largeobject", Severity.BLOCKER,
                           f"{int(lo_count)} large object(s) ({_mb(lo_bytes or 0)}): logical replication "
                           "does not carry them",
                           "move them to bytea columns before the load, or copy them with pg_dump "
                           "--large-objects during the downtime (and budget it)", "source"))
    else:
        out.append(Finding("large_objects", "pg_largeobject", Severity.PASS, "no large objects", side="source"))
    scope_bytes, db_bytes = source.records(q.scope_bytes(schemas))[0]
    free = target_free_bytes() if callable(target_free_bytes) else target_free_bytes
    needed = int(scope_bytes) * FREE_SPACE_HEADROOM
    facts = {"source_scope_bytes": int(scope_bytes), "source_database_bytes": int(db_bytes),
             "target_free_bytes": free, "toast_bytes": toast_total}
    if free is None:
        out.append(Finding("free_space", "target data directory", Severity.WARNING,
                           f"free space on the target could not be measured (source scope {_mb(scope_bytes)})",
                           "grant pg_execute_server_program to the target's admin role, or give "
                           "target_free_bytes from the platform's monitoring", "target"))
    elif free < int(scope_bytes):
        out.append(Finding("free_space", "target data directory", Severity.BLOCKER,
                           f"{_mb(free)} free on the target for {_mb(scope_bytes)} of source data",
                           "grow the target's volume before the initial load", "target"))
    elif free < needed:
        out.append(Finding("free_space", "target data directory", Severity.WARNING,
                           f"{_mb(free)} free on the target, under {FREE_SPACE_HEADROOM}x the source's "
                           f"{_mb(scope_bytes)}", "grow the target's volume: WAL and index builds need room",
                           "target"))
    else:
        out.append(Finding("free_space", "target data directory", Severity.PASS,
                           f"{_mb(free)} free on the target for {_mb(scope_bytes)} of source data", side="target"))
    return facts, out


def _mb(value: Any) -> str:
    return f"{int(value) / 1048576:,.1f} MB"


# --------------------------------------------------------------------------- locale


def _locale(source: CatalogueReader, target: CatalogueReader, schemas: list[str]) -> list[Finding]:
    out: list[Finding] = []
    s_enc, s_coll, s_ctype, s_prov, s_icu = source.records(q.database_locale())[0]
    t_enc, t_coll, t_ctype, t_prov, t_icu = target.records(q.database_locale())[0]
    if s_enc != t_enc:
        severity = Severity.WARNING if t_enc == "UTF8" and s_enc != "SQL_ASCII" else Severity.BLOCKER
        out.append(Finding("charset", "database encoding", severity,
                           f"source encoding {s_enc}, target {t_enc}",
                           "create the target database with the source's encoding (or UTF8, after checking "
                           "every source value is valid in it)", "target"))
    else:
        out.append(Finding("charset", "database encoding", Severity.PASS, f"both {s_enc}"))
    if (s_coll, s_ctype, s_prov, s_icu) != (t_coll, t_ctype, t_prov, t_icu):
        out.append(Finding("collation", "database collation", Severity.WARNING,
                           f"source collation {s_coll}/{s_ctype} ({s_prov}), target {t_coll}/{t_ctype} ({t_prov}): "
                           "text sorts and compares differently",
                           "create the target database with the source's LC_COLLATE/LC_CTYPE, or re-test every "
                           "ORDER BY and unique text index", "target"))
    else:
        out.append(Finding("collation", "database collation", Severity.PASS, f"both {s_coll}/{s_ctype}"))
    s_cols = {(r[0], r[1], r[2]): r[3] for r in source.records(q.column_collations(schemas))}
    t_cols = {(r[0], r[1], r[2]): r[3] for r in target.records(q.column_collations(schemas))}
    for key in sorted(set(s_cols) | set(t_cols)):
        if s_cols.get(key) != t_cols.get(key):
            out.append(Finding("collation", ".".join(key), Severity.WARNING,
                               f"column collation {s_cols.get(key) or 'default'} on the source, "
                               f"{t_cols.get(key) or 'default'} on the target",
                               "declare the same COLLATE on the target column", "target"))
    return out


# --------------------------------------------------------------------------- special objects


def _special(plan: Plan, source: CatalogueReader, target: CatalogueReader, schemas: list[str],
             cutover_date: date | datetime | None, logical: bool) -> list[Finding]:
    out: list[Finding] = []
    for schema, name, kind in source.records(q.special_relations(schemas)):
        obj = f"{schema}.{name}"
        if kind == "unlogged":
            out.append(Finding("special_objects", obj, Severity.WARNING,
                               "unlogged table: its rows are never written to WAL, so never replicated",
                               f"ALTER TABLE {obj} SET LOGGED before the load, or copy it during the downtime",
                               "source"))
        elif kind == "matview":
            out.append(Finding("special_objects", obj, Severity.WARNING,
                               "materialised view: never published; the target's copy is empty until refreshed",
                               f"REFRESH MATERIALIZED VIEW {obj} on the target after the load (budget it)",
                               "target"))
        elif kind == "foreign":
            out.append(Finding("special_objects", obj, Severity.WARNING,
                               "foreign table: its data lives elsewhere and is not replicated",
                               "recreate the foreign server and user mapping on the target", "target"))
        elif kind == "partitioned" and plan.scope.contains(schema, name):
            out.append(Finding("special_objects", obj, Severity.PASS,
                               "partitioned table: published through its root (publish_via_partition_root)",
                               side="source"))
        elif kind == "sequence":
            continue
    sequences = [r for r in source.records(q.special_relations(schemas)) if r[2] == "sequence"]
    if sequences and logical:
        out.append(Finding("special_objects", f"{len(sequences)} sequence(s)", Severity.PASS,
                           "sequence values are not replicated: the cutover sets them on the target",
                           side="target"))
    out += _partitions_due(source, target, schemas, cutover_date)
    return out


def parse_upper_bound(bound: str) -> datetime | None:
    """The exclusive upper bound of a RANGE partition on a date/timestamp key (None: MAXVALUE or not a date)."""
    m = _UPPER.search(bound or "")
    if not m or m.group(2):
        return None
    text = m.group(1).strip()
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _bounds(reader: CatalogueReader, schemas: list[str]) -> dict[str, tuple[datetime | None, bool, str]]:
    tops: dict[str, tuple[datetime | None, bool, str]] = {}
    for schema, root, key, key_type, _part, bound, is_default in reader.records(q.range_partition_bounds(schemas)):
        if not (key_type.startswith("timestamp") or key_type == "date"):
            continue
        name = f"{schema}.{root}"
        top, default, _ = tops.get(name, (None, False, key))
        upper = None if is_default else parse_upper_bound(bound)
        if upper is not None and (top is None or upper > top):
            top = upper
        tops[name] = (top, default or bool(is_default), key)
    return tops


def _partitions_due(source: CatalogueReader, target: CatalogueReader, schemas: list[str],
                    cutover_date: date | datetime | None) -> list[Finding]:
    out: list[Finding] = []
    night = None
    if cutover_date is not None:
        night = cutover_date if isinstance(cutover_date, datetime) else datetime(
            cutover_date.year, cutover_date.month, cutover_date.day, tzinfo=UTC)
        night = night if night.tzinfo else night.replace(tzinfo=UTC)
    src, tgt = _bounds(source, schemas), _bounds(target, schemas)
    for name, (top, has_default, key) in sorted(src.items()):
        t_top = tgt.get(name, (None, False, key))[0]
        if top is None:
            continue
        covered = f"partitions of {name} cover {key} up to {top.date().isoformat()}"
        if night is None:
            out.append(Finding("partitions_due", name, Severity.PASS,
                               covered + " (no cutover date given: pass cutover_date to check the night)"))
        elif top <= night and not has_default:
            out.append(Finding("partitions_due", name, Severity.BLOCKER,
                               covered + f": rows written on the night ({night.date().isoformat()}) have no partition",
                               f"create the partitions of {name} up to "
                               f"{(night + PARTITION_HORIZON).date().isoformat()} on both sides now", "source"))
        elif top < night + PARTITION_HORIZON:
            out.append(Finding("partitions_due", name, Severity.WARNING,
                               covered + f": less than {PARTITION_HORIZON.days} days after the night "
                               f"({night.date().isoformat()})",
                               f"create the partitions of {name} up to "
                               f"{(night + PARTITION_HORIZON).date().isoformat()} on both sides before the night",
                               "source"))
        else:
            out.append(Finding("partitions_due", name, Severity.PASS, covered))
        if t_top is not None and night is not None and t_top < min(top, night + PARTITION_HORIZON):
            out.append(Finding("partitions_due", name, Severity.WARNING,
                               f"the target's partitions stop at {t_top.date().isoformat()}, the source's at "
                               f"{top.date().isoformat()}",
                               f"create the same partitions of {name} on the target", "target"))
    return out


def cutover_date_arg(value: str | date | None) -> date | None:
    """An operator argument (ISO date text from a template or conf) as a date; a clear error otherwise."""
    if value in (None, "", "None"):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"cutover_date must be an ISO date like 2027-03-14 (got {value!r})") from None


def summarise(findings: Sequence[Finding]) -> dict[str, int]:
    return FindingSet(STAGE, tuple(findings)).counts()
