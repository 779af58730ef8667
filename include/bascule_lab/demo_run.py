"""Run one bascule DAG with ``dag.test()`` and print its outcome readably.

Airflow's own output during the run (task logs included) goes to a log file, so
the terminal shows what a person wants: which tasks ran, and the result.
Environment (AIRFLOW_HOME, connections, plan) is set by the caller.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    # Both the file descriptors (child processes, C code) and sys.stdout/err
    # (which pytest and others may have replaced) must point at the log.
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    with path.open("a", buffering=1) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh
        try:
            yield
        finally:
            fh.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])


def run_dag(dag_id: str, log_path: Path) -> tuple[Any, dict[str, Any]]:
    """Run the DAG; return its DagRun and each task's return value."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from bascule.paths import DAGS_DIR

    with _output_to(log_path):
        bag = DagBag(dag_folder=str(DAGS_DIR))
        if bag.import_errors:
            raise SystemExit("\n".join(f"{f}: {e}" for f, e in bag.import_errors.items()))
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise SystemExit(f"no DAG named {dag_id!r} in {DAGS_DIR}")
        run = dag.test()
    with create_session() as session:
        rows = session.query(XComModel).filter(
            XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
        ).all()
        values = {x.task_id: XComModel.deserialize_value(x) for x in rows}
        tis = sorted(run.get_task_instances(session=session), key=lambda t: t.start_date or run.start_date)
        summary = [(ti.task_id, str(ti.state), (ti.duration or 0.0)) for ti in tis]
    return run, {"values": values, "tasks": summary}


def main(argv: list[str]) -> int:
    dag_id = argv[0] if argv else "inventory"
    logs = Path(os.environ["AIRFLOW_HOME"]) / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{dag_id}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    started = time.monotonic()
    run, result = run_dag(dag_id, log_path)
    print(f"run {run.run_id}: {run.state} in {time.monotonic() - started:.1f} s (full log: {log_path})")
    for task_id, state, seconds in result["tasks"]:
        print(f"  {task_id:<28} {state:<10} {seconds:6.2f} s")
    if dag_id == "inventory" and "report" in result["values"]:
        from bascule.inventory import SideInventory, render_inventory

        report = result["values"]["report"]
        print()
        print(render_inventory(SideInventory.from_json(report["source"]), SideInventory.from_json(report["target"])))
    return 0 if str(run.state) in ("success", "DagRunState.SUCCESS") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
