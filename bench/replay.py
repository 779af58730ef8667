"""A hospital at its peak: the clinic's mix through PgBouncer, hundreds of active client connections.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/replay.py --clients 500

On its own lab (``bench-replay``):
1. seed the source and copy it to the target (the same rows on both sides), identity sequences
   moved past the copied rows, both analysed;
2. for each repeat, each side in turn (the order alternates): point the lab's PgBouncer
   (transaction pooling, 20 server connections) at that side, as a go-live would, and run
   ``pgbench -M simple -c <clients> -j <threads> --rate <tps> --latency-limit <ms>`` with the
   peak mix (``bascule.preparation.peak.PEAK_WORKLOAD``: chart opens and searches, observations,
   notes, prescriptions, ward transfers, admissions) through it, while ``SHOW POOLS`` is sampled
   every 0.25 s and ``SHOW STATS`` is read before and after;
3. per side: throughput, p95/p99 over all transactions and per transaction type, how many client
   connections made at least one transaction every 2 s on average, PgBouncer's own wait;
4. the replay's comparison (target against source, noise between repeats) at that concurrency.

Last line: ``clients=<n> tps_source=… tps_target=… p95_ms_source=… p95_ms_target=… p99_ms_source=…
p99_ms_target=… pool_wait_ms_p95=…`` (medians over repeats; the pool wait is the p95 of the sampled
``maxwait`` of the worse side).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _last_line import figures_last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=None, help="transactions/s for all clients (default: clients)")
    parser.add_argument("--duration-s", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-limit-ms", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    from bascule.paths import REPO_ROOT
    from bascule.preparation.peak import PeakSettings
    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.clusters import Lab, default_release_migration
    from bascule_lab.paths import lab_dir

    settings = PeakSettings(clients=args.clients, rate_tps=args.rate or float(args.clients),
                            duration_s=args.duration_s, threads=args.threads, latency_limit_ms=args.latency_limit_ms)
    with figures_last() as last:
        lab = Lab(lab_dir(purpose="bench-replay"), echo=lambda line: print(line, flush=True))
        lab.up()
        home = Path(tempfile.mkdtemp(prefix="bascule-bench-replay-"))
        os.environ.update(airflow_env(home=home, connections_file=lab.connections_file))
        work = Path(tempfile.mkdtemp(prefix="bascule-peak-"))
        try:
            t0 = time.monotonic()
            lab.seed(patients=args.patients, release_migration=default_release_migration())
            from bascule_lab.testing.copy import copy_source_to_target

            copied = copy_source_to_target(lab)
            print(f"bench: lab seeded and copied to the target in {time.monotonic() - t0:.0f} s "
                  f"({sum(copied['rows'].values()):,} rows)", flush=True)
            figs = run(lab, settings, repeats=args.repeats, work=work, out=REPO_ROOT / "bench" / "out")
            print(f"clients={figs.pop('clients')} " + " ".join(f"{k}={v}" for k, v in figs.items()), file=last)
            return 0
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if not args.keep:
                lab.down()


def run(lab, settings, *, repeats: int, work: Path, out: Path) -> dict[str, str]:
    from bascule.engines import postgres_assessment as q
    from bascule.hooks.assessment import AssessmentHook
    from bascule.hooks.pgbouncer import PgBouncerHook
    from bascule.hooks.pgbouncer_config import DatabaseTarget
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import peak, replay
    from bascule_lab.common import SOURCE, TARGET
    from bascule_lab.pgbouncer import APP_DATABASES

    plan = load_plan(default_plan_path())
    schemas = list(plan.scope.schemas)
    endpoint = plan.cutover.endpoint.pgbouncer
    assert endpoint is not None, "the lab plan's endpoint is a PgBouncer"
    sides = {"source": (AssessmentHook(db_conn_id=plan.source.conn_id), SOURCE),
             "target": (AssessmentHook(db_conn_id=plan.target.conn_id), TARGET)}
    sides["target"][0].execute(q.analyze())
    moved = replay.sync_identity_sequences(sides["target"][0], schemas)
    sides["source"][0].execute(q.analyze())
    ranges = {name: replay.workload_variables(hook) for name, (hook, _) in sides.items()}
    # The same random keys on both sides.
    variables = {k: (max if k.startswith("min") else min)(v[k] for v in ranges.values()) for k in ranges["source"]}
    print(f"bench: target sequences moved past the copied rows ({moved}); both sides analysed", flush=True)
    pgb = PgBouncerHook(pgbouncer_conn_id=endpoint.admin_conn_id)
    ports = lab.state().ports
    runs: dict[str, list[peak.PeakRun]] = {"source": [], "target": []}
    for repeat in range(repeats):
        order = ("source", "target") if repeat % 2 == 0 else ("target", "source")
        for side in order:
            hook, cluster = sides[side]
            pgb.repoint({db: DatabaseTarget(host="127.0.0.1", port=ports[cluster], dbname="clinic")
                         for db in APP_DATABASES})
            result = peak.run_through_pooler(hook, pgb, settings, side=side, repeat=repeat, variables=variables,
                                             app_conn_id=endpoint.app_conn_id, database="clinic", workdir=work,
                                             log=lambda line: print(f"bench: {line}", flush=True))
            runs[side].append(result)
            w = result.pool_wait
            print(f"bench: {side} r={repeat}: {result.transactions:,} transactions ({result.tps:.1f} tps), "
                  f"p95 {result.p95_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, skipped {result.skipped}, "
                  f"failed {result.failed}; {result.active_clients}/{result.clients} clients active "
                  f"(>= 1 transaction / {peak.ACTIVE_EVERY_S:g} s; fewest {result.min_client_tx}); PgBouncer wait: "
                  f"maxwait p95 {w['maxwait_ms_p95']:.2f} ms (max {w['maxwait_ms_max']:.2f}, {w['samples']} samples), "
                  f"{w['wait_ms_per_xact']:.3f} ms per transaction over {w['pooled_xacts']:,}", flush=True)
    pgb.repoint({db: DatabaseTarget(host="127.0.0.1", port=ports[SOURCE], dbname="clinic") for db in APP_DATABASES})
    stats = [s for side_runs in runs.values() for r in side_runs for s in r.stats]
    verdicts = replay.compare_runs(stats)
    print(f"\n**Peak replay** through PgBouncer: {settings.clients} client connections, {settings.rate_tps:g} tps "
          f"scheduled, {settings.duration_s} s x {repeats} repeats per side\n\n"
          "| transaction | tps src/tgt | p50 src/tgt ms | p95 src/tgt ms | p99 src/tgt ms | noise ms | verdict |\n"
          "|---|---|---|---|---|---|---|", flush=True)
    for v in verdicts:
        print(f"| {v.script} | {v.source_tps:.1f} / {v.target_tps:.1f} | {v.source_p50_ms:.2f} / {v.target_p50_ms:.2f}"
              f" | {v.source_p95_ms:.2f} / {v.target_p95_ms:.2f} | {v.source_p99_ms:.2f} / {v.target_p99_ms:.2f} | "
              f"{v.p95_spread_ms:.2f} | {'REGRESSION' if v.regression else 'ok'} |", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    # `verdicts` has the shape the readiness report's replay section reads.
    (out / "replay.json").write_text(json.dumps({
        "settings": settings.to_json(), "repeats": repeats,
        "runs": {side: [r.to_json() for r in side_runs] for side, side_runs in runs.items()},
        "verdicts": [v.to_json() for v in verdicts], "stats": [s.to_json() for s in stats]}, indent=2))
    for hook, _ in sides.values():
        hook.close()
    return peak.figures(runs["source"], runs["target"])


if __name__ == "__main__":
    sys.exit(main())
