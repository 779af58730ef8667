"""Where validation reports live, and the per-run history record the readiness report reads.

One evidence store for the whole project (``bascule.hooks.evidence``, shared by every worker):
each task of a validation run writes its full report to
``<store>/<plan>/<dag_id>/<run>/<task>.json`` (or ``.html``) and its outcome to
``<run>/validation-steps/<task>.json``; ``read_record`` merges those into the run's record
(keys ``run_id, finished_at, outcome, tables, rows_compared, mismatched_rows``), also written as
``validation.json``. One file per task, not a locked shared file: tasks of a run finish together on
different workers, and an object store has no locks. Only names, counts and outcomes go into the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bascule.hooks import evidence

HISTORY_FILE = "validation.json"
STEPS_FOLDER = "validation-steps"
safe_name = evidence.safe_name
run_folder = evidence.run_folder


def read_record(folder: Any) -> dict[str, Any] | None:
    """The run's record, merged from its tasks' files; None when no task recorded anything."""
    steps_dir = folder / STEPS_FOLDER
    if not steps_dir.exists():
        return None
    steps = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in steps_dir.glob("*.json")}
    if not steps:
        return None
    run_id = next((str(s["run_id"]) for s in steps.values() if s.get("run_id")), folder.name)
    return summarise(run_id, {k: {f: v for f, v in s.items() if f != "run_id"} for k, s in steps.items()})


def summarise(run_id: str, steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The run's record from its steps: the worst outcome, and the largest counts any step saw.

    Largest, not summed: the incremental comparison re-reads what the full one already counted.
    """
    tables = sorted({t for s in steps.values() for t in s.get("tables", [])})
    rows = [s["rows_compared"] for s in steps.values() if s.get("rows_compared") is not None]
    return {
        "run_id": run_id,
        "finished_at": max((s["finished_at"] for s in steps.values()), default=None),
        "outcome": "passed" if all(s["ok"] for s in steps.values()) else "failed",
        "tables": len(tables),
        "rows_compared": max(rows) if rows else None,
        "mismatched_rows": max((int(s.get("mismatched_rows") or 0) for s in steps.values()), default=0),
        "failed_steps": sorted(k for k, s in steps.items() if not s["ok"]),
        "steps": steps,
    }


def record_step(*, plan_name: str, dag_id: str, run_id: str, step: str, kind: str, ok: bool,
                tables: Iterable[str], rows_compared: int | None = None, mismatched_rows: int = 0,
                finished_at: datetime | None = None) -> Any:
    """Record one task's outcome in its own file, then rewrite the run's merged ``validation.json``."""
    folder = run_folder(plan_name, dag_id, run_id)
    entry = {"run_id": run_id, "kind": kind, "ok": bool(ok), "tables": sorted(set(tables)), "rows_compared": rows_compared,
             "mismatched_rows": int(mismatched_rows),
             "finished_at": (finished_at or datetime.now(UTC)).isoformat()}
    evidence.write_json(folder / STEPS_FOLDER / f"{safe_name(step)}.json", entry)
    # A convenience copy for people browsing the store; readers merge the task files (read_record).
    return evidence.write_json(folder / HISTORY_FILE, read_record(folder))


def record_comparison(report: dict[str, Any], *, plan_name: str, dag_id: str, run_id: str, step: str) -> Any:
    return record_step(plan_name=plan_name, dag_id=dag_id, run_id=run_id, step=step,
                       kind=f"{report.get('kind', 'full')}_comparison", ok=bool(report["ok"]),
                       tables=[t["table"] for t in report.get("tables", [])],
                       rows_compared=int(report.get("rows_compared") or 0),
                       mismatched_rows=int(report.get("differences") or 0))
