"""The cutover steps each dialect answers for the one freeze flow: text, and 'nothing to do' where so."""

from __future__ import annotations

import pytest

from bascule.engines.cutover_base import Grant
from bascule.engines.oracle_cutover import OracleCutoverDialect
from bascule.engines.postgres_cutover import PostgresCutoverDialect

pytestmark = pytest.mark.unit

ORA = OracleCutoverDialect()
PG = PostgresCutoverDialect()
G = [Grant("table", "clinic", "patients", "INSERT")]


def test_postgres_steps_are_the_statements_the_hook_used_to_write_inline() -> None:
    assert PG.cutover_session_sql() == ["SET lock_timeout = '10s'"]
    assert PG.freeze_lock_sql() == ["LOCK TABLE bascule_meta.freeze_state IN SHARE ROW EXCLUSIVE MODE"]
    assert PG.restore_point_lock_sql() == ["LOCK TABLE bascule_meta.restore_points IN SHARE ROW EXCLUSIVE MODE"]
    assert PG.restore_point_prepare_sql() == PG.ensure_meta_sql()
    sql, params = PG.update_freeze_grants_sql(7, G)
    assert sql == "UPDATE bascule_meta.freeze_state SET grants = %(g)s::jsonb WHERE freeze_id = %(id)s"
    assert params["id"] == 7 and '"privilege": "INSERT"' in params["g"]
    assert PG.before_revoke_sql(["svc"]) == [] and PG.after_restore_sql(["svc"]) == []
    assert PG.sequence_last_value_sql("clinic", "s") is None
    assert PG.mark_frozen_statements(7) == [PG.mark_frozen_sql(7)]
    assert len(PG.record_freeze_statements("clinic_app", G, can_login=True, conn_limit=-1)) == 1
    assert PG.end_sessions_sql("clinic_app", []) == []
    assert PG.end_sessions_sql("clinic_app", [(101,), (102,)]) == [PG.terminate_sessions_sql("clinic_app")]
    assert PG.sessions_sql("clinic_app")[0].startswith("SELECT pid FROM pg_stat_activity")
    assert PG.foreign_keys_sql(["clinic"]) is not None
    with pytest.raises(ValueError, match="connection limit"):
        PG.restore_role_sql("clinic_app", can_login=True)


def test_oracle_steps() -> None:
    assert ORA.cutover_session_sql() == [] and ORA.freeze_lock_sql() == [] and ORA.restore_point_lock_sql() == []
    assert ORA.restore_point_name("bascule_rp") == "BASCULE_RP"
    assert ORA.restore_point_made_sql("bascule_rp", []) == ORA.restore_point_lookup_sql("bascule_rp")
    sql, binds = ORA.role_attributes_sql("clinic_app")
    assert sql == ("SELECT CASE WHEN account_status LIKE '%LOCKED%' THEN 0 ELSE 1 END, NULL FROM dba_users "
                   "WHERE username = :role") and binds == {"role": "CLINIC_APP"}
    record, read_back = ORA.record_freeze_statements("clinic_app", G, can_login=True, services=["a", "b"])
    assert record[0].lstrip().startswith("INSERT INTO BASCULE_META.FREEZE_STATE") and record[1]["services"] == "a,b"
    assert read_back == ORA.active_freeze_sql("clinic_app")
    assert ORA.update_freeze_grants_sql(7, G)[0] == (
        "UPDATE BASCULE_META.FREEZE_STATE SET grants = :grants WHERE freeze_id = :freeze_id")
    assert ORA.before_revoke_sql(["clinic_svc"]) == [ORA.enable_restricted_session_sql(),
                                                      ORA.stop_service_sql("clinic_svc")]
    assert ORA.after_restore_sql(["clinic_svc"]) == [ORA.start_service_sql("clinic_svc"),
                                                     ORA.disable_restricted_session_sql()]
    assert ORA.end_sessions_sql("clinic_app", [(12, 345, 1)]) == [
        "ALTER SYSTEM KILL SESSION '12,345,@1' IMMEDIATE"]
    mark, read = ORA.mark_frozen_statements(7)
    assert mark == ORA.mark_frozen_sql(7) and read == (
        "SELECT frozen_at, frozen_position FROM BASCULE_META.FREEZE_STATE WHERE freeze_id = :freeze_id",
        {"freeze_id": 7})
    sql, binds = ORA.remaining_write_rights_sql("clinic_app", ["clinic"])
    assert "p.grantee IN ('PUBLIC', :role)" in sql and "CONNECT BY PRIOR granted_role = grantee" in sql
    assert binds == {"role": "CLINIC_APP", "owner0": "CLINIC"}
    assert ORA.sequence_last_value_sql("clinic", "patients_seq") == (
        "SELECT last_number FROM dba_sequences WHERE sequence_owner = :owner AND sequence_name = :name",
        {"owner": "CLINIC", "name": "PATIENTS_SEQ"})
    # GoldenGate applies with foreign keys enforced: no orphans to count.
    assert ORA.foreign_keys_sql(["clinic"]) is None
    assert ORA.restore_role_sql("clinic_app", can_login=False, conn_limit=None) == 'ALTER USER "CLINIC_APP" ACCOUNT LOCK'


def test_freeze_records_read_back_alike() -> None:
    pg = PG.freeze_record((7, '[{"kind": "table", "schema": "clinic", "name": "p", "privilege": "INSERT", '
                              '"grantable": false}]', True, -1, None, None))
    assert (pg.freeze_id, pg.conn_limit, pg.services, pg.position) == (7, -1, (), None)
    ora = ORA.freeze_record((7, "[]", 0, "a,b", None, 123))
    assert (ora.freeze_id, ora.can_login, ora.conn_limit, ora.services, ora.position) == (7, False, None,
                                                                                          ("a", "b"), "123")
