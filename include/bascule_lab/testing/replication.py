"""Test helpers around replication flows."""

from __future__ import annotations

from typing import Any


def drop_both_directions(plan: Any) -> None:
    """Drop the reverse then the forward flow of ``plan`` (subscription, slot, publication), whatever is left."""
    from bascule.replication.factory import replication_from_plan

    for direction in ("reverse", "forward"):
        repl = replication_from_plan(plan, direction)
        try:
            repl.drop()
        finally:
            repl.close()
