"""The `bascule` command: the lab, plan checks, and the demo.

    bascule lab up | down | status | reset | seed [--patients N] | destroy
    bascule plan check FILE
    bascule plan grants FILE
    bascule demo [--patients N]       # the main job: a whole lab cutover night
    bascule inventory                # the inventory DAG on the lab
    bascule env                      # export lines for Airflow against the lab
    bascule airflow ARGS...          # the airflow CLI, configured for the lab
    bascule evidence verify RUN      # check a run's evidence against its sealed SHA-256 chain
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bascule.paths import LAB_PLAN

# Every command but `plan check` works on the built-in lab, the separate package bascule_lab.
# The product never imports it (tests/unit/test_no_lab_in_product.py): each lab command
# imports it lazily, inside its own function.

DEFAULT_DEMO_PATIENTS = 10_000


def _echo(line: str) -> None:
    print(line, flush=True)


def _lab_command(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command on the lab: the lab's errors end it with their one line and exit 1."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from bascule_lab.common import LabError

        try:
            return func(args)
        except LabError as exc:
            print(f"bascule: {exc}", file=sys.stderr)
            return 1

    return run


def _lab(purpose: str | None = None) -> Any:
    """The lab's clusters: a ``bascule_lab.clusters.Lab``; ``$BASCULE_LAB_PURPOSE`` (else the demo's) names
    which lab, so that a rehearsal's refresh command on a test stack resets the test's lab."""
    from bascule_lab.clusters import Lab
    from bascule_lab.paths import lab_dir

    return Lab(lab_dir(purpose=purpose or os.environ.get("BASCULE_LAB_PURPOSE") or "demo"), echo=_echo)


def _release_migration(plan_path: Path) -> Path | None:
    from bascule.plan import load_plan

    return load_plan(plan_path).release_migration_path


@_lab_command
def cmd_lab(args: argparse.Namespace) -> int:
    from bascule.inventory import human_bytes

    if args.action == "seed-remote":
        from bascule_lab import remote

        return remote.main(args.remote_args)
    lab = _lab()
    if args.action == "up":
        lab.up()
        _echo(f"lab: connections for Airflow in {lab.connections_file}")
    elif args.action == "down":
        from bascule_lab.airflow_stack import AirflowStack
        from bascule_lab.paths import airflow_home

        AirflowStack.stop_recorded(airflow_home(purpose="demo"), echo=_echo)
        lab.down()
    elif args.action == "destroy":
        lab.destroy()
        _echo(f"lab: removed {lab.root}")
    elif args.action == "status":
        if not lab.state_file.exists():
            _echo(f"lab: not created yet ({lab.root}); run `bascule lab up`")
            return 0
        for st in lab.status():
            state = f"running (pid {st.pid})" if st.running else "stopped"
            dbs = ", ".join(st.databases) if st.databases else "-"
            _echo(f"{st.name:<8} 127.0.0.1:{st.port:<6} {state:<20} {human_bytes(st.size_bytes):>9}  databases: {dbs}")
        seed = lab.state().seed
        if seed:
            _echo(f"seeded: patients={seed['patients']} seed={seed['seed']} rows={seed['rows']:,} "
                  f"({seed['seconds']} s)")
    elif args.action == "reset":
        lab.reset()
    elif args.action == "seed":
        lab.up()
        result = lab.seed(patients=args.patients, seed=args.seed, force=args.force,
                          release_migration=_release_migration(Path(args.plan)))
        _echo(f"patients={result['patients']} rows={result['rows']} seconds={result['seconds']}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from bascule.plan_cli import check_command, grants_command

    if args.action == "grants":
        return grants_command(args.file)
    return check_command(args.file, connections=args.connections)


def lab_airflow_env(*, purpose: str = "demo", metadata: str = "control") -> dict[str, str]:
    """Airflow's settings for the running lab: metadata in the control cluster or SQLite."""
    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.paths import airflow_home

    lab = _lab(purpose)
    home = airflow_home(purpose=purpose)
    home.mkdir(parents=True, exist_ok=True)
    url = lab.airflow_metadata_url() if metadata == "control" else None
    return airflow_env(home=home, connections_file=lab.connections_file, sql_alchemy_conn=url)


@_lab_command
def cmd_env(args: argparse.Namespace) -> int:
    import shlex

    for key, value in sorted(lab_airflow_env(metadata=args.metadata).items()):
        print(f"export {key}={shlex.quote(value)}")
    return 0


