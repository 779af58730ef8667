"""Performance replay: the clinic workload on clones of source and target, at rising concurrency, repeated.

Real Application Testing's idea with PostgreSQL's own ``pgbench``: custom scripts
taken from the clinic application (``engines/pgbench/*.sql``), one per transaction type,
mixed by weight in one run. Each run writes pgbench's per-transaction log, which
is parsed into throughput and p50/p95/p99 latency per transaction type.

The replay never touches the live databases: it runs against clones made with
``CREATE DATABASE ... TEMPLATE`` (or a ``pg_dump | pg_restore`` copy while the live
database has sessions), whose identity sequences are moved past the copied rows.

The gate (ADR 0051): a transaction type at a concurrency regresses when the
target's median p95 exceeds the source's by more than ``threshold`` AND the gap
exceeds ``noise_k`` times the spread measured between repeats (the mean of
both sides' max - min) (likewise for
throughput, downwards). One slow p99 on a noisy 2-core machine never fails it.
"""

from __future__ import annotations

import enum
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bascule.engines import postgres_assessment as q
from bascule.preparation.findings import Finding, FindingSet, Severity

STAGE = "performance_replay"
SCRIPTS_DIR = q.PGBENCH_SCRIPTS_DIR
# Weights of the clinic's transaction mix (chart reads dominate a hospital's day).
DEFAULT_WORKLOAD: Mapping[str, int] = {
    "chart_read": 35, "patient_search": 10, "admission_insert": 10, "prescription_insert": 20,
    "observation_insert": 25,
}
# The lab's "stretch of clinic activity" adds updates and deletes (bloat) to the mix.
ACTIVITY_WORKLOAD: Mapping[str, int] = {
    **DEFAULT_WORKLOAD, "activity_patient_update": 20, "activity_discharge": 20,
    "activity_observation_correction": 15,
}
DEFAULT_THRESHOLD = 0.20
DEFAULT_NOISE_K = 1.0


class CloneMethod(enum.StrEnum):
    TEMPLATE = "template"
    DUMP = "dump"
    AUTO = "auto"


def check_workload(workload: Mapping[str, int]) -> None:
    """Each script of a pgbench mix exists in ``SCRIPTS_DIR`` and weighs at least 1 (replay and peak)."""
    for name, weight in workload.items():
        if not (SCRIPTS_DIR / f"{name}.sql").exists():
            raise ValueError(f"workload: no pgbench script {name}.sql in {SCRIPTS_DIR}")
        if int(weight) < 1:
            raise ValueError(f"workload: weight of {name} must be >= 1 (got {weight})")


@dataclass(frozen=True)
class ReplaySettings:
    concurrency: tuple[int, ...] = (1, 2, 4)
    repeats: int = 3
    duration_s: int = 10
    threshold: float = DEFAULT_THRESHOLD
    noise_k: float = DEFAULT_NOISE_K
    workload: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKLOAD))
    random_seed: int = 7

    def __post_init__(self) -> None:
        if not self.concurrency or any(int(c) < 1 for c in self.concurrency):
            raise ValueError(f"concurrency must be client counts >= 1 (got {self.concurrency!r})")
        if self.repeats < 2:
            raise ValueError(f"repeats must be >= 2: the noise is measured between repeats (got {self.repeats})")
        if self.duration_s < 1:
            raise ValueError(f"duration_s must be >= 1 (got {self.duration_s})")
        if not 0 < self.threshold < 10:
            raise ValueError(f"threshold must be a fraction such as 0.2 for 20% (got {self.threshold})")
        if self.noise_k < 0:
            raise ValueError(f"noise_k must be >= 0 (got {self.noise_k})")
        check_workload(self.workload)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "concurrency": list(self.concurrency), "workload": dict(self.workload)}


# --------------------------------------------------------------------------- clones


def clone_database(hook: Any, *, template_db: str, clone_db: str, method: CloneMethod = CloneMethod.AUTO) -> str:
    """Create ``clone_db`` as a copy of ``template_db`` on the hook's server; returns the method used.

    TEMPLATE copies files and needs no other session on the template; a live,
    replicating database always has one (the walsender or the apply worker), so
    AUTO falls back to a dump copy.
    """
    from bascule.hooks.assessment import PreparationDatabaseError

    if clone_db == template_db:
        raise ValueError(f"refusing to replay on {template_db!r} itself: give a clone name")
    drop_clone(hook, clone_db)
    if method in (CloneMethod.TEMPLATE, CloneMethod.AUTO):
        try:
            hook.execute(q.create_database_from_template(clone_db, template_db))
            return CloneMethod.TEMPLATE.value
        except PreparationDatabaseError as exc:
            if method is CloneMethod.TEMPLATE or "being accessed by other users" not in str(exc):
                raise
    hook.execute(q.create_empty_database(clone_db))
    hook.copy_database_with_dump(source_db=template_db, clone_db=clone_db)
    return CloneMethod.DUMP.value


