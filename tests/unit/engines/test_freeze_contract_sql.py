"""The freeze's new contract as SQL text (ADR 0038), both engines: what it takes, how it proves itself,
whose sessions it ends, where the downtime starts, the probe, lent rights and the database's identity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bascule.engines.cutover_base import Grant, grants_from_json, grants_to_json
from bascule.engines.oracle_cutover import OracleCutoverDialect
from bascule.engines.postgres_cutover import PostgresCutoverDialect

pytestmark = pytest.mark.unit

PG = PostgresCutoverDialect()
ORA = OracleCutoverDialect()
ALLOWED = ["bascule_admin", "bascule_repl"]
STARTED = datetime(2026, 11, 1, 22, 0, 0, 123456, tzinfo=UTC)


def _flat(sql: str) -> str:
    return " ".join(sql.split())


# ----------------------------------------------------------------------------- the record


def test_a_grant_records_column_and_grantee_only_when_set() -> None:
    table = Grant("table", "clinic", "patients", "INSERT")
    column = Grant("column", "clinic", "observations", "UPDATE", column="unit", grantee="bascule_t_report")
    assert table.as_dict() == {"kind": "table", "schema": "clinic", "name": "patients", "privilege": "INSERT",
                               "grantable": False}
    assert column.as_dict()["column"] == "unit" and column.holder("clinic_app") == "bascule_t_report"
    assert table.holder("clinic_app") == "clinic_app"
    assert grants_from_json(grants_to_json([column, table])) == sorted([column, table])
    # A record written before the two fields existed reads back the same; Oracle's NULLs read as ''.
    assert grants_from_json('[{"kind": "table", "schema": "clinic", "name": "patients", "privilege": "INSERT", '
                            '"grantable": false, "column": null}]') == [table]


# ----------------------------------------------------------------------------- PostgreSQL


def test_postgres_takes_every_writers_rights_but_the_allowed_ones() -> None:
    sql, binds = PG.write_grants_sql("clinic_app", ["clinic"], ALLOWED)
    flat = _flat(sql)
    assert binds["allowed"] == ALLOWED and binds["schemas"] == ["clinic"] and binds["role"] == "clinic_app"
    assert binds["column_privs"] == ["INSERT", "UPDATE"]
    for part in ("aclexplode(rel.relacl)", "aclexplode(att.attacl)", "FROM pg_default_acl d",
                 "FROM pg_auth_members m", "rolname = ANY(%(allowed)s) OR rolname = current_user",
                 "a.grantee <> rel.relowner", "a.grantee <> d.defaclrole",
                 "WHERE t.grantee = 0 OR (NOT r.rolsuper AND t.grantee NOT IN (SELECT oid FROM allowed))",
                 "g.rolsuper OR g.rolname = 'pg_write_all_data' OR g.oid IN (SELECT relowner FROM rel)",
                 "CASE WHEN t.grantee = 0 THEN 'PUBLIC' WHEN r.rolname = %(role)s THEN ''"):
        assert part in flat, part
    assert "has_table_privilege" not in flat and "pg_prepared_xacts" not in flat


def test_postgres_revokes_and_gives_back_each_kind() -> None:
    cases = [
        (Grant("column", "clinic", "observations", "UPDATE", column="unit"),
         'REVOKE UPDATE ("unit") ON TABLE "clinic"."observations" FROM "clinic_app"',
         'GRANT UPDATE ("unit") ON TABLE "clinic"."observations" TO "clinic_app"'),
        (Grant("table", "clinic", "patients", "DELETE", True, grantee="bascule_t_batch"),
         'REVOKE DELETE ON TABLE "clinic"."patients" FROM "bascule_t_batch"',
         'GRANT DELETE ON TABLE "clinic"."patients" TO "bascule_t_batch" WITH GRANT OPTION'),
        (Grant("table", "clinic", "patients", "INSERT", grantee="PUBLIC"),
         'REVOKE INSERT ON TABLE "clinic"."patients" FROM PUBLIC',
         'GRANT INSERT ON TABLE "clinic"."patients" TO PUBLIC'),
        (Grant("membership", "", "clinic_owner", "MEMBER", True),
         'REVOKE "clinic_owner" FROM "clinic_app"', 'GRANT "clinic_owner" TO "clinic_app" WITH ADMIN OPTION'),
        (Grant("default_table", "clinic", "bascule_admin", "INSERT"),
         'ALTER DEFAULT PRIVILEGES FOR ROLE "bascule_admin" IN SCHEMA "clinic" REVOKE INSERT ON TABLES '
         'FROM "clinic_app"',
         'ALTER DEFAULT PRIVILEGES FOR ROLE "bascule_admin" IN SCHEMA "clinic" GRANT INSERT ON TABLES '
         'TO "clinic_app"'),
        (Grant("default_sequence", "", "bascule_admin", "USAGE", grantee="bascule_t_batch"),
         'ALTER DEFAULT PRIVILEGES FOR ROLE "bascule_admin" REVOKE USAGE ON SEQUENCES FROM "bascule_t_batch"',
         'ALTER DEFAULT PRIVILEGES FOR ROLE "bascule_admin" GRANT USAGE ON SEQUENCES TO "bascule_t_batch"'),
    ]
    for grant, revoke, give_back in cases:
        assert PG.revoke_sql("clinic_app", grant) == revoke
        assert PG.grant_sql("clinic_app", grant) == give_back
    with pytest.raises(ValueError, match="not a write right"):
        PG.revoke_sql("clinic_app", Grant("column", "clinic", "observations", "SELECT", column="unit"))
    # A grantee is a catalog name (a site's roles may be called john.doe): quoted, never spliced.
    assert PG.revoke_sql("clinic_app", Grant("table", "clinic", "patients", "INSERT", grantee='john.doe"; DROP')) == (
        'REVOKE INSERT ON TABLE "clinic"."patients" FROM "john.doe""; DROP"')
    with pytest.raises(ValueError, match="not a catalog name"):
        PG.revoke_sql("clinic_app", Grant("table", "clinic", "patients", "INSERT", grantee="a\x00b"))
    with pytest.raises(ValueError, match="plain identifier"):
        PG.revoke_sql("x; DROP", Grant("table", "clinic", "patients", "INSERT"))  # the plan's role: checked


def test_postgres_proof_looks_at_every_way_to_write_in_one_statement() -> None:
    sql, binds = PG.freeze_findings_sql("clinic_app", ["clinic"], ALLOWED)
    flat = _flat(sql)
    assert binds["allowed"] == ALLOWED
    for part in (
        "SELECT oid AS holder, 'superuser' AS way FROM pg_roles WHERE rolsuper",
        "UNION SELECT relowner, 'owner' FROM rel",
        "aclexplode(att.attacl)",  # column grants
        "'member of pg_write_all_data'",
        # members that inherit and members that may SET ROLE alike; PUBLIC's grantee 0 kept away from it
        "CASE WHEN h.holder = 0 THEN true ELSE pg_has_role(r.oid, h.holder, 'MEMBER') END",
        "WHERE (r.rolcanlogin OR r.rolname = %(role)s) AND r.oid NOT IN (SELECT oid FROM allowed)",
        "'security definer', p.oid::regprocedure::text", "WHERE p.prosecdef",
        "aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))",
        "'default privileges'",
        "'prepared transactions', count(*)::text", "FROM pg_prepared_xacts WHERE database = current_database()",
    ):
        assert part in flat, part


def test_postgres_ends_the_sessions_of_every_member_of_a_writer() -> None:
    sql, binds = PG.sessions_sql("clinic_app", ["clinic_app", "bascule_t_report"], ALLOWED)
    flat = _flat(sql)
    assert flat.startswith("SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
    assert "pg_has_role(usesysid, w.oid, 'MEMBER')" in flat and "NOT usename = ANY(%(allowed)s)" in flat
    assert "usename <> session_user" in flat
    assert binds["writers"] == ["bascule_t_report", "clinic_app"] and binds["everyone"] is False
    (terminate,) = PG.end_sessions_sql("clinic_app", [(101,)], ["bascule_t_report"], ALLOWED, everyone=True)
    assert "pg_terminate_backend(pid, 5000)" in terminate[0] and terminate[1]["everyone"] is True
    assert _flat(terminate[0]).endswith(flat.split(" WHERE ", 1)[1]), "the same sessions as listed"
    # Without writers: the role's own sessions, as before.
    assert PG.sessions_sql("clinic_app") == (
        "SELECT pid FROM pg_stat_activity WHERE usename = %(role)s AND pid <> pg_backend_pid()",
        {"role": "clinic_app"})


def test_postgres_downtime_starts_with_the_record_on_the_workers_clock() -> None:
    sql, binds = PG.record_freeze_sql("clinic_app", [], can_login=True, conn_limit=-1, started=STARTED)
    assert "frozen_at) VALUES (%(role)s, %(grants)s::jsonb, %(can_login)s, %(conn_limit)s, " \
           "%(started)s::timestamptz)" in _flat(sql)
    assert binds["started"] == STARTED
    sql, binds = PG.mark_frozen_sql(7, STARTED)
    assert "frozen_at = coalesce(frozen_at, %(started)s::timestamptz, clock_timestamp())" in _flat(sql)
    assert binds == {"freeze_id": 7, "started": STARTED}


def test_postgres_probe_lent_rights_and_identity() -> None:
    create, usage, insert = PG.probe_prepare_sql("clinic_app")
    assert "CREATE TABLE IF NOT EXISTS bascule_meta.write_probe" in create
    assert usage == 'GRANT USAGE ON SCHEMA bascule_meta TO "clinic_app"'
    assert insert == 'GRANT INSERT ON bascule_meta.write_probe TO "clinic_app"'
    assert PG.probe_write_sql("run_1", "target") == (
        "INSERT INTO bascule_meta.write_probe (run_id, side) VALUES (%(run_id)s, %(side)s)",
        {"run_id": "run_1", "side": "target"})
    lent = PG.lend_rights_sql("clinic_app", [
        Grant("table", "clinic", "patients", "INSERT"), Grant("column", "clinic", "p", "UPDATE", column="c"),
        Grant("table", "clinic", "patients", "DELETE", grantee="bascule_t_batch"),  # another role's: not lent
        Grant("default_table", "clinic", "bascule_admin", "INSERT"),  # future tables: not lent
    ])
    assert lent == ['GRANT UPDATE ("c") ON TABLE "clinic"."p" TO "clinic_app"',
                    'GRANT INSERT ON TABLE "clinic"."patients" TO "clinic_app"', 'SET LOCAL ROLE "clinic_app"']
    sql, binds = PG.database_identity_sql()
    assert "SELECT system_identifier FROM pg_control_system()" in sql
    assert "SELECT oid FROM pg_database WHERE datname = current_database()" in sql and binds == {}


# ----------------------------------------------------------------------------- Oracle (text only)


def test_oracle_takes_object_and_column_rights_of_every_grantee_but_the_allowed() -> None:
    sql, binds = ORA.write_grants_sql("clinic_app", ["clinic"], ["ggadmin"])
    flat = _flat(sql)
    assert binds == {"role": "CLINIC_APP", "owner0": "CLINIC", "allowed0": "GGADMIN"}
    assert "FROM dba_tab_privs p" in flat and "FROM dba_col_privs c" in flat
    assert "p.grantee <> p.owner AND p.grantee NOT IN (:allowed0)" in flat
    assert "CASE WHEN p.grantee = :role THEN NULL ELSE p.grantee END" in flat
    # Oracle revokes a column right only with the table's; it gives each back as recorded.
    col = Grant("column", "CLINIC", "OBSERVATIONS", "UPDATE", column="UNIT", grantee="REPORTS")
    assert ORA.revoke_sql("clinic_app", col) == 'REVOKE UPDATE ON "CLINIC"."OBSERVATIONS" FROM "REPORTS"'
    assert ORA.grant_sql("clinic_app", col) == 'GRANT UPDATE ("UNIT") ON "CLINIC"."OBSERVATIONS" TO "REPORTS"'
    assert ORA.revoke_sql("clinic_app", Grant("table", "CLINIC", "P", "INSERT", grantee="PUBLIC")) == (
        'REVOKE INSERT ON "CLINIC"."P" FROM PUBLIC')


def test_oracle_proof_checks_the_same_things() -> None:
    sql, binds = ORA.freeze_findings_sql("clinic_app", ["clinic"], ["ggadmin", "bascule_admin"])
    flat = _flat(sql)
    assert binds == {"owner0": "CLINIC", "allowed0": "GGADMIN", "allowed1": "BASCULE_ADMIN"}
    for part in ("FROM dba_sys_privs s WHERE s.privilege IN ('INSERT ANY TABLE', 'UPDATE ANY TABLE', "
                 "'DELETE ANY TABLE', 'DROP ANY TABLE')",
                 "CONNECT BY NOCYCLE PRIOR grantee = granted_role",  # roles of roles
                 "x.holder = 'PUBLIC'", "FROM dba_col_privs c",
                 "SELECT 'writer', u.username, 'owner' FROM dba_users u WHERE u.username IN (:owner0)",
                 "d.authid = 'DEFINER'", "'definer rights'",
                 "SELECT 'prepared transactions', TO_CHAR(COUNT(*)), NULL FROM dba_2pc_pending HAVING COUNT(*) > 0",
                 "u.username NOT IN (:allowed0, :allowed1)"):
        assert part in flat, part


def test_oracle_sessions_record_probe_and_identity() -> None:
    sql, binds = ORA.sessions_sql("clinic_app", ["clinic_app", "reports"], ["ggadmin"])
    flat = _flat(sql)
    assert "username IN (:writer0, :writer1)" in flat and "START WITH granted_role IN (:writer0, :writer1)" in flat
    assert "AND username NOT IN (:allowed0)" in flat
    assert binds == {"writer0": "CLINIC_APP", "writer1": "REPORTS", "allowed0": "GGADMIN"}
    # The user alone: its own sessions, as before.
    assert ORA.sessions_sql("clinic_app", ["clinic_app"], ["ggadmin"])[0] == ORA.sessions_sql("clinic_app")[0]
    sql, binds = ORA.record_freeze_sql("clinic_app", [], can_login=True, started=STARTED)
    assert "TO_TIMESTAMP_TZ(:started, 'YYYY-MM-DD\"T\"HH24:MI:SS.FFTZH:TZM')" in sql
    assert binds["started"] == "2026-11-01T22:00:00.123456+00:00"
    assert "COALESCE(frozen_at, TO_TIMESTAMP_TZ(:started" in ORA.mark_frozen_sql(7, STARTED)[0]
    create, grant = ORA.probe_prepare_sql("clinic_app")
    assert "CREATE TABLE BASCULE_META.WRITE_PROBE" in create and "IF n = 0 THEN EXECUTE IMMEDIATE" in create and "EXCEPTION" not in create
    assert grant == 'GRANT INSERT ON BASCULE_META.WRITE_PROBE TO "CLINIC_APP"'
    assert ORA.probe_write_sql("r", "target")[0] == (
        "INSERT INTO BASCULE_META.WRITE_PROBE (run_id, side) VALUES (:run_id, :side)")
    assert ORA.lend_rights_sql("clinic_app", [Grant("table", "CLINIC", "P", "INSERT")]) is None  # GRANT commits
    sql, _ = ORA.database_identity_sql()
    flat = _flat(sql)
    assert "SELECT TO_CHAR(d.dbid)" in flat and "RAWTOHEX(c.guid) FROM v$containers c" in flat
    assert "SYS_CONTEXT('USERENV', 'CON_ID')" in flat
