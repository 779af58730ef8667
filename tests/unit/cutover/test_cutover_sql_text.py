"""Cutover SQL as text: Oracle's exact statements (no Oracle here) and PostgreSQL's DDL builders."""

from __future__ import annotations

import pytest

from bascule.engines import cutover_dialect_for
from bascule.engines.cutover_base import Grant, check_name, grants_from_json, grants_to_json
from bascule.engines.oracle_cutover import OracleCutoverDialect
from bascule.engines.postgres_cutover import PostgresCutoverDialect

pytestmark = pytest.mark.unit

ORA = OracleCutoverDialect()
PG = PostgresCutoverDialect()


def test_oracle_guaranteed_restore_point() -> None:
    assert ORA.create_restore_point_sql("bascule_cutover_1") == (
        "CREATE RESTORE POINT BASCULE_CUTOVER_1 GUARANTEE FLASHBACK DATABASE", {})
    sql, binds = ORA.restore_point_lookup_sql("bascule_cutover_1")
    assert sql == ("SELECT TO_CHAR(scn), time, guarantee_flashback_database FROM v$restore_point "
                   "WHERE name = :name")
    assert binds == {"name": "BASCULE_CUTOVER_1"}


def test_oracle_freeze_statements() -> None:
    assert ORA.enable_restricted_session_sql() == "ALTER SYSTEM ENABLE RESTRICTED SESSION"
    assert ORA.disable_restricted_session_sql() == "ALTER SYSTEM DISABLE RESTRICTED SESSION"
    assert ORA.stop_service_sql("clinic_app_svc") == (
        "BEGIN DBMS_SERVICE.STOP_SERVICE(service_name => :service, instance_name => NULL); END;",
        {"service": "clinic_app_svc"})
    assert ORA.start_service_sql("clinic_app_svc")[0] == (
        "BEGIN DBMS_SERVICE.START_SERVICE(service_name => :service, instance_name => NULL); END;")
    assert ORA.kill_session_sql(123, 4567, 2) == "ALTER SYSTEM KILL SESSION '123,4567,@2' IMMEDIATE"
    assert ORA.sessions_sql("clinic_app") == (
        "SELECT sid, serial#, inst_id FROM gv$session WHERE username = :role AND type = 'USER'",
        {"role": "CLINIC_APP"})
    assert ORA.lock_role_sql("clinic_app") == 'ALTER USER "CLINIC_APP" ACCOUNT LOCK'
    assert ORA.restore_role_sql("clinic_app", can_login=True) == 'ALTER USER "CLINIC_APP" ACCOUNT UNLOCK'
    g = Grant("table", "CLINIC", "PATIENTS", "INSERT", False)
    assert ORA.revoke_sql("clinic_app", g) == 'REVOKE INSERT ON "CLINIC"."PATIENTS" FROM "CLINIC_APP"'
    assert ORA.grant_sql("clinic_app", Grant("sequence", "CLINIC", "PAT_SEQ", "SELECT", True)) == (
        'GRANT SELECT ON "CLINIC"."PAT_SEQ" TO "CLINIC_APP" WITH GRANT OPTION')
    with pytest.raises(ValueError, match="TRUNCATE"):
        ORA.revoke_sql("clinic_app", Grant("table", "CLINIC", "PATIENTS", "TRUNCATE"))


def test_oracle_write_grants_and_state_queries() -> None:
    sql, binds = ORA.write_grants_sql("clinic_app", ["clinic", "audit"])
    assert "FROM dba_tab_privs p" in sql and "p.owner IN (:owner0, :owner1)" in sql
    assert binds == {"role": "CLINIC_APP", "owner0": "CLINIC", "owner1": "AUDIT"}
    (create,) = ORA.ensure_meta_sql()
    assert "CREATE TABLE BASCULE_META.FREEZE_STATE" in create and "IF n = 0 THEN EXECUTE IMMEDIATE" in create and "EXCEPTION" not in create
    sql, binds = ORA.mark_frozen_sql(7)
    assert "frozen_position = NVL(frozen_position, (SELECT TO_CHAR(current_scn) FROM v$database))" in sql
    assert binds == {"freeze_id": 7}


def test_oracle_fixups() -> None:
    assert ORA.advance_sequence_sql("clinic", "patients_seq", 12000) == (
        'ALTER SEQUENCE "CLINIC"."PATIENTS_SEQ" RESTART START WITH 12000', {})
    sql, binds = ORA.sequence_values_sql(["clinic"])
    assert "SELECT sequence_owner, sequence_name, last_number, increment_by FROM dba_sequences" in sql
    assert binds == {"owner0": "CLINIC"}
    sql, _ = ORA.invalid_constraints_sql(["clinic"])
    assert "status = 'DISABLED' OR validated = 'NOT VALIDATED'" in sql
    sql, _ = ORA.disabled_triggers_sql(["clinic"])
    assert "FROM dba_triggers" in sql and "status = 'DISABLED'" in sql
    assert ORA.validate_constraint_sql("clinic", "encounters", "enc_pat_fk") == (
        'ALTER TABLE "CLINIC"."ENCOUNTERS" MODIFY CONSTRAINT "ENC_PAT_FK" ENABLE VALIDATE')


def test_postgres_ddl_builders() -> None:
    g = Grant("table", "clinic", "patients", "INSERT")
    assert PG.revoke_sql("clinic_app", g) == 'REVOKE INSERT ON TABLE "clinic"."patients" FROM "clinic_app"'
    assert PG.grant_sql("clinic_app", Grant("sequence", "clinic", "s", "USAGE", True)) == (
        'GRANT USAGE ON SEQUENCE "clinic"."s" TO "clinic_app" WITH GRANT OPTION')
    assert PG.lock_role_sql("clinic_app") == 'ALTER ROLE "clinic_app" NOLOGIN CONNECTION LIMIT 0'
    assert PG.restore_role_sql("clinic_app", can_login=True, conn_limit=-1) == (
        'ALTER ROLE "clinic_app" LOGIN CONNECTION LIMIT -1')
    assert PG.create_restore_point_sql("bascule_rp") == (
        "SELECT pg_create_restore_point(%(name)s)::text", {"name": "bascule_rp"})
    assert PG.validate_constraint_sql("clinic", "encounters", "fk") == (
        'ALTER TABLE "clinic"."encounters" VALIDATE CONSTRAINT "fk"')
    with pytest.raises(ValueError, match="SELECT"):
        PG.revoke_sql("clinic_app", Grant("table", "clinic", "patients", "SELECT"))


@pytest.mark.parametrize("bad", ["clinic_app; DROP ROLE x", 'a"b', "", "x" * 64, "1abc"])
def test_names_are_checked_not_quoted_around(bad: str) -> None:
    with pytest.raises(ValueError, match="plain identifier"):
        check_name(bad, field="application role")
    with pytest.raises(ValueError):
        PG.lock_role_sql(bad)
    with pytest.raises(ValueError):
        ORA.create_restore_point_sql(bad)


def test_grants_round_trip_sorted() -> None:
    grants = [Grant("table", "clinic", "b", "UPDATE"), Grant("sequence", "clinic", "a", "USAGE", True)]
    assert grants_from_json(grants_to_json(grants)) == sorted(grants)


def test_dialect_lookup() -> None:
    assert cutover_dialect_for("oracle").name == "oracle"
    with pytest.raises(ValueError, match="engine must be one of"):
        cutover_dialect_for("mysql")