def drop_clone(hook: Any, clone_db: str) -> None:
    hook.execute(q.drop_database(clone_db))


def sync_identity_sequences(clone: Any, schemas: Sequence[str]) -> int:
    """Move each owned sequence past its column's max: a target loaded by replication has them at 1."""
    moved = 0
    for schema, seq, *_rest, owned in clone.records(q.catalogue_sequences(list(schemas))):
        if not owned:
            continue
        table, column = owned.rsplit(".", 1)
        clone.execute(q.sequence_past_max(schema, seq, table, column))
        moved += 1
    return moved


def workload_variables(clone: Any) -> dict[str, int]:
    row = clone.records(q.workload_ranges())[0]
    names = ("min_pid", "max_pid", "min_eid", "max_eid", "min_sid", "max_sid", "min_hid", "max_hid")
    values = dict(zip(names, row, strict=True))
    empty = [n for n, v in values.items() if v is None]
    if empty:
        raise ValueError(f"the clone holds no rows for the workload ({', '.join(empty)} is empty): "
                         "load the data before replaying")
    return {k: int(v) for k, v in values.items()}


# --------------------------------------------------------------------------- pgbench


def pgbench_args(*, settings: ReplaySettings, clients: int, variables: Mapping[str, int], log_prefix: str,
                 workload: Mapping[str, int] | None = None, duration_s: int | None = None) -> list[str]:
    mix = dict(workload or settings.workload)
    args = ["-n", "-M", "prepared", "-T", str(duration_s or settings.duration_s), "-c", str(clients),
            "-j", str(min(clients, 2)), "--random-seed", str(settings.random_seed),
            "--log", f"--log-prefix={log_prefix}"]
    for name, weight in mix.items():
        args += ["-f", f"{SCRIPTS_DIR / name}.sql@{int(weight)}"]
    for name, value in sorted(variables.items()):
        args += ["-D", f"{name}={int(value)}"]
    return args


def parse_transaction_logs(paths: Sequence[Path], script_names: Sequence[str]) -> dict[str, list[float]]:
    """Latencies in ms per script, from pgbench's per-transaction logs.

    Line format (pgbench docs, "Per-Transaction Logging"):
    ``client_id transaction_no time script_no time_epoch time_us [schedule_lag]``;
    ``time`` is the latency in microseconds, or ``skipped``/``failed``.
    """
    out: dict[str, list[float]] = {name: [] for name in script_names}
    for path in paths:
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 6 or not fields[2].isdigit():
                continue
            out[script_names[int(fields[3])]].append(int(fields[2]) / 1000.0)
    return out


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100.0
    lo, hi = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class RunStat:
    side: str
    clients: int
    repeat: int
    script: str
    transactions: int
    tps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_pgbench_once(hook: Any, *, dbname: str, conn_id: str | None, side: str, clients: int, repeat: int,
                     settings: ReplaySettings, variables: Mapping[str, int], workdir: Path,
                     workload: Mapping[str, int] | None = None, duration_s: int | None = None) -> list[RunStat]:
    mix = dict(workload or settings.workload)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{side}-c{clients}-r{repeat}-", dir=workdir))
    duration = duration_s or settings.duration_s
    hook.run_pgbench(pgbench_args(settings=settings, clients=clients, variables=variables, log_prefix="tx",
                                  workload=mix, duration_s=duration),
                     dbname=dbname, conn_id=conn_id, cwd=run_dir, timeout_s=duration * 3 + 120)
    latencies = parse_transaction_logs(sorted(run_dir.glob("tx.*")), list(mix))
    for path in run_dir.glob("tx.*"):
        path.unlink()
    run_dir.rmdir()
    return [RunStat(side=side, clients=clients, repeat=repeat, script=name, transactions=len(lat),
                    tps=round(len(lat) / duration, 3), p50_ms=round(percentile(lat, 50), 4),
                    p95_ms=round(percentile(lat, 95), 4), p99_ms=round(percentile(lat, 99), 4))
            for name, lat in latencies.items()]


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Verdict:
    script: str
    clients: int
    source_p95_ms: float
    target_p95_ms: float
    p95_spread_ms: float
    source_tps: float
    target_tps: float
    tps_spread: float
    source_p50_ms: float
    target_p50_ms: float
    source_p99_ms: float
    target_p99_ms: float
    latency_regression: bool
    throughput_regression: bool

    @property
    def regression(self) -> bool:
        return self.latency_regression or self.throughput_regression

    @property
    def p95_change_pct(self) -> float:
        return round(100 * (self.target_p95_ms / self.source_p95_ms - 1), 1) if self.source_p95_ms else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "regression": self.regression, "p95_change_pct": self.p95_change_pct}


