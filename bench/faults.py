"""Faults under the real scheduler, in lab nights: each must end in success or a clean rollback.

    flock /tmp/bascule-heavy.lock .venv/bin/python bench/faults.py --patients 100000
    flock /tmp/bascule-heavy.lock .venv/bin/python bench/faults.py --only 2,5

Its own lab (purpose "bench-faults") seeded at --patients (100k by default), one
Airflow stack (api-server, scheduler, dag-processor, triggerer, LocalExecutor) on
the control cluster, Slack played by the lab's capture server (0.2 s a call), and
for every night: the lab reset, forward replication started (initial load), the
clinic simulator writing through PgBouncer (inserts, updates, deletes), the
cutover triggered and its gates answered GO through the REST API, as
``bench/cutover.py`` does. Faults that strike different components at different
moments share a night (``SHARED_NIGHTS``: 7 nights for 10 faults); ``--separate``
plays one night per fault. Night 0, played first and last, has no fault: the mean of its downtimes is the baseline.
Each other night injects one fault, after checking through the REST API (or the
clusters) that the fault hits what it targets, and records that proof:

  1. the scheduler's main process SIGKILLed while the window's checks run, then started again;
  2. the triggerer SIGKILLed (its process group) while the GO LIVE gate waits for its answer;
  3. the API server restarted while the GO LIVE gate waits, and killed again as the answer resumes it;
  4. PgBouncer SIGKILLed mid-window (final_validation running), then started again;
  5. the target PostgreSQL restarted (fast shutdown) during the drain;
  6. the source's walsender killed (pg_terminate_backend) during the drain;
  7. Slack answering HTTP 500, then timing out, through the whole night;
  8. the task's own process SIGKILLed while final_validation runs;
  9. the control cluster (Airflow's metadata database) restarted while the GO LIVE gate waits;
 10. final_validation's worker SIGKILLed with its task: the supervisor that heartbeats for the task and
     the task's process, as when a worker dies. Nothing reports the task's end; the scheduler fails it
     [scheduler] task_instance_heartbeat_timeout after its last heartbeat (90 s in the lab and in
     docs/production.md, 300 s by Airflow's default; ADR 0039), and its retry runs.

The drain lasts well under a second at this scale, too short to be hit by a kill
sent from outside. For faults 5 and 6 the bench holds the target's apply back
(a SHARE lock on the subscribed tables, taken as the GO FOR FREEZE gate is
answered): the drain is seen running and not caught up, then the fault hits, then
the lock goes (with the restart, or right after the kill).

The bench is the process supervisor a deployment has (systemd, Kubernetes): it
starts again what it killed, and any component a fault took down, 2 s later,
after ending whatever the dead component left running, as such a supervisor ends
a dead service's cgroup or container (ADR 0053).

A night "recovered" when the run succeeded with the endpoint on the target, or
rolled back cleanly with the endpoint on the source; and, through the endpoint,
every acknowledged insert is there, every acknowledged update current, every
acknowledged delete gone (the simulator's ledger). The extra downtime is the
night's downtime (ADR 0038's clock, from the run's report) less the baseline's.
Figures per night go to bench/out/faults.json. Last line:

    scenarios=<n> recovered=<n> lost_writes=<n> lost_updates=<n> resurrected_deletes=<n> max_extra_downtime_s=<s>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from _last_line import figures_last

DAG_ID = "cutover"
WINDOW_CHECKS = ("final_validation", "target_suites", "fixups")
# The night's drain runs in the freeze's task, after the freeze's record (ADR 0071).
DRAIN_TASK = "freeze_source"
FREEZE_RECORD_KEY = "bascule_step"
SUPERVISOR_DELAY_S = 2.0  # systemd's RestartSec, say: the time a supervisor takes to start a dead process again

FAULTS = {
    1: "scheduler main process SIGKILLed while the window's checks run, then restarted",
    2: "triggerer SIGKILLed while the GO LIVE gate waits",
    3: "API server restarted while the GO LIVE gate waits, and killed as the answer resumes it",
    4: "PgBouncer SIGKILLed mid-window, then restarted",
    5: "target PostgreSQL restarted (fast shutdown) during the drain",
    6: "source walsender killed (pg_terminate_backend) during the drain",
    7: "Slack answering HTTP 500, then timing out, through the whole night",
    8: "final_validation's own task process SIGKILLed while it runs",
    9: "control cluster (Airflow metadata database) restarted while the GO LIVE gate waits",
    10: "final_validation's worker SIGKILLed with its task (supervisor and task process: a worker crash)",
}


def main() -> int:
    with figures_last() as last:
        return _run(last)


# When each fault strikes: during the window's checks or the drain (a thread started as GO FOR FREEZE is
# answered), or while the GO LIVE gate waits (before its answer); 7 lasts the whole night.
WINDOW_FAULTS = frozenset({1, 4, 5, 6, 8, 10})
DRAIN_FAULTS = frozenset({5, 6})
GATE_FAULTS = frozenset({2, 3, 9})
# Faults that share a night: they hit different components at different moments, and none of them can
# end the night before the other strikes unless it fails it (then the other is reported not injected).
SHARED_NIGHTS = ((1,), (8,), (10,), (3,), (5, 2), (6, 9), (4, 7))


@dataclass
class Night:
    faults: tuple[int, ...]
    proofs: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    injected: set[int] = field(default_factory=set)
    failure: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "+".join(str(f) for f in self.faults) or "baseline"

    def recovered(self, number: int) -> bool:
        return bool(self.result.get("recovered")) and number in self.injected and number not in self.errors


class Campaign:
    def __init__(self, *, lab: Any, stack: Any, plan: Any, slack: Any, workdir: Path, args: Any) -> None:
        from bascule_lab.pgbouncer import LabPgBouncer

        self.lab = lab
        self.stack = stack
        self.plan = plan
        self.slack = slack
        self.workdir = workdir
        self.args = args
        self.pgbouncer = LabPgBouncer(lab)
        self._lock_conn: Any = None

    # ------------------------------------------------------------ helpers
    def echo(self, line: str) -> None:
        print(f"faults: {line}", flush=True)

    def client(self) -> Any:
        from bascule_lab.gates.client import AirflowApiClient

        return AirflowApiClient(base_url=self.stack.base_url, username="bascule_ops",
                                password=self.stack.passwords()["bascule_ops"], outage_s=180)

    def wait_task(self, api: Any, run_id: str, task_ids: tuple[str, ...], states: tuple[str, ...],
                  *, timeout: float = 600) -> dict[str, Any]:
        """Poll until one of ``task_ids`` is in one of ``states``; that task instance as the API shows it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for task_id in task_ids:
                ti = api.task_instance(DAG_ID, run_id, task_id)
                if str(ti["state"]) in states:
                    return ti
            if str(api.run(DAG_ID, run_id)["state"]) in ("success", "failed"):
                raise RuntimeError(f"run ended before {'/'.join(task_ids)} was {'/'.join(states)}")
            time.sleep(0.05)
        raise TimeoutError(f"{'/'.join(task_ids)} not {'/'.join(states)} within {timeout:.0f} s")

    @staticmethod
    def ti_proof(ti: dict[str, Any]) -> dict[str, Any]:
        return {k: ti.get(k) for k in ("task_id", "state", "try_number", "pid", "hostname", "start_date")}

    def watchdog(self, stop: threading.Event, *, grace_s: float = 20.0) -> None:
        """Restart a component that stays dead for ``grace_s``, all night long, as systemd or Kubernetes would.

        A fault restarts what it killed itself, sooner; this catches what dies as a consequence (a scheduler
        that exits a while after its metadata database came back)."""
        dead_since: dict[str, float] = {}
        while not stop.wait(2.0):
            now = time.monotonic()
            for component in self.stack.components:
                proc = self.stack.procs.get(component)
                if proc is not None and proc.poll() is None:
                    dead_since.pop(component, None)
                    continue
                first = dead_since.setdefault(component, now)
                if now - first >= grace_s:
                    try:
                        self.stack.start_component(component)
                        self.echo(f"watchdog: {component} was dead for {now - first:.0f} s, started again")
                    except Exception as exc:  # the next pass tries again
                        self.echo(f"watchdog: {component} not started again: {type(exc).__name__}: {exc}")
                    dead_since.pop(component, None)

    def supervise(self, *, timeout: float = 180) -> list[str]:
        """Start again whatever a fault left dead, and wait until Airflow answers healthy.

        A component may die a while after the fault, while this waits (a scheduler exits on the metadata
        database's restart at its next query): as a supervisor would, start it again and wait once more,
        until ``timeout``."""
        from bascule_lab.airflow_stack import AirflowStackError

        deadline = time.monotonic() + timeout
        restarted: list[str] = []
        while True:
            restarted += self.stack.restart_dead()
            try:
                self.stack.wait_healthy(timeout=max(1.0, deadline - time.monotonic()))
                break
            except AirflowStackError as exc:
                if time.monotonic() >= deadline:
                    raise
                self.echo(f"supervisor: {exc}: starting it again")
                time.sleep(SUPERVISOR_DELAY_S)
        if not self.pgbouncer.is_running():
            self.pgbouncer.up()
            restarted.append("pgbouncer")
        return restarted

    # --------------------------------------------------- the drain held back
    def hold_apply(self, proof: dict[str, Any]) -> None:
        """A SHARE lock on every table the target's subscription applies to: its apply waits, the drain with it."""
        from psycopg import sql

        from bascule_lab.clusters import APP_DB, TARGET

        conn = self.lab.connect(TARGET, APP_DB, autocommit=False)
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_subscription_rel r "
            "JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace").fetchall()]
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
            sql.SQL(", ").join(sql.SQL(t) for t in tables)))
        self._lock_conn = conn
        proof["apply_held_on_tables"] = len(tables)

    def release_apply(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                conn.rollback()
                conn.close()
            except Exception:  # the target restart already ended this session
                pass

    def drain_held(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        # The freeze's task drains once the freeze is recorded (ADR 0071): the fault strikes after that record.
        from bascule_lab.gates.client import AirflowApiError

        self.wait_task(api, run_id, (DRAIN_TASK,), ("running",))
        deadline = time.monotonic() + 120
        while True:
            try:
                if api.xcom(DAG_ID, run_id, DRAIN_TASK, FREEZE_RECORD_KEY):
                    break
            except AirflowApiError as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"{DRAIN_TASK} recorded no freeze within 120 s")
            time.sleep(0.05)
        time.sleep(0.5)
        ti = api.task_instance(DAG_ID, run_id, DRAIN_TASK)
        if str(ti["state"]) != "running":
            raise RuntimeError(f"the drain ({DRAIN_TASK}) is {ti['state']}, not running, at the moment of the fault")
        proof["target"] = self.ti_proof(ti)
        proof["target_lag_bytes_at_fault"] = self.lag_bytes()

    def lag_bytes(self) -> int | None:
        from bascule_lab.clusters import SOURCE

        with self.lab.connect(SOURCE) as conn:
            row = conn.execute("SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))::bigint "
                               "FROM pg_replication_slots WHERE slot_type = 'logical'").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # ------------------------------------------------------------ the faults
    def fault_1(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        ti = self.wait_task(api, run_id, WINDOW_CHECKS, ("running",))
        proof["target"] = self.ti_proof(ti)
        proof["window_checks"] = {t: api.task_state(DAG_ID, run_id, t) for t in WINDOW_CHECKS}
        proof["killed_pid"] = self.stack.kill("scheduler", signal.SIGKILL)
        time.sleep(SUPERVISOR_DELAY_S)
        # The supervisor ends what the dead scheduler left running (its LocalExecutor workers, the tasks they
        # ran, its log server), as systemd or a container runtime does, before it starts it again (ADR 0053).
        proof["supervisor_ended_leftovers"] = self.stack.start_component("scheduler")

    def gate_waits(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        ti = api.task_instance(DAG_ID, run_id, "gate_go_live")
        if str(ti["state"]) != "awaiting_input":
            raise RuntimeError(f"gate_go_live is {ti['state']}, not awaiting its answer, at the moment of the fault")
        proof["target"] = self.ti_proof(ti)
        proof["pending_answers"] = [d["task_instance"]["task_id"] for d in api.pending_gates(DAG_ID, run_id)]

    def fault_2(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        self.gate_waits(api, run_id, proof)
        proof["killed_pid"] = self.stack.kill("triggerer", signal.SIGKILL, group=True)
        time.sleep(SUPERVISOR_DELAY_S)
        self.stack.start_component("triggerer")
        self.stack.wait_healthy(timeout=120)

    def fault_3(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        self.gate_waits(api, run_id, proof)
        proof["restarted_pid"] = self.stack.kill("api-server", signal.SIGTERM, group=True)
        self.stack.start_component("api-server")
        self.stack.wait_healthy(timeout=120)
        proof["after_restart"] = api.task_state(DAG_ID, run_id, "gate_go_live")

        def kill_as_answer_resumes() -> None:
            # The answer re-queues the gate; its worker then needs the API server (Execution API).
            try:
                ti = self.wait_task(api, run_id, ("gate_go_live",), ("scheduled", "queued", "running", "success"),
                                    timeout=300)
                proof["resume_target"] = self.ti_proof(ti)
                proof["killed_as_resumed_pid"] = self.stack.kill("api-server", signal.SIGKILL, group=True)
                time.sleep(SUPERVISOR_DELAY_S)
                self.stack.start_component("api-server")
            except Exception as exc:  # recorded; the night's verdict reads it
                proof["resume_error"] = f"{type(exc).__name__}: {exc}"

        threading.Thread(target=kill_as_answer_resumes, daemon=True).start()

    def fault_4(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        ti = self.wait_task(api, run_id, ("final_validation",), ("running",))
        proof["target"] = self.ti_proof(ti)
        proof["freeze"] = api.task_state(DAG_ID, run_id, "freeze_source")
        pid = self.pgbouncer.pid()
        if pid is None:
            raise RuntimeError("PgBouncer is not running at the moment of the fault")
        os.kill(pid, signal.SIGKILL)
        proof["killed_pid"] = pid
        time.sleep(SUPERVISOR_DELAY_S)
        self.pgbouncer.up()

    def fault_5(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        from bascule_lab.clusters import TARGET

        try:
            self.drain_held(api, run_id, proof)
            proof["restart_s"] = round(self.lab.restart(TARGET, mode="fast"), 2)
        finally:
            self.release_apply()

    def fault_6(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        from bascule_lab.clusters import APP_DB, SOURCE

        try:
            self.drain_held(api, run_id, proof)
            with self.lab.connect(SOURCE) as conn:
                rows = conn.execute("SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE backend_type = 'walsender' AND datname = %s", (APP_DB,)).fetchall()
            proof["walsenders_terminated"] = [{"pid": pid, "terminated": ok} for pid, ok in rows]
            if not any(ok for _, ok in rows):
                raise RuntimeError("no walsender of the lab's database to terminate")
            time.sleep(1.0)
        finally:
            self.release_apply()

    def fault_8(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        ti = self.wait_task(api, run_id, ("final_validation",), ("running",))
        pid = ti.get("pid")
        if not pid:
            # The pid is recorded as the task starts running; read again once.
            time.sleep(0.1)
            ti = api.task_instance(DAG_ID, run_id, "final_validation")
            pid = ti.get("pid")
        proof["target"] = self.ti_proof(ti)
        if not pid or str(ti["state"]) != "running":
            raise RuntimeError(f"final_validation is {ti['state']} (pid {pid}) at the moment of the fault")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        proof["killed_cmdline"] = cmdline[:120]
        os.kill(int(pid), signal.SIGKILL)
        proof["killed_pid"] = pid

    def fault_10(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        ti = self.wait_task(api, run_id, ("final_validation",), ("running",))
        pid = ti.get("pid") or api.task_instance(DAG_ID, run_id, "final_validation").get("pid")
        proof["target"] = self.ti_proof(ti)
        if not pid:
            raise RuntimeError("final_validation has no pid at the moment of the fault")
        supervisor = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{supervisor}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if supervisor == self.stack.pid("scheduler"):
            raise RuntimeError("the task's parent is the scheduler itself, not a worker")
        proof["killed_supervisor"] = {"pid": supervisor, "cmdline": cmdline[:120]}
        os.kill(supervisor, signal.SIGKILL)
        os.kill(int(pid), signal.SIGKILL)
        proof["killed_pid"] = pid

    def fault_9(self, api: Any, run_id: str, proof: dict[str, Any]) -> None:
        from bascule_lab.clusters import CONTROL

        self.gate_waits(api, run_id, proof)
        proof["restart_s"] = round(self.lab.restart(CONTROL, mode="fast"), 2)
        time.sleep(SUPERVISOR_DELAY_S)
        # The fault has struck; what follows is the recovery, which the night's outcome judges. A
        # supervisor that could not get Airflow healthy again is recorded, not taken for a fault not injected.
        try:
            proof["components_restarted"] = self.supervise()
        except Exception as exc:
            proof["supervise_error"] = f"{type(exc).__name__}: {exc}"
            self.echo(f"fault 9: Airflow not healthy again: {proof['supervise_error']}")

    # ------------------------------------------------------------ one night
    def night(self, faults: tuple[int, ...]) -> Night:
        from bascule_lab.scenario import LabCutover, start_forward_replication
        from bascule_lab.slack_capture import FailureMode

        night = Night(faults=faults)
        self.echo(f"night {night.name}: " + ("; ".join(FAULTS[f] for f in faults) or "no fault (baseline)"))
        self.lab.reset()
        start_forward_replication(self.plan, timeout=1800, echo=self.echo)
        slack_from = len(self.slack.records)
        if 7 in faults:
            # Three 500s (the first messages of the night), then every call hangs past the client's timeout.
            self.slack.set_mode(FailureMode.HTTP_500, times=3, then=FailureMode.HANG)
        api = self.client()

        def inject(number: int, run_id: str) -> None:
            proof = night.proofs.setdefault(number, {})
            try:
                getattr(self, f"fault_{number}")(api, run_id, proof)
                proof["injected_at"] = time.time()
                night.injected.add(number)
            except Exception as exc:  # recorded; the night's verdict reads it
                night.errors[number] = f"fault not injected: {type(exc).__name__}: {exc}"
                self.echo(f"night {night.name}: fault {number}: {night.errors[number]}")

        def before_gate(gate_id: str, run_id: str) -> None:
            if gate_id == "go_for_freeze":
                held = [f for f in faults if f in DRAIN_FAULTS]
                if held:
                    self.hold_apply(night.proofs.setdefault(held[0], {}))
                for number in faults:
                    if number in WINDOW_FAULTS:
                        threading.Thread(target=inject, args=(number, run_id), daemon=True).start()
            elif gate_id == "go_live":
                for number in faults:
                    if number in GATE_FAULTS:
                        inject(number, run_id)  # in the answerer's thread: the answer waits for the fault

        cutover = LabCutover(lab=self.lab, stack=self.stack, plan=self.plan, workdir=self.workdir,
                             echo=self.echo)
        cutover.api_outage_s = 180
        started = time.monotonic()
        stop_watchdog = threading.Event()
        threading.Thread(target=self.watchdog, args=(stop_watchdog,), daemon=True).start()
        try:
            result = cutover.run(sessions=self.args.sessions, rate=self.args.rate, warmup_s=self.args.warmup,
                                 before_gate=before_gate if faults else None, timeout=self.args.night_timeout)
        except Exception as exc:  # the night failed; the campaign goes on
            night.failure = f"night failed: {type(exc).__name__}: {exc}"
            self.echo(f"night {night.name}: {night.failure}")
            self.release_apply()
            self.slack.set_mode(FailureMode.NONE)
            self._end_stuck_runs()
            self.supervise()
            return night
        finally:
            stop_watchdog.set()
            self.release_apply()
        if 7 in faults:
            self.slack.set_mode(FailureMode.NONE)
            calls = self.slack.records[slack_from:]
            night.proofs[7] = {
                "target": {"slack_calls": len(calls),
                           "by_failure": {m: sum(1 for r in calls if r["failure"] == m)
                                          for m in sorted({r["failure"] for r in calls})}},
                "slack_ledger": (result.report or {}).get("notifications"),
            }
            if calls and all(r["failure"] != "none" for r in calls):
                night.injected.add(7)
        restarted = self.supervise()
        # Which steps needed more than one try: how the night got over the fault.
        tries = {ti["task_id"]: ti.get("try_number") for ti in api.task_instances(DAG_ID, result.run_id)}
        report = result.report or {}
        writes = result.writes
        rolled_back = result.tasks.get("rollback_on_failure") == "success" or result.tasks.get("rollback") == "success"
        went_live = result.state == "success" and result.tasks.get("open_target_writes") == "success"
        clean = all(writes.get(k) == 0 for k in ("lost", "lost_updates", "resurrected_deletes"))
        outcome = ("success" if went_live and result.endpoint_side == "new" else
                   "rolled_back" if rolled_back and result.endpoint_side == "legacy" else "neither")
        for number in faults:
            if number not in night.injected and number not in night.errors:
                night.errors[number] = "fault not injected"
        night.result = {
            "run_id": result.run_id, "state": result.state, "outcome": outcome,
            "endpoint": result.endpoint_side, "night_s": round(time.monotonic() - started, 1),
            "downtime_s": report.get("downtime_s"), "work_s": report.get("work_s"),
            # The GO LIVE gate's question to its answer: for the faults played while it waits (2, 3, 9),
            # the answer follows once the component is back, so that part of the extra downtime is here.
            "decision_wait_s": report.get("decision_wait_s"),
            "acked_writes": writes.get("acked"), "refused_writes": writes.get("refused"),
            "lost_writes": writes.get("lost"), "lost_updates": writes.get("lost_updates"),
            "resurrected_deletes": writes.get("resurrected_deletes"), "indeterminate": writes.get("indeterminate"),
            "not_success": {t: s for t, s in result.tasks.items() if s not in ("success", "skipped")},
            "retried": {t: n for t, n in tries.items() if (n or 0) > 1},
            "components_restarted_after": restarted,
            "recovered": outcome != "neither" and clean,
        }
        self.echo(f"night {night.name}: {json.dumps(night.result)}")
        for number, proof in sorted(night.proofs.items()):
            self.echo(f"night {night.name}: fault {number} proof: {json.dumps(proof, default=str)}")
        return night

    def _end_stuck_runs(self) -> None:
        """A night that timed out leaves its run going: fail it, so that the next night's run can start."""
        api = self.client()
        runs = api._call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns", params={"state": ["running", "queued"]})
        for run in runs.get("dag_runs", []):
            api._call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
            self.echo(f"run {run['dag_run_id']} marked failed so that the campaign can go on")


def _run(last: TextIO) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--only", default="", help="comma-separated fault numbers (1-10); the baseline always runs")
    parser.add_argument("--rate", type=float, default=150.0, help="simulator writes per second")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of writes before each run starts")
    parser.add_argument("--slack-latency", type=float, default=0.2)
    parser.add_argument("--night-timeout", type=float, default=600.0)
    parser.add_argument("--separate", action="store_true",
                        help="one night per fault (default: faults that cannot interfere share a night)")
    parser.add_argument("--keep", action="store_true", help="leave the lab and Airflow running")
    args = parser.parse_args()
    wanted = sorted(FAULTS) if not args.only else sorted({int(n) for n in args.only.split(",") if n.strip()})
    unknown = [n for n in wanted if n not in FAULTS]
    if unknown:
        parser.error(f"--only: no fault numbered {unknown} (1-{max(FAULTS)})")

    from psycopg import sql

    from bascule.paths import LAB_PLAN, REPO_ROOT
    from bascule.plan import load_plan
    from bascule_lab.airflow_env import airflow_env
    from bascule_lab.airflow_stack import AirflowStack
    from bascule_lab.clusters import AIRFLOW_DB, CONTROL, Lab
    from bascule_lab.paths import airflow_home, lab_dir
    from bascule_lab.scenario import gate_users
    from bascule_lab.slack_capture import CaptureServer, route_slack

    begun = time.monotonic()
    plan = load_plan(LAB_PLAN)
    out = REPO_ROOT / "bench" / "out"
    workdir = out / "faults-runs"
    workdir.mkdir(parents=True, exist_ok=True)
    lab = Lab(lab_dir(purpose="bench-faults"), echo=lambda line: print(line, flush=True))
    home = airflow_home(purpose="bench-faults")
    AirflowStack.stop_recorded(home)
    lab.up()
    lab.seed(patients=args.patients, release_migration=plan.release_migration_path)
    with lab.connect(CONTROL) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(AIRFLOW_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER airflow_meta").format(sql.Identifier(AIRFLOW_DB)))
    env = airflow_env(home=home, connections_file=lab.connections_file, sql_alchemy_conn=lab.airflow_metadata_url())
    os.environ.update(env)
    slack = CaptureServer(out=workdir / "slack.jsonl", latency_s=args.slack_latency).start()
    route_slack(lab.connections_file, slack.api_url, token="xoxb-bascule-bench-capture")
    stack = AirflowStack(home=home, env=env, users=gate_users(plan))
    stack.start()
    nights: list[Night] = []
    if args.separate:
        plan_of_nights = [(n,) for n in wanted]
    else:
        plan_of_nights = [t for t in (tuple(f for f in night if f in wanted) for night in SHARED_NIGHTS) if t]
        plan_of_nights += [(n,) for n in wanted if not any(n in t for t in SHARED_NIGHTS)]
    try:
        campaign = Campaign(lab=lab, stack=stack, plan=plan, slack=slack, workdir=workdir, args=args)
        # A baseline night first and last: on two shared cores a night's downtime varies by several
        # seconds with what else runs; the extra downtime is counted against their mean.
        for faults in [(), *plan_of_nights, ()]:
            nights.append(campaign.night(faults))
            _save(out, args, nights, begun)
    finally:
        if not args.keep:
            stack.stop()
        slack.stop()
        if not args.keep:
            lab.down()
    baselines = [n.result["downtime_s"] for n in nights if not n.faults and n.result.get("downtime_s") is not None]
    baseline = round(sum(baselines) / len(baselines), 2) if baselines else None
    for n in nights:
        d = n.result.get("downtime_s")
        n.result["extra_downtime_s"] = round(d - baseline, 2) if d is not None and baseline is not None else None
    _save(out, args, nights, begun)
    print(f"{'#':>2} {'fault':<70} {'night':>7} {'outcome':<12} {'downtime_s':>10} {'extra_s':>8} {'gate_s':>7} lost")
    scenarios = []
    for n in nights:
        r = n.result
        lost = f"{r.get('lost_writes')}/{r.get('lost_updates')}/{r.get('resurrected_deletes')}"
        for number in n.faults or (0,):
            if number:
                scenarios.append((number, n))
            error = n.errors.get(number) or n.failure
            print(f"{number:>2} {FAULTS.get(number, 'none (baseline)')[:70]:<70} {n.name:>7} "
                  f"{r.get('outcome', 'FAILED'):<12} {r.get('downtime_s')!s:>10} {r.get('extra_downtime_s', '-')!s:>8} "
                  f"{r.get('decision_wait_s')!s:>7} {lost}" + (f"  ERROR: {error}" if error else ""))
    fault_nights = [n for n in nights if n.faults]
    total: Callable[[str], int] = lambda key: sum(int(n.result.get(key) or 0) for n in fault_nights)  # noqa: E731
    recovered = sum(1 for number, n in scenarios if n.recovered(number))
    extra = [n.result["extra_downtime_s"] for n in fault_nights if n.result.get("extra_downtime_s") is not None]
    print(f"bench: {time.monotonic() - begun:.0f} s in all; baseline downtime {baseline} s (nights: {baselines})",
          flush=True)
    print(f"scenarios={len(scenarios)} recovered={recovered} lost_writes={total('lost_writes')} "
          f"lost_updates={total('lost_updates')} resurrected_deletes={total('resurrected_deletes')} "
          f"max_extra_downtime_s={max(extra) if extra else None}", file=last)
    ok = recovered == len(scenarios) and all(n.result.get("recovered") for n in nights if not n.faults)
    return 0 if ok else 1


def _save(out: Path, args: Any, nights: list[Night], begun: float) -> None:
    data = {"patients": args.patients, "rate": args.rate, "elapsed_s": round(time.monotonic() - begun, 1),
            "nights": [{"faults": {f: FAULTS[f] for f in n.faults}, "errors": n.errors, "failure": n.failure,
                        "injected": sorted(n.injected), "proofs": n.proofs, **n.result} for n in nights]}
    (out / "faults.json").write_text(json.dumps(data, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
