"""``bascule runbook``: the night by hand, for when Airflow itself is down (``bascule.runbook.break_glass``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def add_parser(sub: Any) -> None:
    rb = sub.add_parser(
        "runbook", help="the night by hand, from the runbook registry: where it stands and what to run next",
        description="Print every task of the night (or the fallback) in order with the exact command that does "
                    "it by hand; with --run, where that run stands. 'step' runs one step outside Airflow; "
                    "'answer' records a gate's answer, signed (on a host that can read the decision key).")
    rb.add_argument("plan", help="the plan file")
    rb.add_argument("--dag", choices=("cutover", "rollback"), default="cutover")
    rb.add_argument("--run", help="the run id (Airflow's, or a new one for a night finished by hand)")
    what = rb.add_subparsers(dest="what")
    step = what.add_parser("step", help="run one step's action by hand")
    step.add_argument("task_id")
    answer = what.add_parser("answer", help="record a gate's answer by hand (assigned users only)")
    answer.add_argument("task_id")
    answer.add_argument("option")
    answer.add_argument("--by", required=True, help="the assigned user answering")
    answer.add_argument("--reason", help="why (required with NO-GO)")
    rb.set_defaults(func=command)


def _runbook(plan: Any, dag: str) -> Any:
    from bascule.runbook.actions import CUTOVER
    from bascule.runbook.evidence import checkpoint_body
    from bascule.runbook.fallback import FALLBACK

    return (CUTOVER if dag == "cutover" else FALLBACK).placed(plan, body_from=checkpoint_body)


def command(args: argparse.Namespace) -> int:
    from bascule.plan import load_plan
    from bascule.runbook import break_glass

    plan = load_plan(args.plan)
    runbook = _runbook(plan, args.dag)
    if args.what is None:
        record = break_glass.read_state(plan.name, runbook.dag_id, args.run) if args.run else None
        print("\n".join(break_glass.render(plan, runbook, plan_path=args.plan, record=record)))
        return EXIT_OK
    if not args.run:
        print(f"bascule runbook {args.what}: --run RUN_ID is required", file=sys.stderr)
        return EXIT_REFUSED
    try:
        if args.what == "answer":
            decision = break_glass.answer_gate(plan, runbook, plan_name=plan.name, run_id=args.run,
                                               task_id=args.task_id, option=args.option, by=args.by,
                                               reason=args.reason)
            print(f"{args.task_id}: {decision['decision']} by {decision['by']}, signed, recorded by hand")
        else:
            break_glass.run_step(plan, runbook, plan_name=plan.name, run_id=args.run, task_id=args.task_id)
    except break_glass.BreakGlassError as exc:
        print(f"bascule runbook: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK
