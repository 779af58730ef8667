"""The lab answerer's cue: the scheduler has processed the parked gate's worker exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bascule_lab.gates import client as client_module
from bascule_lab.gates.client import AirflowApiClient
from bascule_lab.gates.parked import SchedulerLogWatch

pytestmark = pytest.mark.unit

RUN = "manual__2026-11-27T13:15:24.627788+00:00"
# Verbatim from the lab scheduler's log (Airflow 3.3.2), the go_live gate parked on the bench.
PARKED_LINE = (
    "2026-11-27T13:16:59.482195Z [info     ] TaskInstance Finished: dag_id=cutover, task_id=gate_go_live, "
    f"run_id={RUN}, map_index=-1, ti_id=01a21d25-78de-70c4-b7f0-202f2b0ea6a9, "
    "run_start_date=2026-11-27 13:16:58.765045+00:00, run_end_date=None, run_duration=None, "
    "state=awaiting_input, executor=LocalExecutor(parallelism=6), executor_state=success, try_number=1, "
    "max_tries=1, pool=default_pool, queue=default, priority_weight=8, operator=GateOperator, "
    "queued_dttm=2026-11-27 13:16:58.738363+00:00, scheduled_dttm=2026-11-27 13:16:58.719848+00:00,"
    "queued_by_job_id=3, pid=19671 [airflow.jobs.scheduler_job_runner.SchedulerJobRunner] "
    "loc=scheduler_job_runner.py:1439\n"
)
SUCCESS_LINE = PARKED_LINE.replace("state=awaiting_input", "state=success")


def _ti(task_id: str = "gate_go_live", try_number: int = 1, run_id: str = RUN) -> dict[str, Any]:
    return {"dag_id": "cutover", "dag_run_id": run_id, "task_id": task_id, "try_number": try_number,
            "state": "awaiting_input"}


def test_parked_exit_is_seen_once_the_scheduler_logs_it(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.write_text("2026-11-27T13:16:58Z [info     ] 1 tasks up for execution:\n")
    watch = SchedulerLogWatch(log)
    assert watch.parked_exit_processed(_ti()) is False
    with log.open("a") as fh:
        fh.write(PARKED_LINE)
    assert watch.parked_exit_processed(_ti()) is True
    # Another try, gate or run is another worker: its exit has not been processed.
    assert watch.parked_exit_processed(_ti(try_number=2)) is False
    assert watch.parked_exit_processed(_ti(task_id="gate_go_for_freeze")) is False
    assert watch.parked_exit_processed(_ti(run_id="manual__other")) is False


def test_a_line_is_read_only_when_complete(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    log.touch()
    watch = SchedulerLogWatch(log)
    half = len(PARKED_LINE) // 2
    with log.open("a") as fh:
        fh.write(PARKED_LINE[:half])
    assert watch.parked_exit_processed(_ti()) is False
    with log.open("a") as fh:
        fh.write(PARKED_LINE[half:])
    assert watch.parked_exit_processed(_ti()) is True


def test_only_a_parked_state_counts_and_earlier_lines_are_ignored(tmp_path: Path) -> None:
    log = tmp_path / "scheduler.log"
    # Written before the watch began: an earlier run's line must not answer for this one.
    log.write_text(PARKED_LINE)
    watch = SchedulerLogWatch(log)
    assert watch.parked_exit_processed(_ti()) is False
    with log.open("a") as fh:
        fh.write(SUCCESS_LINE)  # executor_state=success must not be read as the task's state
    assert watch.parked_exit_processed(_ti()) is False
    with log.open("a") as fh:
        fh.write(PARKED_LINE.replace("state=awaiting_input", "state=deferred"))
    assert watch.parked_exit_processed(_ti()) is True


def test_a_missing_log_never_says_yes(tmp_path: Path) -> None:
    watch = SchedulerLogWatch(tmp_path / "absent.log")
    assert watch.parked_exit_processed(_ti()) is False


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _GateApi(AirflowApiClient):
    """The gate is awaiting input from the first look; no HTTP."""

    def __init__(self) -> None:
        self.looks = 0

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        self.looks += 1
        return _ti(task_id=task_id, run_id=run_id)

    def pending_gates(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        return [{"task_instance": {"task_id": "gate_go_live"}, "subject": "GO LIVE?"}]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _FakeClock:
    fake = _FakeClock()
    monkeypatch.setattr(client_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(client_module.time, "sleep", fake.sleep)
    return fake


def test_the_answer_follows_at_once_when_the_exit_was_processed(clock: _FakeClock) -> None:
    api = _GateApi()
    seen: list[dict[str, Any]] = []

    def parked(ti: dict[str, Any]) -> bool:
        seen.append(ti)
        return True

    gate = api.wait_for_gate("cutover", RUN, "gate_go_live", settle=1.5, parked=parked)
    assert gate["subject"] == "GO LIVE?"
    assert clock.now == 0.0 and api.looks == 1
    assert seen[0]["try_number"] == 1 and seen[0]["task_id"] == "gate_go_live"


def test_without_the_cue_the_answer_waits_for_the_settle(clock: _FakeClock) -> None:
    api = _GateApi()
    gate = api.wait_for_gate("cutover", RUN, "gate_go_live", settle=1.5, parked=lambda ti: False)
    assert gate["subject"] == "GO LIVE?"
    assert clock.now == pytest.approx(1.5)
    api = _GateApi()
    clock.now = 0.0
    api.wait_for_gate("cutover", RUN, "gate_go_live", settle=1.5)
    assert clock.now == pytest.approx(1.5)


class _SlowGateApi(_GateApi):
    """The gate's upstream runs for three looks, then its task is queued, then it asks."""

    def __init__(self) -> None:
        super().__init__()
        self.states = [None, None, None, "scheduled", "queued", "running", "awaiting_input"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        ti = super().task_instance(dag_id, run_id, task_id)
        ti["state"] = self.states[min(self.looks - 1, len(self.states) - 1)]
        return ti

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return {"state": "running"}


def test_the_wait_looks_often_only_once_the_gate_is_on_its_way(monkeypatch: pytest.MonkeyPatch,
                                                                clock: _FakeClock) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 3))
        clock.now += seconds

    monkeypatch.setattr(client_module.time, "sleep", sleep)
    api = _SlowGateApi()
    api.wait_for_gate("cutover", RUN, "gate_go_live", poll=0.1, idle_poll=0.5, parked=lambda ti: True)
    # Three idle looks while the upstream works, then quick ones as the gate's task starts.
    assert sleeps == [0.5, 0.5, 0.5, 0.1, 0.1, 0.1]
