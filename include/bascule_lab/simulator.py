"""The clinic simulator: the hospital application, played through the endpoint.

Several sessions (threads, one connection each) admit patients (INSERT an
encounter), prescribe, record observations and read charts at a target rate,
through whatever the endpoint (PgBouncer) points at. Every write the database
acknowledged goes to a **ledger** (table and primary key, never a value), so that
after a cutover or a rollback :func:`verify` can prove each acknowledged write is
on the database the endpoint now points to.

Writes refused during the freeze are expected: they are classified (permission
denied, login refused, connection refused, terminated, paused timeout, read only)
and counted, not treated as failures. A write whose outcome is unknown (the
connection died while the statement was in flight) is counted as
``indeterminate``: never acknowledged, so never required to be present.

Keys come from the tables' identity sequences, as the real application's do: on
the target they are safe only once the cutover's fix-up has advanced the
sequences past the source's values, which is exactly what that step is for.

CLI (a background process for tests and benches; SIGTERM flushes and stops)::

    BASCULE_SIM_DSN='host=... port=... dbname=clinic user=clinic_app password=...' \\
    python -m bascule_lab.simulator --seconds 30 --sessions 4 --rate 200 --ledger /tmp/ledger.csv

The DSN may also be given with ``--dsn`` (visible in ``ps``: prefer the variable).
The last line printed is ``acked=<n> refused=<n> indeterminate=<n> errors=<n> reads=<n> seconds=<s> write_rate=<w/s>``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

SCHEMA = "clinic"
# table -> primary key column; the ledger names rows by these only.
WRITE_TABLES = {"encounters": "encounter_id", "prescriptions": "prescription_id", "observations": "observation_id"}
DSN_ENV = "BASCULE_SIM_DSN"


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


@dataclasses.dataclass
class SimulatorStats:
    acked: int = 0
    refused: int = 0
    refused_by: dict[str, int] = dataclasses.field(default_factory=dict)
    indeterminate: int = 0
    errors: int = 0
    errors_by: dict[str, int] = dataclasses.field(default_factory=dict)
    reads: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    sessions: int = 0
    target_rate: float = 0.0
    started_at: str | None = None  # wall clock (UTC, ISO), to place the timeline against a run's events
    # (seconds since start, writes acknowledged so far), about once a second: the rate before the freeze.
    timeline: list[tuple[float, int]] = dataclasses.field(default_factory=list)

    @property
    def write_rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def write_rate_before(self, moment: datetime) -> float | None:
        """Acknowledged writes per second from the start to the last sample before ``moment`` (aware)."""
        if self.started_at is None:
            return None
        cutoff = (moment - datetime.fromisoformat(self.started_at)).total_seconds()
        before = [(t, n) for t, n in self.timeline if 0 < t <= cutoff]
        return before[-1][1] / before[-1][0] if before else None

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "write_rate": round(self.write_rate, 1)}

    def line(self) -> str:
        return (f"acked={self.acked} refused={self.refused} indeterminate={self.indeterminate} "
                f"errors={self.errors} reads={self.reads} seconds={self.seconds:.1f} "
                f"write_rate={self.write_rate:.1f}")


class Ledger:
    """Append-only ``table,key`` lines; flushed to disk by the simulator's main loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[str] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    def add(self, table: str, key: int) -> None:
        with self._lock:
            self._pending.append(f"{table},{int(key)}\n")

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
        if lines:
            with self.path.open("a") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())


