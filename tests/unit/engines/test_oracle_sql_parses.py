"""Every Oracle statement bascule emits, parsed by sqlglot's Oracle dialect over generated inputs (ADR 0022).

sqlglot reads what it does not understand as a generic ``exp.Command``: such a statement passes only if it
matches, whole, a line of the reviewed allow-list kept in the ADR itself. PL/SQL blocks pass only in the
reviewed shapes, with the SQL inside them parsed. Binds, GROUP BY and the 4000-byte limit are checked on
the parsed tree, and one test per known risk shows the checker catches it.
"""

from __future__ import annotations

import inspect
import logging
import re
from functools import cache

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from bascule.engines import goldengate_sql
from bascule.engines import oracle_assessment as assessment
from bascule.engines.base import ColumnKind, HashColumn, HashMode
from bascule.engines.oracle import OracleDialect
from bascule.engines.oracle_catalogue import (
    SAMPLE_COLUMNS,
    Emitted,
    Names,
    oracle_statements,
    statement_makers,
)
from bascule.engines.oracle_cutover import OracleCutoverDialect
from bascule.paths import PLANS_DIR, REPO_ROOT
from bascule.plan import load_plan

pytestmark = pytest.mark.unit

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # each Command is checked below, not logged

ADR = REPO_ROOT / "docs" / "adr" / "0022-oracle-sql-checked-by-a-parser.md"
_KINDS = [k for k in ColumnKind if k is not ColumnKind.UNREADABLE]


def _allow_list() -> list[re.Pattern[str]]:
    block = re.search(r"```allow-list\n(.*?)```", ADR.read_text(), re.S)
    assert block, f"{ADR.name} has no allow-list block"
    return [re.compile(line) for line in block.group(1).splitlines() if line.strip()]


ALLOWED_COMMANDS = _allow_list()


def _generated_names() -> list[Names]:
    """The example plan's names, and tables: each column kind alone, a 250-column row, composite keys."""
    plan = load_plan(PLANS_DIR / "production-oracle.example.yaml")
    out = []
    for side in (plan.source, plan.target):
        out.append(Names(schemas=tuple(plan.scope.schemas), app_role=side.app_role or "HOSP_APP",
                         allowed=tuple(side.allowed_writers), services=("HOSP_SVC",),
                         heartbeat_owner="GGADMIN", writers=("HOSP_APP", "HOSP_WRITER")))
    tables = tuple(
        [("HOSP", f"ONLY_{k.name}", (("ID", ColumnKind.INTEGER), ("V", k)), ("ID",)) for k in _KINDS]
        + [("HOSP", "WIDE", tuple((f"C{i:03d}", ColumnKind.TEXT) for i in range(191)), ("C000",)),
           ("HOSP", "MIXED", tuple((f"C{i:03d}", _KINDS[i % len(_KINDS)]) for i in range(101)), ("C000",)),
           ("HOSP", "PAIR_KEY", SAMPLE_COLUMNS, ("ID", "NAME")),
           ("HOSP", "TRIPLE_KEY", SAMPLE_COLUMNS, ("ID", "NAME", "SEEN"))])
    out.append(Names(schemas=("CLINIC",), app_role="CLINIC_APP", tables=tables))
    out.append(Names(schemas=("A", "B", "C"), app_role="APP", allowed=("ADMIN",), services=("S1", "S2")))
    return out


@cache
def _all_statements() -> tuple[Emitted, ...]:
    return tuple(e for names in _generated_names() for e in oracle_statements(names))


# ------------------------------------------------------------------------------------- the checker

_CALL = re.compile(r"^BEGIN (DBMS_SERVICE|DBMS_WORKLOAD_CAPTURE|DBMS_WORKLOAD_REPLAY|DBMS_SQLPA)\.(\w+\(.*\)); END;$",
                   re.S)
_FUNCTION = re.compile(r"^DECLARE t VARCHAR2\(128\); BEGIN t := (DBMS_SQLPA\.CREATE_ANALYSIS_TASK\(.*\)); END;$",
                       re.S)
_CREATE_IF_ABSENT = re.compile(
    r"^DECLARE n NUMBER; BEGIN (SELECT COUNT\(\*\)) INTO n (FROM all_tables WHERE owner = '[A-Z_]+' AND "
    r"table_name = '[A-Z_]+'); IF n = 0 THEN EXECUTE IMMEDIATE q'\[(.*)\]'; END IF; END;$", re.S)


