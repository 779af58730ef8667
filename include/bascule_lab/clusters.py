"""The built-in lab: three real PostgreSQL 15 clusters on free loopback ports.

- ``legacy`` is the source (old production), seeded with the synthetic hospital.
- ``new`` is the target: schema only (source DDL + the plan's release migration).
  Rows reach it only through the initial load and replication; otherwise a
  validation would pass with no migration at all.
- ``control`` holds Airflow's metadata once scheduler, triggerer and api-server
  run together (SQLite is fragile under the three).

Both ``legacy`` and ``new`` run with ``wal_level=logical``: after go-live the
target publishes reverse replication back to the source.

Seeded databases are kept as templates (``clinic_template``) so that a reset is
a file copy taking seconds, not a re-seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bascule.paths import REPO_ROOT
from bascule_lab.common import (
    APP_DB,
    CLUSTERS,
    CONTROL,
    LAB_USER,
    ROLES,
    SOURCE,
    TARGET,
    Echo,
    LabError,
    LabState,
    chown_to_lab_user,
    free_port,
    live_pid,
    port_in_use,
    run_as_lab_user,
    wait_gone,
    write_private,
)
from bascule_lab.pgbouncer import LabPgBouncer

TEMPLATE_DB = "clinic_template"
AIRFLOW_DB = "airflow"
# The archive of old partitions lives outside the target's cluster (the lab plan's storage.archive_conn_id):
# on the control cluster, in a database of its own, owned by a role of its own.
ARCHIVE_DB = "clinic_archive"
ARCHIVE_ROLE = "bascule_archive"
SQL_DIR = Path(__file__).with_name("sql")


def pg_bindir() -> Path:
    """PostgreSQL 15 server binaries, from BASCULE_PG_BIN, pg_config, or Debian's path."""
    if os.environ.get("BASCULE_PG_BIN"):
        return Path(os.environ["BASCULE_PG_BIN"])
    debian = Path("/usr/lib/postgresql/15/bin")
    if (debian / "initdb").exists():
        return debian
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    return debian


def _require_binaries() -> Path:
    bindir = pg_bindir()
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (bindir / b).exists()]
    if missing:
        raise LabError(
            f"PostgreSQL 15 server binaries not found in {bindir} (missing: {', '.join(missing)}). "
            "Install them with: sudo apt-get install -y postgresql-15  "
            "(or set BASCULE_PG_BIN to the directory holding initdb and pg_ctl)"
        )
    return bindir


@dataclasses.dataclass(frozen=True)
class ClusterStatus:
    name: str
    port: int
    running: bool
    pid: int | None
    data_dir: Path
    size_bytes: int
    databases: tuple[str, ...]


