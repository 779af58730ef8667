"""The clinic simulator: the hospital application, played through the endpoint.

Several sessions (threads, one connection each) write at a target rate through
whatever the endpoint (PgBouncer) points at, and read charts:

- **inserts**: admit a patient (an encounter), prescribe, record an observation;
- **updates** (``--update-share``, default 0.30 of writes): move one of its
  encounters to another ward, change one of its prescriptions' dose and frequency,
  correct one of its observations' value;
- **deletes** (``--delete-share``, default 0.10): cancel one of its prescriptions,
  strike one of its observations entered in error.

A session updates and deletes only rows it inserted itself, one statement at a
time, so the last acknowledged state of every key is well defined: the last of its
session's acknowledged writes on it. (The audit log is append-only for the
application; encounters are never deleted, they are what the other rows refer to.)

Every write goes to a **ledger**, one line each, ``kind,table,key,outcome,digest``:

    insert,observations,10234,acked,5d41402abc4b2a76
    update,observations,10234,acked,7b52009b64fd0a2a
    delete,prescriptions,8812,acked,
    update,encounters,4410,indeterminate,1f0e3dad99908345
    insert,observations,,indeterminate,c4ca4238a0b92382

``outcome`` is ``acked`` (the database acknowledged it), ``indeterminate`` (the
connection died with the statement in flight: it may or may not have committed;
an insert's key is then unknown) or ``missing`` (acknowledged, but the row the
session wrote earlier was not there: no change). ``digest`` is the first 16 hex
digits of the md5 of the columns written (``STATE_COLUMNS``: the ward code, the
dose and frequency, the observation's value), all synthetic values the simulator
chose itself; :func:`verify` computes the same digest inside the database, so no
value is read back and none is kept, only keys (surrogate ids) and digests. After
an indeterminate write a session never touches that row again, so an
indeterminate write is always its key's last.

:func:`verify` looks for the last acknowledged state of every key on the database
``dsn`` reaches (the endpoint's, after the night): an insert's or update's row
present with the digest written, a deleted row absent. A key whose last write is
indeterminate may be in either state. A key in neither counts against the kind of
its last acknowledged write: ``lost`` (the bench's ``lost_writes``: an
acknowledged insert missing or not as written), ``lost_updates``,
``resurrected_deletes``. Indeterminate writes are counted in ``indeterminate``,
never as acknowledged, never as lost.

Writes refused during the freeze are expected: they are classified (permission
denied, login refused, connection refused, terminated, paused timeout, read only)
and counted, not treated as failures; they change nothing and are not ledgered.

Keys come from the tables' identity sequences, as the real application's do: on
the target they are safe only once the cutover's fix-up has advanced the
sequences past the source's values, which is exactly what that step is for.

CLI (a background process for tests and benches; SIGTERM flushes and stops)::

    BASCULE_SIM_DSN='host=... port=... dbname=clinic user=clinic_app password=...' \\
    python -m bascule_lab.simulator --seconds 30 --sessions 4 --rate 200 --ledger /tmp/ledger.csv \\
        --update-share 0.3 --delete-share 0.1

The DSN may also be given with ``--dsn`` (visible in ``ps``: prefer the variable).
The last line printed is ``acked=<n> inserts=<n> updates=<n> deletes=<n> refused=<n> indeterminate=<n>
missing=<n> errors=<n> reads=<n> seconds=<s> write_rate=<w/s>``.

A report asks the running simulator for a **check** (:func:`report_writes`): it
holds its sessions between two writes, verifies its ledger so far against the
endpoint, and lets them go on (a fraction of a second).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

SCHEMA = "clinic"
# table -> primary key column; the ledger names rows by these only.
WRITE_TABLES = {"encounters": "encounter_id", "prescriptions": "prescription_id", "observations": "observation_id"}
# The columns the simulator writes and later changes, per table; a row's state is their digest.
STATE_COLUMNS = {"encounters": ("ward",), "prescriptions": ("dose_mg", "frequency"), "observations": ("value_num",)}
DELETABLE = ("prescriptions", "observations")
TABLE_WEIGHTS = {"encounters": 3, "prescriptions": 3, "observations": 4}
KINDS = ("insert", "update", "delete")
OUTCOMES = ("acked", "indeterminate", "missing")
DEFAULT_UPDATE_SHARE = 0.30
DEFAULT_DELETE_SHARE = 0.10
DOSES = ("5.00", "10.00", "12.50", "20.00", "25.00", "40.00", "50.00", "80.00")
FREQUENCIES = ("daily", "bid", "tid", "qid", "prn")
DSN_ENV = "BASCULE_SIM_DSN"
STATS_SUFFIX = ".stats.json"
CHECK_REQUEST_SUFFIX = ".check-request"
CHECK_RESULT_SUFFIX = ".check.json"


class Refusal(enum.StrEnum):
    PERMISSION_DENIED = "permission_denied"
    LOGIN_REFUSED = "login_refused"
    CONNECTION_REFUSED = "connection_refused"
    TERMINATED = "terminated"
    PAUSED_TIMEOUT = "paused_timeout"
    READ_ONLY = "read_only"


def classify(exc: BaseException) -> Refusal | None:
    """Which expected refusal ``exc`` is (None: an unexpected error). Reads SQLSTATE and
    PgBouncer's fixed phrases; the message itself is never kept."""
    state = getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    text = str(exc).lower()
    if state == "42501" or "permission denied" in text:
        return Refusal.PERMISSION_DENIED
    if state == "25006" or "read-only transaction" in text:
        return Refusal.READ_ONLY
    if "query_wait_timeout" in text or "pause" in text:
        return Refusal.PAUSED_TIMEOUT
    if state in ("28000", "28P01") or "not permitted to log in" in text or "server login has been failing" in text \
            or "too many connections for role" in text:
        return Refusal.LOGIN_REFUSED
    if state in ("57P01", "57P02", "57P03") or "terminating connection" in text or "server conn crashed" in text \
            or "server closed the connection" in text or "connection is closed" in text \
            or "consuming input failed" in text or "connection is lost" in text:
        return Refusal.TERMINATED
    if "connection refused" in text or "could not connect" in text or "connection failed" in text \
            or "timeout expired" in text or "no more connections allowed" in text:
        return Refusal.CONNECTION_REFUSED
    return None


