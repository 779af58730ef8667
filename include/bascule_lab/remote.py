"""Seed the lab's dataset into two PostgreSQL servers that bascule did not start.

``bascule lab`` owns its clusters (initdb, pg_ctl, unix sockets). A team running
the docker-compose ``lab`` profile has two PostgreSQL containers instead, reachable
only over TCP as their superuser. This module gives them the same lab: the same
roles, the same ``clinic`` schema and grants, the same deterministic synthetic
hospital on the source, and the schema plus the release migration (no rows) on
the target, through the same functions of :mod:`bascule_lab.seed`.

It is idempotent, because a compose one-shot service runs again on every
``docker compose up``: a seeded source and a migrated target are left as they are
(roles and passwords are still brought back to the wanted state), and a schema
left half-built by an interrupted run is dropped and rebuilt.

Run as a module (the compose file does), with secrets in the environment rather
than on a command line that ``ps`` shows::

    BASCULE_LAB_SOURCE_DSN=... BASCULE_LAB_TARGET_DSN=... \\
    BASCULE_LAB_BASCULE_ADMIN_PASSWORD=... BASCULE_LAB_CLINIC_APP_PASSWORD=... \\
    BASCULE_LAB_BASCULE_REPL_PASSWORD=... python -m bascule_lab.remote --patients 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bascule_lab import seed as seeding

APP_DB = "clinic"
SOURCE_DSN_ENV = "BASCULE_LAB_SOURCE_DSN"
TARGET_DSN_ENV = "BASCULE_LAB_TARGET_DSN"


def password_env_var(role: str) -> str:
    """``bascule_admin`` -> ``BASCULE_LAB_BASCULE_ADMIN_PASSWORD``."""
    return f"BASCULE_LAB_{role.upper()}_PASSWORD"


class RemoteSeedError(RuntimeError):
    """Seeding a remote server failed; names the side and the step, never a password."""


class SideOutcome(StrEnum):
    SEEDED = "seeded"
    MIGRATED = "migrated"
    ALREADY_SEEDED = "already-seeded"
    ALREADY_MIGRATED = "already-migrated"


@dataclass(frozen=True)
class RemoteSeedResult:
    source: SideOutcome
    target: SideOutcome
    patients: int
    source_rows: int
    seconds: float


Progress = Callable[[str], None]


def _describe(dsn: str) -> str:
    # Host, port and database only: a DSN may carry a password.
    parts = conninfo_to_dict(dsn)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '-')}"


def _connect(dsn: str, dbname: str | None = None) -> psycopg.Connection:
    # The lab pins TimeZone and DateStyle: row text (and so row hashes) depends on both.
    params = {"dbname": dbname} if dbname else {}
    return psycopg.connect(
        make_conninfo(dsn, **params), autocommit=True, connect_timeout=10,
        options="-c TimeZone=UTC -c DateStyle=ISO,YMD",
    )


def _prepare_server(dsn: str, passwords: Mapping[str, str], dbname: str) -> None:
    with _connect(dsn) as conn:
        seeding.ensure_roles(conn, passwords)
        # PostgreSQL 15 lets only a superuser CREATE SUBSCRIPTION; both ends subscribe at
        # some point (reverse replication after go-live). Lab parity with Lab._ensure_roles.
        conn.execute("ALTER ROLE bascule_admin SUPERUSER")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER bascule_admin").format(sql.Identifier(dbname)))


def _schema_state(conn: psycopg.Connection) -> tuple[bool, bool]:
    """(schema clinic exists, clinic.patients holds rows)."""
    exists = conn.execute(
        "SELECT to_regclass('clinic.patients') IS NOT NULL"
    ).fetchone() == (True,)
    if not exists:
        has_schema = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (seeding.SCHEMA,)
        ).fetchone() is not None
        return has_schema, False
    populated = conn.execute("SELECT EXISTS (SELECT FROM clinic.patients)").fetchone() == (True,)
    return True, populated


def _drop_schema(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(seeding.SCHEMA)))


_TARGET_STAMP = "bascule lab target: schema + release migration"
_SOURCE_STAMP = "bascule lab source: seeded"


def _seed_source(dsn: str, spec: seeding.SeedSpec, dbname: str, report: Progress) -> tuple[SideOutcome, int]:
    with _connect(dsn, dbname) as conn:
        exists, populated = _schema_state(conn)
        if populated and _stamped(conn, _SOURCE_STAMP):
            rows = sum(t.rows for t in seeding.table_stats(conn))
            report(f"source {_describe(make_conninfo(dsn, dbname=dbname))}: already seeded ({rows} rows)")
            return SideOutcome.ALREADY_SEEDED, rows
        if populated:
            # Not ours: never drop a schema full of rows that this module did not write.
            raise RemoteSeedError("source: clinic.patients holds rows but the schema is not stamped as a "
                                  "lab source; refusing to drop it (drop schema clinic by hand to rebuild)")
        if exists:
            report("source: dropping a schema left unfinished by an earlier run")
            _drop_schema(conn)
        seeding.create_schema(conn)
        result = seeding.seed_data(conn, spec, progress=lambda line: report(f"source: {line}"))
        _stamp(conn, f"{_SOURCE_STAMP} patients={spec.patients} seed={spec.seed}")
        return SideOutcome.SEEDED, result.rows


def _migrate_target(dsn: str, release_migration: Path | None, dbname: str, report: Progress) -> SideOutcome:
    with _connect(dsn, dbname) as conn:
        exists, populated = _schema_state(conn)
        if exists and _stamped(conn, _TARGET_STAMP):
            report(f"target {_describe(make_conninfo(dsn, dbname=dbname))}: schema and release already there")
            return SideOutcome.ALREADY_MIGRATED
        if populated:
            # The target of a lab must start empty; rows there would come from a previous run
            # whose replication already happened, and a re-seed must not silently erase them.
            raise RemoteSeedError("target: clinic.patients holds rows but the schema is not stamped as a "
                                  "lab target; refusing to drop it (drop schema clinic by hand to rebuild)")
        if exists:
            report("target: dropping a schema left unfinished by an earlier run")
            _drop_schema(conn)
        seeding.create_schema(conn)
        if release_migration is not None:
            seeding.apply_release_migration(conn, release_migration)
        _stamp(conn, _TARGET_STAMP + (f" {release_migration.name}" if release_migration else " (none)"))
        report("target: schema created" + (f", release migration {release_migration.name} applied"
                                            if release_migration else ""))
        return SideOutcome.MIGRATED


def _stamp(conn: psycopg.Connection, text: str) -> None:
    conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(seeding.SCHEMA), sql.Literal(text)))


def _stamped(conn: psycopg.Connection, prefix: str) -> bool:
    row = conn.execute(
        "SELECT obj_description(%s::regnamespace, 'pg_namespace')", (seeding.SCHEMA,)
    ).fetchone()
    return bool(row and row[0] and str(row[0]).startswith(prefix))


def seed_remote(
    source_dsn: str,
    target_dsn: str,
    patients: int,
    release_migration: Path | None,
    *,
    passwords: Mapping[str, str],
    seed: int = 42,
    dbname: str = APP_DB,
    progress: Progress | None = None,
) -> RemoteSeedResult:
    """Give two running PostgreSQL servers the lab's roles, schema and data.

    ``source_dsn`` and ``target_dsn`` are libpq connection strings for a superuser
    (roles are cluster-global); their ``dbname`` is only used to connect, the lab
    lives in ``dbname`` (``clinic``), created if missing. ``passwords`` must hold
    exactly the lab roles of :data:`bascule_lab.seed.ROLES`. The source gets
    ``patients`` synthetic patients (deterministic for ``seed``); the target gets
    the schema and ``release_migration``, and no rows.
    """
    report = progress or (lambda _line: None)
    spec = seeding.SeedSpec(patients=patients, seed=seed)  # validates the scale before any I/O
    if release_migration is not None and not Path(release_migration).is_file():
        raise RemoteSeedError(f"release_migration: no such file {release_migration}")
    started = time.perf_counter()
    outcomes: dict[str, SideOutcome] = {}
    rows = 0
    for side, dsn in (("source", source_dsn), ("target", target_dsn)):
        try:
            _prepare_server(dsn, passwords, dbname)
            if side == "source":
                outcomes[side], rows = _seed_source(dsn, spec, dbname, report)
            else:
                outcomes[side] = _migrate_target(
                    dsn, Path(release_migration) if release_migration else None, dbname, report)
        except psycopg.Error as exc:
            # Server messages can carry row values (DETAIL); only the class and SQLSTATE leave.
            raise RemoteSeedError(
                f"{side} {_describe(dsn)}: {type(exc).__name__} (SQLSTATE {exc.sqlstate or '-'})"
            ) from None
    return RemoteSeedResult(source=outcomes["source"], target=outcomes["target"], patients=patients,
                            source_rows=rows, seconds=round(time.perf_counter() - started, 2))


def _passwords_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    missing = [password_env_var(r) for r in seeding.ROLES if not environ.get(password_env_var(r))]
    if missing:
        raise RemoteSeedError(f"missing environment variables: {', '.join(missing)}")
    return {role: environ[password_env_var(role)] for role in seeding.ROLES}


def write_connections(path: Path, source_dsn: str, target_dsn: str, *, passwords: Mapping[str, str],
                      dbname: str) -> None:
    """The lab's Airflow connections, as a LocalFilesystemBackend reads them, created with mode 0600.

    The compose file's Airflow services carry no lab credential (docker-compose.yaml, profile ``lab``): they
    read this file through the secrets backend only when started with the lab's env file. The HMAC and
    decision keys are made here, once, at random: no key of the lab is written in the repository.
    """
    import json
    import secrets

    from psycopg.conninfo import conninfo_to_dict

    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}

    def pg(dsn: str, role: str, description: str) -> dict[str, Any]:
        info = conninfo_to_dict(dsn)
        return {"conn_type": "postgres", "host": info.get("host"), "port": int(info.get("port") or 5432),
                "login": role, "password": passwords[role], "schema": dbname, "description": description}

    def key(name: str) -> str:
        return str((existing.get(name) or {}).get("password") or secrets.token_hex(32))

    conns = {
        **existing,
        "bascule_legacy": pg(source_dsn, "bascule_admin", "lab source, migration admin"),
        "bascule_new": pg(target_dsn, "bascule_admin", "lab target, migration admin"),
        "bascule_legacy_app": pg(source_dsn, "clinic_app", "lab source, as the application"),
        "bascule_new_app": pg(target_dsn, "clinic_app", "lab target, as the application"),
        "bascule_legacy_repl": pg(source_dsn, "bascule_repl", "lab source, replication role"),
        "bascule_new_repl": pg(target_dsn, "bascule_repl", "lab target, replication role (reverse)"),
        "bascule_key_hmac": {"conn_type": "generic", "password": key("bascule_key_hmac")},
        "bascule_decision_key": {"conn_type": "generic", "password": key("bascule_decision_key")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    # Created with its final mode: never readable by others, not even for an instant.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(conns, fh, indent=2)
    tmp.replace(path)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``python -m bascule_lab.remote``: seed from the environment; exit 0, or 2 with one line."""
    from bascule_lab.clusters import default_release_migration

    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m bascule_lab.remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--release-migration", default=str(default_release_migration()),
                        help="SQL applied to the target after the schema ('' for none)")
    parser.add_argument("--dbname", default=APP_DB)
    parser.add_argument("--connections-file", default=env.get("BASCULE_LAB_CONNECTIONS_FILE") or None,
                        help="write the lab's Airflow connections there (0600), for a LocalFilesystemBackend")
    args = parser.parse_args(argv)
    try:
        dsns = {}
        for name in (SOURCE_DSN_ENV, TARGET_DSN_ENV):
            if not env.get(name):
                raise RemoteSeedError(f"missing environment variable: {name}")
            dsns[name] = env[name]
        result = seed_remote(
            dsns[SOURCE_DSN_ENV], dsns[TARGET_DSN_ENV], args.patients,
            Path(args.release_migration) if args.release_migration else None,
            passwords=_passwords_from_env(env), seed=args.seed, dbname=args.dbname,
            progress=lambda line: print(f"seed-remote: {line}", flush=True),
        )
        if args.connections_file:
            write_connections(Path(args.connections_file), dsns[SOURCE_DSN_ENV], dsns[TARGET_DSN_ENV],
                              passwords=_passwords_from_env(env), dbname=args.dbname)
    except (RemoteSeedError, ValueError) as exc:
        print(f"seed-remote: {exc}", file=sys.stderr)
        return 2
    print(f"source={result.source.value} target={result.target.value} patients={result.patients} "
          f"rows={result.source_rows} seconds={result.seconds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
