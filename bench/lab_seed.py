"""Generate the lab's hospital at scale and time it.

    .venv/bin/python bench/lab_seed.py --patients 1000000

Uses its own lab (separate from the demo's and the tests'), re-seeds even if a
template exists, prints each table's progress, and ends with the line
``patients=<n> rows=<total rows> seconds=<s>``. The clusters are stopped at
the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _last_line import figures_last

from bascule.inventory import human_bytes
from bascule.paths import REPO_ROOT
from bascule_lab.clusters import SOURCE, Lab, default_release_migration
from bascule_lab.paths import lab_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="leave the bench lab running")
    args = parser.parse_args()

    from bascule_lab import seed as seeding

    with figures_last() as last:
        lab = Lab(lab_dir(purpose="bench"), echo=lambda line: print(line, flush=True))
        lab.up()
        try:
            started = time.monotonic()
            result = lab.seed(patients=args.patients, seed=args.seed, force=True,
                              release_migration=default_release_migration())
            total = time.monotonic() - started
            with lab.connect(SOURCE, "clinic") as conn:
                stats = seeding.table_stats(conn)
            print()
            print(f"{'table':<28}{'rows':>14}{'size':>12}")
            for st in stats:
                print(f"{st.name:<28}{st.rows:>14,}{human_bytes(st.total_bytes):>12}")
            out = REPO_ROOT / "bench" / "out"
            out.mkdir(parents=True, exist_ok=True)
            (out / "lab_seed.json").write_text(json.dumps({
                "patients": args.patients, "rows": result["rows"], "source_and_target_seconds": result["seconds"],
                "with_reset_seconds": round(total, 2),
                "tables": {st.name: {"rows": st.rows, "bytes": st.total_bytes} for st in stats},
            }, indent=2))
            print(f"(seed of source + target templates {result['seconds']} s; with the reset copy {total:.1f} s)")
            print(f"patients={args.patients} rows={result['rows']} seconds={result['seconds']}", file=last)
        finally:
            if not args.keep:
                lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
