"""A whole cutover under the real scheduler, at scale, with the clinic simulator writing.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/cutover.py --patients 1000000

Its own lab (purpose "bench-cutover") seeded at --patients; forward replication
(initial load) started; an Airflow stack (api-server, scheduler, dag-processor,
triggerer; LocalExecutor, scheduler_idle_sleep_time 0.1) on the control cluster;
the simulator writing through PgBouncer at --rate; Slack played by the local
capture server, answering after --slack-latency (0.2 s, as real Slack's API);
gates answered through the REST API as soon as they ask and Airflow can take the
answer (once the scheduler has logged the parked worker's exit, ADR 0034).
Figures come from the run's own report (task timings) and the simulator's
ledger; write_rate is the simulator's rate before the freeze. Last line:

    downtime_s=<d> work_s=<w> overhead_pct=<o> acked_writes=<a> refused_writes=<r> write_rate=<w/s> lost_writes=<n>
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from _last_line import figures_last


def main() -> int:
    with figures_last() as last:
        return _run(last)


def _run(last: TextIO) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=150.0, help="simulator writes per second")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of writes before the run starts")
    parser.add_argument("--slack-latency", type=float, default=0.2,
                        help="seconds the local Slack capture server takes to answer each call (real Slack: 0.1-0.3)")
    parser.add_argument("--keep", action="store_true", help="leave the lab and Airflow running")
    args = parser.parse_args()

    import os

    from psycopg import sql

    from bascule.paths import LAB_PLAN, REPO_ROOT
    from bascule.plan import load_plan
    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.airflow_stack import AirflowStack
    from bascule_lab.clusters import AIRFLOW_DB, CONTROL, Lab
    from bascule_lab.paths import airflow_home, lab_dir
    from bascule_lab.scenario import LabCutover, gate_users, start_forward_replication
    from bascule_lab.slack_capture import CaptureServer

    plan = load_plan(LAB_PLAN)
    lab = Lab(lab_dir(purpose="bench-cutover"), echo=lambda line: print(line, flush=True))
    home = airflow_home(purpose="bench-cutover")
    AirflowStack.stop_recorded(home)
    lab.up()
    t0 = time.monotonic()
    lab.seed(patients=args.patients, release_migration=plan.release_migration_path)
    print(f"bench: lab ready at {args.patients:,} patients in {time.monotonic() - t0:.0f} s", flush=True)
    with lab.connect(CONTROL) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(AIRFLOW_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER airflow_meta").format(sql.Identifier(AIRFLOW_DB)))
    env = airflow_env(home=home, connections_file=lab.connections_file, sql_alchemy_conn=lab.airflow_metadata_url())
    os.environ.update(env)
    t0 = time.monotonic()
    start_forward_replication(plan, timeout=3600)
    load_s = time.monotonic() - t0
    # Slack as on the night: up, answering after --slack-latency; what would be posted is recorded.
    slack = CaptureServer(out=REPO_ROOT / "bench" / "out" / "cutover-runs" / "slack.jsonl",
                          latency_s=args.slack_latency).start()
    conns = json.loads(lab.connections_file.read_text())
    conns["bascule_slack"] = {"conn_type": "slack", "password": "xoxb-bascule-bench-capture",
                              "extra": {"base_url": slack.api_url}}
    lab.connections_file.write_text(json.dumps(conns))
    stack = AirflowStack(home=home, env=env, users=gate_users(plan))
    stack.start()
    try:
        night = LabCutover(lab=lab, stack=stack, plan=plan, workdir=REPO_ROOT / "bench" / "out" / "cutover-runs")
        result = night.run(sessions=args.sessions, rate=args.rate, warmup_s=args.warmup, timeout=3600)
    finally:
        if not args.keep:
            stack.stop()
        slack.stop()
    posted = [r for r in slack.records if r["api_method"] == "chat.postMessage" and r["failure"] == "none"]
    report = result.report or {}
    sim = result.simulator
    writes = result.writes
    steps = {s["step"]: s["actual_s"] for s in report.get("steps", [])}
    figures = {
        "patients": args.patients, "initial_load_s": round(load_s, 1), "state": result.state,
        "downtime_s": report.get("downtime_s"), "work_s": report.get("work_s"),
        "overhead_s": report.get("overhead_s"), "overhead_pct": report.get("overhead_pct"),
        # Part of the overhead: the GO LIVE gate's question to its answer (the answerer's cue included).
        "decision_wait_s": report.get("decision_wait_s"),
        "acked_writes": writes.get("acked"), "refused_writes": writes.get("refused"),
        "lost_writes": writes.get("lost"),
        # The issue asks for the rate sustained before the freeze; the whole run's average includes the
        # downtime, when every write is refused by design.
        "write_rate": sim.get("write_rate_before_freeze"),
        "write_rate_whole_run": round(sim.get("acked", 0) / sim["seconds"], 1) if sim.get("seconds") else None,
        "slack_latency_s": args.slack_latency, "slack_posts": len(posted),
        "steps": steps, "run_id": result.run_id, "tasks": result.tasks,
    }
    out = REPO_ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cutover.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k not in ("tasks",)}, indent=2))
    if not args.keep:
        lab.down()
    print(f"downtime_s={figures['downtime_s']} work_s={figures['work_s']} overhead_pct={figures['overhead_pct']} "
          f"acked_writes={figures['acked_writes']} refused_writes={figures['refused_writes']} "
          f"write_rate={figures['write_rate']} lost_writes={figures['lost_writes']}", file=last)
    return 0 if result.state == "success" and writes.get("lost") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
