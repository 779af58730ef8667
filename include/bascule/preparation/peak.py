"""A hospital at its peak: hundreds of client connections through the pooler, each one active.

The performance replay (:mod:`bascule.preparation.replay`) compares source and target with 1-4
clients straight on the database. A hospital at its peak has thousands of users whose
application holds many client connections, each one sending a transaction every second or two,
multiplexed by a pooler into a few server connections. This replays that shape with the same
``pgbench`` and the clinic's scripts:

- ``-c <clients>`` client connections to the **pooler** (PgBouncer, transaction mode: hence the
  simple query protocol, ``-M simple``), ``-j`` threads;
- ``--rate``: a fixed schedule of transactions for all clients together (Poisson arrivals), at
  least one every 2 s per client on average, so every connection is active; pgbench measures each
  latency from the transaction's *scheduled* start, so queueing in the pooler or the server counts;
- ``--latency-limit``: a transaction that could not start before the limit is ``skipped`` and counted;
- the per-transaction log gives latency per transaction type (script) and the number of
  transactions each client made (is every connection really active?).

PgBouncer's own wait (a client waiting for a server connection) is read from its admin console:
``SHOW POOLS`` sampled during the run (``maxwait``: the oldest waiting client's wait) and the
``SHOW STATS`` counters before and after (``total_wait_time`` over ``total_xact_count``).
The results are :class:`bascule.preparation.replay.RunStat` rows, so the replay's comparison and
report read them like any other concurrency.
"""

from __future__ import annotations

import math
import shutil
import statistics
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bascule.preparation.replay import SCRIPTS_DIR, RunStat, check_workload, percentile

# A patient-record system's busy hour: mostly reads (chart opens, which also write their audit row,
# and searches), some writes (observations, notes, prescriptions, ward transfers, admissions).
PEAK_WORKLOAD: Mapping[str, int] = {
    "chart_read": 45, "patient_search": 20, "observation_insert": 15, "note_insert": 8,
    "prescription_insert": 5, "encounter_transfer": 4, "admission_insert": 3,
}
READ_SCRIPTS = frozenset({"chart_read", "patient_search"})
# Every client makes at least one transaction every this many seconds, on average.
ACTIVE_EVERY_S = 2.0


@dataclass(frozen=True)
class PeakSettings:
    clients: int = 500
    rate_tps: float = 500.0
    duration_s: int = 60
    threads: int = 2
    latency_limit_ms: int = 2000
    workload: Mapping[str, int] = field(default_factory=lambda: dict(PEAK_WORKLOAD))
    random_seed: int = 7

    def __post_init__(self) -> None:
        if self.clients < 1:
            raise ValueError(f"clients must be >= 1 (got {self.clients})")
        if self.duration_s < 1:
            raise ValueError(f"duration_s must be >= 1 (got {self.duration_s})")
        if not 1 <= self.threads <= self.clients:
            raise ValueError(f"threads must be 1..clients ({self.clients}) (got {self.threads})")
        if self.rate_tps < self.clients / ACTIVE_EVERY_S:
            raise ValueError(f"rate_tps must be at least clients / {ACTIVE_EVERY_S:g} = "
                             f"{self.clients / ACTIVE_EVERY_S:g} so that every client is active "
                             f"(got {self.rate_tps:g})")
        if self.latency_limit_ms < 1:
            raise ValueError(f"latency_limit_ms must be >= 1 (got {self.latency_limit_ms})")
        check_workload(self.workload)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "workload": dict(self.workload)}


def peak_pgbench_args(settings: PeakSettings, *, variables: Mapping[str, int], log_prefix: str) -> list[str]:
    args = ["-n", "-M", "simple", "-T", str(settings.duration_s), "-c", str(settings.clients),
            "-j", str(settings.threads), "--rate", f"{settings.rate_tps:g}",
            "--latency-limit", str(settings.latency_limit_ms), "--random-seed", str(settings.random_seed),
            "--log", f"--log-prefix={log_prefix}"]
    for name, weight in settings.workload.items():
        args += ["-f", f"{SCRIPTS_DIR / name}.sql@{int(weight)}"]
    for name, value in sorted(variables.items()):
        args += ["-D", f"{name}={int(value)}"]
    return args