@_lab_command
def cmd_airflow(args: argparse.Namespace) -> int:
    env = {**os.environ, **lab_airflow_env(metadata=args.metadata)}
    airflow = Path(sys.executable).with_name("airflow")
    os.execve(str(airflow), [str(airflow), *args.airflow_args], env)
    return 0  # pragma: no cover - execve does not return


@_lab_command
def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the lab: a whole cutover night, gates answered automatically (lab plan only)."""
    import json
    import subprocess

    from bascule.engines import postgres_assessment as pg
    from bascule.plan import load_plan
    from bascule.runbook.report import summary_text
    from bascule_lab.airflow_stack import AirflowStack
    from bascule_lab.clusters import AIRFLOW_DB, CONTROL
    from bascule_lab.common import free_port
    from bascule_lab.gates.auto import ensure_auto_answer_allowed
    from bascule_lab.paths import airflow_home
    from bascule_lab.scenario import LabCutover, gate_users, start_forward_replication
    from bascule_lab.slack_capture import render_thread_text, route_slack

    started = time.monotonic()
    plan = load_plan(LAB_PLAN)
    ensure_auto_answer_allowed(plan)
    _echo("== bascule demo: a whole cutover night on the built-in hospital lab ==")
    _echo(f"DEMO MODE: the gates will be answered automatically, as their assigned users, because plan "
          f"'{plan.name}' is a {plan.mode.value} plan (a production plan refuses this).")
    lab = _lab()
    home = airflow_home(purpose="demo")
    AirflowStack.stop_recorded(home, echo=_echo)
    lab.up()
    lab.seed(patients=args.patients, seed=42, release_migration=plan.release_migration_path)

    # A local Slack: the demo shows the thread the team would have followed.
    home.mkdir(parents=True, exist_ok=True)
    capture_file = home / "slack-capture.jsonl"
    capture_file.unlink(missing_ok=True)
    port = free_port()
    capture = subprocess.Popen(
        [sys.executable, "-m", "bascule_lab.slack_capture", "--port", str(port), "--out", str(capture_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    route_slack(lab.connections_file, f"http://127.0.0.1:{port}/api/", token="xoxb-bascule-demo-capture")

    stack = None
    try:
        with lab.connect(CONTROL) as conn:
            conn.execute(pg.drop_database(AIRFLOW_DB))
            conn.execute(pg.create_database_owned_by(AIRFLOW_DB, "airflow_meta"))
        env = lab_airflow_env(metadata="control")
        # This process talks to the lab through Airflow connections too (replication set-up).
        os.environ.update(env)
        start_forward_replication(plan, echo=_echo)
        stack = AirflowStack(home=home, env=env, users=gate_users(plan), echo=_echo)
        stack.start()
        pids = json.loads((home / "pids.json").read_text())
        (home / "pids.json").write_text(json.dumps({**pids, "slack-capture": capture.pid}))
        night = LabCutover(lab=lab, stack=stack, plan=plan, workdir=home / "demo-runs", echo=_echo)
        result = night.run(sessions=4, rate=args.rate)
    except BaseException:
        # A failed demo leaves nothing running behind it; a finished one leaves the UI up on purpose.
        capture.terminate()
        if stack is not None:
            stack.stop()
        raise
    _echo("")
    if result.report:
        _echo(summary_text(result.report))
        _echo(f"report files: {json.dumps(result.report.get('files', {}))}")
    _echo("")
    w = result.writes
    _echo(f"clinic simulator: {w.get('acked', 0)} writes acknowledged ({w.get('inserts', 0)} inserts, "
          f"{w.get('updates', 0)} updates, {w.get('deletes', 0)} deletes), {w.get('refused', 0)} refused during "
          f"the freeze, {w.get('indeterminate', 0)} indeterminate; lost: {w.get('lost', 0)} inserts, "
          f"{w.get('lost_updates', 0)} updates, {w.get('resurrected_deletes', 0)} resurrected deletes; "
          f"endpoint now on '{result.endpoint_side}'")
    time.sleep(1.0)
    records = [json.loads(line) for line in capture_file.read_text().splitlines() if line.strip()] \
        if capture_file.exists() else []
    _echo("")
    _echo("== the Slack thread of the run, as the team saw it (local capture) ==")
    _echo(render_thread_text(records) or "(nothing captured)")
    _echo("")
    # The password stays in its 0600 file: a terminal's scrollback or a CI log is readable by others.
    _echo(f"demo: {result.state} in {time.monotonic() - started:.0f} s. The Airflow UI stays up at "
          f"{stack.base_url} (log in as cutover_manager, password in {stack.passwords_file}, mode 0600; "
          f"DAG 'cutover', Grid view, each task's log; the gates under Required Actions).")
    _echo("      Stop everything with `.venv/bin/bascule lab down`.")
    ok = result.state == "success" and all(w.get(k, 1) == 0 for k in ("lost", "lost_updates", "resurrected_deletes"))
    return 0 if ok else 1


@_lab_command
def cmd_inventory(args: argparse.Namespace) -> int:
    """The inventory DAG with dag.test(), against the running demo lab (SQLite metadata)."""
    import subprocess

    env = {**os.environ, **lab_airflow_env(metadata="sqlite")}
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=True)
    return subprocess.run([sys.executable, "-m", "bascule_lab.demo_run", "inventory"], env=env, check=False).returncode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bascule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="the built-in lab: three local PostgreSQL 15 clusters")
    lab_sub = lab.add_subparsers(dest="action", required=True)
    for action, text in (("up", "start the clusters (creating them if needed)"),
                         ("down", "stop the clusters, leaving no process behind"),
                         ("status", "show ports, processes, sizes and seed"),
                         ("reset", "restore source and target from the seeded templates"),
                         ("destroy", "stop the clusters and delete their files")):
        lab_sub.add_parser(action, help=text)
    seed = lab_sub.add_parser("seed", help="generate the synthetic hospital (source) and the target schema")
    seed.add_argument("--patients", type=int, default=DEFAULT_DEMO_PATIENTS)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--force", action="store_true", help="re-seed even if the template matches")
    seed.add_argument("--plan", default=str(LAB_PLAN), help="plan whose release migration the target gets")
    remote = lab_sub.add_parser(
        "seed-remote", add_help=False,
        help="seed two running servers named by BASCULE_LAB_SOURCE_DSN / BASCULE_LAB_TARGET_DSN (compose)")
    remote.add_argument("remote_args", nargs=argparse.REMAINDER)
    lab.set_defaults(func=cmd_lab)

    plan = sub.add_parser("plan", help="migration plans")
    plan_sub = plan.add_subparsers(dest="action", required=True)
    check = plan_sub.add_parser("check", help="validate a plan file: exit 0, or one line and exit 2")
    check.add_argument("file")
    grants = plan_sub.add_parser("grants", help="the privileges and GoldenGate role the plan's night and "
                                 "preparation need, derived from bascule's own statements")
    grants.add_argument("file")
    check.add_argument("--connections", action="store_true",
                       help="also resolve the plan's connections, refuse a weak or known HMAC key in production, "
                            "and warn on a table key neither surrogate nor identifying")
    plan.set_defaults(func=cmd_plan)

    from bascule import runbook_cli

    runbook_cli.add_parser(sub)

    from bascule import evidence_cli

    evidence_cli.add_parser(sub)

    demo = sub.add_parser("demo", help="set up the lab and run the main job on it")
    demo.add_argument("--patients", type=int, default=DEFAULT_DEMO_PATIENTS)
    demo.add_argument("--rate", type=float, default=100.0, help="simulator writes per second")
    demo.set_defaults(func=cmd_demo)

    inv = sub.add_parser("inventory", help="run the inventory DAG on the lab with dag.test() and print it")
    inv.set_defaults(func=cmd_inventory)

    env = sub.add_parser("env", help="print export lines configuring Airflow for the lab")
    env.add_argument("--metadata", choices=("control", "sqlite"), default="control")
    env.set_defaults(func=cmd_env)

    af = sub.add_parser("airflow", help="run the airflow CLI configured for the lab")
    af.add_argument("--metadata", choices=("control", "sqlite"), default="control")
    af.add_argument("airflow_args", nargs=argparse.REMAINDER)
    af.set_defaults(func=cmd_airflow)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["lab", "seed-remote"]:
        # Its options belong to bascule_lab.remote; argparse would claim them here.
        from bascule_lab import remote

        return remote.main(argv[2:])
    args = build_parser().parse_args(argv)
    from bascule.plan import PlanError

    try:
        return int(args.func(args))
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `bascule ... | head`: the reader left, nothing is wrong
        return 0


if __name__ == "__main__":
    sys.exit(main())
