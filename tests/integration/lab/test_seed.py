"""The synthetic hospital dataset, seeded into a scratch PostgreSQL 15 cluster of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from bascule_lab import seed
from bascule_lab.canary import CANARY_PATIENTS, CANARY_STRINGS

pytestmark = pytest.mark.integration

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RELEASE_2_0 = Path(__file__).resolve().parents[3] / "include" / "plans" / "lab" / "release_2_0.sql"
PATIENTS = 2_000
PASSWORDS = {"clinic_app": "app-secret-1", "bascule_repl": "repl-secret-2", "bascule_admin": "admin-secret-3"}
TABLES = ("hospitals", "staff", "patients", "encounters", "prescriptions", "observations", "clinical_notes",
          "audit_log")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "bascule", "--", *cmd]
    return cmd


class Cluster:
    def __init__(self, socket_dir: str, port: int) -> None:
        self.socket_dir = socket_dir
        self.port = port

    def connect(self, dbname: str = "postgres", user: str = "postgres", **kw: object) -> psycopg.Connection:
        return psycopg.connect(host=self.socket_dir, port=self.port, user=user, dbname=dbname,
                               autocommit=True, **kw)

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    root = tempfile.mkdtemp(prefix="bascule-seedtest-", dir="/var/tmp")
    if os.geteuid() == 0:
        shutil.chown(root, "bascule", "bascule")
    data = f"{root}/data"
    port = _free_port()
    subprocess.run(_as_postgres_user([str(PG_BIN / "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust",
                                      "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"]),
                   check=True, capture_output=True)
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
               " -c wal_level=logical -c max_wal_size=4GB -c TimeZone=UTC -c fsync=off"
               # DDL is logged so the password test below has something to look at.
               " -c log_statement=ddl")
    subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", data, "-l", f"{root}/server.log", "-w",
                                      "-o", options, "start"]), check=True, capture_output=True)
    try:
        yield Cluster(root, port)
    finally:
        subprocess.run(_as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _seed(cluster: Cluster, dbname: str, spec: seed.SeedSpec) -> seed.SeedResult:
    cluster.create_database(dbname)
    with cluster.connect(dbname) as conn:
        seed.ensure_roles(conn, PASSWORDS)
        seed.create_schema(conn)
        return seed.seed_data(conn, spec)


@pytest.fixture(scope="module")
def seeded(cluster: Cluster) -> seed.SeedResult:
    return _seed(cluster, "seed_a", seed.SeedSpec(patients=PATIENTS, seed=42))


@pytest.fixture()
def db(cluster: Cluster, seeded: seed.SeedResult) -> Iterator[psycopg.Connection]:
    with cluster.connect("seed_a") as conn:
        yield conn


def _table_hashes(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: conn.execute(
            sql.SQL("SELECT coalesce(sum(hashtextextended(t::text, 0)), 0) FROM clinic.{} AS t").format(
                sql.Identifier(table)
            )
        ).fetchone()[0]  # type: ignore[index]
        for table in TABLES
    }


def test_row_counts_follow_the_spec(seeded: seed.SeedResult) -> None:
    spec = seed.SeedSpec(patients=PATIENTS)
    rows = {t.name: t.rows for t in seeded.tables}
    assert rows == spec.expected_rows()
    assert rows["hospitals"] == 38
    assert rows["encounters"] == 2 * PATIENTS and rows["observations"] == 3 * PATIENTS
    assert seeded.rows == sum(rows.values())
    assert all(t.total_bytes > 0 for t in seeded.tables)


def test_canaries_present_exactly_once(db: psycopg.Connection) -> None:
    for canary in CANARY_PATIENTS:
        found = db.execute(
            "SELECT family_name, given_name, nin, birth_date, sex, address_line, postcode, phone"
            " FROM clinic.patients WHERE mrn = %s",
            (canary["mrn"],),
        ).fetchall()
        assert found == [tuple(canary[k] for k in ("family_name", "given_name", "nin", "birth_date", "sex",
                                                  "address_line", "postcode", "phone"))]
        (encounters,) = db.execute(
            "SELECT count(*) FROM clinic.encounters e JOIN clinic.patients p USING (patient_id) WHERE p.mrn = %s",
            (canary["mrn"],),
        ).fetchone()  # type: ignore[misc]
        assert encounters >= 1
    # Each distinctive string sits in exactly one patient row and nowhere in the notes.
    for value in CANARY_STRINGS:
        (hits,) = db.execute(
            "SELECT count(*) FROM clinic.patients AS p WHERE strpos(p::text, %s) > 0", (value,)
        ).fetchone()  # type: ignore[misc]
        assert hits == 1, value
        (in_notes,) = db.execute(
            "SELECT count(*) FROM clinic.clinical_notes WHERE strpos(note_text, %s) > 0", (value,)
        ).fetchone()  # type: ignore[misc]
        assert in_notes == 0, value


def test_no_orphans_and_all_constraints_valid(db: psycopg.Connection) -> None:
    (not_valid,) = db.execute(
        "SELECT count(*) FROM pg_constraint WHERE connamespace = 'clinic'::regnamespace AND NOT convalidated"
    ).fetchone()  # type: ignore[misc]
    assert not_valid == 0
    (fks,) = db.execute(
        "SELECT count(*) FROM pg_constraint WHERE connamespace = 'clinic'::regnamespace AND contype = 'f'"
    ).fetchone()  # type: ignore[misc]
    assert fks >= 10
    # audit_log has no foreign keys by design; its references must still resolve.
    (orphans,) = db.execute(
        "SELECT count(*) FROM clinic.audit_log a WHERE NOT EXISTS"
        " (SELECT FROM clinic.patients p WHERE p.patient_id = a.patient_id)"
        " OR NOT EXISTS (SELECT FROM clinic.staff s WHERE s.staff_id = a.staff_id)"
    ).fetchone()  # type: ignore[misc]
    assert orphans == 0
    (mismatched,) = db.execute(
        "SELECT count(*) FROM clinic.prescriptions r JOIN clinic.encounters e USING (encounter_id)"
        " WHERE r.patient_id <> e.patient_id"
    ).fetchone()  # type: ignore[misc]
    assert mismatched == 0


def test_sequences_are_past_the_seeded_ids(db: psycopg.Connection) -> None:
    (patient_id,) = db.execute(
        "INSERT INTO clinic.patients (mrn, nin, family_name, given_name, birth_date, sex, address_line,"
        " postcode, home_hospital_id, created_at, updated_at)"
        " VALUES ('MRNTEST', 'AA000000A', 'Test', 'Seq', '2000-01-01', 'U', '1 Test Road', 'LS1 1AA', 1,"
        " now(), now()) RETURNING patient_id"
    ).fetchone()  # type: ignore[misc]
    try:
        assert patient_id == PATIENTS + 1
    finally:
        db.execute("DELETE FROM clinic.patients WHERE patient_id = %s", (patient_id,))


def test_shape_of_the_data(db: psycopg.Connection) -> None:
    (sexes,) = db.execute("SELECT array_agg(DISTINCT sex ORDER BY sex) FROM clinic.patients").fetchone()  # type: ignore[misc]
    assert sexes == ["F", "M", "U", "X"]
    (open_encounters,) = db.execute(
        "SELECT count(*) FROM clinic.encounters WHERE discharged_at IS NULL"
    ).fetchone()  # type: ignore[misc]
    assert 0 < open_encounters < PATIENTS
    (long_notes,) = db.execute(
        "SELECT count(*) FROM clinic.clinical_notes WHERE octet_length(note_text) > 8192"
    ).fetchone()  # type: ignore[misc]
    assert long_notes > 0
    (toast,) = db.execute(
        "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = 'clinic.clinical_notes'::regclass"
    ).fetchone()  # type: ignore[misc]
    assert toast > 0
    (partitions,) = db.execute(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'clinic.audit_log'::regclass"
    ).fetchone()  # type: ignore[misc]
    assert partitions >= 38
    for name in seed.PLANTED_WASTE["archive_partitions"]:
        (rows,) = db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(name))).fetchone()  # type: ignore[misc]
        assert rows > 0, name
    for key, names in seed.PLANTED_WASTE.items():
        for name in names:
            assert db.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,), (key, name)
    owners = db.execute(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'clinic'::regnamespace"
        " UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'clinic'"
    ).fetchall()
    assert owners == [("bascule_admin",)]


def test_same_seed_same_data_other_seed_different(cluster: Cluster, db: psycopg.Connection) -> None:
    _seed(cluster, "seed_b", seed.SeedSpec(patients=PATIENTS, seed=42))
    _seed(cluster, "seed_c", seed.SeedSpec(patients=PATIENTS, seed=7))
    first = _table_hashes(db)
    with cluster.connect("seed_b") as same, cluster.connect("seed_c") as other:
        assert _table_hashes(same) == first
        differing = {t for t, h in _table_hashes(other).items() if h != first[t]}
    assert {"patients", "encounters", "clinical_notes", "audit_log"} <= differing


def _schema_objects(conn: psycopg.Connection) -> set[tuple[str, str]]:
    indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'clinic'").fetchall()
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) || convalidated::text FROM pg_constraint"
        " WHERE connamespace = 'clinic'::regnamespace"
    ).fetchall()
    return {(str(n), str(d)) for n, d in indexes + constraints}


def test_one_session_inside_a_transaction_writes_the_same_lab(cluster: Cluster, db: psycopg.Connection) -> None:
    # Other sessions cannot see a schema created in an open transaction, so the
    # seed falls back to running every task on the caller's connection.
    cluster.create_database("seed_serial")
    with cluster.connect("seed_serial") as conn:
        with conn.transaction():
            seed.create_schema(conn)
            result = seed.seed_data(conn, seed.SeedSpec(patients=PATIENTS, seed=42))
        assert {t.name: t.rows for t in result.tables} == seed.SeedSpec(patients=PATIENTS).expected_rows()
        assert _table_hashes(conn) == _table_hashes(db)
        assert _schema_objects(conn) == _schema_objects(db)
        (analysed,) = conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'clinic' AND last_analyze IS NOT NULL"
        ).fetchone()  # type: ignore[misc]
        assert analysed >= len(TABLES)


def test_clinic_app_is_least_privilege(cluster: Cluster, seeded: seed.SeedResult) -> None:
    with cluster.connect("seed_a", user="clinic_app") as app:
        app.execute(
            "INSERT INTO clinic.observations (encounter_id, code, value_num, unit, observed_at)"
            " VALUES (1, '8867-4', 72, '/min', now())"
        )
        app.execute(
            "INSERT INTO clinic.audit_log (logged_at, staff_id, patient_id, action, object_type)"
            " VALUES (now(), 1, 1, 'view', 'patient')"
        )
        for statement in (
            "CREATE TABLE clinic.sneaky (id int)",
            "CREATE TABLE public.sneaky (id int)",
            "TRUNCATE clinic.observations",
            "DELETE FROM clinic.audit_log",
            "UPDATE clinic.audit_log SET action = 'view'",
            f"DELETE FROM {seed.PLANTED_WASTE['archive_partitions'][0]}",
            "DROP TABLE clinic.staff",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
    with cluster.connect("seed_a", user="bascule_repl") as repl:
        assert repl.execute("SELECT count(*) FROM clinic.patients").fetchone() == (PATIENTS,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            repl.execute("DELETE FROM clinic.staff")


def test_ensure_roles_is_idempotent_and_sets_attributes(cluster: Cluster, seeded: seed.SeedResult) -> None:
    with cluster.connect() as conn:
        seed.ensure_roles(conn, PASSWORDS)
        roles = dict(
            (r[0], r[1:])
            for r in conn.execute(
                "SELECT rolname, rolcanlogin, rolreplication, rolsuper, rolcreaterole, rolcreatedb,"
                " rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = ANY(%s)",
                (list(seed.ROLES),),
            ).fetchall()
        )
        assert roles == {
            "clinic_app": (True, False, False, False, False, True),
            "bascule_repl": (True, True, False, False, False, True),
            "bascule_admin": (True, False, False, False, False, True),
        }
        (memberships,) = conn.execute(
            "SELECT array_agg(b.rolname ORDER BY b.rolname) FROM pg_auth_members m"
            " JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
            " WHERE u.rolname = 'bascule_admin'"
        ).fetchone()  # type: ignore[misc]
        assert memberships == ["pg_monitor", "pg_signal_backend"]
        with pytest.raises(ValueError):
            seed.ensure_roles(conn, {"clinic_app": "x"})


def test_release_migration_applies_on_schema_only_db(cluster: Cluster, seeded: seed.SeedResult) -> None:
    cluster.create_database("target")
    with cluster.connect("target") as conn:
        seed.create_schema(conn)
        seed.apply_release_migration(conn, RELEASE_2_0)
        # Rerunnable, as a migration retried after a failure must be.
        seed.apply_release_migration(conn, RELEASE_2_0)
        columns = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, format_type(a.atttypid, a.atttypmod)"
                " FROM information_schema.columns c JOIN pg_attribute a"
                " ON a.attrelid = ('clinic.' || c.table_name)::regclass AND a.attname = c.column_name"
                " WHERE c.table_schema = 'clinic' AND c.table_name IN ('patients', 'encounters')"
            ).fetchall()
        )
        assert columns["patients.preferred_language"] == "text"
        assert columns["patients.phone"] == "character varying(32)"
        assert columns["encounters.triage_score"] == "smallint"
        assert conn.execute("SELECT to_regclass('clinic.encounters_open_triage_idx')").fetchone() != (None,)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO clinic.encounters (patient_id, hospital_id, attending_staff_id, encounter_type,"
                " ward, admitted_at, triage_score) VALUES (1, 1, 1, 'emergency', 'ED', now(), 9)"
            )
    # Every source column still exists on the target, so logical replication can apply.
    with cluster.connect("seed_a") as source, cluster.connect("target") as target:
        query = ("SELECT table_name, column_name FROM information_schema.columns"
                 " WHERE table_schema = 'clinic'")
        assert set(source.execute(query).fetchall()) <= set(target.execute(query).fetchall())


def test_passwords_never_reach_the_server_log(cluster: Cluster, seeded: seed.SeedResult) -> None:
    log = Path(cluster.socket_dir, "server.log").read_text(encoding="utf-8", errors="replace")
    for password in PASSWORDS.values():
        assert password not in log
