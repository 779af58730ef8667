"""Create the lab's roles, schema and synthetic hospital data over a psycopg connection.

The SQL lives in ``lab/sql/*.sql`` and stays plain SQL, runnable with psql; this
module only feeds it the scale through custom settings (``bascule.patients``,
``bascule.seed``), runs it one ``-- @step`` at a time to report progress, and
wraps the bulk load in the usual pre-data / data / post-data order. It never
starts or stops a cluster.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMA = "clinic"

# The synthetic "today". Data never depends on the real clock, so two seedings
# are identical whenever they run.
REFERENCE_DATE = datetime(2026, 11, 1, tzinfo=UTC)

ROLES: tuple[str, ...] = ("clinic_app", "bascule_repl", "bascule_admin")

HOSPITALS = 38
CANARY_COUNT = 5
# Audit partitions whose whole month is older than this many months before the
# reference date are archive candidates.
AUDIT_RETENTION_MONTHS = 24
AUDIT_HISTORY_MONTHS = 36

# Room for larger seeds while the bulk load runs; the server default (64MB)
# makes the post-load index builds spill to disk.
_SEED_MAINTENANCE_WORK_MEM = "512MB"

_STEP = re.compile(r"^-- @step (\S+)\s*$", re.MULTILINE)


def _months_back(ref: datetime, months: int) -> tuple[int, int]:
    index = ref.year * 12 + (ref.month - 1) - months
    return index // 12, index % 12 + 1


def _archive_candidates() -> tuple[str, ...]:
    names = []
    for back in range(AUDIT_HISTORY_MONTHS, AUDIT_RETENTION_MONTHS, -1):
        year, month = _months_back(REFERENCE_DATE, back)
        names.append(f"{SCHEMA}.audit_log_y{year:04d}m{month:02d}")
    return tuple(names)


# Storage waste planted on purpose for the storage-optimisation work to find.
# It is recorded only here, never in the database (a comment there would give
# the answer away).
PLANTED_WASTE: Mapping[str, tuple[str, ...]] = {
    # Exact duplicate of encounters_patient_id_idx.
    "duplicate_indexes": (f"{SCHEMA}.encounters_patient_idx",),
    # Left prefixes of a wider index on the same table.
    "redundant_prefix_indexes": (
        f"{SCHEMA}.patients_family_name_idx",  # of patients_name_idx
        f"{SCHEMA}.prescriptions_patient_id_idx",  # of prescriptions_patient_prescribed_idx
        f"{SCHEMA}.observations_encounter_id_idx",  # of observations_encounter_observed_idx
        f"{SCHEMA}.audit_log_patient_id_idx",  # of audit_log_patient_logged_idx
    ),
    # No query of the application or of bascule ever filters or sorts on these.
    "unused_indexes": (
        f"{SCHEMA}.observations_unit_observed_idx",
        f"{SCHEMA}.audit_log_client_addr_idx",
        f"{SCHEMA}.audit_log_session_id_idx",
    ),
    # Audit months older than AUDIT_RETENTION_MONTHS before REFERENCE_DATE.
    "archive_partitions": _archive_candidates(),
}


@dataclass(frozen=True)
class SeedSpec:
    """Scale and seed of a synthetic dataset; the derived counts mirror seed.sql."""

    patients: int
    seed: int = 42

    def __post_init__(self) -> None:
        if self.patients < 100:
            raise ValueError(f"patients must be >= 100, got {self.patients}")
        # NINO-like numbers are a bijection modulo 20 prefixes x 10^6.
        if self.patients > 20_000_000:
            raise ValueError(f"patients must be <= 20,000,000, got {self.patients}")

    @property
    def hospitals(self) -> int:
        return HOSPITALS

    @property
    def staff(self) -> int:
        # 85,000 application users for 10M patients in the reference hospital group.
        return max(200, round(self.patients * 0.0085))

    @property
    def encounters(self) -> int:
        return self.patients * 2

    @property
    def prescriptions(self) -> int:
        return round(self.patients * 1.5)

    @property
    def observations(self) -> int:
        return self.patients * 3

    @property
    def clinical_notes(self) -> int:
        return round(self.patients * 0.3)

    @property
    def audit_log(self) -> int:
        return self.patients * 3

    def expected_rows(self) -> dict[str, int]:
        return {
            "hospitals": self.hospitals,
            "staff": self.staff,
            "patients": self.patients,
            "encounters": self.encounters,
            "prescriptions": self.prescriptions,
            "observations": self.observations,
            "clinical_notes": self.clinical_notes,
            "audit_log": self.audit_log,
        }


@dataclass(frozen=True)
class TableStat:
    name: str
    rows: int
    total_bytes: int


@dataclass(frozen=True)
class SeedResult:
    patients: int
    rows: int
    seconds: float
    tables: list[TableStat]


Progress = Callable[[str], None]


def _read(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def split_steps(text: str) -> list[tuple[str, str]]:
    """Split a SQL file on ``-- @step name`` markers; text before the first marker is dropped."""
    parts = _STEP.split(text)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def _run(conn: psycopg.Connection, text: str) -> int:
    """Run a multi-statement script in one transaction; return the rows INSERTed."""
    inserted = 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(text.encode())
        while True:
            if (cur.statusmessage or "").startswith("INSERT"):
                inserted += max(cur.rowcount, 0)
            if not cur.nextset():
                break
    return inserted


def ensure_roles(conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
    """Create or repair the lab roles and (re)set their passwords; safe to repeat.

    Passwords are turned into SCRAM verifiers by libpq on the client, so the
    statement the server sees (and might log) never holds a plaintext password.
    """
    unknown = sorted(set(passwords) - set(ROLES))
    missing = sorted(set(ROLES) - set(passwords))
    if unknown or missing:
        raise ValueError(f"passwords must be given for exactly {ROLES}; unknown={unknown} missing={missing}")
    _run(conn, _read("roles.sql"))
    with conn.transaction():
        for role in ROLES:
            verifier = conn.pgconn.encrypt_password(
                passwords[role].encode(), role.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
            )


def create_schema(conn: psycopg.Connection) -> None:
    """Create schema ``clinic`` (owned by bascule_admin) with its grants, in the connected database."""
    _run(conn, _set_reference_sql() + _read("schema.sql"))
    _run(conn, _read("grants.sql"))


def _set_reference_sql() -> str:
    return f"SELECT set_config('bascule.reference_date', '{REFERENCE_DATE.isoformat()}', false);\n"


@dataclass(frozen=True)
class _PostData:
    """Secondary indexes and constraints to drop before a bulk load and restore after."""

    drop: list[str]
    indexes: list[str]
    foreign_keys: list[str]


def _collect_post_data(conn: psycopg.Connection) -> _PostData:
    # Primary keys stay: ids are loaded in ascending order, which the btree
    # appends cheaply, and the foreign keys need them. Everything else is
    # cheaper to build once, sorted, than to maintain row by row.
    constraints = conn.execute(
        """
        SELECT c.contype, c.conrelid::regclass::text, quote_ident(c.conname),
               pg_get_constraintdef(c.oid)
        FROM pg_constraint AS c
        WHERE c.connamespace = %s::regnamespace AND c.contype IN ('f', 'u') AND c.conparentid = 0
        ORDER BY c.contype, c.conname
        """,
        (SCHEMA,),
    ).fetchall()
    indexes = conn.execute(
        """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname), pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i
        JOIN pg_class AS ic ON ic.oid = i.indexrelid
        JOIN pg_namespace AS n ON n.oid = ic.relnamespace
        WHERE n.nspname = %s AND NOT i.indisprimary AND NOT ic.relispartition
          AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
        ORDER BY ic.relname
        """,
        (SCHEMA,),
    ).fetchall()
    fks = [(rel, name, d) for kind, rel, name, d in constraints if kind == "f"]
    uniques = [(rel, name, d) for kind, rel, name, d in constraints if kind == "u"]
    drop = [f"ALTER TABLE {rel} DROP CONSTRAINT {name}" for rel, name, _ in fks + uniques]
    drop += [f"DROP INDEX {name}" for name, _ in indexes]
    # pg_get_indexdef writes "ON ONLY" for a partitioned index; the rebuild must
    # cascade to the partitions instead.
    build = [d.replace(" ON ONLY ", " ON ", 1) for _, d in indexes]
    build += [f"ALTER TABLE {rel} ADD CONSTRAINT {name} {d}" for rel, name, d in uniques]
    restore_fks = [f"ALTER TABLE {rel} ADD CONSTRAINT {name} {d}" for rel, name, d in fks]
    return _PostData(drop=drop, indexes=build, foreign_keys=restore_fks)


def seed_data(conn: psycopg.Connection, spec: SeedSpec, progress: Progress | None = None) -> SeedResult:
    """Fill the empty ``clinic`` schema with ``spec``'s synthetic dataset, indexed and analysed."""
    report = progress or (lambda _msg: None)
    started = time.perf_counter()
    # Each block is its own transaction on an idle connection, and a savepoint
    # if the caller holds a transaction open.
    with conn.transaction():
        if conn.execute("SELECT EXISTS (SELECT FROM clinic.patients)").fetchone() != (False,):
            raise RuntimeError("clinic.patients is not empty; seed_data needs a freshly created schema")
        conn.execute(
            "SELECT set_config('bascule.patients', %s, false), set_config('bascule.seed', %s, false),"
            " set_config('bascule.reference_date', %s, false),"
            " set_config('maintenance_work_mem', %s, false)",
            (str(spec.patients), str(spec.seed), REFERENCE_DATE.isoformat(), _SEED_MAINTENANCE_WORK_MEM),
        )
        post = _collect_post_data(conn)

    _timed(conn, report, "drop secondary indexes and foreign keys", ";\n".join(post.drop), count=len(post.drop))

    for step, text in split_steps(_read("seed.sql")):
        t0 = time.perf_counter()
        rows = _run(conn, text)
        if step in spec.expected_rows():
            report(f"{step}: {rows} rows in {time.perf_counter() - t0:.1f}s")
        else:
            report(f"{step}: done in {time.perf_counter() - t0:.1f}s")

    _timed(conn, report, "indexes", ";\n".join(post.indexes), count=len(post.indexes))
    _timed(conn, report, "foreign keys", ";\n".join(post.foreign_keys), count=len(post.foreign_keys))
    t0 = time.perf_counter()
    with conn.transaction():
        tables = [t for (t,) in conn.execute(_TABLES_SQL, (SCHEMA,)).fetchall()]
    for table in tables:
        with conn.transaction():
            conn.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table)))
    report(f"analyze: done in {time.perf_counter() - t0:.1f}s")

    stats = table_stats(conn)
    return SeedResult(
        patients=spec.patients,
        rows=sum(t.rows for t in stats),
        seconds=time.perf_counter() - started,
        tables=stats,
    )