@cache
def _parse_one(sql: str) -> exp.Expression:
    trees = sqlglot.parse(sql, read="oracle", error_level=sqlglot.ErrorLevel.RAISE)
    if len(trees) != 1 or trees[0] is None:
        raise AssertionError(f"{len(trees)} statements in one: {sql[:120]}")
    return trees[0]


def parsed(sql: str) -> list[exp.Expression]:
    """The trees of a statement, PL/SQL blocks opened in their reviewed shapes; AssertionError otherwise."""
    text = " ".join(sql.split())
    if text.startswith(("BEGIN", "DECLARE")):
        if m := _CALL.match(text):
            return [_parse_one(f"SELECT {m.group(1)}.{m.group(2)} FROM dual")]
        if m := _FUNCTION.match(text):
            return [_parse_one(f"SELECT {m.group(1)} FROM dual")]
        if m := _CREATE_IF_ABSENT.match(text):
            create = _parse_one(m.group(3))
            assert isinstance(create, exp.Create), f"not a CREATE TABLE: {m.group(3)[:80]}"
            return [_parse_one(f"{m.group(1)} {m.group(2)}"), create]
        raise AssertionError(f"a PL/SQL block of no reviewed shape (ADR 0022): {text[:120]}")
    tree = _parse_one(text)
    if isinstance(tree, exp.Command):
        if not any(p.fullmatch(text) for p in ALLOWED_COMMANDS):
            raise AssertionError(f"parses only as a generic Command and is not in ADR 0022's allow-list: {text}")
    return [tree]


def placeholders(trees: list[exp.Expression]) -> set[str]:
    return {p.name for t in trees for p in t.find_all(exp.Placeholder)}


def binds_in_group_by(trees: list[exp.Expression]) -> list[str]:
    return [p.name for t in trees for g in t.find_all(exp.Group) for p in g.find_all(exp.Placeholder)]


def _width(node: exp.Expression) -> int | None:
    """The most bytes an expression's text can have, for the fixed-width forms the hashes use; None if unknown."""
    if isinstance(node, exp.Paren):
        return _width(node.this)
    if isinstance(node, exp.Literal) and node.is_string:
        return len(node.this.encode())
    if isinstance(node, exp.Null):
        return 0
    if isinstance(node, exp.DPipe):
        parts = [_width(node.this), _width(node.expression)]
        return None if None in parts else sum(p for p in parts if p is not None)
    if isinstance(node, exp.Case):
        parts = [_width(i.args["true"]) for i in node.args.get("ifs", [])] + [_width(node.args["default"])]
        return None if None in parts else max(p for p in parts if p is not None)
    if isinstance(node, exp.Coalesce):
        parts = [_width(node.this), *(_width(e) for e in node.expressions)]
        return None if None in parts else max(p for p in parts if p is not None)
    if isinstance(node, exp.Lower | exp.Upper):
        return _width(node.this)
    if isinstance(node, exp.ToChar):
        fmt = node.args.get("format")
        if isinstance(fmt, exp.Literal) and re.fullmatch(r"FM0+", fmt.this):
            return len(fmt.this) - 2
        return None
    if isinstance(node, exp.Anonymous) and node.name.upper() == "RAWTOHEX":
        inner = node.expressions[0]
        if isinstance(inner, exp.Dot):
            inner = inner.expression
        name = inner.name.upper() if isinstance(inner, exp.Anonymous) else type(inner).__name__.upper()
        return 32 if name in ("STANDARD_HASH", "STANDARDHASH", "HASH") else None
    return None


def concatenations_over(trees: list[exp.Expression], limit: int = 4000) -> list[str]:
    """Every outermost concatenation whose text may pass ``limit`` bytes (or whose width is unknown)."""
    found = []
    for tree in trees:
        for node in tree.find_all(exp.DPipe):
            if isinstance(node.parent, exp.DPipe):
                continue
            width = _width(node)
            if width is None or width > limit:
                found.append(f"{width} bytes: {node.sql(dialect='oracle')[:100]}")
    return found


# ------------------------------------------------------------------------------------ coverage

_NOT_STATEMENTS = {"driver_sql"}  # plan-supplied SQL spelt for the driver: the smoke test below parses it


