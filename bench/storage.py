"""Storage optimisation at scale: detect, apply on the target, prove no regression.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/storage.py --patients 1000000

On its own lab (``bench-storage``):
1. seed the source (the generator plants redundant/unused indexes and old audit months);
2. run a stretch of clinic activity on the source (reads, inserts, updates, deletes):
   real index-usage statistics and real bloat;
3. load the target with the replication issue's logical replication (initial sync), then stop it;
4. analyse (source statistics, target sizes) and compare the detections with
   ``bascule_lab.seed.PLANTED_WASTE`` (only here: detection never reads it);
5. apply every recommended action on the target (indexes dropped; partitions copied
   to ``clinic_archive``, verified by count and checksum, detached, dropped);
6. replay the clinic workload on clones of source and optimised target.

Last line: ``before_mb=<b> after_mb=<a> reduction_pct=<p>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _last_line import figures_last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--activity-s", type=int, default=90)
    parser.add_argument("--replay-s", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    from bascule.paths import REPO_ROOT
    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.clusters import Lab, default_release_migration
    from bascule_lab.paths import lab_dir

    with figures_last() as last:
        lab = Lab(lab_dir(purpose="bench-storage"), echo=lambda line: print(line, flush=True))
        lab.up()
        home = Path(tempfile.mkdtemp(prefix="bascule-bench-storage-"))
        os.environ.update(airflow_env(home=home, connections_file=lab.connections_file))
        try:
            t0 = time.monotonic()
            lab.seed(patients=args.patients, release_migration=default_release_migration())
            lab.reset()
            print(f"bench: lab seeded/reset in {time.monotonic() - t0:.0f} s", flush=True)
            from bascule.hooks.assessment import AssessmentHook
            from bascule.plan import default_plan_path, load_plan
            from bascule.preparation import replay, storage
            from bascule.preparation.load import start_and_load
            from bascule.replication.factory import replication_config, replication_from_config
            from bascule.today import retention_today
            from bascule_lab.seed import PLANTED_WASTE

            plan = load_plan(default_plan_path())
            schemas = list(plan.scope.schemas)
            source = AssessmentHook(db_conn_id=plan.source.conn_id)
            target = AssessmentHook(db_conn_id=plan.target.conn_id)

            t0 = time.monotonic()
            activity = replay.run_activity(source, dbname="clinic", conn_id=plan.source.app_conn_id,
                                           seconds=args.activity_s, clients=2)
            done = sum(s.transactions for s in activity)
            print(f"bench: clinic activity on the source: {done:,} transactions in {time.monotonic() - t0:.0f} s "
                  + ", ".join(f"{s.script}={s.transactions}" for s in activity), flush=True)
            source.execute("ANALYZE")

            t0 = time.monotonic()
            config = replication_config(plan, "forward")
            start_and_load(config, timeout_s=3600, log=lambda line: print(line, flush=True))
            load_s = time.monotonic() - t0
            repl = replication_from_config(config)
            repl.drop()
            repl.close()
            target.execute("ANALYZE")
            print(f"bench: target loaded by logical replication (initial sync) in {load_s:.0f} s, then stopped",
                  flush=True)

            # Old is measured from the lab plan's storage.as_of: the same figures on any day.
            analysis = storage.analyse_storage(source=source, target=target, schemas=schemas,
                                               today=retention_today(plan))
            detected = {a.object for a in analysis.actions}
            # Of two identical indexes either may go: the planted one counts as found when its twin was dropped.
            for a in analysis.actions:
                if a.reason.startswith("duplicate of "):
                    detected.add(a.reason.removeprefix("duplicate of "))
            planted = {name for names in PLANTED_WASTE.values() for name in names}
            missed = sorted(planted - detected)
            extra = sorted(detected - planted)
            print(analysis.markdown(), flush=True)
            print(f"bench: planted {len(planted)}, detected {len(detected & planted)}, missed {missed}, "
                  f"also recommended {extra}", flush=True)
            for b in analysis.bloat:
                print(f"bench: source bloat {b['table']}: {b['bloat_bytes'] / 1048576:.1f} MB of "
                      f"{b['bytes'] / 1048576:.1f} MB ({b['dead_tuples']:,} dead tuples)", flush=True)

            out = REPO_ROOT / "bench" / "out"
            result = storage.apply_storage_actions(target, analysis.actions, schemas=schemas,
                                                   manifest_path=out / "storage_archive_manifest.json",
                                                   log=lambda line: print(line, flush=True))
            result2 = storage.apply_storage_actions(target, analysis.actions, schemas=schemas)
            print(f"bench: second apply changed {result2.before_bytes - result2.after_bytes} bytes (idempotent)")

            settings = replay.ReplaySettings(concurrency=(1, 2), repeats=3, duration_s=args.replay_s)
            rep = replay.run_replay(
                replay.ReplayEndpoint("source", source, "clinic", plan.source.app_conn_id),
                replay.ReplayEndpoint("target", target, "clinic", plan.target.app_conn_id),
                settings=settings, schemas=schemas, log=lambda line: print(line, flush=True))
            print(rep.markdown(), flush=True)
            regressions = [v for v in rep.verdicts if v.regression]
            before_mb = result.before_bytes / 1048576
            after_mb = result.after_bytes / 1048576
            out.mkdir(parents=True, exist_ok=True)
            (out / "storage.json").write_text(json.dumps({
                "patients": args.patients, "analysis": analysis.to_json(), "apply": result.to_json(),
                "replay": rep.to_json(), "missed": missed, "extra": extra, "load_s": round(load_s, 1),
            }, indent=2, default=str))
            print(f"bench: replay after the apply: {len(regressions)} regression(s) "
                  f"({'no index the workload uses was dropped' if not regressions else 'REGRESSION'})")
            print(f"before_mb={before_mb:.1f} after_mb={after_mb:.1f} reduction_pct={result.reduction_pct:.1f}",
                      file=last)
            return 0 if not missed and not regressions else 1
        finally:
            if not args.keep:
                lab.down()


if __name__ == "__main__":
    sys.exit(main())
