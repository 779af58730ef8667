"""Downtime against data size: the same night at 100k, 300k and 1M patients, the same write load.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/cutover_scaling.py

Each point is bench/cutover.py's night, in its own process (its own lab, purpose "bench-scaling-<n>",
seeded at that size; forward replication's initial load; an Airflow stack under
the real scheduler; the clinic simulator writing through PgBouncer at --rate from
--sessions sessions, 30 % updates and 10 % deletes by default; gates answered at
once). Downtime is the safety issue's (ADR 0038): from before the REVOKE on the
source to the probe write committed through the endpoint on the target. Each
point prints its downtime and its parts (work, overhead, the window's steps);
write_rate is the lowest of the points' rates over the 60 s before the freeze,
and the lost counts are summed over the points. Figures per point go to
bench/out/cutover_scaling.json. Last line (one line, wrapped here):

    downtime_100k_s=<d> downtime_300k_s=<d> downtime_1m_s=<d> growth_1m_over_100k=<r>
    lost_writes=<n> lost_updates=<n> resurrected_deletes=<n> write_rate=<w/s>
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from _last_line import figures_last
from cutover import add_night_arguments, night_in_own_process

SIZES = {"100k": 100_000, "300k": 300_000, "1m": 1_000_000}
# The window's steps, in the order of the night (the report's step timings).
WINDOW = ("freeze_source", "drain", "stop_replication", "final_validation", "target_suites", "fixups",
          "switch_endpoint", "smoke_tests", "prepare_reverse_replication", "gate_go_live", "open_target_writes")


def main() -> int:
    with figures_last() as last:
        return _run(last)


def _run(last: TextIO) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,300k,1m", help=f"points among {', '.join(SIZES)}")
    add_night_arguments(parser)
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"--sizes: unknown point(s) {', '.join(unknown)} (known: {', '.join(SIZES)})")
    from bascule.paths import REPO_ROOT

    points: dict[str, dict[str, Any]] = {}
    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        print(f"bench: point {size} ({SIZES[size]:,} patients)", flush=True)
        figures = night_in_own_process(args, patients=SIZES[size], purpose=f"bench-scaling-{size}",
                                       figures_file=out / f"cutover_scaling-{size}.json")
        points[size] = figures
        parts = {k: v for k, v in figures["steps"].items() if k in WINDOW}
        print(f"bench: {size}: state {figures['state']}, downtime {figures['downtime_s']} s (work "
              f"{figures['work_s']} s, overhead {figures['overhead_s']} s, GO LIVE answer "
              f"{figures['decision_wait_s']} s), write rate {figures['write_rate']}/s over the 60 s before the "
              f"freeze {figures['write_rates_60s_before_freeze']}, lost {figures['lost_writes']}/"
              f"{figures['lost_updates']}/{figures['resurrected_deletes']}", flush=True)
        print(f"bench: {size}: steps {json.dumps(parts)}; suites {json.dumps(figures['window'])}", flush=True)
    (out / "cutover_scaling.json").write_text(json.dumps(
        {k: {f: v for f, v in p.items() if f != "tasks"} for k, p in points.items()}, indent=2))

    def downtime(size: str) -> Any:
        return points.get(size, {}).get("downtime_s")

    first, top = downtime("100k"), downtime("1m")
    growth = round(top / first, 3) if first and top else None
    lost = {k: sum(int(p.get(k) or 0) for p in points.values())
            for k in ("lost_writes", "lost_updates", "resurrected_deletes")}
    rates = [p["write_rate"] for p in points.values() if p.get("write_rate") is not None]
    rate = min(rates) if rates else None
    middle = downtime("300k")
    lost_writes, lost_updates, resurrected = (lost[k] for k in ("lost_writes", "lost_updates", "resurrected_deletes"))
    print(f"downtime_100k_s={first} downtime_300k_s={middle} downtime_1m_s={top} growth_1m_over_100k={growth} "
          f"lost_writes={lost_writes} lost_updates={lost_updates} resurrected_deletes={resurrected} "
          f"write_rate={rate}", file=last)
    ok = all(p["state"] == "success" and p["clean"] for p in points.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
