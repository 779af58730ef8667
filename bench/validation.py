"""Data validation at scale: bascule's full comparison against reladiff 0.6 and the physical limit.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/validation.py [--patients 3400000]

On its own lab (purpose ``bench-validation``): seeds the source (500k patients
by default), grows ``clinic.observations`` on the source to at least
``--largest-rows`` (10.5M) rows by copying its rows under new keys (the disk of
this shared machine does not hold two clusters with templates at 3.4M
patients), loads the target with the test fixtures' plain COPY
(``bascule_lab.testing.copy``), then measures, in one run and on the same tables:

- ``limit_s``: ``SELECT sum(hashtextextended(t::text, 0)) FROM <table> t`` with
  parallel workers, run on source and target at the same time, table after table;
- ``bascule_s``: ``bascule.validation.service.full_comparison`` (what the DAG
  task calls, with change tracking started), identical data;
- ``reladiff_s``: reladiff 0.6 (``-a hashdiff``, every compared column via
  ``-c``), identical data, in a venv this bench creates under bench/out/. Every
  table at once, as bascule does: one reladiff process per table, all started
  together, each with ``-j <validation.parallelism>`` (bascule's thread count);
- these three are measured ``--repeats`` times (3), interleaved, each repetition
  printed; the last line gives the medians (``ratio_to_limit`` and
  ``speedup_vs_reladiff`` are the medians of the per-repetition ratios) and every
  repetition's ratio (``ratio_runs``, ``speedup_runs``), not only the best;
- then the 18 planted differences (``bascule_lab.testing.copy.plant_differences``):
  bascule's full comparison again (``bascule_diff_s``), the incremental
  comparison since the first (``incremental_s``), and reladiff with
  ``--skip-sort-results`` (``reladiff_diff_s``), all tables at once too. reladiff's
  output holds row values: it is counted and deleted, never printed.

The wait-and-confirm pass (``validation.wait_and_confirm_s`` of the plan) is
switched off for the timed runs, as reladiff has none; its cost is that wait.
Every figure goes to bench/out/validation.json; the last line is
``bascule_s=.. reladiff_s=.. limit_s=.. ratio_to_limit=.. speedup_vs_reladiff=.. diffs_found=..
diffs_expected=18 incremental_s=.. repeats=.. ratio_runs=a/b/c speedup_runs=a/b/c``. Exit status 0 when all 18 differences were found exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _last_line import figures_last
from _runs import median, runs_text, summary

from bascule.paths import REPO_ROOT
from bascule_lab.paths import lab_dir

OUT = REPO_ROOT / "bench" / "out"


def log(msg: str) -> None:
    print(msg, flush=True)


def reladiff_venv() -> Path:
    venv = OUT / "reladiff-venv"
    exe = venv / "bin" / "reladiff"
    if not exe.exists():
        log("reladiff: creating venv under bench/out/")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "reladiff==0.6.*", "psycopg2-binary"],
                       check=True)
    return exe


def grow_observations(lab: Any, rows: int) -> int:
    """Copies of the observations under new keys (values shifted) until the table holds ``rows``."""
    with lab.connect("legacy", "clinic") as c:
        base, top = c.execute("SELECT count(*), max(observation_id) FROM clinic.observations").fetchone()
        copies = max(0, -(-rows // max(base, 1)) - 1)
        if copies:
            c.execute("SET synchronous_commit = off")
            # The copies point at existing encounters: checking the foreign key row by row only costs time.
            c.execute("SET session_replication_role = replica")
            c.execute(
                """INSERT INTO clinic.observations (observation_id, encounter_id, code, value_num, unit, observed_at)
                   SELECT o.observation_id + k * %s, o.encounter_id, o.code, o.value_num + k, o.unit,
                          o.observed_at + k * interval '1 second'
                     FROM clinic.observations o CROSS JOIN generate_series(1, %s) AS k""", (top, copies))
        return c.execute("SELECT count(*) FROM clinic.observations").fetchone()[0]


def limit_pass(lab: Any, tables: list[str]) -> dict[str, float]:
    """Both clusters at once, one table after the other; returns seconds per table."""
    out = {}
    for table in tables:
        barrier = threading.Barrier(2)

        def run(name: str, table: str = table, barrier: threading.Barrier = barrier) -> None:
            with lab.connect(name, "clinic") as c:
                c.execute("SET TimeZone = 'UTC'")
                c.execute("SET max_parallel_workers_per_gather = 2")
                barrier.wait()
                c.execute(f"SELECT sum(hashtextextended(t::text, 0)) FROM {table} t").fetchone()

        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(n,)) for n in ("legacy", "new")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[table] = time.monotonic() - started
    return out


def reladiff_argv(exe: Path, lab: Any, table: str, key: list[str], cols: list[str], *, threads: int,
                  skip_sort: bool) -> list[str]:
    st = lab.state()
    pw = st.passwords["bascule_admin"]
    uri = {n: f"postgresql://bascule_admin:{pw}@127.0.0.1:{st.ports[n]}/clinic" for n in ("legacy", "new")}
    argv = [str(exe), uri["legacy"], table, uri["new"], table, "-a", "hashdiff", "-j", str(threads)]
    for k in key:
        argv += ["-k", k]
    for c in cols:
        argv += ["-c", c]
    if skip_sort:
        argv.append("--skip-sort-results")
    return argv


def reladiff_all(exe: Path, lab: Any, specs: dict[str, tuple[list[str], list[str]]], *, threads: int,
                 skip_sort: bool, workdir: Path) -> tuple[float, dict[str, dict[str, Any]]]:
    """Every table at once (one process each, started together); wall seconds and per-table results."""
    procs = {}
    started = time.monotonic()
    for i, (table, (key, cols)) in enumerate(specs.items()):
        out_file = workdir / f"reladiff-{i}.out"
        fh = out_file.open("w")
        proc = subprocess.Popen(reladiff_argv(exe, lab, table, key, cols, threads=threads, skip_sort=skip_sort),
                                stdout=fh, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PGTZ": "UTC", "COLUMNS": "1000000"})
        procs[table] = (proc, fh, out_file, key)
    results: dict[str, dict[str, Any]] = {}
    errors = []
    for table, (proc, fh, out_file, key) in procs.items():
        _, err = proc.communicate()
        fh.close()
        results[table] = {"done_by_s": round(time.monotonic() - started, 2)}
        if proc.returncode not in (0, 1):
            errors.append(f"{table} (exit {proc.returncode}): {err[-300:]}")
        keys = set()
        for line in out_file.read_text().splitlines():
            if line[:2] in ("- ", "+ "):
                # "- 12, x, ...": the key is the first len(key) fields; nothing is kept but the key.
                keys.add(tuple(line[2:].split(", ")[: len(key)]))
        out_file.unlink()
        results[table]["diffs"] = len(keys)
    seconds = time.monotonic() - started
    if errors:
        raise RuntimeError("reladiff failed on " + "; ".join(errors))
    return seconds, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=500_000)
    parser.add_argument("--largest-rows", type=int, default=10_500_000,
                        help="rows clinic.observations is grown to on the source")
    parser.add_argument("--repeats", type=int, default=3,
                        help="repetitions of limit, bascule and reladiff on identical data (all printed)")
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.clusters import Lab, default_release_migration
    from bascule_lab.testing.copy import copy_source_to_target, plant_differences

    OUT.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {"patients": args.patients}
    with figures_last() as last:
        lab = Lab(lab_dir(purpose="bench-validation"), echo=log)
        lab.up()
        home = Path(tempfile.mkdtemp(prefix="bascule-bench-airflow-"))
        try:
            t0 = time.monotonic()
            lab.seed(patients=args.patients, release_migration=default_release_migration())
            figures["seed_or_reset_s"] = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()
            figures["observations_rows"] = grow_observations(lab, args.largest_rows)
            figures["grow_s"] = round(time.monotonic() - t0, 1)
            log(f"grow: clinic.observations has {figures['observations_rows']} rows ({figures['grow_s']} s)")
            copied = copy_source_to_target(lab)
            figures["copy_s"] = round(copied["seconds"], 1)
            figures["rows"] = copied["rows"]
            log(f"copy: {sum(copied['rows'].values())} rows in {copied['seconds']:.1f} s; largest "
                f"{max(copied['rows'].values())}")
            with lab.connect("legacy", "clinic") as c:
                c.execute("VACUUM ANALYZE")
            with lab.connect("new", "clinic") as c:
                c.execute("VACUUM ANALYZE")

            conns = home / "connections.json"
            shutil.copy(lab.connections_file, conns)
            os.environ.update(airflow_env(home=home, connections_file=conns))
            from bascule.plan import default_plan_path, load_plan
            from bascule.validation.service import full_comparison, incremental_comparison, stop_tracking

            plan = load_plan(default_plan_path())
            tables = sorted(f"clinic.{t}" for t in copied["rows"])

            exe = reladiff_venv()
            threads = plan.validation.parallelism
            workdir = Path(tempfile.mkdtemp(prefix="bascule-reladiff-"))
            reps: list[dict[str, Any]] = []
            same: dict[str, Any] = {}
            specs: dict[str, tuple[list[str], list[str]]] = {}
            for rep in range(1, args.repeats + 1):
                per_table = limit_pass(lab, tables)
                limit_s = sum(per_table.values())
                t0 = time.monotonic()
                same = full_comparison(plan, track_changes=True, wait_and_confirm_s=0.0)
                bascule_s = time.monotonic() - t0
                if not specs:
                    specs = {t["table"]: (t["key_columns"],
                                          [c for c in t["columns_compared"] if c not in t["key_columns"]])
                             for t in same["tables"]}
                reladiff_s, rel_same = reladiff_all(exe, lab, specs, threads=threads, skip_sort=False,
                                                    workdir=workdir)
                reps.append({
                    "repeat": rep, "limit_s": round(limit_s, 2), "bascule_s": round(bascule_s, 2),
                    "reladiff_s": round(reladiff_s, 2), "ratio_to_limit": round(bascule_s / limit_s, 3),
                    "speedup_vs_reladiff": round(reladiff_s / bascule_s, 3),
                    "limit_per_table_s": {t: round(v, 2) for t, v in per_table.items()},
                    "bascule_per_table": {t["table"]: {"seconds": round(t["seconds"], 2), "ranges": t["ranges"],
                                                       "rows": t["rows_compared"]} for t in same["tables"]},
                    "bascule_ok": same["ok"], "bascule_differences": same["differences"],
                    "reladiff_per_table": rel_same,
                })
                log(f"repeat {rep}: limit {limit_s:.2f} s, bascule {bascule_s:.2f} s (ok={same['ok']}, "
                    f"differences={same['differences']}), reladiff {reladiff_s:.2f} s (all tables at once, "
                    f"-j {threads}): ratio_to_limit={reps[-1]['ratio_to_limit']} "
                    f"speedup_vs_reladiff={reps[-1]['speedup_vs_reladiff']}")
            figures["repeats"] = reps
            figures["reladiff_threads"] = threads
            for name in ("limit_s", "bascule_s", "reladiff_s", "ratio_to_limit", "speedup_vs_reladiff"):
                figures[name] = summary([r[name] for r in reps])
            limit_s = median([r["limit_s"] for r in reps])
            bascule_s = median([r["bascule_s"] for r in reps])
            reladiff_s = median([r["reladiff_s"] for r in reps])
            ratio = median([r["ratio_to_limit"] for r in reps])
            speedup = median([r["speedup_vs_reladiff"] for r in reps])
            ratio_runs = runs_text([r["ratio_to_limit"] for r in reps])
            speedup_runs = runs_text([r["speedup_vs_reladiff"] for r in reps])

            expected = plant_differences(lab)
            t0 = time.monotonic()
            diff = full_comparison(plan, track_changes=False, wait_and_confirm_s=0.0)
            figures["bascule_diff_s"] = round(time.monotonic() - t0, 2)
            found = {k: {(t["table"], tuple(x) if isinstance(x, list) else x) for t in diff["tables"]
                         for x in t["keys"][k]} for k in expected}
            exact = found == expected
            diffs_found = diff["differences"]
            figures.update(diffs_found=diffs_found, diffs_exact=exact)
            log(f"bascule with 18 differences: {figures['bascule_diff_s']} s, found {diffs_found}, exact={exact}")

            t0 = time.monotonic()
            inc = incremental_comparison(plan, same, wait_and_confirm_s=0.0)
            figures["incremental_s"] = round(time.monotonic() - t0, 2)
            figures["incremental_diffs"] = inc["differences"]
            stop_tracking(plan)
            log(f"incremental: {figures['incremental_s']} s, found {inc['differences']}")

            reladiff_diff_s, rel_diff = reladiff_all(exe, lab, specs, threads=threads, skip_sort=True,
                                                     workdir=workdir)
            figures["reladiff_diff_s"] = round(reladiff_diff_s, 2)
            figures["reladiff_diffs_found"] = sum(r["diffs"] for r in rel_diff.values())
            log(f"reladiff with differences: {figures['reladiff_diff_s']} s, found {figures['reladiff_diffs_found']}")

            figures["diff_to_identical"] = round(figures["bascule_diff_s"] / bascule_s, 3)
            figures["wait_and_confirm_s_not_timed"] = plan.validation.wait_and_confirm_s
            (OUT / "validation.json").write_text(json.dumps(figures, indent=2, default=str))
            print(f"bascule_s={bascule_s:.2f} reladiff_s={reladiff_s:.2f} limit_s={limit_s:.2f} "
                  f"ratio_to_limit={ratio:.3f} speedup_vs_reladiff={speedup:.3f} "
                  f"diffs_found={diffs_found} diffs_expected=18 incremental_s={figures['incremental_s']} "
                  f"repeats={len(reps)} ratio_runs={ratio_runs} speedup_runs={speedup_runs}", file=last)
            return 0 if exact and diffs_found == 18 else 1
        finally:
            shutil.rmtree(home, ignore_errors=True)
            if not args.keep:
                lab.down()


if __name__ == "__main__":
    sys.exit(main())
