"""The cutover report: every step planned against actual, downtime against budget, decisions, writes.

Built only from step records (timings and value-free results), gate decisions
and counts, so it can be posted, archived and read by anyone. Planned durations
come from the previous run of the same plan (the last rehearsal), when there is one.

The downtime is bounded by two events read on one clock, the workers' UTC clock
(ADR 0038): it starts right before the freeze's REVOKE is sent (writes are refused
from there) and ends when bascule's probe write through the endpoint has committed
(the last act of reopening). ``downtime_bounds`` names both events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from bascule.hooks import evidence
from bascule.notifications.events import CutoverOutcome
from bascule.runbook.context import SafeMessage
from bascule.today import parse_instant, utc_now

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

DOWNTIME_CLOCK = "the workers' UTC clock"


def _ts(value: str | None) -> datetime | None:
    # Compared and subtracted in UTC only (bascule.today): a night across a change of summer time stays right.
    return parse_instant(value) if value else None


def previous_report(plan_name: str, dag_id: str, *, before_run: str) -> dict[str, Any] | None:
    """The latest report of the same plan and DAG in the evidence store (every worker reads the same one)."""
    folder = evidence.dag_folder(plan_name, dag_id)
    if not folder.exists():
        return None
    reports = [json.loads(p.read_text()) for p in folder.glob("*/report.json")
               if p.parent.name != _safe(before_run)]
    # By when the run wrote it (the store's mtimes differ between object stores), then by run id.
    reports.sort(key=lambda r: (str(r.get("written_at") or ""), str(r.get("run_id"))))
    return reports[-1] if reports else None


def _safe(run_id: str) -> str:
    return evidence.safe_name(run_id)


def build_report(
    *,
    plan_name: str,
    dag_id: str,
    run_id: str,
    budget_s: float,
    steps: Iterable[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    outcome: str,
    frozen_at: str | None,
    downtime_end: str | None,
    rows_validated: int | None = None,
    validation: Mapping[str, Any] | None = None,
    writes: Mapping[str, Any] | None = None,
    notifications: Mapping[str, Any] | None = None,
    rehearsal: bool = False,
    previous: Mapping[str, Any] | None = None,
    start_event: str | None = None,
    end_event: str | None = None,
) -> dict[str, Any]:
    planned = {s["step"]: s["actual_s"] for s in (previous or {}).get("steps", [])}
    # By instant, not by text: the same instant can be written with different offsets.
    ordered = sorted(steps, key=lambda s: parse_instant(s["started_at"]))
    step_rows = [{
        "step": s["step"],
        "task_id": s.get("task_id", s["step"]),
        "started_at": s["started_at"],
        "ended_at": s["ended_at"],
        "actual_s": round(float(s["seconds"]), 3),
        "planned_s": planned.get(s["step"]),
        "critical_path": bool(s.get("critical_path", True)),
    } for s in ordered]
    frozen, ended = _ts(frozen_at), _ts(downtime_end)
    downtime_s = (ended - frozen).total_seconds() if frozen and ended else None
    work_s = _busy_seconds(step_rows, frozen, ended) if frozen and ended else 0.0
    decision_list = list(decisions)
    decision_wait_s = _decision_wait(decision_list, frozen, ended) if frozen and ended else 0.0
    report: dict[str, Any] = {
        "plan": plan_name, "dag_id": dag_id, "run_id": run_id, "outcome": outcome, "rehearsal": rehearsal,
        "frozen_at": frozen_at, "downtime_end": downtime_end,
        # What the two instants are: one clock, the workers' UTC clock, for both (ADR 0038).
        "downtime_bounds": {"start": frozen_at, "start_event": start_event, "end": downtime_end,
                            "end_event": end_event, "clock": DOWNTIME_CLOCK},
        "downtime_s": None if downtime_s is None else round(downtime_s, 3),
        "budget_s": budget_s,
        "budget_used_pct": None if downtime_s is None else round(100 * downtime_s / budget_s, 2),
        "work_s": round(work_s, 3),
        "overhead_s": None if downtime_s is None else round(downtime_s - work_s, 3),
        "overhead_pct": None if not downtime_s else round(100 * (downtime_s - work_s) / downtime_s, 2),
        # Part of the overhead: from each gate's question to its answer, inside the downtime.
        "decision_wait_s": round(decision_wait_s, 3),
        "steps": step_rows,
        "decisions": decision_list,
        "rows_validated": rows_validated,
        "validation": dict(validation) if validation else None,
        "writes": dict(writes) if writes else None,
        "notifications": dict(notifications) if notifications else None,
        "compared_with_run": (previous or {}).get("run_id"),
    }
    return report


def write_report(report: dict[str, Any], decisions: Iterable[Mapping[str, Any]] = ()) -> ObjectStoragePath:
    """Write the chart, then the report and its summary showing the evidence root, then seal the manifest."""
    folder = evidence.run_folder(str(report["plan"]), str(report["dag_id"]), str(report["run_id"]))
    folder.mkdir(parents=True, exist_ok=True)
    render_gantt(report, folder / "timeline.png")
    manifest = evidence.open_manifest(str(report["plan"]), str(report["dag_id"]), str(report["run_id"]),
                                      decisions)
    report["evidence"] = {"store": str(evidence.evidence_root()), "folder": str(folder),
                          "manifest": evidence.MANIFEST_FILE, "root": manifest.root,
                          "files": sum(1 for e in manifest.entries if e["kind"] == "file"),
                          "decisions": sum(1 for e in manifest.entries if e["kind"] == "decision")}
    report["files"] = {"json": str(folder / "report.json"), "gantt_png": str(folder / "timeline.png"),
                       "summary": str(folder / "summary.txt"), "manifest": str(folder / evidence.MANIFEST_FILE)}
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (folder / "summary.txt").write_text(summary_text(report) + "\n")
    evidence.seal(manifest)
    return folder


def render_gantt(report: Mapping[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(report["steps"])
    if not steps:
        return
    t0 = min(_ts(s["started_at"]) for s in steps)  # type: ignore[type-var]
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(steps) + 1.5))
    for i, s in enumerate(steps):
        start = (_ts(s["started_at"]) - t0).total_seconds()  # type: ignore[operator]
        ax.barh(i, max(s["actual_s"], 0.05), left=start, color="#d9534f" if s["critical_path"] else "#5bc0de")
        if s.get("planned_s"):
            ax.barh(i, s["planned_s"], left=start, fill=False, edgecolor="#333333", linestyle="--")
    if report.get("frozen_at") and report.get("downtime_end"):
        f = (_ts(report["frozen_at"]) - t0).total_seconds()  # type: ignore[operator]
        e = (_ts(report["downtime_end"]) - t0).total_seconds()  # type: ignore[operator]
        ax.axvspan(f, e, color="#f0ad4e", alpha=0.15, label=f"downtime {report['downtime_s']:.1f} s")
        ax.legend(loc="lower right")
    ax.set_yticks(range(len(steps)), [s["step"] for s in steps])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first step (dashed: planned, from the previous run)")
    ax.set_title(f"{report['dag_id']} {report['outcome']} - plan {report['plan']}")
    fig.tight_layout()
    with path.open("wb") as out:  # a local Path or an ObjectStoragePath (s3://, gs://, file://)
        fig.savefig(out, dpi=110, format="png")
    plt.close(fig)


def summary_text(report: Mapping[str, Any]) -> str:
    lines = [f"cutover report: plan {report['plan']}, run {report['run_id']}: {str(report['outcome']).upper()}"]
    if report.get("downtime_s") is not None:
        lines.append(f"downtime {report['downtime_s']:.1f} s of a {report['budget_s']:.0f} s budget "
                     f"({report['budget_used_pct']}%), work {report['work_s']:.1f} s, "
                     f"overhead {report['overhead_s']:.1f} s ({report['overhead_pct']}%)"
                     + (f", of which {report['decision_wait_s']:.1f} s waiting for gate decisions"
                        if report.get("decision_wait_s") else ""))
    bounds = report.get("downtime_bounds") or {}
    if bounds.get("start") or bounds.get("end"):
        lines.append(f"downtime from {bounds.get('start') or '-'} ({bounds.get('start_event') or 'start event unknown'}) "
                     f"to {bounds.get('end') or '-'} ({bounds.get('end_event') or 'end event unknown'}), "
                     f"both on {bounds.get('clock') or DOWNTIME_CLOCK}")
    width = max((len(s["step"]) for s in report["steps"]), default=4)
    lines.append(f"  {'step'.ljust(width)}  {'actual':>9}  {'planned':>9}")
    for s in report["steps"]:
        planned = f"{s['planned_s']:.2f} s" if s.get("planned_s") is not None else "-"
        lines.append(f"  {s['step'].ljust(width)}  {s['actual_s']:>7.2f} s  {planned:>9}")
    for d in report["decisions"]:
        lines.append(f"gate {d['gate']}: {d['decision']} by {d['by']} at {d['at']}")
    if report.get("rows_validated") is not None:
        lines.append(f"rows validated: {report['rows_validated']:,}")
    if report.get("writes"):
        w = report["writes"]
        lines.append("simulator writes: " + ", ".join(f"{k} {v}" for k, v in w.items()))
    if report.get("notifications"):
        totals = report["notifications"].get("totals", {})
        lines.append(f"notifications: {totals.get('delivered', 0)} delivered, {totals.get('failed', 0)} failed")
    if report.get("evidence"):
        ev = report["evidence"]
        lines.append(f"evidence root (SHA-256 chain of {ev['files']} files and {ev['decisions']} decisions): "
                     f"{ev['root']}")
    for d in report["decisions"]:
        if d.get("reason"):
            lines.append(f"reason for {d['gate']} {d['decision']}: {d['reason']}")
    return "\n".join(lines)


def _decision_wait(decisions: Iterable[Mapping[str, Any]], start: datetime, end: datetime) -> float:
    """Seconds of the window spent between a gate's question and its answer."""
    total = 0.0
    for d in decisions:
        asked, answered = _ts(d.get("asked_at")), _ts(d.get("at"))
        if asked is None or answered is None:
            continue
        s, e = max(asked, start), min(answered, end)
        if e > s:
            total += (e - s).total_seconds()
    return total