def digest(values: Sequence[str]) -> str:
    """The digest of the values written to a row's ``STATE_COLUMNS``, as their text in PostgreSQL."""
    return hashlib.md5("|".join(values).encode(), usedforsecurity=False).hexdigest()[:16]


def state_sql(table: str) -> str:
    """The same digest computed inside the database, so no value leaves it."""
    cols = ", ".join(f"{c}::text" for c in STATE_COLUMNS[table])
    return f"left(md5(concat_ws('|', {cols})), 16)"


@dataclasses.dataclass
class SimulatorStats:
    acked: int = 0  # acknowledged writes, every kind
    inserts: int = 0  # acknowledged, per kind
    updates: int = 0
    deletes: int = 0
    refused: int = 0
    refused_by: dict[str, int] = dataclasses.field(default_factory=dict)
    indeterminate: int = 0
    missing: int = 0  # updates and deletes acknowledged on 0 rows: the session's own row was gone
    errors: int = 0
    errors_by: dict[str, int] = dataclasses.field(default_factory=dict)
    reads: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    sessions: int = 0
    target_rate: float = 0.0
    update_share: float = DEFAULT_UPDATE_SHARE
    delete_share: float = DEFAULT_DELETE_SHARE
    started_at: str | None = None  # wall clock (UTC, ISO), to place the timeline against a run's events
    # (seconds since start, acked, inserts, updates, deletes so far), about once a second: rates before the freeze.
    # Older stats files have (seconds, acked) samples.
    timeline: list[tuple[float, ...]] = dataclasses.field(default_factory=list)

    @property
    def write_rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def _before(self, moment: datetime) -> list[Sequence[float]]:
        cutoff = (moment - datetime.fromisoformat(self.started_at or "")).total_seconds()
        return [s for s in self.timeline if 0 < s[0] <= cutoff]

    def write_rate_before(self, moment: datetime) -> float | None:
        """Acknowledged writes per second from the start to the last sample before ``moment`` (aware)."""
        if self.started_at is None:
            return None
        before = self._before(moment)
        return before[-1][1] / before[-1][0] if before else None

    def rates_before(self, moment: datetime, *, window_s: float | None = None) -> dict[str, float] | None:
        """Acknowledged writes per second of each kind up to the last sample before ``moment`` (aware):
        from the start, or over the ``window_s`` seconds before that sample (from the start if the run was
        shorter). None without samples of each kind before ``moment``."""
        if self.started_at is None:
            return None
        before = [s for s in self._before(moment) if len(s) >= 5]
        if not before:
            return None
        last = before[-1]
        base: Sequence[float] = (0.0, 0, 0, 0, 0)
        if window_s is not None:
            earlier = [s for s in before if s[0] <= last[0] - window_s]
            if earlier:
                base = earlier[-1]
        span = last[0] - base[0]
        if span <= 0:
            return None
        return {kind: (last[i] - base[i]) / span for i, kind in enumerate(KINDS, start=2)}

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "write_rate": round(self.write_rate, 1)}

    def line(self) -> str:
        return (f"acked={self.acked} inserts={self.inserts} updates={self.updates} deletes={self.deletes} "
                f"refused={self.refused} indeterminate={self.indeterminate} missing={self.missing} "
                f"errors={self.errors} reads={self.reads} seconds={self.seconds:.1f} "
                f"write_rate={self.write_rate:.1f}")


@dataclasses.dataclass(frozen=True)
class LedgerEvent:
    """One write as the ledger keeps it: never a value, a digest of the simulator's own values at most."""

    kind: str  # insert | update | delete
    table: str
    key: int | None  # None: an indeterminate insert (its key never came back)
    outcome: str  # acked | indeterminate | missing
    digest: str | None = None  # of the values written (insert, update); None for a delete

    def line(self) -> str:
        key = "" if self.key is None else str(int(self.key))
        return f"{self.kind},{self.table},{key},{self.outcome},{self.digest or ''}\n"


