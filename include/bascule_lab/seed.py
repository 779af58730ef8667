"""Create the lab's roles, schema and synthetic hospital data over a psycopg connection.

The SQL lives in ``lab/sql/*.sql`` and stays plain SQL, runnable with psql; this
module only feeds it the scale through custom settings (``bascule.patients``,
``bascule.seed``), runs it one ``-- @step`` (or one slice of a step) at a time
to report progress, and wraps the bulk load in the usual pre-data / data /
post-data order. Loads, index builds, foreign keys and ANALYZE are tasks shared
by two sessions, one per core of the lab machine, scheduled so that no two
running tasks take conflicting table locks. It never starts or stops a cluster.

Measured and left out: lz4 for the notes' TOAST (``default_toast_compression``)
loads them 2.4x faster but makes TOAST 15% larger, taking the reclaimable
share at 1M patients from about 25.6% to 25.15%, too close to the 25% floor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
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
_SLICES = re.compile(r"^-- @slices (\d+)\s*$", re.MULTILINE)


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
class _Task:
    """One unit of the load, run on whichever seeding session is free.

    ``locks`` names the table-level lock each statement takes; two tasks whose
    locks conflict are never started together, so a session never sits blocked
    behind the other one.
    """

    name: str
    text: str
    locks: tuple[tuple[str, str], ...]
    after: frozenset[str]
    # Earlier first among the tasks that can start: big loads before small ones so
    # that the session finishing last is left with short work.
    priority: tuple[int, float]
    step: str | None = None


# PostgreSQL's conflict table, restricted to the modes the seed's statements take.
_CONFLICTS: Mapping[str, frozenset[str]] = {
    "ROW SHARE": frozenset({"ACCESS EXCLUSIVE"}),
    "ROW EXCLUSIVE": frozenset({"SHARE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE UPDATE EXCLUSIVE": frozenset({"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
                                         "ACCESS EXCLUSIVE"}),
    "SHARE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"}),
    "SHARE ROW EXCLUSIVE": frozenset({"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
                                      "ACCESS EXCLUSIVE"}),
    "ACCESS EXCLUSIVE": frozenset({"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
                                   "SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"}),
}


# Relative cost of each table's load (seconds at 1M patients, one session); only
# the order matters: the scheduler starts the biggest work first.
_LOAD_WEIGHT: Mapping[str, float] = {
    "hospitals": 0.1, "staff": 0.1, "patients": 10, "encounters": 16, "prescriptions": 12,
    "observations": 26, "clinical_notes": 31, "audit_log": 50,
}
# Loads that read another seeded table (audit rows take the workstation's city).
_LOAD_AFTER: Mapping[str, tuple[str, ...]] = {"audit_log": ("hospitals",)}
# ANALYZE of a partitioned table samples the parent and then every partition in
# full (36+ months, jsonb included): at the default target it cost as much as
# building all five audit indexes. The audit log is only ever filtered on its
# indexed keys, so the seed samples it at a tenth of the default; the next
# autovacuum ANALYZE of a partition that changes enough restores the default.
_ANALYZE_PREFIX: Mapping[str, str] = {"audit_log": "SET LOCAL default_statistics_target = 10;\n"}
# Steps that build or drop a session's own temporary helpers: every session runs them.
_SESSION_STEPS = ("setup", "cleanup")
# Sessions loading at once. Each INSERT ... SELECT runs on one core (PostgreSQL 15
# has no parallel insert), so one session per core keeps both busy.
_SESSIONS = 2


@dataclass(frozen=True)
class _PostData:
    """Secondary indexes and constraints to drop before a bulk load and rebuild after, as tasks."""

    drop: list[str]
    tasks: list[_Task]


def _collect_post_data(conn: psycopg.Connection) -> _PostData:
    # Primary keys stay: ids are loaded in ascending order, which the btree
    # appends cheaply, and the foreign keys need them. Everything else is
    # cheaper to build once, sorted, than to maintain row by row.
    constraints = conn.execute(
        """
        SELECT c.contype, quote_ident(n.nspname) || '.' || quote_ident(t.relname), quote_ident(c.conname),
               pg_get_constraintdef(c.oid),
               (SELECT quote_ident(rn.nspname) || '.' || quote_ident(r.relname)
                FROM pg_class AS r JOIN pg_namespace AS rn ON rn.oid = r.relnamespace WHERE r.oid = c.confrelid)
        FROM pg_constraint AS c
        JOIN pg_class AS t ON t.oid = c.conrelid
        JOIN pg_namespace AS n ON n.oid = t.relnamespace
        WHERE c.connamespace = %s::regnamespace AND c.contype IN ('f', 'u') AND c.conparentid = 0
        ORDER BY c.contype, c.conname
        """,
        (SCHEMA,),
    ).fetchall()
    indexes = conn.execute(
        """
        SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname),
               quote_ident(tn.nspname) || '.' || quote_ident(t.relname), pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i
        JOIN pg_class AS ic ON ic.oid = i.indexrelid
        JOIN pg_namespace AS n ON n.oid = ic.relnamespace
        JOIN pg_class AS t ON t.oid = i.indrelid
        JOIN pg_namespace AS tn ON tn.oid = t.relnamespace
        WHERE n.nspname = %s AND NOT i.indisprimary AND NOT ic.relispartition
          AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
        ORDER BY ic.relname
        """,
        (SCHEMA,),
    ).fetchall()
    fks = [(rel, name, d, ref) for kind, rel, name, d, ref in constraints if kind == "f"]
    uniques = [(rel, name, d) for kind, rel, name, d, _ in constraints if kind == "u"]
    drop = [f"ALTER TABLE {rel} DROP CONSTRAINT {name}" for rel, name, *_ in fks + uniques]
    drop += [f"DROP INDEX {name}" for name, _, _ in indexes]
    tasks = []
    for name, rel, d in indexes:
        # pg_get_indexdef writes "ON ONLY" for a partitioned index; the rebuild must
        # cascade to the partitions instead.
        tasks.append(_post_task(f"index {name}", d.replace(" ON ONLY ", " ON ", 1), {rel: "SHARE"}))
    for rel, name, d in uniques:
        # ADD CONSTRAINT ... UNIQUE locks the table ACCESS EXCLUSIVE.
        tasks.append(_post_task(f"unique {rel}.{name}", f"ALTER TABLE {rel} ADD CONSTRAINT {name} {d}",
                                {rel: "ACCESS EXCLUSIVE"}))
    for rel, name, d, ref in fks:
        # Validated in the same statement: NOT VALID + VALIDATE would add a
        # second pass over the locks for no less work.
        task = _post_task(f"foreign key {rel}.{name}", f"ALTER TABLE {rel} ADD CONSTRAINT {name} {d}",
                          {rel: "SHARE ROW EXCLUSIVE", ref: "SHARE ROW EXCLUSIVE"})
        # The check is one anti-join; with statistics the planner probes the key
        # index for a small child instead of hashing the whole parent.
        tasks.append(dataclasses.replace(
            task, after=task.after | {f"analyze {_bare(rel)}", f"analyze {_bare(ref)}"}))
    return _PostData(drop=drop, tasks=tasks)


def _bare(table: str) -> str:
    return table.rsplit(".", 1)[-1].strip('"')


def _post_task(name: str, text: str, locks: Mapping[str, str]) -> _Task:
    tables = sorted(locks)
    return _Task(
        name=name, text=text, locks=tuple(sorted(locks.items())),
        after=frozenset(f"load {_bare(t)}" for t in tables),
        priority=(1, -max(_LOAD_WEIGHT.get(_bare(t), 1.0) for t in tables)),
    )


def _load_tasks(steps: list[tuple[str, str]], tables: list[str], *, parallel: bool) -> list[_Task]:
    """One task per ``-- @step``, or per slice of a step marked ``-- @slices n`` when sessions run in parallel."""
    tasks = []
    for step, text in steps:
        if step in _SESSION_STEPS:
            continue
        if step in tables:
            marker = _SLICES.search(text)
            slices = int(marker.group(1)) if marker and parallel else 1
            for k in range(1, slices + 1):
                prefix = f"SELECT set_config('bascule.slice', '{k}/{slices}', false);\n"
                tasks.append(_Task(
                    name=f"load {step}" + (f".{k}" if slices > 1 else ""), text=prefix + text,
                    locks=((f"{SCHEMA}.{step}", "ROW EXCLUSIVE"),),
                    after=frozenset(f"load {t}" for t in _LOAD_AFTER.get(step, ())),
                    priority=(0, -_LOAD_WEIGHT.get(step, 1.0) / slices), step=step,
                ))
        else:
            # sequences: read what every load wrote.
            tasks.append(_Task(name=step, text=text, locks=(), after=frozenset({"load *"}),
                               priority=(0, 0.0), step=step))
    return tasks


def seed_data(conn: psycopg.Connection, spec: SeedSpec, progress: Progress | None = None) -> SeedResult:
    """Fill the empty ``clinic`` schema with ``spec``'s synthetic dataset, indexed and analysed.

    The load, the index builds, the foreign keys and ANALYZE run as tasks on
    ``_SESSIONS`` extra sessions opened with ``conn``'s parameters; when ``conn``
    holds a transaction open (so other sessions cannot see the schema) they all
    run on ``conn`` instead, one after the other.
    """
    report = progress or (lambda _msg: None)
    started = time.perf_counter()
    # Each block is its own transaction on an idle connection, and a savepoint
    # if the caller holds a transaction open.
    with conn.transaction():
        if conn.execute("SELECT EXISTS (SELECT FROM clinic.patients)").fetchone() != (False,):
            raise RuntimeError("clinic.patients is not empty; seed_data needs a freshly created schema")
        post = _collect_post_data(conn)
        tables = [t for (t,) in conn.execute(_TABLES_SQL, (SCHEMA,)).fetchall()]

    _timed(conn, report, "drop secondary indexes and foreign keys", ";\n".join(post.drop), count=len(post.drop))

    steps = split_steps(_read("seed.sql"))
    session_steps = [(s, t) for s, t in steps if s in _SESSION_STEPS]
    analyze = [
        _Task(name=f"analyze {t}", text=_ANALYZE_PREFIX.get(t, "") + f"ANALYZE {SCHEMA}.{t}",
              locks=((f"{SCHEMA}.{t}", "SHARE UPDATE EXCLUSIVE"),),
              after=frozenset({f"load {t}"}), priority=(1, -_LOAD_WEIGHT.get(t, 1.0)))
        for t in tables
    ]
    settings = {
        "bascule.patients": str(spec.patients), "bascule.seed": str(spec.seed),
        "bascule.reference_date": REFERENCE_DATE.isoformat(),
        "maintenance_work_mem": _SEED_MAINTENANCE_WORK_MEM,
        # Nothing here is worth an fsync per commit: a crash mid-seed means re-seeding anyway.
        "synchronous_commit": "off",
        # The seed already keeps one session per core busy; parallel workers for an
        # index build would only take the core from the other session.
        "max_parallel_maintenance_workers": "0",
    }
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        sessions = [_open_like(conn) for _ in range(_SESSIONS)]
        owned = True
    else:
        sessions, owned = [conn], False
    tasks = _load_tasks(steps, tables, parallel=len(sessions) > 1) + post.tasks + analyze
    try:
        for session in sessions:
            _configure(session, settings)
        _Scheduler(sessions, tasks, session_steps, spec, report).run()
    finally:
        if owned:
            for session in sessions:
                session.close()

    stats = table_stats(conn)
    return SeedResult(
        patients=spec.patients,
        rows=sum(t.rows for t in stats),
        seconds=time.perf_counter() - started,
        tables=stats,
    )


# Session settings that change how the seed's expressions evaluate (timestamptz
# arithmetic over days follows TimeZone), copied so every session writes the same rows.
_COPIED_SETTINGS = ("TimeZone", "DateStyle", "IntervalStyle", "extra_float_digits")


def _open_like(conn: psycopg.Connection) -> psycopg.Connection:
    params = conn.info.get_parameters()
    if conn.info.password:
        params["password"] = conn.info.password
    other = psycopg.connect(**params, autocommit=True)
    with other.transaction():
        for name in _COPIED_SETTINGS:
            other.execute("SELECT set_config(%s, %s, false)", (name, _show(conn, name)))
    return other


def _show(conn: psycopg.Connection, name: str) -> str:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    assert row is not None
    return str(row[0])


def _configure(conn: psycopg.Connection, settings: Mapping[str, str]) -> None:
    with conn.transaction():
        for name, value in settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))


class _Scheduler:
    """Run tasks on a few sessions: dependencies first, never two conflicting locks at once."""

    def __init__(self, sessions: list[psycopg.Connection], tasks: list[_Task],
                 session_steps: list[tuple[str, str]], spec: SeedSpec, report: Progress) -> None:
        self.sessions = sessions
        self.pending = sorted(tasks, key=lambda t: t.priority)
        self.session_steps = dict(session_steps)
        self.spec = spec
        self._report = report
        self.loads = {t.name for t in tasks if t.name.startswith("load ")}
        self.done: set[str] = set()
        self.running: list[_Task] = []
        self.error: BaseException | None = None
        self.cond = threading.Condition()
        self.timings: dict[str, float] = {}

    def report(self, line: str) -> None:
        with self.cond:
            self._report(line)

    def run(self) -> None:
        t0 = time.perf_counter()
        if len(self.sessions) == 1:
            self._work(self.sessions[0])
        else:
            threads = [threading.Thread(target=self._work, args=(s,), name=f"seed-{i}", daemon=True)
                       for i, s in enumerate(self.sessions)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self.error is not None:
            raise self.error
        kinds: dict[str, list[float]] = {}
        for name, seconds in self.timings.items():
            kinds.setdefault(name.split(" ", 1)[0], []).append(seconds)
        summary = ", ".join(f"{k} {len(v)} ({sum(v):.1f}s)" for k, v in kinds.items())
        self.report(f"all tasks on {len(self.sessions)} session(s) in {time.perf_counter() - t0:.1f}s: {summary}")

    def _ready(self, task: _Task) -> bool:
        for dep in task.after:
            if dep == "load *":
                if not self.loads <= self.done:
                    return False
            elif any(t.name == dep or t.name.startswith(dep + ".") for t in self.pending + self.running):
                return False
        for table, mode in task.locks:
            for other in self.running:
                for other_table, other_mode in other.locks:
                    if other_table == table and other_mode in _CONFLICTS[mode]:
                        return False
        return True

    def _next(self) -> _Task | None:
        with self.cond:
            while True:
                if self.error is not None or not self.pending:
                    return None
                for task in self.pending:
                    if self._ready(task):
                        self.pending.remove(task)
                        self.running.append(task)
                        return task
                self.cond.wait()

    def _work(self, session: psycopg.Connection) -> None:
        try:
            if "setup" in self.session_steps:
                _run(session, self.session_steps["setup"])
            while (task := self._next()) is not None:
                t0 = time.perf_counter()
                try:
                    rows = _run(session, task.text)
                except BaseException as exc:
                    with self.cond:
                        self.error = self.error or exc
                        self.cond.notify_all()
                    self._cancel_others(session)
                    return
                seconds = time.perf_counter() - t0
                if task.step in self.spec.expected_rows():
                    self.report(f"{task.name.removeprefix('load ')}: {rows} rows in {seconds:.1f}s")
                else:
                    self.report(f"{task.name}: done in {seconds:.1f}s")
                with self.cond:
                    self.timings[task.name] = seconds
                    self.running.remove(task)
                    self.done.add(task.name)
                    self.cond.notify_all()
            if "cleanup" in self.session_steps and self.error is None:
                _run(session, self.session_steps["cleanup"])
        except BaseException as exc:
            with self.cond:
                self.error = self.error or exc
                self.cond.notify_all()

    def _cancel_others(self, session: psycopg.Connection) -> None:
        for other in self.sessions:
            if other is not session:
                with contextlib.suppress(psycopg.Error):
                    other.cancel_safe()


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