def _med(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _spread(*groups: list[float]) -> float:
    """The noise: the mean over both sides of the range (max - min) between repeats."""
    ranges = [max(g) - min(g) for g in groups if g]
    return sum(ranges) / len(ranges) if ranges else 0.0


def compare_runs(stats: Sequence[RunStat], *, threshold: float = DEFAULT_THRESHOLD,
                 noise_k: float = DEFAULT_NOISE_K) -> list[Verdict]:
    """Target against source per (script, clients): median over repeats, noise = spread between repeats."""
    keys = sorted({(s.script, s.clients) for s in stats}, key=lambda k: (k[1], k[0]))
    verdicts = []
    for script, clients in keys:
        pick = {side: [s for s in stats if s.script == script and s.clients == clients and s.side == side
                       and s.transactions > 0] for side in ("source", "target")}
        if not pick["source"] or not pick["target"]:
            continue
        s95, t95 = [s.p95_ms for s in pick["source"]], [s.p95_ms for s in pick["target"]]
        stps, ttps = [s.tps for s in pick["source"]], [s.tps for s in pick["target"]]
        spread95, spread_tps = _spread(s95, t95), _spread(stps, ttps)
        ms, mt = _med(s95), _med(t95)
        ts, tt = _med(stps), _med(ttps)
        verdicts.append(Verdict(
            script=script, clients=clients, source_p95_ms=round(ms, 4), target_p95_ms=round(mt, 4),
            p95_spread_ms=round(spread95, 4), source_tps=round(ts, 3), target_tps=round(tt, 3),
            tps_spread=round(spread_tps, 3),
            source_p50_ms=round(_med([s.p50_ms for s in pick["source"]]), 4),
            target_p50_ms=round(_med([s.p50_ms for s in pick["target"]]), 4),
            source_p99_ms=round(_med([s.p99_ms for s in pick["source"]]), 4),
            target_p99_ms=round(_med([s.p99_ms for s in pick["target"]]), 4),
            latency_regression=mt > ms * (1 + threshold) and (mt - ms) > noise_k * spread95,
            throughput_regression=tt < ts * (1 - threshold) and (ts - tt) > noise_k * spread_tps,
        ))
    return verdicts


@dataclass(frozen=True)
class ReplayResult:
    settings: ReplaySettings
    stats: tuple[RunStat, ...]
    verdicts: tuple[Verdict, ...]
    clones: Mapping[str, str]
    seconds: float

    def findings(self) -> FindingSet:
        out: list[Finding] = []
        for v in self.verdicts:
            obj = f"{v.script} at {v.clients} client(s)"
            if v.regression:
                what = []
                if v.latency_regression:
                    what.append(f"p95 {v.source_p95_ms:.2f} -> {v.target_p95_ms:.2f} ms ({v.p95_change_pct:+.0f}%, "
                                f"noise {v.p95_spread_ms:.2f} ms)")
                if v.throughput_regression:
                    what.append(f"throughput {v.source_tps:.1f} -> {v.target_tps:.1f} tps "
                                f"(noise {v.tps_spread:.1f})")
                out.append(Finding("replay", obj, Severity.BLOCKER,
                                   "the target regresses beyond "
                                   f"{self.settings.threshold:.0%} and beyond the noise: " + "; ".join(what),
                                   "compare the plans of this transaction's statements on both sides "
                                   "(EXPLAIN): a missing index, stale statistics or a smaller memory setting"))
            else:
                out.append(Finding("replay", obj, Severity.PASS,
                                   f"p95 {v.source_p95_ms:.2f} -> {v.target_p95_ms:.2f} ms, "
                                   f"{v.source_tps:.1f} -> {v.target_tps:.1f} tps"))
        if not self.verdicts:
            out.append(Finding("replay", "workload", Severity.BLOCKER, "no transaction completed on one side",
                               "read the pgbench error in the task log"))
        return FindingSet(STAGE, tuple(out), {"threshold": self.settings.threshold,
                                              "noise_k": self.settings.noise_k, "seconds": round(self.seconds, 1)})

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings.to_json(), "stats": [s.to_json() for s in self.stats],
                "verdicts": [v.to_json() for v in self.verdicts], "clones": dict(self.clones),
                "seconds": round(self.seconds, 2), "regressions": sum(v.regression for v in self.verdicts)}

    def markdown(self) -> str:
        lines = [f"**Performance replay** (threshold {self.settings.threshold:.0%}, noise k={self.settings.noise_k}, "
                 f"{self.settings.repeats} repeats of {self.settings.duration_s} s)", "",
                 "| transaction | clients | p95 source ms | p95 target ms | noise ms | tps source | tps target | "
                 "verdict |", "|---|---|---|---|---|---|---|---|"]
        for v in self.verdicts:
            lines.append(f"| {v.script} | {v.clients} | {v.source_p95_ms:.2f} | {v.target_p95_ms:.2f} | "
                         f"{v.p95_spread_ms:.2f} | {v.source_tps:.1f} | {v.target_tps:.1f} | "
                         f"{'REGRESSION' if v.regression else 'ok'} |")
        return "\n".join(lines)