def _dialect_methods() -> set[str]:
    names = set()
    for cls in (OracleDialect, OracleCutoverDialect):
        for name, _member in inspect.getmembers(cls, callable):
            if not name.startswith("_") and name.endswith(("_sql", "_statements")):
                names.add(name)
    return names - _NOT_STATEMENTS


def test_the_catalogue_covers_every_oracle_statement_maker() -> None:
    sources = {m.split("[")[0] for names in _generated_names() for m in statement_makers(names)}
    not_offered = {"archived_ranges_sql", "orphan_count_sql"}
    missing = _dialect_methods() - not_offered - sources
    assert not missing, f"dialect methods whose statements no test parses and no grant covers: {sorted(missing)}"
    # What Oracle does not offer refuses to run rather than emitting SQL nobody parsed.
    with pytest.raises(NotImplementedError):
        OracleDialect().archived_ranges_sql()
    with pytest.raises(NotImplementedError):
        OracleCutoverDialect().orphan_count_sql("A", "T", ["C"], "A", "P", ["C"])
    modules = {f"oracle_assessment.{n}" for n, f in inspect.getmembers(assessment, inspect.isfunction)
               if f.__module__ == assessment.__name__ and not n.startswith("_")}
    modules |= {f"goldengate_sql.{n}" for n, f in inspect.getmembers(goldengate_sql, inspect.isfunction)
                if f.__module__ == goldengate_sql.__name__ and n.endswith("_sql")}
    assert not modules - sources, sorted(modules - sources)
    assert len(_all_statements()) > 300


def test_every_oracle_statement_parses_with_its_binds() -> None:
    failures = []
    for e in _all_statements():
        try:
            trees = parsed(e.sql)
        except (AssertionError, ParseError) as err:
            failures.append(f"{e.source}: {str(err)[:300]}")
            continue
        commands = [t for t in trees if isinstance(t, exp.Command)]
        if commands:
            if e.binds or ":" in re.sub(r"'[^']*'", "", e.sql):
                failures.append(f"{e.source}: a Command (DDL) takes no bind: {e.sql[:80]}")
            continue
        if placeholders(trees) != set(e.binds):
            failures.append(f"{e.source}: binds in the SQL {sorted(placeholders(trees))} "
                            f"!= binds given {sorted(e.binds)}")
        if binds_in_group_by(trees):
            failures.append(f"{e.source}: bind variables in GROUP BY (ORA-00979): {binds_in_group_by(trees)}")
        if re.search(r"\bEXCEPTION\s+WHEN\b", e.sql, re.I):
            failures.append(f"{e.source}: catches an exception")
    assert not failures, "\n".join(failures)


def test_statements_reading_patient_rows_never_concatenate_past_4000_bytes() -> None:
    reading = [e for e in _all_statements() if e.source.split("[")[0] in (
        "range_hashes_sql", "hash_buckets_sql", "leaf_rows_sql", "rows_by_keys_sql")]
    assert {e.source for e in reading} >= {"range_hashes_sql[native]", "range_hashes_sql[canonical]"}
    over = [f"{e.source}: {c}" for e in reading for c in concatenations_over(parsed(e.sql))]
    assert not over, "\n".join(over[:5])


def test_the_plans_smoke_sql_parses_as_oracle() -> None:
    plan = load_plan(PLANS_DIR / "production-oracle.example.yaml")
    assert plan.cutover and plan.cutover.smoke
    for check in plan.cutover.smoke:
        (tree,) = parsed(OracleDialect().driver_sql(check.sql))
        assert not isinstance(tree, exp.Command), check.name


# ------------------------------------------------------------------ one test per risk (issue 18)

def test_risk_4000_bytes_the_old_row_text_is_caught_and_the_new_hash_passes() -> None:
    cols = [HashColumn(f"C{i}", ColumnKind.TEXT) for i in range(3)]
    old = " || '|' || ".join(f"NVL2(t.\"C{i}\", LENGTH(t.\"C{i}\") || ':' || t.\"C{i}\", '-')" for i in range(3))
    assert concatenations_over(parsed(f"SELECT ORA_HASH({old}) FROM t"))  # three VARCHAR2(4000) values
    for mode in HashMode:
        wide = [HashColumn(f"C{i}", ColumnKind.TEXT) for i in range(201)]
        assert not concatenations_over(parsed(f"SELECT {OracleDialect().row_hash_expr(wide, mode)} FROM t"))
        assert not concatenations_over(parsed(f"SELECT {OracleDialect().row_hash_expr(cols, mode)} FROM t"))


def test_risk_repeated_binds_in_group_by_are_caught_and_gone() -> None:
    old = ('SELECT FLOOR((t."ID" - :lo) / :width) AS bucket, COUNT(*) FROM "A"."T" t '
           'GROUP BY FLOOR((t."ID" - :lo) / :width)')
    assert sorted(binds_in_group_by(parsed(old))) == ["lo", "width"]
    sql, binds = OracleDialect().range_hashes_sql("A", "T", key_column="ID", row_hash="1", lo=1, width=10)
    trees = parsed(sql)
    assert not binds_in_group_by(trees) and placeholders(trees) == set(binds) == {"lo", "width"}
    sql, _ = OracleDialect().hash_buckets_sql("A", "T", key_columns=["ID", "NAME"], row_hash="1", buckets=8)
    assert not binds_in_group_by(parsed(sql))


def test_risk_session_end_is_kill_session_with_the_instance() -> None:
    statement = OracleCutoverDialect().kill_session_sql(12, 345, 2)
    assert statement == "ALTER SYSTEM KILL SESSION '12,345,@2' IMMEDIATE"
    parsed(statement)  # in the allow-list
    with pytest.raises(AssertionError, match="allow-list"):
        parsed("ALTER SYSTEM DISCONNECT SESSION 'garbage' WHATEVER")
    with pytest.raises(AssertionError, match="allow-list"):
        parsed("ALTER SYSTEM DISCONNECT SESSION '12,345,@2' IMMEDIATE")
    assert not any("DISCONNECT" in e.sql for e in _all_statements())


def test_risk_no_error_is_swallowed_and_blocks_of_no_reviewed_shape_fail() -> None:
    for statement in OracleCutoverDialect().ensure_meta_sql() + [
            s for s in OracleCutoverDialect().probe_prepare_sql("APP") if isinstance(s, str)]:
        assert "EXCEPTION" not in statement.upper()
        parsed(statement)
    with pytest.raises(AssertionError, match="no reviewed shape"):
        parsed("BEGIN EXECUTE IMMEDIATE q'[CREATE TABLE X (a NUMBER)]'; "
               "EXCEPTION WHEN OTHERS THEN IF SQLCODE != -955 THEN RAISE; END IF; END;")
    with pytest.raises(AssertionError, match="not a CREATE TABLE"):
        parsed("DECLARE n NUMBER; BEGIN SELECT COUNT(*) INTO n FROM all_tables WHERE owner = 'X' AND "
               "table_name = 'Y'; IF n = 0 THEN EXECUTE IMMEDIATE q'[DROP TABLE X]'; END IF; END;")


def test_risk_long_columns_are_refused_by_name() -> None:
    d = OracleDialect()
    assert d.column_kind("LONG") is ColumnKind.UNREADABLE and d.column_kind("LONG RAW") is ColumnKind.UNREADABLE
    with pytest.raises(ValueError, match="column NOTES: a LONG"):
        d.row_hash_expr([HashColumn("NOTES", ColumnKind.UNREADABLE)], HashMode.NATIVE)


def test_risk_the_freeze_proof_names_pending_distributed_transactions_and_roles() -> None:
    sql, _ = OracleCutoverDialect().freeze_findings_sql("HOSP_APP", ["HOSP"], ["BASCULE_ADMIN"])
    tree = parsed(sql)[0]
    tables = {t.name.lower() for t in tree.find_all(exp.Table)}
    assert {"dba_2pc_pending", "dba_role_privs", "dba_tab_privs", "dba_col_privs", "dba_sys_privs"} <= tables


def test_risk_statements_for_an_older_source_use_no_19c_only_grammar() -> None:
    # The reference source is 12.2 or 18c: what runs there (all but the target's sequence fix-ups)
    # must not use LISTAGG(DISTINCT) (19c), version_full (18c) nor IF [NOT] EXISTS (23ai).
    newer = re.compile(r"LISTAGG\s*\(\s*DISTINCT|version_full|IF\s+(NOT\s+)?EXISTS", re.I)
    found = [f"{e.source}: {newer.search(e.sql).group(0)}" for e in _all_statements()
             if e.source != "advance_sequence_sql" and newer.search(e.sql)]
    assert not found, found