@dataclass
class PeakLog:
    """What pgbench's per-transaction logs of one run say: latencies per script, per-client counts."""

    latencies_ms: dict[str, list[float]]
    skipped: Counter[str]
    failed: Counter[str]
    per_client: Counter[int]

    @property
    def done(self) -> int:
        return sum(len(v) for v in self.latencies_ms.values())

    def all_latencies(self) -> list[float]:
        return [x for v in self.latencies_ms.values() for x in v]


def parse_peak_logs(paths: Sequence[Path], script_names: Sequence[str]) -> PeakLog:
    """Per-transaction lines: ``client_id transaction_no time script_no time_epoch time_us [schedule_lag]``.

    ``time`` is the latency in microseconds (from the scheduled start under ``--rate``), or
    ``skipped`` (could not start within ``--latency-limit``) or ``failed``.
    """
    latencies: dict[str, list[float]] = {name: [] for name in script_names}
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    per_client: Counter[int] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 6 or not fields[0].isdigit() or not fields[3].isdigit():
                continue
            index = int(fields[3])
            if index >= len(script_names):
                raise ValueError(f"{path.name}: script number {index} but only {len(script_names)} scripts ran")
            script = script_names[index]
            if fields[2] == "skipped":
                skipped[script] += 1
            elif fields[2] == "failed":
                failed[script] += 1
            elif fields[2].isdigit():
                latencies[script].append(int(fields[2]) / 1000.0)
                per_client[int(fields[0])] += 1
    return PeakLog(latencies, skipped, failed, per_client)


@dataclass(frozen=True)
class PeakRun:
    """One side's run at the peak: totals, per-type stats, client activity, the pooler's wait."""

    side: str
    clients: int
    duration_s: int
    transactions: int
    skipped: int
    failed: int
    tps: float
    p95_ms: float
    p99_ms: float
    active_clients: int
    min_client_tx: int
    stats: tuple[RunStat, ...]
    pool_wait: Mapping[str, float]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "stats": [s.to_json() for s in self.stats], "pool_wait": dict(self.pool_wait)}


def summarise(log: PeakLog, *, side: str, settings: PeakSettings, repeat: int,
              pool_wait: Mapping[str, float]) -> PeakRun:
    """Totals and per-type :class:`RunStat` rows; a client counts as active when it made at least one
    transaction per ``ACTIVE_EVERY_S`` of the run on average."""
    d = settings.duration_s
    stats = tuple(RunStat(side=side, clients=settings.clients, repeat=repeat, script=name, transactions=len(lat),
                          tps=round(len(lat) / d, 3), p50_ms=round(percentile(lat, 50), 4),
                          p95_ms=round(percentile(lat, 95), 4), p99_ms=round(percentile(lat, 99), 4))
                  for name, lat in log.latencies_ms.items())
    every = [log.per_client.get(c, 0) for c in range(settings.clients)]
    needed = math.floor(d / ACTIVE_EVERY_S)
    everything = log.all_latencies()
    return PeakRun(side=side, clients=settings.clients, duration_s=d, transactions=log.done,
                   skipped=sum(log.skipped.values()), failed=sum(log.failed.values()),
                   tps=round(log.done / d, 1), p95_ms=round(percentile(everything, 95), 2),
                   p99_ms=round(percentile(everything, 99), 2),
                   active_clients=sum(1 for n in every if n >= needed), min_client_tx=min(every) if every else 0,
                   stats=stats, pool_wait=dict(pool_wait))


# --------------------------------------------------------------------------- PgBouncer's own wait


def _seconds(row: Mapping[str, str | None], whole: str, micro: str) -> float:
    return float(row.get(whole) or 0) + float(row.get(micro) or 0) / 1e6


def pool_maxwait_ms(rows: Sequence[Mapping[str, str | None]], database: str) -> float:
    """The oldest waiting client's wait in ms in ``SHOW POOLS`` for ``database`` (0 when nobody waits)."""
    waits = [_seconds(r, "maxwait", "maxwait_us") * 1000.0 for r in rows if r.get("database") == database]
    return max(waits, default=0.0)


