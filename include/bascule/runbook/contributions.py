"""Evidence bascule does not produce itself, contributed to a run's report by other packages.

bascule measures what it does; it cannot see what the application saw. An installed
package may contribute one section of a cutover or fallback report by declaring an
entry point in the group ``bascule.report_sections``:

    [project.entry-points."bascule.report_sections"]
    writes = "some_package.module:function"

The entry point's name is the section's key in the report; its object is a callable
that takes a :class:`RunFacts` and returns a JSON-able mapping of counts and rates
(never a row value), or None when it has nothing for this run. The lab's clinic
simulator contributes ``writes`` this way (acknowledged, refused, rate before the
freeze); an application team could contribute its own ledger the same way.

A contribution that fails never fails the report: the section records the exception's
class only (its text could quote anything).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "bascule.report_sections"


@dataclass(frozen=True)
class RunFacts:
    """What a contributor is told about the run it reports on."""

    plan_name: str
    dag_id: str
    run_id: str
    frozen_at: str | None  # ISO 8601 with offset; None when the run never froze


# What an entry point of the group must name.
Contributor = Callable[[RunFacts], Mapping[str, Any] | None]


def contributed_sections(facts: RunFacts) -> dict[str, dict[str, Any]]:
    """Each installed contributor's section for the run; contributors with nothing to say are left out."""
    out: dict[str, dict[str, Any]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            section = ep.load()(facts)
        except Exception as exc:  # a contribution must never cost the night its report
            out[ep.name] = {"error": type(exc).__name__}
            continue
        if section is not None:
            out[ep.name] = dict(section)
    return out