def parse_line(line: str, where: str = "ledger") -> LedgerEvent:
    """One ledger line; the older ``table,key`` lines read as acknowledged inserts without a digest."""
    parts = line.split(",")
    bad = ValueError(f"{where}: not a ledger line (kind,table,key,outcome,digest)")
    if len(parts) == 2:
        table, key = parts
        if table not in WRITE_TABLES or not key.isdigit():
            raise bad
        return LedgerEvent("insert", table, int(key), "acked")
    if len(parts) != 5:
        raise bad
    kind, table, key, outcome, dig = parts
    if kind not in KINDS or table not in WRITE_TABLES or outcome not in OUTCOMES:
        raise bad
    if not (key.isdigit() or (key == "" and kind == "insert" and outcome == "indeterminate")):
        raise bad
    if (kind == "delete") != (dig == "") or (dig and (len(dig) != 16 or dig.strip("0123456789abcdef"))):
        raise bad
    return LedgerEvent(kind, table, int(key) if key else None, outcome, dig or None)


class Ledger:
    """Append-only ledger lines; flushed to disk by the simulator's main loop.

    Lines are appended in the order the sessions record them, so the lines of one key (one session's)
    are in that session's order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def add(self, event: LedgerEvent) -> None:
        with self._lock:
            self._pending.append(event.line())

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
        if lines:
            with self.path.open("a") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())


def read_events(path: Path) -> list[LedgerEvent]:
    return [parse_line(line, f"{path}:{n}") for n, line in enumerate(path.read_text().splitlines(), 1) if line]


def read_ledger(path: Path) -> dict[str, list[int]]:
    """The keys of the acknowledged writes per table, one per write (a row updated twice is there three times)."""
    out: dict[str, list[int]] = {t: [] for t in WRITE_TABLES}
    for event in read_events(path):
        if event.outcome == "acked" and event.key is not None:
            out[event.table].append(event.key)
    return out


class KeyBook:
    """The rows one session inserted and may still change: key -> the values it last wrote there.

    Bounded per table (a random row is forgotten when full: it is then never touched again). A row is
    retired after a delete, an indeterminate write or a ``missing`` one: its session never writes it again.
    """

    def __init__(self, cap: int = 1000) -> None:
        self.cap = cap
        self._keys: dict[str, list[int]] = {t: [] for t in WRITE_TABLES}
        self._index: dict[str, dict[int, int]] = {t: {} for t in WRITE_TABLES}
        self._values: dict[str, dict[int, tuple[str, ...]]] = {t: {} for t in WRITE_TABLES}

    def count(self, table: str) -> int:
        return len(self._keys[table])

    def values(self, table: str, key: int) -> tuple[str, ...] | None:
        return self._values[table].get(key)

    def add(self, table: str, key: int, values: tuple[str, ...], rng: random.Random) -> None:
        if key in self._index[table]:
            self._values[table][key] = values
            return
        if self.cap and len(self._keys[table]) >= self.cap:
            self.retire(table, rng.choice(self._keys[table]))
        self._index[table][key] = len(self._keys[table])
        self._keys[table].append(key)
        self._values[table][key] = values

    def set(self, table: str, key: int, values: tuple[str, ...]) -> None:
        if key in self._index[table]:
            self._values[table][key] = values

    def retire(self, table: str, key: int) -> None:
        i = self._index[table].pop(key, None)
        if i is None:
            return
        last = self._keys[table].pop()
        if last != key:
            self._keys[table][i] = last
            self._index[table][last] = i
        del self._values[table][key]

    def pick(self, table: str, rng: random.Random) -> tuple[int, tuple[str, ...]]:
        key = rng.choice(self._keys[table])
        return key, self._values[table][key]


@dataclasses.dataclass(frozen=True)
class Write:
    """A write a session is about to make: the values are the simulator's own (synthetic, non-identifying)."""

    kind: str
    table: str
    key: int | None  # None for an insert until the database returns it
    values: tuple[str, ...] = ()

    def event(self, outcome: str, key: int | None = None) -> LedgerEvent:
        return LedgerEvent(self.kind, self.table, self.key if key is None else key, outcome,
                           None if self.kind == "delete" else digest(self.values))