class Lab:
    """Bring the lab's clusters up and down, seed them, reset them from templates."""

    def __init__(self, root: Path, *, echo: Echo = print) -> None:
        self.root = root
        self.echo = echo
        self._as_root = os.geteuid() == 0

    # ------------------------------------------------------------------ paths
    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def connections_file(self) -> Path:
        return self.root / "connections.json"

    def data_dir(self, name: str) -> Path:
        return self.root / name / "data"

    def socket_dir(self, name: str) -> Path:
        return self.root / name / "run"

    def log_file(self, name: str) -> Path:
        return self.root / name / "postgres.log"

    # ------------------------------------------------------------------ state
    def state(self) -> LabState:
        if not self.state_file.exists():
            raise LabError(f"the lab at {self.root} has never been started: run `bascule lab up`")
        data = json.loads(self.state_file.read_text())
        state = LabState(**data)
        if "decision_key" not in data:
            # A lab made before gate decisions were signed: its key is made once and kept.
            self._save_state(state)
        return state

    def _save_state(self, state: LabState) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self.state_file, json.dumps(dataclasses.asdict(state), indent=2))

    # ------------------------------------------------------------ processes
    def _run(self, argv: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_as_lab_user(argv, check=check, timeout=timeout)

    def _ensure_lab_user(self) -> None:
        if not self._as_root:
            return
        if subprocess.run(["id", "-u", LAB_USER], capture_output=True, check=False).returncode != 0:
            self.echo(f"lab: creating unprivileged system user '{LAB_USER}' to run PostgreSQL (it refuses root)")
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", LAB_USER],
                check=True, capture_output=True,
            )

    def _chown(self, path: Path) -> None:
        chown_to_lab_user(path)

    def _pid(self, name: str) -> int | None:
        return live_pid(self.data_dir(name) / "postmaster.pid")

    def is_running(self, name: str) -> bool:
        return self._pid(name) is not None

    # ------------------------------------------------------------------- up
    def up(self) -> LabState:
        bindir = _require_binaries()
        self._ensure_lab_user()
        # 0700, owned by the account the clusters run as: no other local account can reach the sockets,
        # the data or the state file with the roles' passwords (root passes anyway).
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        self._chown(self.root)
        state = self.state() if self.state_file.exists() else LabState.new()
        state.passwords.setdefault(ARCHIVE_ROLE, secrets.token_urlsafe(18))  # labs made before the archive role
        for name in CLUSTERS:
            cluster_dir = self.root / name
            cluster_dir.mkdir(mode=0o700, exist_ok=True)
            self.socket_dir(name).mkdir(mode=0o700, exist_ok=True)
            cluster_dir.chmod(0o700)
            self.socket_dir(name).chmod(0o700)
            self._chown(cluster_dir)
            self._chown(self.socket_dir(name))
            if not (self.data_dir(name) / "PG_VERSION").exists():
                self._initdb(bindir, name)
            if not self.is_running(name):
                if port_in_use(state.ports[name]):
                    state.ports[name] = free_port()
                    self.echo(f"lab: port taken, {name} moves to {state.ports[name]}")
                self._write_conf(name, state.ports[name])
                self._start(bindir, name)
                self.echo(f"lab: {name:<8} up on 127.0.0.1:{state.ports[name]}")
            else:
                self.echo(f"lab: {name:<8} already running on 127.0.0.1:{state.ports[name]}")
        self._save_state(state)
        self._ensure_roles(state)
        self._pgbouncer().up()  # after the clusters: its auth file needs the roles' passwords
        self._write_connections(state)
        return state

    def _pgbouncer(self) -> LabPgBouncer:
        return LabPgBouncer(self)

    def _initdb(self, bindir: Path, name: str) -> None:
        self.echo(f"lab: initdb {name} in {self.data_dir(name)}")
        pwfile = self.root / name / ".pw"
        write_private(pwfile, secrets.token_urlsafe(24), lab_user=True)
        try:
            self._run([
                str(bindir / "initdb"), "-D", str(self.data_dir(name)), "-U", "postgres",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            ])
        finally:
            pwfile.unlink(missing_ok=True)
        self._write_hba(name)
        conf = self.data_dir(name) / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\ninclude_if_exists = 'bascule.conf'\n")

    def _write_hba(self, name: str) -> None:
        """Superuser only over the socket and only by peer: the OS account running the lab (root, the lab
        user, the developer), mapped to ``postgres``; any other local account is refused. Every other
        role connects over TCP with a scram password."""
        me = pwd.getpwuid(os.geteuid()).pw_name
        owners = sorted({me, "root", LAB_USER} if self._as_root else {me})
        write_private(self.data_dir(name) / "pg_ident.conf", "# bascule lab: who may be the superuser\n" + "".join(
            f"lab   {user:<12} postgres\n" for user in owners), lab_user=True)
        write_private(self.data_dir(name) / "pg_hba.conf", (
            "# bascule lab: superuser over the unix socket, by peer, for the lab's own accounts only;\n"
            "# every role over TCP with a password\n"
            "local   all          postgres                  peer map=lab\n"
            "local   all          all                       scram-sha-256\n"
            "host    all          all         127.0.0.1/32  scram-sha-256\n"
            "host    replication  all         127.0.0.1/32  scram-sha-256\n"), lab_user=True)

    def _write_conf(self, name: str, port: int) -> None:
        # Sized for two shared cores: three clusters, plus Airflow, on one small machine.
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.socket_dir(name)}'",
            "max_connections": "200" if name == CONTROL else "100",
            "shared_buffers": "256MB" if name != CONTROL else "64MB",
            "wal_level": "logical" if name != CONTROL else "replica",
            "max_wal_senders": "16",
            "max_replication_slots": "16",
            "max_worker_processes": "16",
            "max_logical_replication_workers": "8",
            "max_sync_workers_per_subscription": "2",
            "max_parallel_workers_per_gather": "2",
            # The freeze refuses to go on while a prepared transaction is open (ADR 0038): the lab can make
            # one, so that the tests prove it. Read at start only.
            "max_prepared_transactions": "0" if name == CONTROL else "10",
            "max_wal_size": "4GB",
            "checkpoint_timeout": "15min",
            "track_commit_timestamp": "on",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "datestyle": "'iso, ymd'",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "lc_messages": "'C.UTF-8'",
            "cluster_name": f"'bascule-{name}'",
        }
        write_private(self.data_dir(name) / "bascule.conf", "".join(f"{k} = {v}\n" for k, v in settings.items()),
                      lab_user=True)
        self._write_hba(name)  # labs made before peer authentication get it at their next start

    def _start(self, bindir: Path, name: str) -> None:
        log = self.log_file(name)
        log.touch(exist_ok=True)
        self._chown(log)
        proc = self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.data_dir(name)), "-l", str(log), "-w", "-t", "60", "start"],
            check=False,
        )
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-5:])
            raise LabError(f"cluster {name} did not start (see {log}):\n{tail}")

    # ---------------------------------------------------------------- down
    def down(self) -> None:
        bindir = pg_bindir()
        self._pgbouncer().down()  # before the clusters, so no client is cut mid-switch by a dead server
        for name in CLUSTERS:
            pid = self._pid(name)
            if pid is None:
                self.echo(f"lab: {name:<8} not running")
                continue
            proc = self._run(
                [str(bindir / "pg_ctl"), "-D", str(self.data_dir(name)), "-m", "fast", "-w", "-t", "30", "stop"],
                check=False,
            )
            if proc.returncode != 0 or self._pid(name) is not None:
                self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir(name)), "-m", "immediate", "stop"],
                          check=False)
            self._wait_gone(pid)
            self.echo(f"lab: {name:<8} stopped")

    def restart(self, name: str, *, mode: str = "fast") -> float:
        """Restart one cluster as an operator would (``pg_ctl restart -m fast``); the seconds it took.

        Used by the fault bench: every session of that cluster is ended, its port stays the same.
        """
        if name not in CLUSTERS:
            raise LabError(f"no cluster named {name!r} in the lab (one of {', '.join(CLUSTERS)})")
        if mode not in ("smart", "fast", "immediate"):
            raise LabError(f"shutdown mode must be smart, fast or immediate, not {mode!r}")
        started = time.monotonic()
        proc = self._run([str(pg_bindir() / "pg_ctl"), "-D", str(self.data_dir(name)), "-l", str(self.log_file(name)),
                          "-m", mode, "-w", "-t", "60", "restart"], check=False)
        if proc.returncode != 0:
            raise LabError(f"cluster {name} did not restart: {proc.stderr.strip()[-300:]}")
        seconds = time.monotonic() - started
        self.echo(f"lab: {name:<8} restarted ({mode} shutdown) in {seconds:.1f} s")
        return seconds

    @staticmethod
    def _wait_gone(pid: int, timeout: float = 15) -> None:
        wait_gone(pid, timeout)

    def destroy(self) -> None:
        """Stop the clusters and delete the lab's files: next `up` starts from nothing."""
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)

    # -------------------------------------------------------------- status
    def status(self) -> list[ClusterStatus]:
        state = self.state()
        pgb = self._pgbouncer().status()
        self.echo(f"pgbouncer 127.0.0.1:{pgb.port or '-':<6} "
                  f"{f'running (pid {pgb.pid})' if pgb.running else 'stopped':<20} -> {pgb.points_to or '-'}")
        out = []
        for name in CLUSTERS:
            pid = self._pid(name)
            dbs: tuple[str, ...] = ()
            if pid is not None:
                with self.connect(name) as conn:
                    dbs = tuple(r[0] for r in conn.execute(
                        "SELECT datname FROM pg_database WHERE NOT datname LIKE 'template_' ORDER BY 1"))
            size = sum(f.stat().st_size for f in self.data_dir(name).rglob("*") if f.is_file()) \
                if self.data_dir(name).exists() else 0
            out.append(ClusterStatus(name, state.ports[name], pid is not None, pid, self.data_dir(name), size, dbs))
        return out

    # --------------------------------------------------------- connections
    def connect(self, name: str, dbname: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection:
        """Superuser connection over the cluster's unix socket (for lab set-up only)."""
        state = self.state()
        return psycopg.connect(
            host=str(self.socket_dir(name)), port=state.ports[name], user="postgres", dbname=dbname,
            autocommit=autocommit, connect_timeout=10,
            options="-c TimeZone=UTC -c DateStyle=ISO,YMD",
        )

    def dsn(self, name: str, role: str, dbname: str = APP_DB) -> str:
        state = self.state()
        return (f"host=127.0.0.1 port={state.ports[name]} dbname={dbname} user={role} "
                f"password={state.passwords[role]}")

    def _ensure_roles(self, state: LabState) -> None:
        from bascule_lab import seed

        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                seed.ensure_roles(conn, {role: state.passwords[role] for role in ROLES})
                # PostgreSQL 15 only lets a superuser CREATE SUBSCRIPTION (16 adds
                # pg_create_subscription); both ends subscribe at some point (reverse replication).
                conn.execute("ALTER ROLE bascule_admin SUPERUSER")
        with self.connect(CONTROL) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'airflow_meta'").fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE airflow_meta LOGIN PASSWORD {}").format(
                sql.Literal(state.passwords["airflow_meta"])))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (AIRFLOW_DB,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER airflow_meta").format(sql.Identifier(AIRFLOW_DB)))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ARCHIVE_ROLE,)).fetchone()
            # A SCRAM verifier made on the client: the statement the server sees never holds the password.
            verifier = conn.pgconn.encrypt_password(state.passwords[ARCHIVE_ROLE].encode(), ARCHIVE_ROLE.encode(),
                                                    b"scram-sha-256").decode()
            conn.execute(sql.SQL(("ALTER" if exists else "CREATE") + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ARCHIVE_ROLE), sql.Literal(verifier)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (ARCHIVE_DB,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(ARCHIVE_DB),
                                                                            sql.Identifier(ARCHIVE_ROLE)))

    def airflow_metadata_url(self) -> str:
        state = self.state()
        return (f"postgresql+psycopg://airflow_meta:{state.passwords['airflow_meta']}"
                f"@127.0.0.1:{state.ports[CONTROL]}/{AIRFLOW_DB}")

    def _write_connections(self, state: LabState) -> None:
        def pg(cluster: str, role: str, description: str) -> dict[str, Any]:
            return {
                "conn_type": "postgres", "host": "127.0.0.1", "port": state.ports[cluster],
                "login": role, "password": state.passwords[role], "schema": APP_DB,
                "description": description,
            }

        conns: dict[str, Any] = {
            "bascule_legacy": pg(SOURCE, "bascule_admin", "lab source (legacy), migration admin"),
            "bascule_new": pg(TARGET, "bascule_admin", "lab target (new), migration admin"),
            "bascule_legacy_app": pg(SOURCE, "clinic_app", "lab source, as the hospital application"),
            "bascule_new_app": pg(TARGET, "clinic_app", "lab target, as the hospital application"),
            "bascule_legacy_repl": pg(SOURCE, "bascule_repl", "lab source, replication role"),
            "bascule_new_repl": pg(TARGET, "bascule_repl", "lab target, replication role (reverse)"),
            "bascule_archive": {**pg(CONTROL, ARCHIVE_ROLE, "lab archive of old partitions, outside the target's "
                                                            "cluster"), "schema": ARCHIVE_DB},
            **self._pgbouncer().connections(),
            "bascule_key_hmac": {
                "conn_type": "generic", "password": state.hmac_key,
                "description": "secret for keyed hashes of identifying keys",
            },
            "bascule_decision_key": {
                "conn_type": "generic", "password": state.decision_key,
                "description": "the workers' key that signs gate decisions",
            },
        }
        # The lab's rehearsal environment (the lab plan's `rehearsal:`) is the lab's own clusters under names of
        # their own, so that a rehearsal run is seen to use only those. A production plan may not do this.
        conns.update({
            name.replace("bascule_", "bascule_rehearsal_", 1): {
                **conns[name], "description": f"rehearsal environment (the lab's own): {conns[name]['description']}"}
            for name in ("bascule_legacy", "bascule_new", "bascule_legacy_app", "bascule_new_app",
                         "bascule_legacy_repl", "bascule_new_repl", "bascule_endpoint_admin", "bascule_endpoint_app")
        })
        write_private(self.connections_file, json.dumps(conns, indent=2))

    # ---------------------------------------------------------------- seed
    def _fingerprint(self, release_migration: Path | None) -> str:
        h = hashlib.sha256()
        for path in sorted(SQL_DIR.glob("*.sql")):
            h.update(path.read_bytes())
        if release_migration is not None:
            h.update(release_migration.read_bytes())
        return h.hexdigest()[:16]

    def seed(self, *, patients: int, seed: int = 42, release_migration: Path | None = None,
             force: bool = False) -> dict[str, Any]:
        """Build the seeded source template and the schema-only target template, then reset."""
        from bascule_lab import seed as seeding

        state = self.state()
        wanted = {"patients": patients, "seed": seed, "fingerprint": self._fingerprint(release_migration)}
        have = state.seed or {}
        if not force and all(have.get(k) == v for k, v in wanted.items()) and self._templates_exist():
            self.echo(f"lab: template already seeded with {patients} patients (seed {seed}); resetting from it")
            self.reset()
            return have
        started = time.monotonic()
        self._drop_app_databases()
        self._recreate_template(SOURCE)
        with self.connect(SOURCE, TEMPLATE_DB) as conn:
            seeding.create_schema(conn)
            result = seeding.seed_data(conn, seeding.SeedSpec(patients=patients, seed=seed),
                                       progress=lambda line: self.echo(f"seed: {line}"))
        self._recreate_template(TARGET)
        with self.connect(TARGET, TEMPLATE_DB) as conn:
            seeding.create_schema(conn)
            if release_migration is not None:
                seeding.apply_release_migration(conn, release_migration)
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(TEMPLATE_DB)))
        seconds = time.monotonic() - started
        state.seed = {**wanted, "rows": result.rows, "seconds": round(seconds, 2),
                      "tables": {t.name: t.rows for t in result.tables}}
        self._save_state(state)
        self.reset()
        return state.seed

    def _templates_exist(self) -> bool:
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone():
                    return False
        return True

    def _recreate_template(self, name: str) -> None:
        with self.connect(name) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DB,)).fetchone():
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(TEMPLATE_DB)))
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER bascule_admin").format(sql.Identifier(TEMPLATE_DB)))

    # --------------------------------------------------------------- reset
    def reset(self) -> None:
        """Put source and target back to the freshly seeded state, in seconds.

        Subscriptions are dropped first: their slots live on the other cluster and
        would otherwise hold WAL forever.
        """
        if not self._templates_exist():
            raise LabError("the lab has not been seeded yet: run `bascule lab seed`")
        started = time.monotonic()
        self._drop_app_databases()
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER bascule_admin STRATEGY FILE_COPY").format(
                    sql.Identifier(APP_DB), sql.Identifier(TEMPLATE_DB)))
        # A cutover also changes what outlives the databases: the application role's
        # login (cluster-wide) and the endpoint's side and pause.
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                conn.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
        self._pgbouncer().reset()
        self.echo(f"lab: source and target reset from templates in {time.monotonic() - started:.1f} s")

    def _drop_app_databases(self) -> None:
        # Order matters: subscriptions, then slots (a database with a slot cannot
        # be dropped), then the databases.
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DB,)).fetchone():
                    continue
                with self.connect(name, APP_DB) as db:
                    for (sub,) in db.execute("SELECT subname FROM pg_subscription").fetchall():
                        ident = sql.Identifier(sub)
                        try:
                            db.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
                        except psycopg.Error:
                            # The publisher is unreachable or its slot is gone: detach, then drop.
                            db.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
                            db.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
                            db.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))
        for name in (SOURCE, TARGET):
            with self.connect(name) as conn:
                self._drop_slots(conn)
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DB,)).fetchone():
                    conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(APP_DB)))

    @staticmethod
    def _drop_slots(conn: psycopg.Connection, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            slots = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (APP_DB,)
            ).fetchall()
            if not slots:
                return
            for slot, active_pid in slots:
                if active_pid is not None:
                    conn.execute("SELECT pg_terminate_backend(%s)", (active_pid,))
                    continue
                with contextlib.suppress(psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            if time.monotonic() > deadline:
                raise LabError(f"replication slots still active after {timeout:.0f} s: {[s for s, _ in slots]}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_lab(root: Path, *, echo: Echo = print) -> Iterator[Lab]:
    lab = Lab(root, echo=echo)
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


def default_release_migration() -> Path:
    return REPO_ROOT / "include" / "plans" / "lab" / "release_2_0.sql"
