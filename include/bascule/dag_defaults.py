"""Defaults every bascule DAG shares, so the DAG-integrity tests can hold them to it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum

from bascule.plan import Plan

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
OWNER = "bascule"


def default_args(*, retries: int = 1, on_failure_callback: Any = None) -> dict[str, Any]:
    """``on_failure_callback``: the plan's failure notifiers (``notifications.slack.failure_notifiers``)."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=10),
    }
    if on_failure_callback:
        args["on_failure_callback"] = on_failure_callback
    return args


def tags(plan: Plan, *extra: str) -> list[str]:
    return ["bascule", f"plan:{plan.name}", f"mode:{plan.mode.value}", *extra]
