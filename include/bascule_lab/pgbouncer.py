"""The lab's application endpoint: a real PgBouncer in front of ``legacy`` or ``new``.

The hospital application (and the clinic simulator) connect to PgBouncer, never
to a cluster, so a cutover is a switch a connected client follows: PAUSE, point
the ``clinic`` entry at the other cluster, RELOAD, RESUME.

Layout under ``<lab>/pgbouncer/``: ``pgbouncer.ini`` (never rewritten while
running), ``databases.ini`` (the ``[databases]`` section, ``%include``d, the only
file a switch rewrites), ``userlist.txt`` (auth file), ``state.json`` (port and
admin password, 0600), pid and log files.

Why ``pool_mode = transaction`` (ADR 0031): PAUSE waits until every server
connection is released. In session mode a server connection is held for a
client's whole session, so PAUSE would wait for every application client to
disconnect and no client could follow a switch. In transaction mode server
connections return to the pool between transactions: PAUSE completes as soon as
in-flight transactions end, and the same client sockets carry on against the
other cluster after RESUME. The price is the usual one: no session state across
transactions (SET, advisory locks, LISTEN, protocol-level prepared statements;
psycopg clients set ``prepare_threshold=None``).

Why the auth file holds plaintext passwords: PgBouncer can log in to a server
with a SCRAM secret only by pass-through, which needs the server's verifier to
be byte-identical (same salt). ``legacy`` and ``new`` salt theirs independently,
and one pooler must log in to both. The file is 0600 and owned by the lab's
user, like ``lab.json`` which already holds the same passwords.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import time
from pathlib import Path

from bascule.hooks.pgbouncer_config import DatabaseTarget, parse_databases, render_databases
from bascule_lab.common import (
    APP_DB,
    LAB_USER,
    SOURCE,
    TARGET,
    LabError,
    LabLike,
    chown_to_lab_user,
    free_port,
    live_pid,
    port_in_use,
    run_as_lab_user,
    wait_gone,
    write_private,
)

PGBOUNCER_BIN = Path(os.environ.get("BASCULE_PGBOUNCER_BIN", "/usr/sbin/pgbouncer"))
ADMIN_USER = "bascule_pgb_admin"
APP_ROLE = "clinic_app"
# A second entry that follows every switch but is never paused: smoke tests go
# "through the endpoint" while the application's own entry is still held.
SMOKE_DB = "clinic_smoke"
APP_DATABASES = (APP_DB, SMOKE_DB)


@dataclasses.dataclass
class PgBouncerState:
    port: int
    admin_password: str


@dataclasses.dataclass(frozen=True)
class PgBouncerStatus:
    running: bool
    pid: int | None
    port: int | None
    points_to: str | None  # cluster name ("legacy"/"new"), or None if unknown


class LabPgBouncer:
    """Start, stop and inspect the lab's PgBouncer; every operation is idempotent."""

    def __init__(self, lab: LabLike, *, query_wait_timeout_s: int = 30) -> None:
        self.lab = lab
        self.dir = lab.root / "pgbouncer"
        # How long a client's query waits in a PAUSEd pool before PgBouncer fails
        # it; bounded so that a frozen application gets an error, not a hang.
        self.query_wait_timeout_s = query_wait_timeout_s

    # ------------------------------------------------------------ paths
    @property
    def config_file(self) -> Path:
        return self.dir / "pgbouncer.ini"

    @property
    def databases_file(self) -> Path:
        return self.dir / "databases.ini"

    @property
    def auth_file(self) -> Path:
        return self.dir / "userlist.txt"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pgbouncer.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "pgbouncer.log"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    # ------------------------------------------------------------ state
    def state(self) -> PgBouncerState:
        if not self.state_file.exists():
            raise LabError(f"PgBouncer of the lab at {self.lab.root} has never been started: run `bascule lab up`")
        return PgBouncerState(**json.loads(self.state_file.read_text()))

    def _save_state(self, state: PgBouncerState) -> None:
        write_private(self.state_file, json.dumps(dataclasses.asdict(state)))

    def pid(self) -> int | None:
        return live_pid(self.pid_file)

    def is_running(self) -> bool:
        return self.pid() is not None

    def target(self, cluster: str) -> DatabaseTarget:
        return DatabaseTarget(host="127.0.0.1", port=self.lab.state().ports[cluster], dbname=APP_DB)

    def points_to(self) -> str | None:
        """The cluster the ``clinic`` entry of the databases file names (None if neither)."""
        if not self.databases_file.exists():
            return None
        value = parse_databases(self.databases_file.read_text()).get(APP_DB)
        if value is None:
            return None
        entry = DatabaseTarget.parse(APP_DB, value)
        for cluster in (SOURCE, TARGET):
            if entry == self.target(cluster):
                return cluster
        return None

    def reset(self) -> None:
        """Back to the seeded state: pointing at ``legacy``, not paused (a restart clears a PAUSE)."""
        self.down()
        self.databases_file.unlink(missing_ok=True)
        self.up()

    # --------------------------------------------------------------- up
    def up(self) -> int:
        """Start PgBouncer (pointing at ``legacy`` unless it already pointed at ``new``); return its port."""
        if not PGBOUNCER_BIN.exists():
            raise LabError(f"PgBouncer not found at {PGBOUNCER_BIN}: install it with "
                           "`sudo apt-get install -y pgbouncer` (or set BASCULE_PGBOUNCER_BIN)")
        self.dir.mkdir(parents=True, exist_ok=True)
        chown_to_lab_user(self.dir)
        state = self.state() if self.state_file.exists() else PgBouncerState(
            port=free_port(), admin_password=secrets.token_urlsafe(18))
        if self.is_running():
            self.lab.echo(f"lab: pgbouncer already running on 127.0.0.1:{state.port}")
            return state.port
        if port_in_use(state.port):
            state.port = free_port()
            self.lab.echo(f"lab: port taken, pgbouncer moves to {state.port}")
        self._save_state(state)
        # A restart keeps the side the endpoint was switched to; cluster ports may have moved.
        side = self.points_to() or SOURCE
        self._write_private(self.auth_file, self._auth_text(state))
        self._write_shared(self.databases_file,
                           render_databases({name: self.target(side) for name in APP_DATABASES}))
        self._write_shared(self.config_file, self._ini_text(state))
        self.pid_file.unlink(missing_ok=True)
        run_as_lab_user([str(PGBOUNCER_BIN), "-d", "-q", str(self.config_file)])
        deadline = time.monotonic() + 15
        while not port_in_use(state.port):
            if time.monotonic() > deadline:
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-5:]) \
                    if self.log_file.exists() else ""
                raise LabError(f"pgbouncer did not start listening on {state.port} (see {self.log_file}):\n{tail}")
            time.sleep(0.05)
        self.lab.echo(f"lab: pgbouncer up on 127.0.0.1:{state.port} -> {side}")
        return state.port

    def _auth_text(self, state: PgBouncerState) -> str:
        passwords = self.lab.state().passwords
        return f'"{APP_ROLE}" "{passwords[APP_ROLE]}"\n"{ADMIN_USER}" "{state.admin_password}"\n'

    def _ini_text(self, state: PgBouncerState) -> str:
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(state.port),
            # TCP only, like the clusters' application access.
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(self.auth_file),
            "admin_users": ADMIN_USER,
            "pool_mode": "transaction",
            # The peak replay (bench/replay.py) holds 500+ client connections at once, plus the admin console.
            "max_client_conn": "1000",
            "default_pool_size": "20",
            "query_wait_timeout": str(self.query_wait_timeout_s),
            # The default 15 s would keep refusing clients that long after an
            # unfreeze (PgBouncer remembers the NOLOGIN refusal).
            "server_login_retry": "1",
            "server_connect_timeout": "5",
            "ignore_startup_parameters": "extra_float_digits",
            "log_connections": "0",
            "log_disconnections": "0",
            "logfile": str(self.log_file),
            "pidfile": str(self.pid_file),
        }
        body = "".join(f"{k} = {v}\n" for k, v in settings.items())
        return (f"; bascule lab endpoint (see bascule_lab.pgbouncer)\n[pgbouncer]\n{body}\n"
                f"%include {self.databases_file}\n")

    def _write_private(self, path: Path, text: str) -> None:
        write_private(path, text, lab_user=True)

    def _write_shared(self, path: Path, text: str) -> None:
        # Read by the lab's PgBouncer only, like the rest: shared with no other account either.
        write_private(path, text, lab_user=True)

    # ------------------------------------------------------------- down
    def down(self) -> None:
        pid = self.pid()
        if pid is None:
            self.lab.echo("lab: pgbouncer not running")
            return
        # SIGTERM: immediate shutdown; the lab has nothing to drain.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
        self.pid_file.unlink(missing_ok=True)
        self.lab.echo("lab: pgbouncer stopped")

    # ----------------------------------------------------------- status
    def status(self) -> PgBouncerStatus:
        pid = self.pid()
        port = self.state().port if self.state_file.exists() else None
        return PgBouncerStatus(running=pid is not None, pid=pid, port=port, points_to=self.points_to())

    # ------------------------------------------------------- connections
    def app_dsn(self, dbname: str = APP_DB) -> str:
        return (f"host=127.0.0.1 port={self.state().port} dbname={dbname} user={APP_ROLE} "
                f"password={self.lab.state().passwords[APP_ROLE]}")

    def admin_dsn(self) -> str:
        return (f"host=127.0.0.1 port={self.state().port} dbname=pgbouncer user={ADMIN_USER} "
                f"password={self.state().admin_password}")

    def connections(self) -> dict[str, dict[str, object]]:
        """Airflow connections for the lab's connections file."""
        state = self.state()
        return {
            "bascule_endpoint_app": {
                "conn_type": "postgres", "host": "127.0.0.1", "port": state.port, "login": APP_ROLE,
                "password": self.lab.state().passwords[APP_ROLE], "schema": APP_DB,
                "description": "lab endpoint (PgBouncer), as the hospital application",
            },
            "bascule_endpoint_admin": {
                "conn_type": "postgres", "host": "127.0.0.1", "port": state.port, "login": ADMIN_USER,
                "password": state.admin_password, "schema": "pgbouncer",
                "extra": json.dumps({"databases_file": str(self.databases_file)}),
                "description": "lab endpoint (PgBouncer) admin console",
            },
        }


__all__ = ["ADMIN_USER", "APP_DATABASES", "SMOKE_DB", "LAB_USER", "LabPgBouncer", "PgBouncerState",
           "PgBouncerStatus"]
