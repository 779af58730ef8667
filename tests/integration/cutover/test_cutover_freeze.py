"""The freeze, proven by trying to write as the application role in every way we know."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from cutover_lab_helpers import catalog_snapshot  # type: ignore[import-not-found]

from bascule.cutover import freeze as freezing
from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.pgbouncer import LabPgBouncer

pytestmark = pytest.mark.integration

OBS = "INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) VALUES (1, 'T', 1, 'u', now())"


def _as_app(lab: Any) -> psycopg.Connection:
    """A session that is the application role without logging in as it (the superuser SETs ROLE):
    it proves the revocation on its own, independently of NOLOGIN and the terminations."""
    conn = lab.connect("legacy", "clinic")
    conn.execute("SET ROLE clinic_app")
    return conn


WRITES = {
    "insert": OBS,
    "update": "UPDATE clinic.observations SET unit = unit WHERE observation_id = 1",
    "delete": "DELETE FROM clinic.observations WHERE observation_id = -1",
    "truncate": "TRUNCATE clinic.observations",
    "nextval": "SELECT nextval('clinic.observations_observation_id_seq')",
    "insert_into_partition": "INSERT INTO clinic.audit_log_y2026m11 (logged_at, staff_id, action, object_type) "
                             "VALUES ('2026-11-15', 1, 'view', 'x')",
}


def test_freeze_refuses_every_write_and_unfreeze_restores(cutover_lab: Any, source_db: Any,
                                                          endpoint: Any) -> None:
    lab = cutover_lab
    before = catalog_snapshot(lab, "legacy")
    # Opened before the freeze: an idle-in-transaction session holding an uncommitted write.
    idle = psycopg.connect(lab.dsn("legacy", "clinic_app"))
    (idle_key,) = idle.execute(OBS + " RETURNING observation_id").fetchone()
    through_endpoint = psycopg.connect(LabPgBouncer(lab).app_dsn(), autocommit=True, prepare_threshold=None)
    through_endpoint.execute("SELECT 1")

    result = freezing.freeze(source_db, role="clinic_app", schemas=["clinic"], endpoint=endpoint)
    assert result.endpoint_paused_now and endpoint.is_paused()
    assert result.state.terminated_sessions >= 1 and not result.state.already_frozen
    assert result.state.position and result.state.frozen_at.tzinfo is not None

    # 1. the idle-in-transaction session was ended: its write never commits.
    with pytest.raises(psycopg.OperationalError):
        idle.commit()
    with lab.connect("legacy", "clinic") as su:
        assert su.execute("SELECT count(*) FROM clinic.observations WHERE observation_id = %s",
                          (idle_key,)).fetchone() == (0,)
        # The frozen position covers everything committed: nothing of the app's after it.
        assert su.execute("SELECT pg_current_wal_lsn() >= %s::pg_lsn", (result.state.position,)).fetchone()[0]
    # 2. a new login is refused.
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(lab.dsn("legacy", "clinic_app"), connect_timeout=5)
    # 3. even a session that *is* the role can write nothing, in any way.
    with _as_app(lab) as app:
        for statement in WRITES.values():
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app.cursor() as cur, cur.copy(
                "COPY clinic.observations (encounter_id, code, value_num, unit, observed_at) FROM STDIN") as copy:
            copy.write_row((1, "T", 1, "u", "2026-11-01"))
        # read_only is no lock: setting it back changes nothing.
        app.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(OBS)
        assert app.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] > 0  # reads still work
    # 4. the endpoint is paused: PgBouncer holds the app's queries.
    assert endpoint.state().as_dict() == {"side": "source", "paused": True}
    through_endpoint.close()

    after_unfreeze = freezing.unfreeze(source_db, role="clinic_app", endpoint=endpoint)
    assert after_unfreeze.was_frozen and len(after_unfreeze.restored) == len(result.state.revoked) > 0
    assert not endpoint.is_paused()
    restored = catalog_snapshot(lab, "legacy")
    assert restored["grants"] == before["grants"] and restored["login"] == before["login"]
    with psycopg.connect(lab.dsn("legacy", "clinic_app"), autocommit=True) as app:
        app.execute(OBS)
    with psycopg.connect(LabPgBouncer(lab).app_dsn(), autocommit=True, prepare_threshold=None) as app:
        assert app.execute(OBS + " RETURNING observation_id").fetchone()[0] > 0


def test_freeze_and_unfreeze_twice_leave_the_same_state(cutover_lab: Any, source_db: Any,
                                                        endpoint: Any) -> None:
    lab = cutover_lab
    before = catalog_snapshot(lab, "legacy")
    first = freezing.freeze(source_db, role="clinic_app", schemas=["clinic"], endpoint=endpoint)
    snap1 = catalog_snapshot(lab, "legacy")
    second = freezing.freeze(source_db, role="clinic_app", schemas=["clinic"], endpoint=endpoint)
    snap2 = catalog_snapshot(lab, "legacy")
    assert snap1 == snap2
    assert second.state.already_frozen and not second.endpoint_paused_now
    # The downtime clock starts once: a retry returns the first freeze's time and position.
    assert (second.state.frozen_at, second.state.position) == (first.state.frozen_at, first.state.position)
    assert {p for _, p, _ in snap1["grants"]} == {"SELECT"} and snap1["login"] == (False, 0)

    freezing.unfreeze(source_db, role="clinic_app", endpoint=endpoint)
    snap3 = catalog_snapshot(lab, "legacy")
    again = freezing.unfreeze(source_db, role="clinic_app", endpoint=endpoint)
    assert not again.was_frozen and catalog_snapshot(lab, "legacy") == snap3
    assert (snap3["grants"], snap3["login"], snap3["sequences"]) == (
        before["grants"], before["login"], before["sequences"])
    assert len(snap3["freeze_state"]) == 1 and snap3["freeze_state"][0][-1] is not None  # released, kept


def test_grants_added_while_frozen_are_revoked_and_given_back(cutover_lab: Any, source_db: Any) -> None:
    lab = cutover_lab
    before = catalog_snapshot(lab, "legacy")
    source_db.freeze(role="clinic_app", schemas=["clinic"])
    with lab.connect("legacy", "clinic") as su:
        su.execute("GRANT UPDATE ON clinic.audit_log_y2026m10 TO clinic_app")  # a deploy "fixing" things
    source_db.freeze(role="clinic_app", schemas=["clinic"])
    assert {p for _, p, _ in catalog_snapshot(lab, "legacy")["grants"]} == {"SELECT"}
    source_db.unfreeze(role="clinic_app")
    grants = catalog_snapshot(lab, "legacy")["grants"]
    assert set(before["grants"]) < set(grants) and ("audit_log_y2026m10", "UPDATE", False) in grants


def test_restore_point_once(cutover_lab: Any, source_db: Any) -> None:
    first = freezing.restore_point(source_db, "bascule_cutover_test")
    second = freezing.restore_point(source_db, "bascule_cutover_test")
    assert first.created and not second.created and first.position == second.position
    with cutover_lab.connect("legacy", "clinic") as su:
        assert su.execute("SELECT %s::pg_lsn <= pg_current_wal_lsn()", (first.position,)).fetchone()[0]


def test_freeze_errors_are_clear_and_value_free(cutover_lab: Any, source_db: Any) -> None:
    from bascule.hooks.cutover import FreezeError

    with pytest.raises(FreezeError, match="'nobody_here' does not exist"):
        source_db.freeze(role="nobody_here", schemas=["clinic"])
    with pytest.raises(FreezeError, match="schemas is empty"):
        source_db.freeze(role="clinic_app", schemas=[])
    with pytest.raises(ValueError, match="plain identifier"):
        source_db.freeze(role="clinic_app; drop", schemas=["clinic"])
    for text in CANARY_STRINGS:
        assert text not in repr(source_db.active_freeze("clinic_app"))
