"""A full physical backup of a PostgreSQL cluster into a local folder, and the check that it restores.

All the I/O of "can the new platform be backed up and restored": ``pg_basebackup`` through a
replication connection (a role with REPLICATION, not a superuser), and a restore into a scratch
cluster that must start, finish its recovery and answer a smoke query, all on this machine.
The binaries come from ``pg_config --bindir`` (or ``BASCULE_PG_BIN``): the restore check's
``postgres`` must be the cluster's major version, which the check verifies from ``PG_VERSION``.

Why the tools and not a library: pg_basebackup is the reference physical backup of PostgreSQL;
what the team's backup product (pgBackRest, Barman) adds is retention and storage, not what is
measured here (how long a full copy of the cluster takes, how big it is, whether it starts).
Passwords go to the tools through ``PGPASSWORD`` in their environment, never on a command line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook


class BackupError(RuntimeError):
    """A backup or its restore check failed; the message names the step and the folder."""


@dataclass(frozen=True)
class BackupRun:
    folder: str
    seconds: float
    bytes: int


@dataclass(frozen=True)
class RestoreRun:
    seconds: float
    smoke_rows: int
    pg_version: str


def folder_bytes(folder: Path) -> int:
    """Bytes of every regular file under ``folder`` (a backup's size as stored)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def server_major(version_text: str) -> str | None:
    """The major version in ``postgres --version``'s answer ("postgres (PostgreSQL) 15.10 (Debian ...)" -> "15")."""
    words = version_text.split()
    for word in words:
        head = word.split(".")[0]
        if head.isdigit() and "." in word:
            return head
    return next((w for w in words if w.isdigit()), None)


def pg_bindir() -> Path:
    """PostgreSQL client and server binaries: ``BASCULE_PG_BIN``, else ``pg_config --bindir``."""
    if os.environ.get("BASCULE_PG_BIN"):
        return Path(os.environ["BASCULE_PG_BIN"])
    pg_config = shutil.which("pg_config")
    if not pg_config:
        raise BackupError("pg_config not found on PATH: install the PostgreSQL client (postgresql-client) or set "
                          "BASCULE_PG_BIN to the directory holding pg_basebackup")
    out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return Path(out.stdout.strip())


class PhysicalBackupHook(BaseHook):
    """pg_basebackup of the cluster behind ``replication_conn_id`` and a restore check in a scratch cluster.

    ``os_user``: the account the scratch cluster runs as when the worker is root (PostgreSQL refuses
    root); None runs it as the worker's own account.
    """

    conn_name_attr = "replication_conn_id"
    default_conn_name = "bascule_new_repl"
    conn_type = "postgres"
    hook_name = "bascule physical backup"

    def __init__(self, *, replication_conn_id: str = default_conn_name, os_user: str | None = None,
                 timeout_s: float = 7200.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.replication_conn_id = replication_conn_id
        self.os_user = os_user
        self.timeout_s = timeout_s

    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.replication_conn_id)

    @cached_property
    def bindir(self) -> Path:
        return pg_bindir()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.connection.password:
            env["PGPASSWORD"] = self.connection.password
        return env

    def _as_user(self, argv: list[str]) -> list[str]:
        return argv if self.os_user is None else ["runuser", "-u", self.os_user, "--", *argv]

    def _run(self, argv: list[str], *, what: str, env: dict[str, str] | None = None) -> None:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise BackupError(f"{what}: no answer within {self.timeout_s:.0f} s") from None
        if proc.returncode != 0:
            # The tools' messages name files, settings and roles, never a row.
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise BackupError(f"{what} failed ({proc.returncode}): {' | '.join(detail)}")

    # --------------------------------------------------------------------------------------- backup

    def backup(self, folder: Path) -> BackupRun:
        """A full plain-format backup with the WAL it needs (``-X stream``), after a fast checkpoint.

        ``folder`` must not exist or be empty: a backup never mixes with an older one.
        """
        if folder.exists() and any(folder.iterdir()):
            raise BackupError(f"backup folder {folder} is not empty")
        c = self.connection
        if not c.login:
            raise BackupError(f"connection {self.replication_conn_id!r}: login is empty")
        folder.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(self.bindir / "pg_basebackup"), "-h", c.host or "127.0.0.1", "-p", str(c.port or 5432),
                "-U", c.login, "-w", "-D", str(folder), "-F", "p", "-X", "stream", "-c", "fast",
                "-l", "bascule backup check"]
        started = time.monotonic()
        self._run(argv, what=f"pg_basebackup of {self.replication_conn_id} into {folder}", env=self._env())
        seconds = time.monotonic() - started
        return BackupRun(folder=str(folder), seconds=seconds, bytes=folder_bytes(folder))

    # -------------------------------------------------------------------------------------- restore

    def restore_check(self, backup: Path, scratch: Path, *, dbname: str, user: str, smoke_sql: str) -> RestoreRun:
        """Copy ``backup`` into ``scratch``, start it there, wait for the end of recovery, run ``smoke_sql``.

        Timed from the first file copied to the smoke query's answer; the scratch cluster is stopped
        and deleted afterwards. It listens on a unix socket in ``scratch`` only (no TCP), which is why
        its pg_hba trusts local connections: only the account running it can reach that directory.
        """
        import psycopg

        if scratch.exists():
            raise BackupError(f"scratch folder {scratch} already exists: the restore check starts from nothing")
        version = (backup / "PG_VERSION").read_text().strip() if (backup / "PG_VERSION").exists() else "?"
        server = self.bindir / "postgres"
        major = server_major(subprocess.run([str(server), "--version"], capture_output=True, text=True,
                                            check=False).stdout)
        if major != version:
            raise BackupError(f"{server} is PostgreSQL {major or '?'} but the backup in {backup} is PostgreSQL "
                              f"{version}: point BASCULE_PG_BIN at the {version} binaries")
        started = time.monotonic()
        data, run = scratch / "data", scratch / "run"
        try:
            shutil.copytree(backup, data, symlinks=True)
            run.mkdir(parents=True)
            self._prepare_scratch(scratch, data, run)
            port = _free_port()
            self._run(self._as_user([str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(scratch / "log"),
                                     "-w", "-t", str(int(min(self.timeout_s, 3600))), "-o", f"-p {port}", "start"]),
                      what=f"start of the restored cluster in {data} ({server}, backup of PostgreSQL {version})")
            deadline = time.monotonic() + 300
            with psycopg.connect(host=str(run), port=port, dbname=dbname, user=user, autocommit=True,
                                 connect_timeout=30) as conn:
                while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    if time.monotonic() > deadline:
                        raise BackupError(f"restored cluster in {data} still in recovery after 300 s")
                    time.sleep(0.1)
                rows = conn.execute(smoke_sql).fetchall()
            seconds = time.monotonic() - started
            if not rows:
                raise BackupError(f"smoke query on the restored cluster returned no row: {smoke_sql}")
            return RestoreRun(seconds=seconds, smoke_rows=len(rows), pg_version=version)
        finally:
            if (data / "postmaster.pid").exists():
                subprocess.run(self._as_user([str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                              "-w", "stop"]), capture_output=True, check=False, timeout=120)
            shutil.rmtree(scratch, ignore_errors=True)

    def _prepare_scratch(self, scratch: Path, data: Path, run: Path) -> None:
        # The copy keeps the source's settings (memory, WAL, replication) so that recovery replays
        # exactly what it would on a restore; only where it listens and logs changes.
        settings = {"listen_addresses": "''", "unix_socket_directories": f"'{run}'", "archive_mode": "off",
                    "logging_collector": "off", "cluster_name": "'bascule-restore-check'"}
        with (data / "postgresql.auto.conf").open("a") as fh:
            fh.write("# bascule restore check: a scratch copy, reachable on its own socket only\n")
            fh.write("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (data / "pg_hba.conf").write_text("local all all trust\n")
        (data / "pg_ident.conf").write_text("")
        for name in ("postmaster.pid", "postmaster.opts"):
            (data / name).unlink(missing_ok=True)
        data.chmod(0o700)
        if self.os_user is not None:
            for path in (scratch, *scratch.rglob("*")):
                shutil.chown(path, user=self.os_user, group=self.os_user)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["BackupError", "BackupRun", "PhysicalBackupHook", "RestoreRun", "folder_bytes", "pg_bindir",
           "server_major"]
