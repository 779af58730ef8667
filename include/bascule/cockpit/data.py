"""What the migration view shows, read only from what bascule stores (ADR 0045).

Two sources, nothing else: Airflow's metadata database through its models (runs, task instances, XComs,
HITL details) and the evidence store (``bascule.hooks.evidence``). The view never connects to the migrated
databases, so it can show no patient value: every figure here is a timing, a count, a state, a name or a
hash that bascule already keeps for its report.

The builders below take plain rows (``RunRows``) so the arithmetic is tested without a database;
``load_run`` fills them from the metadata database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bascule.runbook.context import (
    DECISION_XCOM_KEY,
    DRAIN_TIMING_XCOM_KEY,
    REPORT_XCOM_KEY,
    STEP_XCOM_KEY,
)
from bascule.runbook.registry import EntryKind, Runbook
from bascule.today import parse_instant

ACTIVE_STATES = {"queued", "running"}
BASCULE_RUNBOOK_DAGS = ("cutover", "rollback")


def runbook_for(dag_id: str) -> Runbook:
    from bascule.runbook.actions import CUTOVER
    from bascule.runbook.fallback import FALLBACK

    by_dag = {CUTOVER.dag_id: CUTOVER, FALLBACK.dag_id: FALLBACK}
    if dag_id not in by_dag:
        raise KeyError(f"dag_id {dag_id!r} is not a bascule runbook ({', '.join(sorted(by_dag))})")
    return by_dag[dag_id]


@dataclass
class TaskRow:
    task_id: str
    state: str | None
    start_date: datetime | None = None
    end_date: datetime | None = None
    hostname: str | None = None


@dataclass
class GateRow:
    task_id: str
    subject: str
    assignees: list[dict[str, str]]
    created_at: datetime | None
    responded: bool
    chosen_options: list[str] | None = None
    params_input: dict[str, Any] = field(default_factory=dict)
    responded_by: dict[str, Any] | None = None


@dataclass
class RunRows:
    dag_id: str
    run_id: str
    state: str
    start_date: datetime | None
    end_date: datetime | None
    tasks: list[TaskRow]
    xcoms: dict[str, dict[str, Any]]  # task_id -> key -> value
    gates: list[GateRow]


def required_action_url(base_url: str, dag_id: str, run_id: str, task_id: str) -> str:
    """The gate's Required Action page in the Airflow UI (where the assigned users answer it)."""
    from urllib.parse import quote

    return (f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
            f"/tasks/{quote(task_id, safe='')}/required_actions")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _seconds(start: str | None, end: datetime) -> float | None:
    return None if not start else round((end - parse_instant(start)).total_seconds(), 1)