def new_values(table: str, rng: random.Random, old: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Values for a row's ``STATE_COLUMNS`` as PostgreSQL prints them, never equal to ``old``."""
    while True:
        if table == "encounters":
            values: tuple[str, ...] = (f"SIM-{rng.randint(1, 40)}",)
        elif table == "prescriptions":
            values = (rng.choice(DOSES), rng.choice(FREQUENCIES))
        else:
            n = rng.randint(5000, 12000)
            values = (f"{n // 100}.{n % 100:02d}",)
        if values != old:
            return values


def plan_write(book: KeyBook, rng: random.Random, *, update_share: float, delete_share: float) -> Write:
    """The next write of a session: an update or a delete of one of its own rows, by the shares, else an insert
    (also when it has no row of a kind to change yet)."""
    r = rng.random()
    if r < update_share:
        tables = [t for t in WRITE_TABLES if book.count(t)]
        if tables:
            table = rng.choices(tables, weights=[TABLE_WEIGHTS[t] for t in tables])[0]
            key, old = book.pick(table, rng)
            return Write("update", table, key, new_values(table, rng, old))
    elif r < update_share + delete_share:
        tables = [t for t in DELETABLE if book.count(t)]
        if tables:
            table = rng.choices(tables, weights=[TABLE_WEIGHTS[t] for t in tables])[0]
            key, _ = book.pick(table, rng)
            return Write("delete", table, key)
    table = rng.choices(list(TABLE_WEIGHTS), weights=list(TABLE_WEIGHTS.values()))[0]
    return Write("insert", table, None, ("SIM",) if table == "encounters" else new_values(table, rng))


class _Session(threading.Thread):
    def __init__(self, sim: ClinicSimulator, index: int) -> None:
        super().__init__(name=f"clinic-sim-{index}", daemon=True)
        self.sim = sim
        self.rng = random.Random(sim.seed * 1000 + index)
        self.conn: psycopg.Connection | None = None
        self.backoff = 0.05
        self.encounters: list[tuple[int, int]] = []  # (encounter_id, patient_id), sampled then own
        self.book = KeyBook()
        self.max_patient = 0
        self.staff: tuple[int, int] = (1, 1)
        self.hospitals: tuple[int, int] = (1, 1)

    # ------------------------------------------------------------ plumbing
    def _connect(self) -> psycopg.Connection:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        # prepare_threshold=None: PgBouncer transaction pooling has no server-side prepared statements.
        self.conn = psycopg.connect(self.sim.dsn, autocommit=True, connect_timeout=3, prepare_threshold=None,
                                    application_name="clinic-simulator")
        self.sim._count("reconnects")
        if not self.encounters:
            self._load_reference_data(self.conn)
        return self.conn

    def _load_reference_data(self, conn: psycopg.Connection) -> None:
        s = SCHEMA
        (self.max_patient,) = conn.execute(f"SELECT max(patient_id) FROM {s}.patients").fetchone()
        self.staff = conn.execute(f"SELECT min(staff_id), max(staff_id) FROM {s}.staff").fetchone()
        self.hospitals = conn.execute(f"SELECT min(hospital_id), max(hospital_id) FROM {s}.hospitals").fetchone()
        self.encounters = [tuple(r) for r in conn.execute(
            f"SELECT encounter_id, patient_id FROM {s}.encounters WHERE mod(encounter_id, 97) = 0 LIMIT 500")]

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = None

    # ---------------------------------------------------------- operations
    def _insert(self, conn: psycopg.Connection, w: Write) -> int:
        s = SCHEMA
        if w.table == "encounters":
            patient = self.rng.randint(1, self.max_patient)
            (key,) = conn.execute(
                f"INSERT INTO {s}.encounters (patient_id, hospital_id, attending_staff_id, encounter_type, ward,"
                " admitted_at) VALUES (%s, %s, %s, %s, %s, now()) RETURNING encounter_id",
                (patient, self.rng.randint(*self.hospitals), self.rng.randint(*self.staff),
                 self.rng.choice(("emergency", "inpatient", "outpatient")), w.values[0])).fetchone()
            self.encounters.append((key, patient))
            if len(self.encounters) > 2000:
                del self.encounters[:1000]
        elif w.table == "prescriptions":
            encounter, patient = self.rng.choice(self.encounters)
            (key,) = conn.execute(
                f"INSERT INTO {s}.prescriptions (encounter_id, patient_id, prescriber_id, drug_code, drug_name,"
                " dose_mg, route, frequency, prescribed_at) VALUES (%s, %s, %s, 'SIM001', 'simdrug', %s, 'oral',"
                " %s, now()) RETURNING prescription_id",
                (encounter, patient, self.rng.randint(*self.staff), Decimal(w.values[0]), w.values[1])).fetchone()
        else:
            encounter, _ = self.rng.choice(self.encounters)
            (key,) = conn.execute(
                f"INSERT INTO {s}.observations (encounter_id, code, value_num, unit, observed_at)"
                " VALUES (%s, 'SIM-HR', %s, 'bpm', now()) RETURNING observation_id",
                (encounter, Decimal(w.values[0]))).fetchone()
        return int(key)

    def _change(self, conn: psycopg.Connection, w: Write) -> int:
        """An update or a delete of one of this session's rows; the number of rows it changed."""
        s, pk = SCHEMA, WRITE_TABLES[w.table]
        if w.kind == "delete":
            return conn.execute(f"DELETE FROM {s}.{w.table} WHERE {pk} = %s", (w.key,)).rowcount
        if w.table == "encounters":  # a transfer to another ward
            return conn.execute(f"UPDATE {s}.encounters SET ward = %s WHERE {pk} = %s",
                                (w.values[0], w.key)).rowcount
        if w.table == "prescriptions":  # a new dose and frequency
            return conn.execute(f"UPDATE {s}.prescriptions SET dose_mg = %s, frequency = %s WHERE {pk} = %s",
                                (Decimal(w.values[0]), w.values[1], w.key)).rowcount
        return conn.execute(f"UPDATE {s}.observations SET value_num = %s WHERE {pk} = %s",  # a correction
                            (Decimal(w.values[0]), w.key)).rowcount

    def _read_chart(self, conn: psycopg.Connection) -> None:
        patient = self.rng.randint(1, self.max_patient)
        conn.execute(
            f"SELECT (SELECT count(*) FROM {SCHEMA}.encounters WHERE patient_id = %(p)s),"
            f" (SELECT count(*) FROM {SCHEMA}.prescriptions WHERE patient_id = %(p)s)", {"p": patient}).fetchone()

    # ---------------------------------------------------------------- loop
    def run(self) -> None:
        sim = self.sim
        interval = sim.sessions / sim.rate if sim.rate > 0 else 0.0
        next_at = time.monotonic() + self.rng.random() * interval
        writes = 0
        while not sim.stopping.is_set():
            if interval:
                delay = next_at - time.monotonic()
                if delay > 0 and sim.stopping.wait(delay):
                    break
                # Catch-up is capped: after an outage the rate resumes, it does not burst.
                next_at = max(next_at + interval, time.monotonic() - 1.0)
            write = plan_write(self.book, self.rng, update_share=sim.update_share, delete_share=sim.delete_share)
            read = sim.read_every > 0 and writes % sim.read_every == 0
            writes += 1
            if not sim._enter():
                break
            try:
                self._attempt(write, read)
            finally:
                sim._leave()

    def _attempt(self, write: Write, read: bool) -> None:
        sim = self.sim
        in_flight = False
        try:
            conn = self._connect()
            if read:
                self._read_chart(conn)
                sim._count("reads")
            in_flight = True
            result = self._insert(conn, write) if write.kind == "insert" else self._change(conn, write)
        except psycopg.Error as exc:
            kind = classify(exc)
            lost_conn = self.conn is None or self.conn.closed or isinstance(exc, psycopg.OperationalError)
            if in_flight and kind in (Refusal.TERMINATED, None) and lost_conn:
                # The statement was sent; the commit may or may not have happened. Its row is never
                # written again, so this stays its key's last write and either state is acceptable.
                if write.key is not None:
                    self.book.retire(write.table, write.key)
                sim._record(write.event("indeterminate"))
            elif kind is None:
                sim._error(type(exc).__name__)
            else:
                sim._refuse(kind)
            if lost_conn:
                self._drop()
                sim.stopping.wait(self.backoff)
                self.backoff = min(self.backoff * 2, 0.5)
            return
        self.backoff = 0.05
        if write.kind == "insert":
            self.book.add(write.table, result, write.values, self.rng)
            sim._record(write.event("acked", key=result))
        elif result == 0:
            # Acknowledged, yet the row this session wrote was not there: nothing changed.
            self.book.retire(write.table, write.key)  # type: ignore[arg-type]
            sim._record(write.event("missing"))
        else:
            if write.kind == "delete":
                self.book.retire(write.table, write.key)  # type: ignore[arg-type]
            else:
                self.book.set(write.table, write.key, write.values)  # type: ignore[arg-type]
            sim._record(write.event("acked"))


class ClinicSimulator:
    """Start, run and stop the simulated application; thread-safe counters and ledger."""

    def __init__(self, *, dsn: str, ledger: Path, sessions: int = 4, rate: float = 100.0, read_every: int = 4,
                 seed: int = 7, update_share: float = DEFAULT_UPDATE_SHARE,
                 delete_share: float = DEFAULT_DELETE_SHARE) -> None:
        if sessions < 1:
            raise ValueError(f"sessions must be >= 1 (got {sessions})")
        if rate < 0:
            raise ValueError(f"rate must be >= 0 writes/s, 0 meaning as fast as possible (got {rate})")
        if update_share < 0 or delete_share < 0 or update_share + delete_share >= 1:
            raise ValueError("update and delete shares must be >= 0 and leave room for inserts (sum < 1; got "
                             f"{update_share} and {delete_share})")
        self.dsn = dsn
        self.sessions = sessions
        self.rate = rate
        self.read_every = read_every
        self.seed = seed
        self.update_share = update_share
        self.delete_share = delete_share
        self.ledger = Ledger(ledger)
        self.stats_path = stats_path_of(ledger)
        self.check_request = ledger.with_name(ledger.name + CHECK_REQUEST_SUFFIX)
        self.check_result = ledger.with_name(ledger.name + CHECK_RESULT_SUFFIX)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._stats = SimulatorStats(sessions=sessions, target_rate=rate, update_share=update_share,
                                     delete_share=delete_share)
        self._threads: list[_Session] = []
        self._started = 0.0
        self._stopped_at = 0.0
        self._flusher: threading.Thread | None = None
        # A check holds the sessions between two writes: _held stops new ones, _busy counts those in flight.
        self._gate = threading.Condition()
        self._held = False
        self._busy = 0

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + 1)

    def _record(self, event: LedgerEvent) -> None:
        """Ledger ``event`` and count it (under one lock: the ledger and the counters agree)."""
        with self._lock:
            self.ledger.add(event)
            if event.outcome == "acked":
                self._stats.acked += 1
                name = {"insert": "inserts", "update": "updates", "delete": "deletes"}[event.kind]
                setattr(self._stats, name, getattr(self._stats, name) + 1)
            elif event.outcome == "indeterminate":
                self._stats.indeterminate += 1
            else:
                self._stats.missing += 1

    def _refuse(self, kind: Refusal) -> None:
        with self._lock:
            self._stats.refused += 1
            self._stats.refused_by[kind.value] = self._stats.refused_by.get(kind.value, 0) + 1

    def _error(self, name: str) -> None:
        with self._lock:
            self._stats.errors += 1
            self._stats.errors_by[name] = self._stats.errors_by.get(name, 0) + 1

    # -------------------------------------------------------------- checks
    def _enter(self) -> bool:
        """A session about to write: waits while a check holds the sessions. False when stopping."""
        with self._gate:
            while self._held and not self.stopping.is_set():
                self._gate.wait(0.1)
            if self.stopping.is_set():
                return False
            self._busy += 1
            return True

    def _leave(self) -> None:
        with self._gate:
            self._busy -= 1
            self._gate.notify_all()

    def check(self, *, hold_timeout: float = 5.0) -> dict[str, Any]:
        """Verify the ledger so far against the endpoint, every session held between two writes meanwhile.

        Held, no session has a write in flight and every write it made is in the ledger, so the database
        holds exactly the states the ledger allows. Returns counts and keys, never a value.
        """
        started = time.monotonic()
        with self._gate:
            self._held = True
        try:
            with self._gate:
                if not self._gate.wait_for(lambda: self._busy == 0, timeout=hold_timeout):
                    return {"check": "busy: a write stayed in flight", **_UNCHECKED}
            self.ledger.flush()
            result = verify(self.ledger.path, self.dsn)
        except Exception as exc:  # a check must never stop the application
            return {"check": f"failed: {type(exc).__name__}", **_UNCHECKED}
        finally:
            with self._gate:
                self._held = False
                self._gate.notify_all()
        return {"check": "done", "checked_at": datetime.now(UTC).isoformat(),
                "held_s": round(time.monotonic() - started, 3), **result.summary()}

    def _serve_check_request(self) -> None:
        try:
            nonce = self.check_request.read_text().strip()
        except OSError:
            return
        answer = {**self.check(), "request": nonce}
        tmp = self.check_result.with_name(self.check_result.name + ".tmp")
        tmp.write_text(json.dumps(answer))
        tmp.replace(self.check_result)
        self.check_request.unlink(missing_ok=True)

    # ----------------------------------------------------------- lifecycle
    def stats(self) -> SimulatorStats:
        with self._lock:
            snap = dataclasses.replace(self._stats, refused_by=dict(self._stats.refused_by),
                                       errors_by=dict(self._stats.errors_by), timeline=list(self._stats.timeline))
        end = self._stopped_at or time.monotonic()
        snap.seconds = (end - self._started) if self._started else 0.0
        return snap

    def start(self) -> None:
        self._started = time.monotonic()
        self._stats.started_at = datetime.now(UTC).isoformat()
        self._threads = [_Session(self, i) for i in range(self.sessions)]
        for t in self._threads:
            t.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="clinic-sim-ledger", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        ticks = 0
        while not self.stopping.wait(0.5):
            ticks += 1
            if ticks % 2 == 0:
                with self._lock:
                    st = self._stats
                    st.timeline.append((round(time.monotonic() - self._started, 2), st.acked, st.inserts,
                                        st.updates, st.deletes))
            self.ledger.flush()
            self._write_stats(self.stats())
            if self.check_request.exists():
                self._serve_check_request()

    def _write_stats(self, stats: SimulatorStats) -> None:
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats.as_dict()))
        tmp.replace(self.stats_path)

    def stop(self) -> SimulatorStats:
        """Stop every session, flush the ledger and the stats file; returns the final stats."""
        self._stopped_at = time.monotonic()
        self.stopping.set()
        with self._gate:
            self._gate.notify_all()
        for t in self._threads:
            t.join(timeout=10)
            t._drop()
        if self._flusher is not None:
            self._flusher.join(timeout=5)
        stats = self.stats()  # after the joins: a write acknowledged while stopping is counted and ledgered
        self.ledger.flush()
        self._write_stats(stats)
        return stats

    def run(self, seconds: float) -> SimulatorStats:
        self.start()
        self.stopping.wait(seconds)
        return self.stop()


