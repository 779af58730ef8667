"""How fast does ReplicationCaughtUpSensor's trigger notice that the target has caught up, or broke?

On its own lab (purpose bench-lag, seeded small), with logical replication running:

* catch-up trials: a burst of writes on the source (2,000 single-row transactions, or
  one transaction of 100,000+ rows), then the "freeze": the source's LSN is taken and
  the trigger's ``run()`` starts in asyncio. A separate thread polls the target in a
  tight loop for the burst's last key (keys are chosen up front), timestamping the
  moment it becomes visible. Gap = trigger's success event - that moment.
  A negative gap would mean the trigger fired before the last row was there.
* break trials: the trigger waits on an unreachable position; the subscription is
  disabled, or the walsender terminated and the slot dropped; detection = the
  trigger's broken event - the moment the break was done. Replication is then repaired.

Run:  flock /tmp/bascule-heavy.lock .venv/bin/python bench/lag_detection.py [--trials 24] [--breaks 4]
Last line: median_s=<m> p95_s=<p> break_median_s=<b> trials=<n>; figures in bench/out/lag_detection.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from _last_line import figures_last

from bascule.paths import LAB_PLAN, REPO_ROOT
from bascule_lab.airflow_env import airflow_env
from bascule_lab.clusters import Lab, default_release_migration
from bascule_lab.paths import lab_dir

OUT = REPO_ROOT / "bench" / "out" / "lag_detection.json"
KEY_BASE = 1_000_000_000


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _first_event(trigger: Any, timeout: float) -> tuple[dict[str, Any], float]:
    agen = trigger.run()
    try:
        event = await asyncio.wait_for(agen.__anext__(), timeout)
        return event.payload, time.monotonic()
    finally:
        await agen.aclose()


class Watcher(threading.Thread):
    """Polls the target as fast as it can until the key is visible."""

    def __init__(self, lab: Lab, key: int) -> None:
        super().__init__(daemon=True)
        self.lab, self.key = lab, key
        self.seen_at: float | None = None
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with self.lab.connect("new", "clinic") as conn:
            cur = conn.cursor()
            self.ready.set()
            while not self.stop.is_set():
                cur.execute("SELECT 1 FROM clinic.audit_log WHERE audit_id = %s", (self.key,))
                if cur.fetchone():
                    self.seen_at = time.monotonic()
                    return


def _write(lab: Lab, kind: str, base: int, rows: int) -> int:
    insert = ("INSERT INTO clinic.audit_log (audit_id, logged_at, staff_id, action, object_type)"
              " VALUES (%s, now(), 1, 'view', 'bench')")
    with lab.connect("legacy", "clinic") as conn:
        if kind == "single_row":
            cur = conn.cursor()
            for i in range(1, rows + 1):
                cur.execute(insert, (base + i,))
        else:
            conn.execute("INSERT INTO clinic.audit_log (audit_id, logged_at, staff_id, action, object_type)"
                         " SELECT %s + g, now(), 1, 'view', 'bench' FROM generate_series(1, %s) g", (base, rows))
    return base + rows


def _catch_up_trial(lab: Lab, repl: Any, config: dict[str, Any], trial: int, kind: str, rows: int,
                    poll_s: float) -> dict[str, Any]:
    from bascule.triggers.replication import ReplicationCaughtUpTrigger

    base = KEY_BASE + trial * 1_000_000
    watcher = Watcher(lab, base + rows)
    watcher.start()
    watcher.ready.wait(10)
    started = time.monotonic()
    _write(lab, kind, base, rows)
    written = time.monotonic()
    frozen = repl.source_position()
    trigger = ReplicationCaughtUpTrigger(replication_config=config, position=frozen, poll_interval_s=poll_s)
    event, fired_at = asyncio.run(_first_event(trigger, timeout=300))
    watcher.join(60)
    watcher.stop.set()
    if event["status"] != "success" or watcher.seen_at is None:
        raise SystemExit(f"trial {trial}: no catch-up ({event['status']}: {event.get('cause')})")
    return {"trial": trial, "kind": kind, "rows": rows, "write_s": round(written - started, 3),
            "visible_after_write_s": round(watcher.seen_at - written, 4),
            "detection_gap_s": round(fired_at - watcher.seen_at, 4), "position": frozen}


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
    parser.add_argument("--burst", type=int, default=2000, help="single-row transactions per burst")
    parser.add_argument("--large", type=int, default=100_000, help="rows of the large transaction")
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

        catch_up = []
        for trial in range(args.trials):
            kind, rows = ("large_txn", args.large) if trial % 4 == 3 else ("single_row", args.burst)
            result = _catch_up_trial(lab, repl, config, trial, kind, rows, poll_s)
            catch_up.append(result)
            print(f"trial {trial:2d} {kind:<10} rows={rows:<6} visible_after_write={result['visible_after_write_s']:.3f}s"
                  f" gap={result['detection_gap_s']:.3f}s", file=sys.stderr)
        breaks = []
        for i in range(args.breaks):
            how = "disable_subscription" if i % 2 == 0 else "terminate_walsender_and_drop_slot"
            result = _break_trial(lab, repl, config, args.trials + i, how, poll_s)
            breaks.append(result)
            print(f"break {i} {how:<34} {result['status']} in {result['detection_s']:.3f}s: {result['cause']}",
                  file=sys.stderr)
        repl.drop()
        repl.close()
    finally:
        lab.down()

    gaps = [r["detection_gap_s"] for r in catch_up]
    detections = [r["detection_s"] for r in breaks if r["status"] == "broken"]
    summary = {
        "median_s": round(statistics.median(gaps), 3), "p95_s": round(_quantile(gaps, 0.95), 3),
        "min_gap_s": round(min(gaps), 4), "max_gap_s": round(max(gaps), 3),
        "break_median_s": round(statistics.median(detections), 3) if detections else None,
        "trials": len(catch_up), "break_trials": len(breaks), "poll_interval_s": poll_s,
        "goal": {"median_s": 1.0, "break_median_s": 5.0},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "catch_up": catch_up, "breaks": breaks}, indent=2))
    print(f"wrote {OUT}")
    print(f"median_s={summary['median_s']} p95_s={summary['p95_s']} break_median_s={summary['break_median_s']} "
          f"trials={summary['trials']}", file=last)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