def night(rows: RunRows, *, runbook: Runbook, plan: Any, now: datetime, base_url: str,
          previous_report: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The night as the view shows it: clock, forecast, current steps, Gantt, lag, gates, writes, outcome."""
    from bascule.runbook import forecast as fc

    states = {t.task_id: t for t in rows.tasks}
    x = rows.xcoms
    order = runbook.order()
    entries = {e.task_id: e for e in runbook.entries}

    def record(task_id: str) -> dict[str, Any] | None:
        return (x.get(task_id) or {}).get(STEP_XCOM_KEY) or (x.get(task_id) or {}).get(DRAIN_TIMING_XCOM_KEY)

    steps = []
    for task_id in order:
        e = entries[task_id]
        t = states.get(task_id)
        rec = record(task_id)
        state = t.state if t else None
        row = {"task_id": task_id, "step": e.step, "kind": e.kind.value, "critical_path": e.critical_path,
               "state": state or "none", "worker": t.hostname if t else None,
               "started_at": (rec or {}).get("started_at") or (_iso(t.start_date) if t else None),
               "ended_at": (rec or {}).get("ended_at") or (_iso(t.end_date) if t and state not in ACTIVE_STATES
                                                           and state != "awaiting_input" else None),
               "seconds": (rec or {}).get("seconds")}
        steps.append(row)
        if e.drains is not None:
            # The freeze drains in its own task (ADR 0071): the drain is a row of its own, from its record.
            drained = (x.get(task_id) or {}).get(DRAIN_TIMING_XCOM_KEY)
            frozen = (x.get(task_id) or {}).get(STEP_XCOM_KEY)
            drain_state = "success" if drained else (state if frozen and state != "success" else "none")
            if frozen and not drained and state in ACTIVE_STATES:
                row["state"] = "success"  # the freeze is done; the task is draining
            steps.append({**row, "step": e.drain_step, "kind": EntryKind.DRAIN.value, "critical_path": True,
                          "state": drain_state,
                          "started_at": (drained or {}).get("started_at")
                          or ((frozen or {}).get("ended_at") if drain_state != "none" else None),
                          "ended_at": (drained or {}).get("ended_at"), "seconds": (drained or {}).get("seconds")})
    waiting = ACTIVE_STATES | {"deferred", "awaiting_input", "up_for_retry"}
    current_rows = [s for s in steps if s["state"] in waiting]
    started = [s for s in steps if s["started_at"]]
    t0 = min((parse_instant(s["started_at"]) for s in started), default=None)
    gantt = []
    for s in sorted(started, key=lambda s: parse_instant(s["started_at"])):
        start = parse_instant(s["started_at"])
        end = parse_instant(s["ended_at"]) if s["ended_at"] else now
        gantt.append({"task_id": s["task_id"], "step": s["step"], "critical_path": s["critical_path"],
                      "state": s["state"], "offset_s": round((start - t0).total_seconds(), 2) if t0 else 0.0,
                      "duration_s": round(max(0.0, (end - start).total_seconds()), 2),
                      "open": not s["ended_at"]})

    freeze = ((x.get(runbook.freeze_task) or {}).get(STEP_XCOM_KEY) or {}).get("result") or {}
    frozen_at = freeze.get("frozen_at")
    ending = next((e for e in runbook.entries if e.ends_downtime is not None
                   and ((x.get(e.task_id) or {}).get(STEP_XCOM_KEY) or {}).get("result", {}).get("downtime_end")),
                  None)
    downtime_end = (x[ending.task_id][STEP_XCOM_KEY]["result"]["downtime_end"] if ending is not None else None)
    budget = float(plan.budget_seconds)
    elapsed = None
    if frozen_at:
        end = parse_instant(downtime_end) if downtime_end else now
        elapsed = round((end - parse_instant(frozen_at)).total_seconds(), 1)
    # The forecast: the rehearsal's pace for what is left (bascule.runbook.forecast), the same arithmetic the
    # downtime clock's own alert uses.
    forecast_s = None
    if elapsed is not None and downtime_end is None and previous_report:
        current = current_rows[0] if current_rows else None
        step_fc = fc.step_forecast(previous_report, current["step"]) if current else None
        if step_fc is not None:
            ran = (now - parse_instant(current["started_at"])).total_seconds() if current["started_at"] else 0.0
            forecast_s = round(elapsed + step_fc.remaining(ran), 1)
        elif previous_report.get("downtime_s") is not None:
            forecast_s = round(max(elapsed, float(previous_report["downtime_s"])), 1)
    elif elapsed is not None and downtime_end is not None:
        forecast_s = elapsed

    lag = None
    for task_id in order:
        result = (record(task_id) or {}).get("result") or {}
        reading = result.get("replication") or result.get("reading")
        if isinstance(reading, Mapping) and ("lag_seconds" in reading or "lag_bytes" in reading):
            lag = {"task_id": task_id, "state": reading.get("state"), "lag_seconds": reading.get("lag_seconds"),
                   "lag_bytes": reading.get("lag_bytes"),
                   "drain_eta_s": (reading.get("details") or {}).get("drain_eta_s"),
                   "observed_at": reading.get("observed_at")}
    gates = []
    for g in rows.gates:
        entry = entries.get(g.task_id)
        gates.append({
            "task_id": g.task_id, "gate": entry.gate_id if entry else g.task_id, "subject": g.subject,
            "waiting": not g.responded and (states.get(g.task_id) and states[g.task_id].state) == "awaiting_input",
            "who": [a.get("name") or a.get("id") for a in (g.assignees or [])],
            "asked_at": _iso(g.created_at), "waited_s": _seconds(_iso(g.created_at), now) if not g.responded else None,
            "answer": (g.chosen_options or [None])[0], "reason": (g.params_input or {}).get("reason"),
            "by": (g.responded_by or {}).get("user_name"),
            "url": required_action_url(base_url, rows.dag_id, rows.run_id, g.task_id)})
    decisions = [d for d in ((x.get(e.task_id) or {}).get(DECISION_XCOM_KEY) for e in runbook.gates) if d]
    report = next((v.get(REPORT_XCOM_KEY) for v in x.values() if v.get(REPORT_XCOM_KEY)), None)
    return {
        "dag_id": rows.dag_id, "run_id": rows.run_id, "state": rows.state, "active": rows.state in ACTIVE_STATES,
        "now": now.isoformat(), "started_at": _iso(rows.start_date), "ended_at": _iso(rows.end_date),
        "plan": plan.name,
        "clock": {"frozen_at": frozen_at, "downtime_end": downtime_end, "elapsed_s": elapsed, "budget_s": budget,
                  "budget_used_pct": round(100 * elapsed / budget, 1) if elapsed is not None else None,
                  "forecast_s": forecast_s, "running": bool(frozen_at and not downtime_end),
                  "forecast_basis": (previous_report or {}).get("run_id")},
        "current": current_rows,
        "critical_path": [s["task_id"] for s in steps if s["critical_path"] and s["kind"] != EntryKind.GATE.value],
        "steps": steps, "gantt": gantt, "lag": lag, "gates": gates, "decisions": decisions,
        "writes": (report or {}).get("writes"),
        "outcome": (report or {}).get("outcome"),
        "evidence_root": ((report or {}).get("evidence") or {}).get("root"),
        "workers": sorted({s["worker"] for s in steps if s["worker"]}),
    }


def validation(rows: RunRows, evidence_docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per table: rows compared, ranges, differences by kind (with key hashes), and the suites' outcomes."""
    tables: dict[str, dict[str, Any]] = {}
    suites: list[dict[str, Any]] = []
    docs = list(evidence_docs)
    for v in rows.xcoms.values():
        rec = v.get(STEP_XCOM_KEY) or {}
        result = rec.get("result") or {}
        for key in ("comparison_report", "validation", "report"):
            # A comparison lists its tables; a summary only counts them (``"tables": 4``).
            if isinstance(result.get(key), Mapping) and isinstance(result[key].get("tables"), list):
                docs.append(result[key])
        for s in result.get("suites") or []:
            if isinstance(s, Mapping):
                suites.append({"suite": s.get("suite"), "success": s.get("success"), "side": s.get("side")})
    checks = []
    for doc in docs:
        listed = doc.get("tables")
        for t in listed if isinstance(listed, list) else []:
            if not isinstance(t, Mapping) or "table" not in t:
                continue
            checks.append({
                "table": t["table"], "check": doc.get("kind") or "comparison", "status": t.get("status"),
                "rows_compared": t.get("rows_compared"), "ranges": t.get("ranges"),
                "ranges_differing": t.get("ranges_differing"), "differences": t.get("differences"),
                "by_kind": dict(t.get("counts") or {}),
                # As the comparison keeps them: hashed when the plan says the keys identify a person.
                "keys": {k: list(v)[:10] for k, v in (t.get("keys") or {}).items() if v},
                "keys_hashed": bool(t.get("keys_hashed")), "error": t.get("error")})
    for c in checks:
        tables.setdefault(c["table"], {"table": c["table"], "checks": []})["checks"].append(c)
    for row in tables.values():
        row["ok"] = all(c["status"] in (None, "equal") for c in row["checks"])
        row["rows_compared"] = max((int(c["rows_compared"] or 0) for c in row["checks"]), default=0)
    return {"tables": sorted(tables.values(), key=lambda r: r["table"]), "suites": suites}
