"""Where validation reports live, and the per-run history record the readiness report reads.

One reports directory for the whole project (``bascule.runbook.report.reports_dir``):
each task of a validation run writes its full report to
``reports_dir()/<plan>/<dag_id>/<run>/<task>.json`` (or ``.html``), and merges
its outcome into that folder's ``validation.json``, the record read back by
``bascule.operators.preparation.validation_history`` for the readiness page
(keys ``run_id, finished_at, outcome, tables, rows_compared, mismatched_rows``).
Only names, counts and outcomes go into the record.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bascule.paths import reports_dir

HISTORY_FILE = "validation.json"


def safe_name(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)


def run_folder(plan_name: str, dag_id: str, run_id: str) -> Path:
    return reports_dir() / plan_name / dag_id / safe_name(run_id)


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
                finished_at: datetime | None = None) -> Path:
    """Merge one task's outcome into its run's ``validation.json`` (tasks of a run may finish together)."""
    folder = run_folder(plan_name, dag_id, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HISTORY_FILE
    entry = {"kind": kind, "ok": bool(ok), "tables": sorted(set(tables)), "rows_compared": rows_compared,
             "mismatched_rows": int(mismatched_rows),
             "finished_at": (finished_at or datetime.now(UTC)).isoformat()}
    with open(folder / f".{HISTORY_FILE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        steps = json.loads(path.read_text()).get("steps", {}) if path.exists() else {}
        steps[step] = entry
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(summarise(run_id, steps), indent=2, sort_keys=True))
        os.replace(tmp, path)
    return path


def record_comparison(report: dict[str, Any], *, plan_name: str, dag_id: str, run_id: str, step: str) -> Path:
    return record_step(plan_name=plan_name, dag_id=dag_id, run_id=run_id, step=step,
                       kind=f"{report.get('kind', 'full')}_comparison", ok=bool(report["ok"]),
                       tables=[t["table"] for t in report.get("tables", [])],
                       rows_compared=int(report.get("rows_compared") or 0),
                       mismatched_rows=int(report.get("differences") or 0))
