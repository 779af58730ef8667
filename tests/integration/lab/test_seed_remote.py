"""seed_remote against real PostgreSQL servers reached by DSN, as the compose lab profile does.

The lab's own clusters stand in for the two compose services; a separate database
name keeps the lab's ``clinic`` untouched, and the lab's own passwords are passed so
that the cluster-global roles end up exactly as they were.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import sql

from bascule_lab import seed as seeding
from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.clusters import ROLES, SOURCE, TARGET, default_release_migration
from bascule_lab.remote import RemoteSeedError, SideOutcome, seed_remote

pytestmark = pytest.mark.integration

PATIENTS = 200


def _superuser_dsn(lab, name: str) -> str:
    state = lab.state()
    return f"host={lab.socket_dir(name)} port={state.ports[name]} user=postgres dbname=postgres"


@pytest.fixture
def remote_db(lab):
    dbname = f"clinic_remote_{os.getpid()}"
    yield dbname
    for name in (SOURCE, TARGET):
        with lab.connect(name) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def test_seed_remote_builds_the_lab_then_is_idempotent(lab, remote_db):
    passwords = {role: lab.state().passwords[role] for role in ROLES}
    lines: list[str] = []
    src, tgt = _superuser_dsn(lab, SOURCE), _superuser_dsn(lab, TARGET)

    first = seed_remote(src, tgt, PATIENTS, default_release_migration(), passwords=passwords,
                        dbname=remote_db, progress=lines.append)
    assert (first.source, first.target) == (SideOutcome.SEEDED, SideOutcome.MIGRATED)

    expected = seeding.SeedSpec(patients=PATIENTS).expected_rows()
    with lab.connect(SOURCE, remote_db) as conn:
        counts = {t.name: t.rows for t in seeding.table_stats(conn)}
    assert counts == expected
    assert first.source_rows == sum(expected.values())

    with lab.connect(TARGET, remote_db) as conn:
        target_counts = {t.name: t.rows for t in seeding.table_stats(conn)}
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'clinic' AND table_name = 'patients'").fetchall()}
    assert set(target_counts) == set(expected)
    assert all(rows == 0 for rows in target_counts.values())
    assert "preferred_language" in columns  # release 2.0 applied on the target only

    # Roles keep working with the passwords given: the application role logs in over TCP, DML only.
    with psycopg.connect(lab.dsn(SOURCE, "clinic_app", dbname=remote_db), autocommit=True) as app:
        assert app.execute("SELECT count(*) FROM clinic.patients").fetchone() == (PATIENTS,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("CREATE TABLE clinic.nope (id int)")

    again = seed_remote(src, tgt, PATIENTS, default_release_migration(), passwords=passwords,
                        dbname=remote_db, progress=lines.append)
    assert (again.source, again.target) == (SideOutcome.ALREADY_SEEDED, SideOutcome.ALREADY_MIGRATED)
    with lab.connect(SOURCE, remote_db) as conn:
        assert conn.execute("SELECT count(*) FROM clinic.patients").fetchone() == (PATIENTS,)

    output = "\n".join(lines)
    assert "patients:" in output  # progress reports counts per table
    for canary in CANARY_STRINGS:
        assert canary not in output
    for secret in passwords.values():
        assert secret not in output


def test_seed_remote_rebuilds_a_half_built_source_and_refuses_foreign_rows(lab, remote_db):
    passwords = {role: lab.state().passwords[role] for role in ROLES}
    src, tgt = _superuser_dsn(lab, SOURCE), _superuser_dsn(lab, TARGET)
    with lab.connect(SOURCE) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER bascule_admin").format(sql.Identifier(remote_db)))
    with lab.connect(SOURCE, remote_db) as conn:
        # An interrupted earlier run: schema and tables there, no rows, no stamp.
        seeding.create_schema(conn)
    result = seed_remote(src, tgt, PATIENTS, None, passwords=passwords, dbname=remote_db)
    assert result.source == SideOutcome.SEEDED

    with lab.connect(SOURCE, remote_db) as conn:
        conn.execute("COMMENT ON SCHEMA clinic IS NULL")  # rows now look like someone else's
    with pytest.raises(RemoteSeedError, match="source: clinic.patients holds rows"):
        seed_remote(src, tgt, PATIENTS, None, passwords=passwords, dbname=remote_db)
    with lab.connect(SOURCE, remote_db) as conn:
        assert conn.execute("SELECT count(*) FROM clinic.patients").fetchone() == (PATIENTS,)


def test_seed_remote_error_names_the_side_without_the_password(lab, remote_db):
    passwords = {role: lab.state().passwords[role] for role in ROLES}
    port = lab.state().ports[SOURCE]
    bad = f"host=127.0.0.1 port={port} user=postgres password=not-the-password-xyz dbname=postgres"
    with pytest.raises(RemoteSeedError) as info:
        seed_remote(bad, _superuser_dsn(lab, TARGET), PATIENTS, None, passwords=passwords, dbname=remote_db)
    assert str(info.value).startswith(f"source 127.0.0.1:{port}/postgres: OperationalError")
    assert "not-the-password-xyz" not in str(info.value)