_UNCHECKED: dict[str, Any] = {"lost_writes": None, "lost_updates": None, "resurrected_deletes": None}
_KEY_LISTS = 20  # keys listed per table and finding, at most (surrogate ids; never a value)


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify` found. Every key with an acknowledged write is in exactly one of ``present``,
    ``absent``, ``lost``, ``lost_updates``, ``resurrected_deletes``."""

    acked: int  # acknowledged writes in the ledger, every kind
    inserts: int
    updates: int
    deletes: int
    keys: int  # rows with at least one acknowledged write
    present: int  # rows that must be there (last acknowledged: insert, update) and are, as written
    absent: int  # rows that must not be there (last acknowledged: delete) and are not
    lost: int  # lost writes: last acknowledged an insert, the row missing or not as written
    lost_updates: int  # last acknowledged an update, the row missing or not as written
    resurrected_deletes: int  # last acknowledged a delete, the row there
    indeterminate: int  # writes whose acknowledgement never came (judged leniently, never lost)
    refused: int
    lost_keys: dict[str, list[int]]  # first few keys per table (keys, never values)
    lost_update_keys: dict[str, list[int]]
    resurrected_keys: dict[str, list[int]]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> dict[str, Any]:
        """The figures for a report: counts, and the keys of findings only when there are some."""
        out = {"checked_writes": self.acked, "checked_keys": self.keys, "lost_writes": self.lost,
               "lost_updates": self.lost_updates, "resurrected_deletes": self.resurrected_deletes,
               "checked_indeterminate": self.indeterminate}
        for name in ("lost_keys", "lost_update_keys", "resurrected_keys"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out


def _state(kind: str, dig: str | None) -> tuple[bool, str | None]:
    """The state a write leaves its row in: (present, digest)."""
    return (False, None) if kind == "delete" else (True, dig)


def _holds(expected: tuple[bool, str | None], observed: str | None) -> bool:
    present, dig = expected
    if not present:
        return observed is None
    return observed is not None and (dig is None or dig == observed)  # no digest: an old ledger line


def judge(events: Iterable[LedgerEvent], observed: Mapping[tuple[str, int], str], *,
          refused: int = 0) -> VerifyResult:
    """Each key's last acknowledged state against what the database holds.

    ``observed`` maps (table, key) to the digest of the row's ``STATE_COLUMNS``; a key not in it is absent.
    A key whose last write is indeterminate may hold either its last acknowledged state or that write's.
    A key in neither counts against the kind of its last acknowledged write.
    """
    counts = dict.fromkeys(KINDS, 0)
    indeterminate = 0
    last_acked: dict[tuple[str, int], LedgerEvent] = {}
    pending: dict[tuple[str, int], LedgerEvent] = {}  # an indeterminate write after the last acknowledged one
    for e in events:
        if e.outcome == "indeterminate":
            indeterminate += 1
            if e.key is not None:
                pending[(e.table, e.key)] = e
        elif e.outcome == "acked" and e.key is not None:
            counts[e.kind] += 1
            last_acked[(e.table, e.key)] = e
            pending.pop((e.table, e.key), None)
    found = {"present": 0, "absent": 0, "insert": 0, "update": 0, "delete": 0}
    listed: dict[str, dict[str, list[int]]] = {"insert": {}, "update": {}, "delete": {}}
    for ident in sorted(last_acked):
        e = last_acked[ident]
        seen = observed.get(ident)
        alt = pending.get(ident)
        if _holds(_state(e.kind, e.digest), seen) or (alt is not None and _holds(_state(alt.kind, alt.digest),
                                                                                   seen)):
            found["present" if seen is not None else "absent"] += 1
            continue
        found[e.kind] += 1
        keys = listed[e.kind].setdefault(e.table, [])
        if len(keys) < _KEY_LISTS:
            keys.append(e.key)  # type: ignore[arg-type]
    return VerifyResult(
        acked=sum(counts.values()), inserts=counts["insert"], updates=counts["update"], deletes=counts["delete"],
        keys=len(last_acked), present=found["present"], absent=found["absent"], lost=found["insert"],
        lost_updates=found["update"], resurrected_deletes=found["delete"], indeterminate=indeterminate,
        refused=int(refused), lost_keys=listed["insert"], lost_update_keys=listed["update"],
        resurrected_keys=listed["delete"])


def verify(ledger: Path, dsn: str, *, chunk: int = 10_000) -> VerifyResult:
    """Check the last acknowledged state of every key of the ledger on the database ``dsn`` reaches.

    Run it once the writes have stopped (or from :meth:`ClinicSimulator.check`, which holds them): a
    write made while it reads would look like a difference.
    """
    events = read_events(ledger)
    stats_path = stats_path_of(ledger)
    refused = json.loads(stats_path.read_text())["refused"] if stats_path.exists() else 0
    keys: dict[str, set[int]] = {}
    for e in events:
        if e.key is not None:
            keys.setdefault(e.table, set()).add(e.key)
    observed: dict[tuple[str, int], str] = {}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        for table, wanted in keys.items():
            pk = WRITE_TABLES[table]
            unique = sorted(wanted)
            for i in range(0, len(unique), chunk):
                part = unique[i:i + chunk]
                for key, dig in conn.execute(
                        f"SELECT {pk}, {state_sql(table)} FROM {SCHEMA}.{table} WHERE {pk} = ANY(%s)", (part,)):
                    observed[(table, int(key))] = dig
    return judge(events, observed, refused=int(refused))


# ------------------------------------------------------------ background use
def stats_path_of(ledger: Path) -> Path:
    return ledger.with_name(ledger.name + STATS_SUFFIX)


def start_background(*, dsn: str, ledger: Path, seconds: float = 0, sessions: int = 4, rate: float = 100.0,
                     update_share: float = DEFAULT_UPDATE_SHARE, delete_share: float = DEFAULT_DELETE_SHARE,
                     log: Path | None = None, python: str = sys.executable) -> subprocess.Popen[bytes]:
    """Run the simulator as a child process (stop it with :func:`stop_background`)."""
    argv = [python, "-m", "bascule_lab.simulator", "--seconds", str(seconds), "--sessions", str(sessions),
            "--rate", str(rate), "--update-share", str(update_share), "--delete-share", str(delete_share),
            "--ledger", str(ledger)]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, env={**os.environ, DSN_ENV: dsn}, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def _rounded(rates: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if rates is None else {k: round(v, 1) for k, v in rates.items()}


def stats_for_report(path: Path, frozen_at: str | None) -> dict[str, Any] | None:
    """The simulator's counters for a cutover or fallback report: its rates before the freeze (all writes,
    and per kind from the start and over the last 60 s), no timeline."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data.pop("write_rate", None)
    stats = SimulatorStats(**data)
    out = stats.as_dict()
    out.pop("timeline", None)
    frozen = datetime.fromisoformat(frozen_at) if frozen_at else None
    before = stats.write_rate_before(frozen) if frozen else None
    out["write_rate_before_freeze"] = None if before is None else round(before, 1)
    out["write_rates_before_freeze"] = _rounded(stats.rates_before(frozen)) if frozen else None
    out["write_rates_60s_before_freeze"] = _rounded(stats.rates_before(frozen, window_s=60)) if frozen else None
    return out


def request_check(ledger: Path, *, timeout: float = 15.0, alive_s: float = 5.0) -> dict[str, Any]:
    """Ask the simulator writing ``ledger`` to check it now (:meth:`ClinicSimulator.check`); its answer.

    A simulator is running if its stats file changed in the last ``alive_s`` seconds (it is rewritten every
    0.5 s); otherwise, or without an answer within ``timeout``, the answer says why there is none.
    """
    stats = stats_path_of(ledger)
    try:
        age = time.time() - stats.stat().st_mtime
    except OSError:
        return {"check": "no simulator stats", **_UNCHECKED}
    if age > alive_s:
        return {"check": "simulator not running", **_UNCHECKED}
    request = ledger.with_name(ledger.name + CHECK_REQUEST_SUFFIX)
    result = ledger.with_name(ledger.name + CHECK_RESULT_SUFFIX)
    nonce = uuid.uuid4().hex
    tmp = request.with_name(request.name + ".tmp")
    tmp.write_text(nonce)
    tmp.replace(request)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            answer = json.loads(result.read_text())
            if answer.get("request") == nonce:
                answer.pop("request")
                return answer
        time.sleep(0.1)
    request.unlink(missing_ok=True)
    return {"check": "no answer from the simulator", **_UNCHECKED}


SIMULATOR_DIR_ENV = "BASCULE_LAB_SIMULATOR_DIR"


def _run_file(directory: Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return directory / f"{safe}.stats.json"


def attach_to_run(stats_dir: Path, run_id: str, ledger: Path) -> None:
    """Tell the report contributor which simulator ledger belongs to ``run_id`` (a link in the stack's folder)."""
    stats_dir.mkdir(parents=True, exist_ok=True)
    link = _run_file(stats_dir, run_id)
    link.unlink(missing_ok=True)
    link.symlink_to(stats_path_of(ledger).resolve())


def report_writes(facts: Any) -> dict[str, Any] | None:
    """The ``writes`` section of a run's report (entry point ``bascule.report_sections``).

    The lab's Airflow names the folder in ``BASCULE_LAB_SIMULATOR_DIR``; the lab links each
    run's simulator stats there before it triggers the run. Elsewhere: nothing to say.
    The section has the simulator's counters (acknowledged writes of each kind, refused,
    indeterminate, rates before the freeze) and a check of its ledger so far against the
    endpoint, made by the running simulator when asked (``lost_writes``, ``lost_updates``,
    ``resurrected_deletes``; None, with the reason in ``check``, when it could not be made).
    """
    directory = os.environ.get(SIMULATOR_DIR_ENV)
    if not directory:
        return None
    link = _run_file(Path(directory), facts.run_id)
    if not link.exists():
        return None
    stats = link.resolve()
    check = request_check(stats.with_name(stats.name.removesuffix(STATS_SUFFIX)))
    out = stats_for_report(link, facts.frozen_at)
    return None if out is None else {**out, **check}


def stop_background(proc: subprocess.Popen[bytes], ledger: Path, timeout: float = 30) -> SimulatorStats:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    data = json.loads(stats_path_of(ledger).read_text())
    data.pop("write_rate", None)
    return SimulatorStats(**data)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bascule_lab.simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"libpq DSN (default: ${DSN_ENV})")
    parser.add_argument("--seconds", type=float, default=0, help="run time; 0 = until SIGTERM/SIGINT")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="target writes/s over all sessions; 0 = max")
    parser.add_argument("--update-share", type=float, default=DEFAULT_UPDATE_SHARE,
                        help="share of writes that update one of the session's own rows (default %(default)s)")
    parser.add_argument("--delete-share", type=float, default=DEFAULT_DELETE_SHARE,
                        help="share of writes that delete one of the session's own rows (default %(default)s)")
    parser.add_argument("--read-every", type=int, default=4, help="one chart read every N writes per session")
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.dsn:
        parser.error(f"--dsn or ${DSN_ENV} is required")
    try:
        sim = ClinicSimulator(dsn=args.dsn, ledger=args.ledger, sessions=args.sessions, rate=args.rate,
                              read_every=args.read_every, seed=args.seed, update_share=args.update_share,
                              delete_share=args.delete_share)
    except ValueError as exc:
        parser.error(str(exc))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    sim.start()
    done.wait(args.seconds if args.seconds > 0 else None)
    stats = sim.stop()
    print(json.dumps({"refused_by": stats.refused_by, "errors_by": stats.errors_by,
                      "reconnects": stats.reconnects}), flush=True)
    print(stats.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