def stats_counters(rows: Sequence[Mapping[str, str | None]], database: str) -> tuple[int, int]:
    """``(total_xact_count, total_wait_time µs)`` of ``database`` in ``SHOW STATS``; zeros while it has no
    row (PgBouncer adds a database's row once a client first used it, e.g. after a restart)."""
    for r in rows:
        if r.get("database") == database:
            return int(r.get("total_xact_count") or 0), int(r.get("total_wait_time") or 0)
    return 0, 0


def pool_wait_figures(samples_ms: Sequence[float], before: tuple[int, int], after: tuple[int, int]) -> dict[str, float]:
    """p95 and max of the sampled ``maxwait``, and the mean wait per transaction from the counters."""
    xacts, waited_us = after[0] - before[0], after[1] - before[1]
    return {"maxwait_ms_p95": round(percentile(samples_ms, 95), 2) if samples_ms else 0.0,
            "maxwait_ms_max": round(max(samples_ms, default=0.0), 2),
            "samples": len(samples_ms),
            "wait_ms_per_xact": round(waited_us / 1000.0 / xacts, 3) if xacts > 0 else 0.0,
            "pooled_xacts": xacts}


def figures(source: Sequence[PeakRun], target: Sequence[PeakRun]) -> dict[str, str]:
    """The bench's figures, formatted, in line order: medians over repeats, per side; the pool wait is the
    worse side's median p95 of the sampled ``maxwait``."""
    def med(runs: Sequence[PeakRun], attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in runs))

    wait = max(float(statistics.median(r.pool_wait["maxwait_ms_p95"] for r in runs)) for runs in (source, target))
    return {"clients": str(source[0].clients),
            "tps_source": f"{med(source, 'tps'):.1f}", "tps_target": f"{med(target, 'tps'):.1f}",
            "p95_ms_source": f"{med(source, 'p95_ms'):.2f}", "p95_ms_target": f"{med(target, 'p95_ms'):.2f}",
            "p99_ms_source": f"{med(source, 'p99_ms'):.2f}", "p99_ms_target": f"{med(target, 'p99_ms'):.2f}",
            "pool_wait_ms_p95": f"{wait:.2f}"}


def figures_line(source: Sequence[PeakRun], target: Sequence[PeakRun]) -> str:
    return " ".join(f"{k}={v}" for k, v in figures(source, target).items())


def run_through_pooler(hook: Any, pooler: Any, settings: PeakSettings, *, side: str, repeat: int,
                       variables: Mapping[str, int], app_conn_id: str, database: str, workdir: Path,
                       sample_every_s: float = 0.25, log: Callable[[str], None] = print) -> PeakRun:
    """One side's run: pgbench through the pooler (``app_conn_id``) while ``SHOW POOLS`` is sampled.

    ``hook`` runs pgbench (:meth:`bascule.hooks.assessment.AssessmentHook.run_pgbench`), ``pooler`` is the
    PgBouncer admin console (:class:`bascule.hooks.pgbouncer.PgBouncerHook`) of the same pooler.
    """
    run_dir = workdir / f"{side}-{repeat}"
    run_dir.mkdir(parents=True)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(sample_every_s):
            try:
                samples.append(pool_maxwait_ms(pooler.command("SHOW POOLS"), database))
            except Exception as exc:  # a missed sample is counted out, never fatal to the run
                log(f"peak: SHOW POOLS sample missed: {exc}")

    before = stats_counters(pooler.command("SHOW STATS"), database)
    sampler = threading.Thread(target=sample, name=f"pool-sampler-{side}", daemon=True)
    sampler.start()
    try:
        hook.run_pgbench(peak_pgbench_args(settings, variables=variables, log_prefix="tx"), dbname=database,
                         conn_id=app_conn_id, cwd=run_dir, timeout_s=settings.duration_s * 3 + 300, pooled=True)
    finally:
        stop.set()
        sampler.join()
    after = stats_counters(pooler.command("SHOW STATS"), database)
    parsed = parse_peak_logs(sorted(run_dir.glob("tx.*")), list(settings.workload))
    shutil.rmtree(run_dir, ignore_errors=True)
    return summarise(parsed, side=side, settings=settings, repeat=repeat,
                     pool_wait=pool_wait_figures(samples, before, after))
