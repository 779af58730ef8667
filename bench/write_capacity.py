"""The highest write rate this machine sustains through a whole night with every lost count at 0.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/write_capacity.py --rates 300,400,500,600

bench/cutover.py's night, each in its own process (the two clusters, PgBouncer, Airflow under the real
scheduler, the clinic simulator: 30 % updates, 10 % deletes) at --patients, once
per rate asked, in ascending order. A rate is sustained when the simulator's
acknowledged writes over the 60 s before the freeze reach --sustained (95 %) of it
and no acknowledged insert, update or delete is lost, resurrected or changed; the
search stops at the first rate that is not. Per rate: asked, measured (per kind),
downtime and lost counts, in bench/out/write_capacity.json. Last line:

    max_sustained_rate=<w/s> measured_at_max=<w/s> first_failing_rate=<w/s|none> lost_writes=<n> lost_updates=<n> resurrected_deletes=<n>
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from _last_line import figures_last
from cutover import add_night_arguments, night_in_own_process


def main() -> int:
    with figures_last() as last:
        return _run(last)


def _run(last: TextIO) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--rates", default="300,400,500,600", help="writes per second to try, ascending")
    parser.add_argument("--sustained", type=float, default=0.95,
                        help="share of the asked rate the 60 s before the freeze must reach")
    add_night_arguments(parser)
    args = parser.parse_args()
    try:
        rates = sorted(float(r) for r in args.rates.split(",") if r.strip())
    except ValueError:
        parser.error(f"--rates: comma-separated numbers (got {args.rates!r})")
    from bascule.paths import REPO_ROOT

    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    tried: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failing = None
    for rate in rates:
        args.rate = rate
        figures = night_in_own_process(args, patients=args.patients, purpose="bench-capacity",
                                       figures_file=out / f"write_capacity-{rate:g}.json")
        measured = figures.get("write_rate") or 0.0
        ok = figures["state"] == "success" and figures["clean"] and measured >= args.sustained * rate
        tried.append({"asked": rate, "measured": measured, "ok": ok, "state": figures["state"],
                      "per_kind_60s": figures.get("write_rates_60s_before_freeze"),
                      "downtime_s": figures.get("downtime_s"),
                      **{k: figures.get(k) for k in ("lost_writes", "lost_updates", "resurrected_deletes")}})
        print(f"bench: asked {rate:g}/s, measured {measured}/s over the 60 s before the freeze, "
              f"{'sustained' if ok else 'NOT sustained'}: {json.dumps(tried[-1])}", flush=True)
        if not ok:
            failing = rate
            break
        best = tried[-1]
    (out / "write_capacity.json").write_text(json.dumps(tried, indent=2))
    lost = {k: sum(int(t.get(k) or 0) for t in tried) for k in ("lost_writes", "lost_updates", "resurrected_deletes")}
    print(f"max_sustained_rate={best['asked'] if best else None} "
          f"measured_at_max={best['measured'] if best else None} first_failing_rate={failing or 'none'} "
          f"lost_writes={lost['lost_writes']} lost_updates={lost['lost_updates']} "
          f"resurrected_deletes={lost['resurrected_deletes']}", file=last)
    return 0 if best is not None else 1


if __name__ == "__main__":
    sys.exit(main())