@dataclass
class ReplayEndpoint:
    """One side of the replay: an admin hook on the server, the live database to clone, the app's connection."""

    side: str
    admin: Any
    live_db: str
    app_conn_id: str | None = None
    clone_db: str | None = None
    prepare: Callable[[Any], None] | None = None


def run_replay(source: ReplayEndpoint, target: ReplayEndpoint, *, settings: ReplaySettings, schemas: Sequence[str],
               workdir: Path | None = None, clone_method: CloneMethod = CloneMethod.AUTO,
               keep_clones: bool = False, log: Callable[[str], None] = print) -> ReplayResult:
    """Clone both sides, replay the workload on the clones (sides alternating), compare, drop the clones."""
    started = time.monotonic()
    work = Path(workdir or tempfile.mkdtemp(prefix="bascule-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    clones: dict[str, str] = {}
    sides = (source, target)
    try:
        for ep in sides:
            name = ep.clone_db or f"{ep.live_db}_replay_{ep.side}"
            method = clone_database(ep.admin, template_db=ep.live_db, clone_db=name, method=clone_method)
            clones[ep.side] = name
            clone = ep.admin.for_database(name)
            try:
                sync_identity_sequences(clone, schemas)
                clone.execute(q.analyze())
                if ep.prepare is not None:
                    ep.prepare(clone)
            finally:
                clone.close()
            log(f"replay: {ep.side} cloned into {name} ({method})")
        variables = {}
        for ep in sides:
            clone = ep.admin.for_database(clones[ep.side])
            try:
                variables[ep.side] = workload_variables(clone)
            finally:
                clone.close()
        # The same random keys on both sides: the ranges of the smaller side.
        common = {k: (max if k.startswith("min") else min)(v[k] for v in variables.values())
                  for k in variables["source"]}
        stats: list[RunStat] = []
        for clients in settings.concurrency:
            for repeat in range(settings.repeats):
                order = sides if repeat % 2 == 0 else tuple(reversed(sides))
                for ep in order:
                    got = run_pgbench_once(ep.admin, dbname=clones[ep.side], conn_id=ep.app_conn_id, side=ep.side,
                                           clients=int(clients), repeat=repeat, settings=settings,
                                           variables=common, workdir=work)
                    stats += got
                    log(f"replay: {ep.side} c={clients} r={repeat}: "
                        + ", ".join(f"{s.script} {s.tps:.0f} tps p95 {s.p95_ms:.2f} ms" for s in got))
        verdicts = compare_runs(stats, threshold=settings.threshold, noise_k=settings.noise_k)
        return ReplayResult(settings, tuple(stats), tuple(verdicts), dict(clones), time.monotonic() - started)
    finally:
        if not keep_clones:
            for ep in sides:
                if ep.side in clones:
                    drop_clone(ep.admin, clones[ep.side])


def run_activity(hook: Any, *, dbname: str, conn_id: str | None, seconds: int, clients: int = 2,
                 workdir: Path | None = None, seed: int = 11) -> list[RunStat]:
    """Lab only: a stretch of clinic activity (reads, inserts, updates, deletes) on the live source.

    It gives the source real index-usage statistics and real bloat, as a hospital's
    months of use would. Never run against production: it writes.
    """
    settings = ReplaySettings(concurrency=(clients,), repeats=2, duration_s=max(1, seconds),
                              workload=dict(ACTIVITY_WORKLOAD), random_seed=seed)
    work = Path(workdir or tempfile.mkdtemp(prefix="bascule-activity-"))
    work.mkdir(parents=True, exist_ok=True)
    variables = workload_variables(hook)
    return run_pgbench_once(hook, dbname=dbname, conn_id=conn_id, side="source", clients=clients, repeat=0,
                            settings=settings, variables=variables, workdir=work)
