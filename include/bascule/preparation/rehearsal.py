"""Rehearsals: the history of cutover runs, the night's forecast, and rehearsal N against N-1.

Reads the cutover DAG's reports from the evidence store every worker shares
(``<store>/<plan>/<dag_id>/<run>/report.json``, ``bascule.hooks.evidence``,
written by ``bascule.runbook.report``): per step ``started_at``, ``ended_at``,
``actual_s`` and ``critical_path``; per run ``downtime_s`` and ``budget_s``.
Durations are measured by the runs themselves, never assumed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bascule.hooks import evidence
from bascule.today import parse_instant


@dataclass(frozen=True)
class Rehearsal:
    run_id: str
    started_at: str
    outcome: str
    downtime_s: float | None
    budget_s: float
    steps: tuple[Mapping[str, Any], ...]
    rehearsal: bool = False

    def step_seconds(self) -> dict[str, float]:
        return {s["step"]: float(s["actual_s"]) for s in self.steps}

    def critical_seconds(self) -> dict[str, float]:
        return {s["step"]: float(s["actual_s"]) for s in self.steps if s.get("critical_path", True)}

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": self.started_at, "outcome": self.outcome,
                "downtime_s": self.downtime_s, "budget_s": self.budget_s, "steps": [dict(s) for s in self.steps]}


def from_report(report: Mapping[str, Any]) -> Rehearsal:
    # By instant, not by text: the same instant can be written with different offsets (bascule.today).
    steps = tuple(sorted(report.get("steps") or [], key=lambda s: parse_instant(s["started_at"])))
    if not steps:
        raise ValueError(f"report of run {report.get('run_id')!r} has no steps")
    for s in steps:
        for key in ("step", "started_at", "actual_s"):
            if key not in s:
                raise ValueError(f"report of run {report.get('run_id')!r}: a step lacks {key!r}")
    return Rehearsal(run_id=str(report["run_id"]), started_at=str(steps[0]["started_at"]),
                     outcome=str(report.get("outcome")), downtime_s=report.get("downtime_s"),
                     budget_s=float(report.get("budget_s") or 7200.0), steps=steps,
                     rehearsal=bool(report.get("rehearsal")))


def load_history(plan_name: str, *, dag_id: str = "cutover", base: Any = None) -> list[Rehearsal]:
    """Every report of the plan's cutover DAG, oldest first (by the first step's start)."""
    folder = (base / plan_name / dag_id) if base is not None else evidence.dag_folder(plan_name, dag_id)
    out = []
    for path in sorted(folder.glob("*/report.json")) if folder.exists() else []:
        out.append(from_report(json.loads(path.read_text())))
    return sorted(out, key=lambda r: parse_instant(r.started_at))


@dataclass(frozen=True)
class Forecast:
    downtime_s: float
    budget_s: float
    dominating_step: str
    dominating_s: float
    per_step_s: Mapping[str, float]
    basis: str
    scale: float

    @property
    def within_budget(self) -> bool:
        return self.downtime_s <= self.budget_s

    def to_json(self) -> dict[str, Any]:
        return {"downtime_s": round(self.downtime_s, 2), "budget_s": self.budget_s,
                "budget_used_pct": round(100 * self.downtime_s / self.budget_s, 2) if self.budget_s else None,
                "within_budget": self.within_budget, "dominating_step": self.dominating_step,
                "dominating_s": round(self.dominating_s, 2), "per_step_s": dict(self.per_step_s),
                "basis": self.basis, "scale": self.scale}


def forecast(history: Sequence[Rehearsal], *, budget_s: float, last: int = 3, scale: float = 1.0) -> Forecast:
    """The night's downtime: per critical-path step, the worst of the last ``last`` rehearsals, summed.

    The worst rather than the median: the night is run once and has no second try.
    Non-step time inside the downtime window (gaps between tasks, the humans at the
    gates) is added as the worst measured overhead. ``scale`` multiplies step times
    when the rehearsal data set is smaller than production (e.g. 10 for a 1M lab
    against 10M patients); it is a planning factor, stated in the output.
    """
    if not history:
        raise ValueError("no rehearsal yet: run the cutover DAG with conf {\"rehearsal\": true} first")
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (got {scale})")
    recent = list(history)[-last:]
    worst: dict[str, float] = {}
    for r in recent:
        for step, seconds in r.critical_seconds().items():
            worst[step] = max(worst.get(step, 0.0), seconds)
    overheads = [r.downtime_s - sum(r.critical_seconds().values()) for r in recent if r.downtime_s is not None]
    overhead = max([0.0, *overheads])
    per_step = {k: round(v * scale, 3) for k, v in worst.items()}
    total = sum(per_step.values()) + overhead
    step, seconds = max(per_step.items(), key=lambda kv: kv[1])
    return Forecast(downtime_s=total, budget_s=budget_s, dominating_step=step, dominating_s=seconds,
                    per_step_s=per_step, scale=scale,
                    basis=f"worst of the last {len(recent)} rehearsal(s) per critical step, plus the worst "
                          f"overhead ({overhead:.1f} s)")


def compare_last_two(history: Sequence[Rehearsal]) -> list[dict[str, Any]]:
    """Per step: rehearsal N-1 and N, the change in seconds and percent (steps of either run)."""
    if len(history) < 2:
        return []
    before, after = history[-2].step_seconds(), history[-1].step_seconds()
    rows = []
    for step in list(dict.fromkeys([*before, *after])):
        a, b = before.get(step), after.get(step)
        rows.append({"step": step, "previous_s": a, "latest_s": b,
                     "change_s": None if a is None or b is None else round(b - a, 3),
                     "change_pct": None if not a or b is None else round(100 * (b - a) / a, 1)})
    return rows


# The validation inside the downtime window: the incremental comparison and the suites on the target.
VALIDATION_STEPS = ("final_validation", "target_suites")


def figures(r: Rehearsal) -> dict[str, Any]:
    """What a rehearsal is compared on: its downtime, its critical path (the sum of the critical-path steps it
    timed), its validation time inside the window, and its outcome."""
    seconds = r.step_seconds()
    return {"downtime_s": None if r.downtime_s is None else round(float(r.downtime_s), 3),
            "critical_path_s": round(sum(r.critical_seconds().values()), 3),
            "validation_s": round(sum(v for k, v in seconds.items() if k in VALIDATION_STEPS), 3),
            "outcome": r.outcome}


def _change(a: Any, b: Any) -> dict[str, Any]:
    numeric = isinstance(a, int | float) and isinstance(b, int | float)
    return {"previous": a, "latest": b, "change_s": round(b - a, 3) if numeric else None,
            "change_pct": round(100 * (b - a) / a, 1) if numeric and a else None}


def compare(history: Sequence[Rehearsal], *, budget_s: float, planned: Sequence[Any] = ()) -> dict[str, Any]:
    """Rehearsal N against N-1 and against the plan (ADR 0058).

    Against N-1: the downtime, the critical path, the validation time, and every step. Against the plan: the
    downtime budget, and the day rehearsal N was planned for (``planned``, the calendar's dates) against the
    day it ran.
    """
    if not history:
        raise ValueError("no rehearsal yet: nothing to compare")
    latest = history[-1]
    # N-1 is the last rehearsal that went all the way (one stopped at its first gate has no window to compare).
    previous = next((r for r in reversed(history[:-1]) if r.outcome == "completed"), None)
    now, before = figures(latest), figures(previous) if previous is not None else None
    ran_on = parse_instant(latest.started_at).date()
    number = len(history)
    planned_on = planned[number - 1] if number <= len(planned) else None
    downtime = now["downtime_s"]
    return {
        "number": number,
        "latest_run": latest.run_id,
        "previous_run": previous.run_id if previous is not None else None,
        "latest": now,
        "against_previous": None if before is None else {
            key: _change(before[key], now[key]) for key in ("downtime_s", "critical_path_s", "validation_s")},
        "steps": compare_last_two([previous, latest]) if previous is not None else [],
        "against_plan": {
            "budget_s": budget_s,
            "downtime_s": downtime,
            "budget_used_pct": None if downtime is None or not budget_s else round(100 * downtime / budget_s, 2),
            "within_budget": None if downtime is None else downtime <= budget_s,
            "planned_on": planned_on.isoformat() if planned_on is not None else None,
            "ran_on": ran_on.isoformat(),
            "days_late": (ran_on - planned_on).days if planned_on is not None else None,
            "planned_count": len(planned) or None,
        },
    }


def compare_markdown(data: Mapping[str, Any]) -> str:
    lines = [f"**Rehearsal {data['number']}** (`{data['latest_run']}`): {data['latest']['outcome']}, downtime "
             f"{data['latest']['downtime_s']} s, critical path {data['latest']['critical_path_s']} s, validation "
             f"{data['latest']['validation_s']} s"]
    plan = data["against_plan"]
    lines.append(f"Against the plan: {plan['budget_used_pct']}% of the {plan['budget_s']:.0f} s budget"
                 + (f"; planned {plan['planned_on']}, ran {plan['ran_on']} ({plan['days_late']:+d} days)"
                    if plan["planned_on"] else ""))
    if data.get("against_previous"):
        lines += ["", f"Against rehearsal {data['number'] - 1} (`{data['previous_run']}`):", "",
                  "| figure | N-1 | N | change |", "|---|---|---|---|"]
        for key, row in data["against_previous"].items():
            change = "-" if row["change_s"] is None else f"{row['change_s']:+.2f} s"
            lines.append(f"| {key} | {row['previous']} | {row['latest']} | {change} |")
    return "\n".join(lines)


def summary(history: Sequence[Rehearsal], *, budget_s: float, scale: float = 1.0) -> dict[str, Any]:
    return {
        "rehearsals": [r.to_json() for r in history],
        "forecast": forecast(history, budget_s=budget_s, scale=scale).to_json() if history else None,
        "comparison": compare_last_two(history),
        "previous_run": history[-2].run_id if len(history) >= 2 else None,
        "latest_run": history[-1].run_id if history else None,
    }


def markdown(data: Mapping[str, Any]) -> str:
    f = data.get("forecast")
    if not f:
        return "**Rehearsals**: none yet"
    lines = [f"**Rehearsals**: {len(data['rehearsals'])}; forecast downtime {f['downtime_s']:.1f} s of "
             f"{f['budget_s']:.0f} s ({f['budget_used_pct']}%), dominated by `{f['dominating_step']}` "
             f"({f['dominating_s']:.1f} s)", ""]
    if data.get("comparison"):
        lines += ["| step | N-1 s | N s | change |", "|---|---|---|---|"]
        for row in data["comparison"]:
            change = "-" if row["change_s"] is None else f"{row['change_s']:+.2f} s"
            lines.append(f"| {row['step']} | {row['previous_s']} | {row['latest_s']} | {change} |")
    return "\n".join(lines)


def _iso(value: str) -> datetime:
    return parse_instant(value)
