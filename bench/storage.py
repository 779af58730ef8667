"""Storage optimisation at scale: detect, apply on the target, prove no regression.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/storage.py --patients 1000000

On its own lab (``bench-storage``):
1. seed the source (the generator plants redundant/unused indexes and old audit months);
2. run a stretch of clinic activity on the source (reads, inserts, updates, deletes):
   real index-usage statistics and real bloat;
3. load the target with the replication issue's logical replication (initial sync), then stop it;
4. analyse (source statistics, target sizes) and compare the detections with
   ``bascule_lab.seed.PLANTED_WASTE`` (only here: detection never reads it);
5. time a full physical backup of the target (pg_basebackup, plain format, WAL streamed, into a
   local folder), median of ``--backup-runs`` runs made the same way;
6. apply every recommended action on the target (indexes dropped; partitions copied to the plan's
   ``storage.archive_conn_id``, a database on the control cluster, outside the target's: verified by
   count and checksum, detached, dropped);
7. the same backups again, then restore the last one into a scratch cluster, which must start,
   finish its recovery and answer a smoke query (timed);
8. replay the clinic workload on clones of source and optimised target.

Last line: ``before_mb=<b> after_mb=<a> reduction_pct=<p> backup_before_s=<s> backup_after_s=<s>
backup_before_mb=<b> backup_after_mb=<a> backup_size_reduction_pct=<p> restore_s=<s>``.
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
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--activity-s", type=int, default=90)
    parser.add_argument("--replay-s", type=int, default=5)
    parser.add_argument("--backup-runs", type=int, default=3, help="backups before and after, median kept")
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
            from bascule.hooks.backup import PhysicalBackupHook
            from bascule.plan import default_plan_path, load_plan
            from bascule.preparation import backup, replay, storage
            from bascule.preparation.load import start_and_load
            from bascule.replication.factory import replication_config, replication_from_config
            from bascule.today import retention_today
            from bascule_lab.common import LAB_USER
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
            # The clusters run as the lab's user when the bench runs as root: so does the restored copy.
            backup_hook = PhysicalBackupHook(replication_conn_id=plan.storage.backup_conn_id or "bascule_new_repl",
                                             os_user=LAB_USER if os.geteuid() == 0 else None)
            backups = lab.root / "backup-check"
            before = backup.timed_backups(backup_hook, backups, label="before", runs=args.backup_runs,
                                          log=lambda line: print(f"bench: {line}", flush=True))
            shutil.rmtree(before.folder, ignore_errors=True)
            archive = AssessmentHook(db_conn_id=plan.storage.archive_conn_id)
            result = storage.apply_storage_actions(target, analysis.actions, schemas=schemas, archive=archive,
                                                   manifest_path=out / "storage_archive_manifest.json",
                                                   log=lambda line: print(line, flush=True))
            result2 = storage.apply_storage_actions(target, analysis.actions, schemas=schemas, archive=archive)
            archive.close()
            after = backup.timed_backups(backup_hook, backups, label="after", runs=args.backup_runs,
                                         log=lambda line: print(f"bench: {line}", flush=True))
            shutil.rmtree(lab.root / "restore-check", ignore_errors=True)  # left by an interrupted run
            restored = backup_hook.restore_check(Path(after.folder), lab.root / "restore-check", dbname="clinic",
                                                 user="bascule_admin",
                                                 smoke_sql="SELECT count(*) FROM clinic.patients")
            shutil.rmtree(after.folder, ignore_errors=True)
            backup_figures = backup.figures(before, after, restored.seconds)
            print(f"bench: backups before {backup.spread(before.seconds)} s, after {backup.spread(after.seconds)} s; "
                  f"restore of the after-backup (PostgreSQL {restored.pg_version}) started and answered the smoke "
                  f"query in {restored.seconds:.1f} s", flush=True)
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
                "backup": {"before": before.to_json(), "after": after.to_json(), "restore_s": round(restored.seconds, 1),
                           **backup_figures},
            }, indent=2, default=str))
            print(f"bench: replay after the apply: {len(regressions)} regression(s) "
                  f"({'no index the workload uses was dropped' if not regressions else 'REGRESSION'})")
            print(f"before_mb={before_mb:.1f} after_mb={after_mb:.1f} reduction_pct={result.reduction_pct:.1f} "
                  + " ".join(f"{k}={v}" for k, v in backup_figures.items()), file=last)
            return 0 if not missed and not regressions else 1
        finally:
            if not args.keep:
                lab.down()


if __name__ == "__main__":
    sys.exit(main())