def _timed(conn: psycopg.Connection, report: Progress, what: str, text: str, *, count: int) -> None:
    if not text:
        return
    t0 = time.perf_counter()
    _run(conn, text)
    report(f"{what}: {count} in {time.perf_counter() - t0:.1f}s")


def apply_release_migration(conn: psycopg.Connection, sql_path: Path) -> None:
    """Apply a release's migration script atomically (it must not manage transactions itself)."""
    _run(conn, Path(sql_path).read_text(encoding="utf-8"))


# Ordinary and partitioned tables, not the partitions themselves.
_TABLES_SQL = """
    SELECT c.relname FROM pg_class AS c
    WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    ORDER BY c.relname
"""


def table_stats(conn: psycopg.Connection, schema: str = SCHEMA) -> list[TableStat]:
    """Exact row count and on-disk size (heap, indexes, TOAST, all partitions) per table."""
    stats = []
    with conn.transaction():
        for (table,) in conn.execute(_TABLES_SQL, (schema,)).fetchall():
            ident = sql.Identifier(schema, table)
            (rows,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone() or (0,)
            # pg_partition_tree of a plain table is empty, hence the fallback.
            (size,) = conn.execute(
                "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))::bigint"
                "                 FROM pg_partition_tree(%s::regclass)),"
                "                pg_total_relation_size(%s::regclass))",
                (ident.as_string(conn), ident.as_string(conn)),
            ).fetchone() or (0,)
            stats.append(TableStat(name=table, rows=int(rows), total_bytes=int(size or 0)))
    return stats


def reclaimable_bytes(conn: psycopg.Connection) -> tuple[int, int]:
    """(bytes in schema clinic, bytes freed by dropping PLANTED_WASTE indexes and archiving its partitions).

    Sizes are summed per relation (heap, TOAST, every index, every partition),
    each counted once even where a planted index lives on an archived partition.
    """
    indexes = [name for key, names in PLANTED_WASTE.items() if key != "archive_partitions" for name in names]
    with conn.transaction():
        row = conn.execute(
            """
            WITH tables AS (
                SELECT c.oid FROM pg_class AS c
                WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r'
            ), archived AS (
                SELECT to_regclass(p)::oid AS oid FROM unnest(%(parts)s::text[]) AS p
            ), planted AS (
                -- pg_partition_tree is empty for an index that is not partitioned.
                SELECT t.relid AS oid
                FROM unnest(%(indexes)s::text[]) AS i, pg_partition_tree(to_regclass(i)) AS t
                WHERE t.isleaf
                UNION
                SELECT c.oid FROM unnest(%(indexes)s::text[]) AS i
                JOIN pg_class AS c ON c.oid = to_regclass(i) AND c.relkind = 'i'
            )
            SELECT (SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM tables)::bigint,
                   ((SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM archived)
                    + (SELECT coalesce(sum(pg_relation_size(x.oid)), 0) FROM planted AS x
                       JOIN pg_index AS pi ON pi.indexrelid = x.oid
                       WHERE pi.indrelid NOT IN (SELECT oid FROM archived)))::bigint
            """,
            {"schema": SCHEMA, "parts": list(PLANTED_WASTE["archive_partitions"]), "indexes": indexes},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
