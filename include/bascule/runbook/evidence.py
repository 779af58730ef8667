"""What people see in a gate before they decide: lag, drain ETA, validation, forecast, findings.

Markdown rendered in the Airflow UI's required-action page. Built from numbers,
states and table names only.
"""

from __future__ import annotations

from typing import Any


def forecast_downtime(plan: Any, dag_id: str, *, run_id: str) -> float | None:
    """The previous run's measured downtime (the last rehearsal), when there is one."""
    from bascule.runbook.report import previous_report

    previous = previous_report(plan.name, dag_id, before_run=run_id)
    return None if previous is None else previous.get("downtime_s")


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def freeze_gate_body(plan: Any, t: dict[str, Any]) -> str:
    rep = t["replication"]
    val = t["validation"]
    budget = plan.budget_seconds
    forecast = t.get("forecast_downtime_s")
    eta = (rep.get("details") or {}).get("drain_eta_s")
    lines = [
        f"## GO for freeze? Plan `{plan.name}` ({plan.mode.value})",
        "",
        "| evidence | value |",
        "|---|---|",
        f"| replication | {rep['state']} |",
        f"| lag | {_fmt(rep.get('lag_seconds'), ' s', 3)} ({_fmt(rep.get('lag_bytes'), ' bytes')}); "
        f"threshold {plan.replication.lag_threshold_s:g} s |",
        f"| drain ETA | {_fmt(eta, ' s') if eta is not None else 'already under the threshold'} |",
        f"| last full validation | {'green' if val['ok'] else 'RED'}: {val['tables']} tables, "
        f"{val['rows_compared']:,} rows, {val['differences']} differences |",
        f"| forecast downtime | {_fmt(forecast, ' s', 1) if forecast is not None else 'no rehearsal yet'} "
        f"of a {budget:.0f} s budget |",
        f"| endpoint | {(t.get('endpoint') or {}).get('side', 'n/a')} |",
        "",
        "### Open findings",
    ]
    lines += [f"- {f}" for f in t["findings"]] or ["- none"]
    lines += ["", "GO freezes the source: the downtime clock starts. NO-GO ends the run; nothing is changed "
              "and replication keeps running."]
    return "\n".join(lines)


def go_live_gate_body(plan: Any, g: dict[str, Any]) -> str:
    val = g.get("validation") or {}
    smoke = g.get("smoke") or {}
    # How each ran in the window: on the rows changed since T-minus's full run, or whole (ADR 0061).
    suites = ", ".join(s["suite"] + (" ok" if s["success"] else " FAILED")
                       + (f" ({s['run']})" if s.get("run") else "") for s in val.get("suites", []))
    lines = [
        f"## GO LIVE? Plan `{plan.name}` ({plan.mode.value})",
        "",
        "| evidence | value |",
        "|---|---|",
        f"| downtime so far | {_fmt(g.get('downtime_so_far_s'), ' s', 1)} of {plan.budget_seconds:.0f} s |",
        f"| final validation | {'green' if val.get('ok') else 'RED'}: {val.get('rows_compared', 0):,} rows "
        f"re-checked, {val.get('differences', 'n/a')} differences |",
        f"| suites | {suites or 'none'} |",
        f"| smoke tests | {'passed' if smoke.get('ok') else 'see task log'} |",
        f"| endpoint | {(g.get('endpoint') or {}).get('side', 'n/a')}, paused |",
        "",
        f"This gate is the point of no return (`{plan.downtime.point_of_no_return}`): GO reopens writes on "
        "the target, after starting reverse replication to the source. NO-GO rolls back: endpoint to the "
        "source, writes reopened there, forward replication resumed.",
    ]
    return "\n".join(lines)


def checkpoint_body(ctx: Any) -> str:
    """The body of a gate the plan placed, or of a manual step: what is asked, and the night so far."""
    from bascule.today import parse_instant, utc_now

    runbook = ctx.runbook
    entry = runbook.entry(ctx.step) if runbook is not None else None
    gate_id = entry.gate_id if entry is not None else ctx.step
    spec = ctx.plan.manual_steps.get(gate_id) or ctx.plan.gates.get(gate_id)
    manual = entry is not None and entry.manual
    lines = [f"## {'Manual step' if manual else 'Gate'}: {spec.title if spec else gate_id}", ""]
    if spec is not None and spec.description:
        lines += [spec.description, ""]
    lines.append("Confirm DONE once it is done." if manual else
                 "GO goes on with the night. NO-GO stops it here; inside the downtime window, the night rolls back.")
    freeze = ctx.result_of(ctx.freeze_task) if ctx.freeze_task else None
    if freeze and freeze.get("frozen_at"):
        elapsed = (utc_now() - parse_instant(freeze["frozen_at"])).total_seconds()
        lines += ["", f"Downtime so far: {elapsed:.0f} s of {ctx.plan.budget_seconds:.0f} s."]
    done = [e.step for e in (runbook.entries if runbook is not None else ()) if e.kind.value != "gate"
            and ctx.result_of(e.task_id) is not None]
    if done:
        lines += ["", "Steps done so far: " + ", ".join(f"`{s}`" for s in done) + "."]
    return "\n".join(lines)