def read_ledger(path: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {t: [] for t in WRITE_TABLES}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line:
            continue
        table, _, key = line.partition(",")
        if table not in WRITE_TABLES or not key.isdigit():
            raise ValueError(f"{path}:{n}: not a ledger line (table,key)")
        out[table].append(int(key))
    return out


class _Session(threading.Thread):
    def __init__(self, sim: ClinicSimulator, index: int) -> None:
        super().__init__(name=f"clinic-sim-{index}", daemon=True)
        self.sim = sim
        self.rng = random.Random(sim.seed * 1000 + index)
        self.conn: psycopg.Connection | None = None
        self.backoff = 0.05
        self.encounters: list[tuple[int, int]] = []  # (encounter_id, patient_id), sampled then own
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
    def _admit(self, conn: psycopg.Connection) -> tuple[str, int]:
        patient = self.rng.randint(1, self.max_patient)
        (key,) = conn.execute(
            f"INSERT INTO {SCHEMA}.encounters (patient_id, hospital_id, attending_staff_id, encounter_type, ward,"
            " admitted_at) VALUES (%s, %s, %s, %s, 'SIM', now()) RETURNING encounter_id",
            (patient, self.rng.randint(*self.hospitals), self.rng.randint(*self.staff),
             self.rng.choice(("emergency", "inpatient", "outpatient")))).fetchone()
        self.encounters.append((key, patient))
        if len(self.encounters) > 2000:
            del self.encounters[:1000]
        return "encounters", key

    def _prescribe(self, conn: psycopg.Connection) -> tuple[str, int]:
        encounter, patient = self.rng.choice(self.encounters)
        (key,) = conn.execute(
            f"INSERT INTO {SCHEMA}.prescriptions (encounter_id, patient_id, prescriber_id, drug_code, drug_name,"
            " dose_mg, route, frequency, prescribed_at) VALUES (%s, %s, %s, 'SIM001', 'simdrug', 10, 'oral',"
            " 'daily', now()) RETURNING prescription_id",
            (encounter, patient, self.rng.randint(*self.staff))).fetchone()
        return "prescriptions", key

    def _observe(self, conn: psycopg.Connection) -> tuple[str, int]:
        encounter, _ = self.rng.choice(self.encounters)
        (key,) = conn.execute(
            f"INSERT INTO {SCHEMA}.observations (encounter_id, code, value_num, unit, observed_at)"
            " VALUES (%s, 'SIM-HR', %s, 'bpm', now()) RETURNING observation_id",
            (encounter, self.rng.randint(50, 120))).fetchone()
        return "observations", key

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
            op = self.rng.choices((self._admit, self._prescribe, self._observe), weights=(3, 3, 4))[0]
            read = sim.read_every > 0 and writes % sim.read_every == 0
            writes += 1
            self._attempt(op, read)

    def _attempt(self, op: Any, read: bool) -> None:
        sim = self.sim
        in_flight = False
        try:
            conn = self._connect()
            if read:
                self._read_chart(conn)
                sim._count("reads")
            in_flight = True
            table, key = op(conn)
        except psycopg.Error as exc:
            kind = classify(exc)
            lost_conn = self.conn is None or self.conn.closed or isinstance(exc, psycopg.OperationalError)
            if in_flight and kind in (Refusal.TERMINATED, None) and lost_conn:
                # The statement was sent; the commit may or may not have happened.
                sim._count("indeterminate")
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
        sim.ledger.add(table, key)
        sim._count("acked")


class ClinicSimulator:
    """Start, run and stop the simulated application; thread-safe counters and ledger."""

    def __init__(self, *, dsn: str, ledger: Path, sessions: int = 4, rate: float = 100.0, read_every: int = 4,
                 seed: int = 7) -> None:
        if sessions < 1:
            raise ValueError(f"sessions must be >= 1 (got {sessions})")
        if rate < 0:
            raise ValueError(f"rate must be >= 0 writes/s, 0 meaning as fast as possible (got {rate})")
        self.dsn = dsn
        self.sessions = sessions
        self.rate = rate
        self.read_every = read_every
        self.seed = seed
        self.ledger = Ledger(ledger)
        self.stats_path = ledger.with_name(ledger.name + ".stats.json")
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._stats = SimulatorStats(sessions=sessions, target_rate=rate)
        self._threads: list[_Session] = []
        self._started = 0.0
        self._stopped_at = 0.0
        self._flusher: threading.Thread | None = None

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + 1)

    def _refuse(self, kind: Refusal) -> None:
        with self._lock:
            self._stats.refused += 1
            self._stats.refused_by[kind.value] = self._stats.refused_by.get(kind.value, 0) + 1

    def _error(self, name: str) -> None:
        with self._lock:
            self._stats.errors += 1
            self._stats.errors_by[name] = self._stats.errors_by.get(name, 0) + 1

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
                    self._stats.timeline.append((round(time.monotonic() - self._started, 2), self._stats.acked))
            self.ledger.flush()
            self._write_stats(self.stats())

    def _write_stats(self, stats: SimulatorStats) -> None:
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats.as_dict()))
        tmp.replace(self.stats_path)

    def stop(self) -> SimulatorStats:
        """Stop every session, flush the ledger and the stats file; returns the final stats."""
        self._stopped_at = time.monotonic()
        self.stopping.set()
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


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    acked: int
    present: int
    lost: int
    refused: int
    lost_keys: dict[str, list[int]]  # first few keys per table (keys, never values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def verify(ledger: Path, dsn: str, *, chunk: int = 10_000) -> VerifyResult:
    """Check every acknowledged write of the ledger is on the database ``dsn`` reaches."""
    entries = read_ledger(ledger)
    stats_path = ledger.with_name(ledger.name + ".stats.json")
    refused = json.loads(stats_path.read_text())["refused"] if stats_path.exists() else 0
    acked = present = 0
    lost_keys: dict[str, list[int]] = {}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        for table, keys in entries.items():
            pk = WRITE_TABLES[table]
            unique = sorted(set(keys))
            acked += len(unique)
            found: set[int] = set()
            for i in range(0, len(unique), chunk):
                part = unique[i:i + chunk]
                found.update(r[0] for r in conn.execute(
                    f"SELECT {pk} FROM {SCHEMA}.{table} WHERE {pk} = ANY(%s)", (part,)))
            present += len(found)
            missing = [k for k in unique if k not in found]
            if missing:
                lost_keys[table] = missing[:20]
    return VerifyResult(acked=acked, present=present, lost=acked - present, refused=int(refused),
                        lost_keys=lost_keys)


