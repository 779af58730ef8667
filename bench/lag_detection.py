"""How fast does ReplicationCaughtUpSensor's trigger notice that the target has caught up, or broke?

On its own lab (purpose bench-lag, seeded small), with logical replication running:

* catch-up trials: a burst of writes on the source that the target cannot apply at once
  (``--burst`` single-row transactions committed server-side as fast as the source takes
  them, or every 4th trial one transaction of ``--large`` rows), then the "freeze": the
  source's LSN is taken and the trigger's ``run()`` starts in asyncio. A watcher thread
  polls the target for the burst's last key (every ``--watch-ms``), noting when each look
  started. The trial counts only if the target was still behind when the trigger started
  (the watcher's last look that missed the row started after it); otherwise it is
  discarded and counted (``discarded=``). Gap = the trigger's success event - the first
  look that saw the row. A trigger that fired before the last look that missed the row
  fired before the row was visible: a negative gap, an error, counted (``negative_gaps=``).
* break trials: the trigger waits on an unreachable position; the subscription is
  disabled, or the walsender terminated and the slot dropped; detection = the
  trigger's broken event - the moment the break was done. Replication is then repaired.

Every trial is printed (stderr) and written to bench/out/lag_detection.json.

Run:  flock /tmp/bascule-heavy.lock .venv/bin/python bench/lag_detection.py [--trials 24] [--breaks 4]
Last line: median_s=<m> p95_s=<p> max_s=<x> break_median_s=<b> negative_gaps=<n> trials=<t> discarded=<d>
break_trials=<b> poll_interval_s=<p>.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from _last_line import figures_last
from _runs import detection_gap, median, quantile

from bascule.paths import LAB_PLAN, REPO_ROOT
from bascule_lab.airflow_env import airflow_env
from bascule_lab.clusters import Lab, default_release_migration
from bascule_lab.paths import lab_dir

OUT = REPO_ROOT / "bench" / "out" / "lag_detection.json"
KEY_BASE = 1_000_000_000


async def _first_event(trigger: Any, timeout: float) -> tuple[dict[str, Any], float]:
    agen = trigger.run()
    try:
        event = await asyncio.wait_for(agen.__anext__(), timeout)
        return event.payload, time.monotonic()
    finally:
        await agen.aclose()


class Watcher(threading.Thread):
    """Polls the target every ``interval_s`` until the key is visible; notes when each look started."""

    def __init__(self, lab: Lab, key: int, interval_s: float) -> None:
        super().__init__(daemon=True)
        self.lab, self.key, self.interval_s = lab, key, interval_s
        self.missed_at: float | None = None  # start of the last look that did not find the row
        self.seen_at: float | None = None  # start of the first look that found it
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with self.lab.connect("new", "clinic") as conn:
            cur = conn.cursor()
            self.ready.set()
            while not self.stop.is_set():
                looked = time.monotonic()
                cur.execute("SELECT 1 FROM clinic.audit_log WHERE audit_id = %s", (self.key,))
                if cur.fetchone():
                    self.seen_at = looked
                    return
                self.missed_at = looked
                # A pause between looks: a tight loop would take a core from the apply worker it watches.
                time.sleep(self.interval_s)


def _write(lab: Lab, kind: str, base: int, rows: int) -> int:
    with lab.connect("legacy", "clinic") as conn:
        conn.execute("SET synchronous_commit = off")
        if kind == "single_row":
            # One transaction per row, committed inside the server: faster than the apply worker
            # replays them one by one, so the target is still behind when the burst ends.
            conn.execute(
                f"DO $$ BEGIN FOR i IN 1..{int(rows)} LOOP"
                " INSERT INTO clinic.audit_log (audit_id, logged_at, staff_id, action, object_type)"
                f" VALUES ({int(base)} + i, now(), 1, 'view', 'bench'); COMMIT; END LOOP; END $$")
        else:
            conn.execute("INSERT INTO clinic.audit_log (audit_id, logged_at, staff_id, action, object_type)"
                         " SELECT %s + g, now(), 1, 'view', 'bench' FROM generate_series(1, %s) g", (base, rows))
    return base + rows


def _catch_up_trial(lab: Lab, repl: Any, config: dict[str, Any], trial: int, kind: str, rows: int,
                    poll_s: float, watch_s: float) -> dict[str, Any]:
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    base = KEY_BASE + trial * 1_000_000
    watcher = Watcher(lab, base + rows, watch_s)
    watcher.start()
    watcher.ready.wait(10)
    began = time.monotonic()
    _write(lab, kind, base, rows)
    written = time.monotonic()
    frozen = repl.source_position()
    trigger = ReplicationCaughtUpTrigger(replication_config=config, position=frozen, poll_interval_s=poll_s)
    started = time.monotonic()
    event, fired_at = asyncio.run(_first_event(trigger, timeout=300))
    watcher.join(60)
    watcher.stop.set()
    if event["status"] != "success" or watcher.seen_at is None:
        raise SystemExit(f"trial {trial}: no catch-up ({event['status']}: {event.get('cause')})")
    missed_at = watcher.missed_at if watcher.missed_at is not None else began
    # Behind at the start: the watcher still missed the row after the trigger had started.
    behind = missed_at > started
    gap = detection_gap(fired_at=fired_at, seen_at=watcher.seen_at, missed_at=missed_at)
    return {"trial": trial, "kind": kind, "rows": rows, "write_s": round(written - began, 3),
            "behind_at_start": behind, "behind_for_s": round(watcher.seen_at - started, 4),
            "visible_after_write_s": round(watcher.seen_at - written, 4),
            "detection_gap_s": round(gap.seconds, 4), "watch_resolution_s": round(gap.resolution_s, 4),
            "negative_gap": gap.negative, "position": frozen}


def _break_trial(lab: Lab, repl: Any, config: dict[str, Any], trial: int, how: str, poll_s: float) -> dict[str, Any]:
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    broken_at: list[float] = []

    def break_it() -> None:
        # A random offset: a fixed delay would land at the same phase of the poll cycle every time.
        time.sleep(1.0 + random.uniform(0.0, poll_s))
        if how == "disable_subscription":
            with lab.connect("new", "clinic") as conn:
                conn.execute("ALTER SUBSCRIPTION bascule_sub DISABLE")
            broken_at.append(time.monotonic())
            return
        with lab.connect("legacy", "clinic") as conn:
            while True:
                conn.execute("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
                             " WHERE slot_name = 'bascule_sub' AND active_pid IS NOT NULL")
                try:
                    conn.execute("SELECT pg_drop_replication_slot('bascule_sub')")
                    broken_at.append(time.monotonic())
                    return
                except Exception:
                    time.sleep(0.01)

    breaker = threading.Thread(target=break_it, daemon=True)
    breaker.start()
    trigger = ReplicationCaughtUpTrigger(replication_config=config, position="FF/0", poll_interval_s=poll_s)
    event, fired_at = asyncio.run(_first_event(trigger, timeout=120))
    breaker.join(30)
    result = {"trial": trial, "kind": how, "status": event["status"], "cause": event.get("cause"),
              "detection_s": round(fired_at - broken_at[0], 4)}
    # Repair: nothing was written meanwhile, so a fresh slot without a copy is consistent.
    if how == "disable_subscription":
        repl.enable()
    else:
        repl.drop()
        repl.create_publication()
        repl.create_subscription(copy_data=False)
    _wait_streaming(repl)
    return result


def _wait_streaming(repl: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = repl.reading()
        if reading.state.value == "streaming":
            return
        time.sleep(0.2)
    raise SystemExit(f"replication not streaming: {reading.state.value} {reading.cause}")


def main(argv: list[str]) -> int:
    with figures_last() as last:
        return _run(argv, last)


def _run(argv: list[str], last: TextIO) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="catch-up trials (every 4th: one large transaction)")
    parser.add_argument("--breaks", type=int, default=4, help="break trials (half disable, half slot drop)")
    parser.add_argument("--burst", type=int, default=20_000, help="single-row transactions per burst")
    parser.add_argument("--large", type=int, default=100_000, help="rows of the large transaction")
    parser.add_argument("--watch-ms", type=float, default=2.0, help="pause between the watcher's looks")
    parser.add_argument("--max-discards", type=int, default=24, help="stop after this many discarded trials")
    parser.add_argument("--patients", type=int, default=1000)
    args = parser.parse_args(argv)

    lab = Lab(lab_dir(purpose="bench-lag"), echo=lambda line: print(line, file=sys.stderr))
    lab.up()
    try:
        lab.seed(patients=args.patients, release_migration=default_release_migration())
        home = Path(tempfile.mkdtemp(prefix="bascule-bench-lag-"))
        os.environ.update(airflow_env(home=home, connections_file=lab.connections_file))

        from bascule.plan import load_plan
        from bascule.replication.factory import replication_config, replication_from_plan

        plan = load_plan(LAB_PLAN)
        poll_s = plan.replication.poll_interval_s
        config = replication_config(plan)
        repl = replication_from_plan(plan)
        repl.create_publication()
        repl.create_subscription(copy_data=True)
        _wait_streaming(repl)

        catch_up, discarded = [], []
        trial = 0
        while len(catch_up) < args.trials and len(discarded) < args.max_discards:
            kind, rows = ("large_txn", args.large) if trial % 4 == 3 else ("single_row", args.burst)
            result = _catch_up_trial(lab, repl, config, trial, kind, rows, poll_s, args.watch_ms / 1000)
            (catch_up if result["behind_at_start"] else discarded).append(result)
            print(f"trial {trial:2d} {kind:<10} rows={rows:<6} write={result['write_s']:.3f}s "
                  f"behind_for={result['behind_for_s']:.3f}s gap={result['detection_gap_s']:.3f}s"
                  f"{' NEGATIVE' if result['negative_gap'] else ''}"
                  f"{'' if result['behind_at_start'] else ' discarded: target not behind at the start'}",
                  file=sys.stderr)
            trial += 1
        breaks = []
        for i in range(args.breaks):
            how = "disable_subscription" if i % 2 == 0 else "terminate_walsender_and_drop_slot"
            result = _break_trial(lab, repl, config, trial + i, how, poll_s)
            breaks.append(result)
            print(f"break {i} {how:<34} {result['status']} in {result['detection_s']:.3f}s: {result['cause']}",
                  file=sys.stderr)
        repl.drop()
        repl.close()
    finally:
        lab.down()

    if not catch_up:
        raise SystemExit(f"no valid catch-up trial: {len(discarded)} discarded (target never behind)")
    gaps = [r["detection_gap_s"] for r in catch_up]
    detections = [r["detection_s"] for r in breaks if r["status"] == "broken"]
    negative = sum(r["negative_gap"] for r in catch_up + discarded)
    summary = {
        "median_s": round(median(gaps), 3), "p95_s": round(quantile(gaps, 0.95), 3),
        "min_gap_s": round(min(gaps), 4), "max_s": round(max(gaps), 3),
        "break_median_s": round(median(detections), 3) if detections else None,
        "negative_gaps": negative, "trials": len(catch_up), "discarded": len(discarded),
        "break_trials": len(breaks), "breaks_detected": len(detections), "poll_interval_s": poll_s,
        "goal": {"median_s": 1.0, "break_median_s": 5.0, "negative_gaps": 0},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "catch_up": catch_up, "discarded": discarded, "breaks": breaks},
                          indent=2))
    print(f"wrote {OUT}")
    print(f"median_s={summary['median_s']} p95_s={summary['p95_s']} max_s={summary['max_s']} "
          f"break_median_s={summary['break_median_s']} negative_gaps={negative} trials={summary['trials']} "
          f"discarded={summary['discarded']} break_trials={summary['break_trials']} poll_interval_s={poll_s}",
          file=last)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
