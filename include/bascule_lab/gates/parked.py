"""When may an automatic answer follow a gate's question: the scheduler's own word on the parked worker.

Airflow 3.3 fails a gate's try when the answer re-queues it before the scheduler
has processed the exit of the worker that parked it: the executor's late
"success" for that worker then meets a task instance that is queued again, which
the scheduler takes for a task killed externally (``process_executor_events``).
The REST API shows nothing of that bookkeeping. The scheduler's log does: it
writes one ``TaskInstance Finished: ...`` line per executor event it processes,
with the task instance's state at that moment (``awaiting_input`` for a parked
gate). Once that line is written, the event has been consumed and an answer
cannot race it.

Only the lab's answerer reads it (its scheduler writes to a known file). People
answering in the UI are never fast enough to meet the race, and a missing or
reworded line only means the answerer falls back on its fixed settle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Airflow 3.3's wording (scheduler_job_runner.process_executor_events). `, state=` is the
# task instance's state; `executor_state=` is the executor's, which the leading ", " excludes.
_FINISHED = re.compile(
    r"TaskInstance Finished: dag_id=(?P<dag_id>[^,]+), task_id=(?P<task_id>[^,]+), run_id=(?P<run_id>[^,]+), "
    r".*?, state=(?P<state>[a-z_]+), .*?, try_number=(?P<try_number>\d+),"
)
PARKED_STATES = frozenset({"awaiting_input", "deferred"})


class SchedulerLogWatch:
    """Follow one scheduler log from now on, remembering which parked workers' exits it processed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Lines written before the watch began belong to earlier runs; a gate's try is always later.
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._partial = b""
        self._parked: set[tuple[str, str, str, int]] = set()

    def parked_exit_processed(self, ti: Mapping[str, Any]) -> bool:
        """``ti`` as the REST API returns a task instance (``dag_id``, ``dag_run_id``, ``task_id``, ``try_number``)."""
        self._read()
        return (str(ti["dag_id"]), str(ti["dag_run_id"]), str(ti["task_id"]), int(ti["try_number"])) in self._parked

    def _read(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        if not chunk:
            return
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            if b"TaskInstance Finished:" not in raw:
                continue
            match = _FINISHED.search(raw.decode("utf-8", "replace"))
            if match and match["state"] in PARKED_STATES:
                self._parked.add((match["dag_id"], match["run_id"], match["task_id"], int(match["try_number"])))
