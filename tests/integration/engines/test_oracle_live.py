"""The Oracle dialect against real Oracle databases: each of ``BASCULE_ORACLE_SOURCE_DSN`` and
``BASCULE_ORACLE_TARGET_DSN`` that is set (the migration user's ``user/password@host:port/service``); a side
whose variable is unset is skipped.

``make test-oracle`` runs this file, ``tests/integration/replication/test_goldengate_live.py`` and the live
night (docs/oracle-live.md). What it proves on each database named (19c, or 23ai Free with the gaps the
guide lists):

1. every read-only statement of the catalogue (the assessment's, the inventory's, the freeze's proof,
   the comparison's over a scratch table) runs, with its binds;
2. the migration user holds what ``bascule plan grants`` derives (``session_privs`` and
   ``user_tab_privs``/``role_tab_privs``), for the plan in ``BASCULE_ORACLE_PLAN`` (the example's by default);
3. the comparison's hashes are equal for equal rows and differ for a changed 5,000-byte row, and a
   ``KILL SESSION`` of a session already gone fails with ORA-00030 only.

The freeze itself (restricted session, account lock) changes the whole database: the live night runs it
(tests/integration/runbook/test_oracle_night_live.py), only on databases declared disposable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bascule.engines.base import ColumnKind, HashColumn, HashMode
from bascule.engines.oracle import OracleDialect
from bascule.engines.oracle_catalogue import Names, oracle_statements
from bascule.engines.oracle_cutover import OracleCutoverDialect
from bascule_lab.testing import oracle_live as live

pytestmark = [
    pytest.mark.integration,
    pytest.mark.oracle_live,
    pytest.mark.skipif(len(live.missing((live.SOURCE_DSN, live.TARGET_DSN))) == 2,
                       reason=f"needs {live.SOURCE_DSN} or {live.TARGET_DSN}"),
]

SCRATCH = "BASCULE_LIVE_T"


@pytest.fixture(scope="module", params=[live.SOURCE_DSN, live.TARGET_DSN], ids=["source", "target"])
def conn(request: pytest.FixtureRequest) -> Iterator[Any]:
    import json

    import oracledb

    var = request.param
    if live.missing((var,)):
        pytest.skip(f"{var} not set")
    problem, connection = None, None
    try:
        c = json.loads(live.oracle_connection(var))
        connection = oracledb.connect(user=c["login"], password=c["password"], dsn=oracledb.makedsn(
            c["host"], c["port"], service_name=c["extra"]["service_name"]))
    except live.LiveSettingError as exc:
        problem = str(exc)
    except oracledb.Error as exc:  # the driver's text names no password: one line, without its chain
        problem = f"{var} ({live.dsn_target(var)}): {' '.join(str(exc).split())}"
    if connection is None:
        pytest.fail(problem, pytrace=False)
    with connection:
        yield connection


def _rows(conn: Any, sql: str, binds: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(sql, binds or {})
        return cur.fetchall() if cur.description else []


def _user(conn: Any) -> str:
    return str(_rows(conn, "SELECT USER FROM dual")[0][0])


def test_every_read_only_statement_runs(conn: Any) -> None:
    user = _user(conn)
    names = Names(schemas=(user,), app_role=user, allowed=(user,))
    failures = []
    for e in oracle_statements(names):
        text = " ".join(e.sql.split()).upper()
        if not text.startswith(("SELECT", "WITH")) or '"SAMPLE"' in text or "BASCULE_META" in text:
            continue  # writes, and the sample table that does not exist here (the next test makes its own)
        try:
            _rows(conn, e.sql, e.binds)
        except Exception as exc:  # collect them all: one run tells the DBA everything
            failures.append(f"{e.source}: {exc}".splitlines()[0])
    assert not failures, "\n".join(failures)


def test_the_comparison_hashes_long_rows_and_sees_a_change(conn: Any) -> None:
    d = OracleDialect()
    for statement in d.session_setup_sql(parallel_workers=2):
        _rows(conn, statement)
    if _rows(conn, "SELECT COUNT(*) FROM user_tables WHERE table_name = :t", {"t": SCRATCH})[0][0]:
        _rows(conn, f"DROP TABLE {SCRATCH} PURGE")
    _rows(conn, f"CREATE TABLE {SCRATCH} (id NUMBER(10) PRIMARY KEY, a VARCHAR2(4000), b VARCHAR2(4000), "
                "c CLOB, d TIMESTAMP WITH TIME ZONE, e NUMBER(12, 4))")
    try:
        _rows(conn, f"INSERT INTO {SCRATCH} SELECT level, RPAD('x', 2500, 'y'), RPAD('z', 2500, 'w'), "
                    "TO_CLOB(RPAD('c', 4000, 'c')) || RPAD('d', 4000, 'd'), SYSTIMESTAMP, level / 3 "
                    "FROM dual CONNECT BY level <= 100")
        conn.commit()
        user = _user(conn)
        cols = [HashColumn(n, k) for n, k in (("ID", ColumnKind.INTEGER), ("A", ColumnKind.TEXT),
                                              ("B", ColumnKind.TEXT), ("C", ColumnKind.LARGE_TEXT),
                                              ("D", ColumnKind.TIMESTAMPTZ), ("E", ColumnKind.NUMERIC))]
        for mode in HashMode:
            h = d.row_hash_expr(cols, mode)
            sql, binds = d.range_hashes_sql(user, SCRATCH, key_column="ID", row_hash=h, lo=1, width=10)
            before = _rows(conn, sql, binds)
            assert len(before) == 10 and sum(r[1] for r in before) == 100
            _rows(conn, f"UPDATE {SCRATCH} SET b = RPAD('z', 2500, 'v') WHERE id = 42")
            after = _rows(conn, sql, binds)
            conn.rollback()
            changed = [b[0] for b, a in zip(sorted(before), sorted(after), strict=True) if b != a]
            assert changed == [4], (mode, changed)
    finally:
        _rows(conn, f"DROP TABLE {SCRATCH} PURGE")


def test_a_kill_of_a_session_already_gone_is_ora_00030(conn: Any) -> None:
    import oracledb

    inst = int(_rows(conn, "SELECT SYS_CONTEXT('USERENV', 'INSTANCE') FROM dual")[0][0])
    with pytest.raises(oracledb.DatabaseError) as caught:
        _rows(conn, OracleCutoverDialect().kill_session_sql(65000, 1, inst))
    assert OracleCutoverDialect().error_code(caught.value) == "ORA-00030"
    assert OracleCutoverDialect().ending_failure_tolerated(caught.value)


def test_the_migration_user_holds_the_derived_grants(conn: Any) -> None:
    from bascule.engines.oracle_grants import oracle_privileges
    from bascule.plan import load_plan

    # Not BASCULE_PLAN: the test session sets it to the lab's plan.
    plan = load_plan(live.plan_file())
    if plan.source.engine.value != "oracle":
        pytest.skip(f"{live.PLAN} is not an Oracle plan")
    user = _user(conn)
    names = Names(schemas=tuple(s.upper() for s in plan.scope.schemas), app_role=plan.source.app_role.upper(),
                  heartbeat_owner=plan.replication.goldengate.heartbeat_owner if plan.replication.goldengate else None)
    held_sys = {r[0] for r in _rows(conn, "SELECT privilege FROM session_privs")}
    held_obj = {(str(r[0]), str(r[1]), str(r[2])) for r in _rows(
        conn, "SELECT owner, table_name, privilege FROM user_tab_privs WHERE grantee = USER UNION "
              "SELECT owner, table_name, privilege FROM role_tab_privs")}
    missing = []
    for p in oracle_privileges(names, user):
        if m := re.fullmatch(rf"GRANT ([A-Z ]+) TO {user}", p.grant):
            if m[1] not in held_sys and m[1] != "SYSBACKUP":
                missing.append(p.grant)
        elif m := re.fullmatch(rf"GRANT (\w+) ON (\w+)\.(\w+\$?\w*) TO {user}", p.grant):
            if (m[2], m[3], m[1]) not in held_obj:
                missing.append(p.grant)
    assert not missing, "run these as a DBA (bascule plan grants):\n" + "\n".join(missing)