# ------------------------------------------------------------ background use
def start_background(*, dsn: str, ledger: Path, seconds: float = 0, sessions: int = 4, rate: float = 100.0,
                     log: Path | None = None, python: str = sys.executable) -> subprocess.Popen[bytes]:
    """Run the simulator as a child process (stop it with :func:`stop_background`)."""
    argv = [python, "-m", "bascule_lab.simulator", "--seconds", str(seconds), "--sessions", str(sessions),
            "--rate", str(rate), "--ledger", str(ledger)]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, env={**os.environ, DSN_ENV: dsn}, stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stats_for_report(path: Path, frozen_at: str | None) -> dict[str, Any] | None:
    """The simulator's counters for a cutover or fallback report: its rate before the freeze, no timeline."""
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data.pop("write_rate", None)
    stats = SimulatorStats(**data)
    out = stats.as_dict()
    out.pop("timeline", None)
    before = stats.write_rate_before(datetime.fromisoformat(frozen_at)) if frozen_at else None
    out["write_rate_before_freeze"] = None if before is None else round(before, 1)
    return out


SIMULATOR_DIR_ENV = "BASCULE_LAB_SIMULATOR_DIR"


def _run_file(directory: Path, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return directory / f"{safe}.stats.json"


def attach_to_run(stats_dir: Path, run_id: str, ledger: Path) -> None:
    """Tell the report contributor which simulator ledger belongs to ``run_id`` (a link in the stack's folder)."""
    stats_dir.mkdir(parents=True, exist_ok=True)
    link = _run_file(stats_dir, run_id)
    link.unlink(missing_ok=True)
    link.symlink_to(ledger.with_name(ledger.name + ".stats.json").resolve())


def report_writes(facts: Any) -> dict[str, Any] | None:
    """The ``writes`` section of a run's report (entry point ``bascule.report_sections``).

    The lab's Airflow names the folder in ``BASCULE_LAB_SIMULATOR_DIR``; the lab links each
    run's simulator stats there before it triggers the run. Elsewhere: nothing to say.
    """
    directory = os.environ.get(SIMULATOR_DIR_ENV)
    if not directory:
        return None
    return stats_for_report(_run_file(Path(directory), facts.run_id), facts.frozen_at)


def stop_background(proc: subprocess.Popen[bytes], ledger: Path, timeout: float = 30) -> SimulatorStats:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=timeout)
    data = json.loads(ledger.with_name(ledger.name + ".stats.json").read_text())
    data.pop("write_rate", None)
    return SimulatorStats(**data)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bascule_lab.simulator", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"libpq DSN (default: ${DSN_ENV})")
    parser.add_argument("--seconds", type=float, default=0, help="run time; 0 = until SIGTERM/SIGINT")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="target writes/s over all sessions; 0 = max")
    parser.add_argument("--read-every", type=int, default=4, help="one chart read every N writes per session")
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not args.dsn:
        parser.error(f"--dsn or ${DSN_ENV} is required")
    try:
        sim = ClinicSimulator(dsn=args.dsn, ledger=args.ledger, sessions=args.sessions, rate=args.rate,
                              read_every=args.read_every, seed=args.seed)
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
