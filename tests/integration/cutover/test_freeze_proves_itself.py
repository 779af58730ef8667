"""The freeze proves itself (ADR 0038): every way around it ends in a refused write or a failed freeze.

A member role of the application with a session holding a write, a session that SET ROLE to the
application, column grants, default privileges, a prepared transaction, an unlisted superuser, a
SECURITY DEFINER function; the target closed to the application until it is opened, and closed
again after; two connections to one database. One lab reset for the module: each test gives back
what it froze and drops what it made.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from cutover_lab_helpers import LAB_ALLOWED_WRITERS, lab_endpoint, restore_lab_endpoint_and_roles  # type: ignore[import-not-found]

pytestmark = pytest.mark.integration

OBS = ("INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) "
       "VALUES ((SELECT min(encounter_id) FROM clinic.encounters), 'T', 1, 'u', now()) RETURNING observation_id")
# Checked for privileges like any insert, and writes no row: usable on the schema-only target.
NO_ROW = ("INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at) "
          "SELECT 1, 'T', 1, 'u', now() WHERE false")
EXTRA_ROLES = ("bascule_t_member", "bascule_t_setrole", "bascule_t_report")


@pytest.fixture(scope="module")
def proving_lab(lab: Any) -> Iterator[Any]:
    lab.reset()
    restore_lab_endpoint_and_roles(lab)
    passwords = {role: secrets.token_urlsafe(16) for role in EXTRA_ROLES}
    with lab.connect("legacy") as su:
        for role, password in passwords.items():
            su.execute(f"DROP ROLE IF EXISTS {role}")
            su.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        # A login that inherits the application's rights, and one that must SET ROLE to use them.
        su.execute("GRANT clinic_app TO bascule_t_member")
        su.execute("ALTER ROLE bascule_t_setrole NOINHERIT")
        su.execute("GRANT clinic_app TO bascule_t_setrole")
    with lab.connect("legacy", "clinic") as su:
        su.execute("GRANT USAGE ON SCHEMA clinic TO bascule_t_report")
        su.execute("GRANT SELECT ON ALL TABLES IN SCHEMA clinic TO bascule_t_report")
    lab.extra_passwords = passwords
    yield lab
    restore_lab_endpoint_and_roles(lab)
    with lab.connect("legacy", "clinic") as su:
        for role in EXTRA_ROLES:
            su.execute(f"DROP OWNED BY {role}")
    with lab.connect("legacy") as su:
        for role in EXTRA_ROLES:
            su.execute(f"DROP ROLE IF EXISTS {role}")


def _hook(conn_id: str, allowed: tuple[str, ...] = LAB_ALLOWED_WRITERS) -> Any:
    from bascule.hooks.cutover import CutoverDatabaseHook

    return CutoverDatabaseHook(db_conn_id=conn_id, engine="postgres", allowed_writers=allowed, session_wait_s=5)


@pytest.fixture()
def source_db(proving_lab: Any) -> Iterator[Any]:
    db = _hook("bascule_legacy")
    yield db
    db.unfreeze(role="clinic_app")  # the night's rollback: a failed test leaves nothing frozen
    restore_lab_endpoint_and_roles(proving_lab)


def _connect(lab: Any, role: str, cluster: str = "legacy", **kwargs: Any) -> psycopg.Connection:
    password = lab.extra_passwords.get(role) or lab.state().passwords[role]
    port = lab.state().ports[cluster]
    return psycopg.connect(f"host=127.0.0.1 port={port} dbname=clinic user={role} password={password}",
                           connect_timeout=5, **kwargs)


def _observation_exists(lab: Any, key: int) -> bool:
    with lab.connect("legacy", "clinic") as su:
        return su.execute("SELECT count(*) FROM clinic.observations WHERE observation_id = %s",
                          (key,)).fetchone() == (1,)


def _acl(lab: Any, cluster: str = "legacy") -> dict[str, Any]:
    """Column grants and default privileges: what the freeze now takes and gives back."""
    with lab.connect(cluster, "clinic") as su:
        columns = su.execute(
            """SELECT c.relname, att.attname, a.grantee::regrole::text, a.privilege_type, a.is_grantable
                 FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL aclexplode(att.attacl) a
                WHERE n.nspname = 'clinic' ORDER BY 1, 2, 3, 4""").fetchall()
        defaults = su.execute("SELECT defaclrole::regrole::text, defaclobjtype, defaclacl::text FROM pg_default_acl "
                              "ORDER BY 1, 2").fetchall()
        members = su.execute("SELECT roleid::regrole::text, member::regrole::text, admin_option "
                             "FROM pg_auth_members ORDER BY 1, 2").fetchall()
    return {"columns": columns, "defaults": defaults, "members": members}


def test_a_member_of_the_application_role_loses_its_open_write(proving_lab: Any, source_db: Any) -> None:
    member = _connect(proving_lab, "bascule_t_member")
    (key,) = member.execute(OBS).fetchone()  # inherited from clinic_app, not committed

    state = source_db.freeze(role="clinic_app", schemas=["clinic"])

    assert state.terminated_sessions >= 1
    with pytest.raises(psycopg.OperationalError):
        member.commit()
    assert not _observation_exists(proving_lab, key), "a write the member never saw committed"
    # The member still logs in (it is not the application's role) but cannot write any more.
    with _connect(proving_lab, "bascule_t_member", autocommit=True) as again:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            again.execute(OBS)


def test_a_session_that_set_role_to_the_application_is_ended(proving_lab: Any, source_db: Any) -> None:
    other = _connect(proving_lab, "bascule_t_setrole")
    other.execute("SET ROLE clinic_app")
    (key,) = other.execute(OBS).fetchone()

    source_db.freeze(role="clinic_app", schemas=["clinic"])

    with pytest.raises(psycopg.OperationalError):
        other.commit()
    assert not _observation_exists(proving_lab, key)
    with _connect(proving_lab, "bascule_t_setrole", autocommit=True) as again:
        again.execute("SET ROLE clinic_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            again.execute(OBS)


def test_column_grants_and_default_privileges_are_taken_and_given_back(proving_lab: Any, source_db: Any) -> None:
    with proving_lab.connect("legacy", "clinic") as su:
        su.execute("GRANT UPDATE (unit) ON clinic.observations TO bascule_t_report")
        su.execute("GRANT UPDATE (unit) ON clinic.observations TO clinic_app")  # a table-level REVOKE drops it
    try:
        before = _acl(proving_lab)
        assert ("observations", "unit", "bascule_t_report", "UPDATE", False) in before["columns"]

        state = source_db.freeze(role="clinic_app", schemas=["clinic"])

        kinds = state.as_dict()["revoked_by_kind"]
        assert kinds["column"] == 2 and kinds["default_table"] == 1 and kinds["default_sequence"] == 1, kinds
        assert state.other_writers == ("bascule_t_report",)
        frozen = _acl(proving_lab)
        assert not [c for c in frozen["columns"] if c[3] == "UPDATE"], frozen["columns"]
        # Default privileges keep their SELECT; no future table or sequence would be writable by the app.
        assert not [d for d in frozen["defaults"] if re.search(r"clinic_app=[^/]*[awdDU]", d[2])], frozen["defaults"]
        with _connect(proving_lab, "bascule_t_report", autocommit=True) as report:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                report.execute("UPDATE clinic.observations SET unit = unit WHERE observation_id = 1")

        source_db.unfreeze(role="clinic_app")
        assert _acl(proving_lab) == before, "unfreeze gives back exactly what the freeze took"
    finally:
        with proving_lab.connect("legacy", "clinic") as su:
            su.execute("REVOKE UPDATE (unit) ON clinic.observations FROM bascule_t_report, clinic_app")


def test_a_prepared_transaction_fails_the_freeze_and_its_write_is_not_lost(proving_lab: Any,
                                                                            source_db: Any) -> None:
    from bascule.hooks.cutover import FreezeError

    gid = f"bascule_test_{secrets.token_hex(4)}"
    with _connect(proving_lab, "clinic_app") as app:
        (key,) = app.execute(OBS).fetchone()
        app.execute(f"PREPARE TRANSACTION '{gid}'")
    try:
        with pytest.raises(FreezeError, match=r"prepared transactions 1 \(clinic_app\)"):
            source_db.freeze(role="clinic_app", schemas=["clinic"])
        # The freeze took no position: the night rolls back (unfreeze) and replication goes on, so the
        # write committed later by its coordinator reaches the target like any other.
        active = source_db.active_freeze("clinic_app")
        assert active is not None
        source_db.unfreeze(role="clinic_app")
    finally:
        with proving_lab.connect("legacy", "clinic") as su:
            su.execute(f"COMMIT PREPARED '{gid}'")
    assert _observation_exists(proving_lab, key)


def test_what_the_freeze_cannot_take_fails_it(proving_lab: Any, source_db: Any) -> None:
    from bascule.hooks.cutover import FreezeError

    # A superuser the plan does not list can write whatever the freeze revokes.
    no_postgres = _hook("bascule_legacy", allowed=("bascule_admin", "bascule_repl"))
    with pytest.raises(FreezeError, match=r"writer postgres \(superuser\)"):
        no_postgres.freeze(role="clinic_app", schemas=["clinic"])
    no_postgres.unfreeze(role="clinic_app")

    # A SECURITY DEFINER function of a writer, executable by anyone (functions are PUBLIC's by default).
    with proving_lab.connect("legacy", "clinic") as su:
        su.execute("SET ROLE bascule_admin")
        su.execute("""CREATE FUNCTION clinic.bascule_t_note(text) RETURNS void LANGUAGE sql SECURITY DEFINER
                      AS $$ UPDATE clinic.observations SET unit = $1 WHERE false $$""")
    try:
        with pytest.raises(FreezeError, match=r"security definer clinic\.bascule_t_note\(text\) "
                                              r"\(owned by bascule_admin\)"):
            source_db.freeze(role="clinic_app", schemas=["clinic"])
    finally:
        with proving_lab.connect("legacy", "clinic") as su:
            su.execute("DROP FUNCTION clinic.bascule_t_note(text)")


def test_the_target_refuses_the_application_until_opened_and_again_once_closed(proving_lab: Any) -> None:
    from bascule.cutover.freeze import close_writes, prove_reopened, unfreeze

    target = _hook("bascule_new")
    endpoint = lab_endpoint()
    try:
        closed = close_writes(target, role="clinic_app", schemas=["clinic"])
        assert not closed.login_locked and closed.revoked
        with _connect(proving_lab, "clinic_app", "new", autocommit=True) as app:
            app.execute("SELECT count(*) FROM clinic.patients")  # reads go on (smoke reads, checks)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(NO_ROW)

        # GO LIVE: the rights come back and a probe write through the endpoint proves it.
        endpoint.point_to("target")
        opened = unfreeze(target, role="clinic_app", endpoint=endpoint)
        assert opened.was_frozen and set(opened.restored) == set(closed.revoked)
        proof = prove_reopened(_hook("bascule_endpoint_app"), run_id="t1", side="target", role="clinic_app",
                               through="the endpoint")
        assert proof.probed_through == "bascule_endpoint_app" and proof.at.tzinfo is not None
        with _connect(proving_lab, "clinic_app", "new", autocommit=True) as app:
            app.execute(NO_ROW)
        with proving_lab.connect("new", "clinic") as su:
            assert su.execute("SELECT run_id, side, written_by FROM bascule_meta.write_probe").fetchall() == [
                ("t1", "target", "clinic_app")]

        # A rollback closes it again: refused as before GO LIVE.
        endpoint.point_to("source")
        again = close_writes(target, role="clinic_app", schemas=["clinic"])
        assert not again.already_frozen
        with _connect(proving_lab, "clinic_app", "new", autocommit=True) as app:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(NO_ROW)
    finally:
        target.unfreeze(role="clinic_app")
        restore_lab_endpoint_and_roles(proving_lab)


def test_smoke_writes_on_a_closed_side_run_with_rights_lent_and_rolled_back(proving_lab: Any,
                                                                             source_db: Any) -> None:
    from bascule.cutover.smoke import smoke_through
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    checks = load_plan(LAB_PLAN).cutover.smoke
    source_db.close_writes(role="clinic_app", schemas=["clinic"])  # the source stands in for a closed target
    closed = _acl(proving_lab)
    refused = smoke_through("bascule_endpoint_app", database="clinic_smoke", checks=checks, engine="postgres")
    assert refused.read_ok and refused.write_error == "InsufficientPrivilege"
    with source_db.lent_rights("clinic_app") as lent:
        result = smoke_through("bascule_endpoint_app", database="clinic_smoke", checks=checks, engine="postgres",
                               lent=lent)
    assert result.ok and result.write_path == "lent" and result.observation_id is not None, result.as_dict()
    assert _acl(proving_lab) == closed
    with _connect(proving_lab, "clinic_app", autocommit=True) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(OBS)  # nothing was left lent
    assert not _observation_exists(proving_lab, result.observation_id), "the smoke write was rolled back"


def test_two_connections_to_one_database_are_refused(proving_lab: Any) -> None:
    from bascule.cutover.identity import SameDatabaseError, check_two_databases

    identities = check_two_databases(_hook("bascule_legacy"), _hook("bascule_new"))
    assert identities["source"]["system"] != identities["target"]["system"], "two clusters, two identifiers"
    with pytest.raises(SameDatabaseError, match=r"source \(bascule_legacy\) and target \(bascule_legacy_app\) "
                                                r"are the same database"):
        check_two_databases(_hook("bascule_legacy"), _hook("bascule_legacy_app"))
