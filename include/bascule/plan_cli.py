"""``bascule plan check <file>``: validate a plan and say so in exactly one line."""

from __future__ import annotations

import sys

from bascule.durations import format_duration
from bascule.plan import PlanError, load_plan

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def check_command(path: str) -> int:
    """Print a one-line summary and return 0, or one ``<file>: <field>: <message>`` line on stderr and 2.

    Never lets a traceback out: the output is read on a cutover call or parsed by CI.
    """
    try:
        plan = load_plan(path)
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # a bug in bascule, not in the plan: still one line
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{path}: (internal): {message}", file=sys.stderr)
        return EXIT_INTERNAL
    print(
        f"{path}: ok: plan {plan.name!r}, mode {plan.mode.value}, "
        f"{plan.source.engine.value} -> {plan.target.engine.value} via {plan.replication.method.value}, "
        f"budget {format_duration(plan.budget_seconds)}, {len(plan.gates)} gates"
    )
    return EXIT_OK