def _busy_seconds(rows: Iterable[Mapping[str, Any]], start: datetime, end: datetime) -> float:
    """Seconds of the window during which at least one step was executing (parallel steps count once).

    A step's own execution is ``actual_s`` from its start: for the drain, the
    time until the target caught up, not the sensor's resume afterwards.
    """
    spans = []
    for r in rows:
        s = max(_ts(r["started_at"]), start)  # type: ignore[type-var]
        e = min(_ts(r["started_at"]) + timedelta(seconds=float(r["actual_s"])), end)  # type: ignore[operator]
        if e > s:
            spans.append((s, e))
    busy, cursor = 0.0, None
    for s, e in sorted(spans):
        if cursor is None or s > cursor:
            busy += (e - s).total_seconds()
            cursor = e
        elif e > cursor:
            busy += (e - cursor).total_seconds()
            cursor = e
    return busy


# --------------------------------------------------------------------------- the report step of any runbook


def _finish_thread(ctx: Any, final: Any, folder: Any) -> None:
    """The run is over: its parent message shows the outcome, its thread gets the chart, its Variables go.

    After the downtime (the report runs last), bounded, and never failing the report (ADR 0047).
    """
    from airflow.sdk import Variable

    from bascule.runbook.announce import notifier
    from bascule.runbook.context import clock_variable

    slack = notifier(ctx)
    if slack is not None:
        try:
            chart = (folder / "timeline.png").read_bytes() if (folder / "timeline.png").exists() else None
        except OSError:
            chart = None
        done = slack.finish_run(final, chart=chart)
        print(f"slack: parent updated {done['parent_updated']}, chart uploaded {done['chart_uploaded']}, "
              f"thread Variable deleted {done['thread_forgotten']}", flush=True)
    try:  # the clock's fired warnings: finished runs leave no Variable behind
        Variable.delete(clock_variable(ctx.dag_id, ctx.run_id))
    except Exception as exc:  # none was ever set (nothing fired), or the API is down
        print(f"[downtime clock] Variable not deleted: {type(exc).__name__}", flush=True)



class ReportVerdict(AirflowFailException, SafeMessage):
    """The run did not end as it should; the report was written all the same. Not retried."""


def run_report(ctx: Any) -> dict[str, Any]:
    """The report of a run of ``ctx.runbook``: every step's timing and every decision, its sections, its verdict.

    One builder for the night and the fallback: which tasks it times, which freeze
    starts the downtime, which result ends it and with what outcome, and which
    results make the run fail all come from the runbook's entries.
    """
    from bascule.notifications.events import FinalReport, ValidationOutcome
    from bascule.notifications.slack import LEDGER_XCOM_KEY, merge_ledgers
    from bascule.runbook.announce import notifier as notifier_of
    from bascule.runbook.announce import notify
    from bascule.runbook.context import (
        DECISION_XCOM_KEY,
        DRAIN_TIMING_XCOM_KEY,
        REPORT_XCOM_KEY,
        STEP_XCOM_KEY,
    )
    from bascule.runbook.contributions import RunFacts, contributed_sections
    from bascule.runbook.registry import EntryKind

    runbook = ctx.runbook
    steps, ledgers = [], []
    drains = []  # a drain in its freeze's task (ADR 0071): its own step, not the task's result
    for entry in runbook.report_entries():
        key = DRAIN_TIMING_XCOM_KEY if entry.kind is EntryKind.DRAIN else STEP_XCOM_KEY
        record = ctx.ti.xcom_pull(task_ids=entry.task_id, key=key)
        if record:
            steps.append(record)
        if entry.drains is not None:
            drained = ctx.ti.xcom_pull(task_ids=entry.task_id, key=DRAIN_TIMING_XCOM_KEY)
            if drained:
                drains.append(drained)
        ledgers.append(ctx.ti.xcom_pull(task_ids=entry.task_id, key=LEDGER_XCOM_KEY))
    decisions = [d for d in (ctx.ti.xcom_pull(task_ids=g.task_id, key=DECISION_XCOM_KEY) for g in runbook.gates)
                 if d]
    results = {s["task_id"]: s.get("result") or {} for s in steps}
    steps += drains
    ending = next((e for e in runbook.entries if e.ends_downtime is not None and e.task_id in results), None)
    outcome = ending.ends_downtime if ending is not None else CutoverOutcome.ABORTED
    end = results[ending.task_id].get("downtime_end") if ending is not None else None
    end_event = results[ending.task_id].get("end_event") if ending is not None else None
    freeze = results.get(runbook.freeze_task) or {}
    sections = contributed_sections(RunFacts(plan_name=ctx.plan.name, dag_id=ctx.dag_id, run_id=ctx.run_id,
                                             frozen_at=freeze.get("frozen_at")))
    notifications = merge_ledgers(ledgers)
    plan = ctx.plan
    report = build_report(
        plan_name=plan.name, dag_id=ctx.dag_id, run_id=ctx.run_id, budget_s=plan.budget_seconds,
        steps=steps, decisions=decisions, outcome=outcome.value, frozen_at=freeze.get("frozen_at"),
        downtime_end=end if freeze else None, writes=sections.pop("writes", None),
        notifications=notifications, rehearsal=bool(ctx.conf.get("rehearsal", False)),
        previous=previous_report(plan.name, ctx.dag_id, before_run=ctx.run_id),
        start_event=freeze.get("start_event") if freeze else None, end_event=end_event if freeze else None,
    )
    # Which databases the run worked on: a rehearsal names its rehearsal environment's connections.
    report["environment"] = {"rehearsal": bool(ctx.conf.get("rehearsal", False)), "source": plan.source.conn_id,
                             "target": plan.target.conn_id}
    # The run's Slack thread (channel and message ts, no text): what comes after the run (the rollback window
    # watched after GO LIVE, ADR 0057) replies in it.
    slack = notifier_of(ctx)
    ref = slack.thread(ctx.dag_id, ctx.run_id) if slack is not None else None
    report["slack_thread"] = {"channel": ref.channel, "ts": ref.ts} if ref is not None else None
    report.update(runbook.sections(results) if runbook.sections is not None else {})
    report.update(sections)
    validation = report.get("validation")
    report["rows_validated"] = (validation or {}).get("rows_compared")
    report["written_at"] = utc_now().isoformat()
    folder = write_report(report, decisions)
    # The root also goes to the metadata database (this XCom): a store rewritten wholesale is caught there.
    ctx.ti.xcom_push(key=REPORT_XCOM_KEY, value=report)
    print(summary_text(report), flush=True)
    judged = "validation" in report  # a runbook that validates says whether it passed
    final = FinalReport(
        dag_id=ctx.dag_id, run_id=ctx.run_id, outcome=outcome, downtime_s=report["downtime_s"] or 0.0,
        downtime_budget_s=plan.budget_seconds, tables_migrated=int((validation or {}).get("tables", 0)),
        validation=(ValidationOutcome.PASSED if (validation or {}).get("ok") else ValidationOutcome.FAILED)
        if judged else None,
        notifications_failed=int(notifications.get("totals", {}).get("failed", 0)))
    notify(ctx, final)
    _finish_thread(ctx, final, folder)
    failed = next((e for e in runbook.entries if e.fails_run and e.task_id in results), None)
    if failed is not None:
        # The run must read as failed in the UI: a step broke and the run was undone.
        raise ReportVerdict(f"{failed.fails_run}; report {folder / 'report.json'}")
    if not any(e.is_ending and e.task_id in results for e in runbook.entries):
        # Neither finished, nor undone, nor aborted at its gate: a step or a gate failed, and this leaf must
        # not let the run read as a success.
        last = max(steps, key=lambda r: parse_instant(r["ended_at"]))["task_id"] if steps else "none"
        raise ReportVerdict(f"the {runbook.noun} did not reach an outcome (last step done: {last}); "
                            f"report {folder / 'report.json'}")
    return report
