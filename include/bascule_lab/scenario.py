"""A whole lab cutover, driven the way the team would: from outside Airflow.

Forward replication is started (initial load), the clinic simulator writes
through PgBouncer, the cutover DAG is triggered through the REST API, each gate
is answered through the REST API (lab/demo plans only), and afterwards the last
acknowledged state of every row the simulator wrote (inserted, updated, deleted)
is looked for on the database the endpoint now points to. Shared by the
integration tests, the demo and the bench.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bascule_lab.airflow_stack import AirflowStack
from bascule_lab.gates.auto import answer_gates
from bascule_lab.gates.client import AirflowApiClient, RunEnded
from bascule_lab.gates.parked import SchedulerLogWatch

DAG_ID = "cutover"
GO_GO = {"go_for_freeze": "GO", "go_live": "GO"}


@dataclass
class ScenarioResult:
    run_id: str
    state: str
    tasks: dict[str, str]
    report: dict[str, Any] | None
    writes: dict[str, Any] = field(default_factory=dict)
    endpoint_side: str | None = None
    simulator: dict[str, Any] = field(default_factory=dict)


def gate_users(plan: Any) -> dict[str, str]:
    """Airflow users for the lab's stack: everyone a gate names, plus an operator who answers none."""
    users = {u: "user" for gate in plan.gates.values() for u in gate.assigned_users}
    users["bascule_ops"] = "user"
    return users


def start_forward_replication(plan: Any, *, timeout: float = 600, echo: Callable[[str], None] = print) -> None:
    from bascule.replication.base import ReplicationState
    from bascule.replication.factory import replication_from_plan

    repl = replication_from_plan(plan)
    try:
        repl.create_publication()
        repl.create_subscription(copy_data=True)
        started = time.monotonic()
        while True:
            reading = repl.reading()
            if reading.state is ReplicationState.STREAMING:
                break
            if reading.state is ReplicationState.BROKEN:
                raise RuntimeError(f"replication broke during the initial load: {reading.cause}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"initial load not finished after {timeout:.0f} s")
            time.sleep(0.5)
        echo(f"scenario: initial load done, replication streaming ({time.monotonic() - started:.1f} s)")
    finally:
        repl.close()


class LabCutover:
    """Run cutovers on a lab with a running Airflow stack."""

    def __init__(self, *, lab: Any, stack: AirflowStack, plan: Any, workdir: Path,
                 echo: Callable[[str], None] = print) -> None:
        self.lab = lab
        self.stack = stack
        self.plan = plan
        self.workdir = workdir
        self.echo = echo
        self._clients: dict[str, AirflowApiClient] = {}
        # Seconds the REST calls keep trying while the API server or its database is down (fault bench).
        self.api_outage_s = 0.0

    def client(self, user: str) -> AirflowApiClient:
        if user not in self._clients:
            self._clients[user] = AirflowApiClient(base_url=self.stack.base_url, username=user,
                                                   password=self.stack.passwords()[user],
                                                   outage_s=self.api_outage_s)
        return self._clients[user]

    def run(
        self,
        *,
        decisions: Mapping[str, str] = GO_GO,
        simulate: bool = True,
        sessions: int = 4,
        rate: float = 100.0,
        update_share: float | None = None,
        delete_share: float | None = None,
        warmup_s: float = 3.0,
        conf: Mapping[str, Any] | None = None,
        before_gate: Callable[[str, str], None] | None = None,
        timeout: float = 900,
    ) -> ScenarioResult:
        from bascule_lab import simulator
        from bascule_lab.pgbouncer import LabPgBouncer

        self.workdir.mkdir(parents=True, exist_ok=True)
        endpoint = LabPgBouncer(self.lab)
        ledger = self.workdir / f"ledger-{time.time_ns()}.csv"
        proc = None
        if simulate:
            mix = {"update_share": simulator.DEFAULT_UPDATE_SHARE if update_share is None else update_share,
                   "delete_share": simulator.DEFAULT_DELETE_SHARE if delete_share is None else delete_share}
            proc = simulator.start_background(dsn=endpoint.app_dsn(), ledger=ledger, sessions=sessions, rate=rate,
                                              log=self.workdir / "simulator.log", **mix)
            time.sleep(warmup_s)
        ops = self.client("bascule_ops")
        # The lab's scheduler writes here: the answerer reads when a parked gate can take its answer.
        parked = SchedulerLogWatch(self.stack.log_path("scheduler")).parked_exit_processed
        try:
            ops.wait_for_dag(DAG_ID)
            ops.unpause(DAG_ID)
            run_id = f"lab__{time.time_ns()}"
            if simulate:
                # The report reads the simulator's counts through its contributor (bascule.report_sections).
                simulator.attach_to_run(self.stack.simulator_dir, run_id, ledger)
            run_id = ops.trigger(DAG_ID, conf=dict(conf or {}), run_id=run_id)
            self.echo(f"scenario: cutover run {run_id} triggered")
            for gate_id, option in decisions.items():
                try:
                    if before_gate is not None:
                        ops.wait_for_gate(DAG_ID, run_id, f"gate_{gate_id}", timeout=timeout)
                        before_gate(gate_id, run_id)
                    answer_gates(self.plan, client_for=self.client, dag_id=DAG_ID, run_id=run_id,
                                 decisions={gate_id: option}, echo=self.echo, timeout=timeout, parked=parked)
                except RunEnded as ended:
                    # A step failed before this gate (the night was rolled back): nothing to answer.
                    self.echo(f"scenario: {ended}")
                    break
                if option != "GO":
                    break
            state = ops.wait_for_run(DAG_ID, run_id, timeout=timeout)
        except BaseException:  # Ctrl-C included: never leave the simulator writing to the lab
            if proc is not None:
                simulator.stop_background(proc, ledger)
            raise
        stats: dict[str, Any] = {}
        final = simulator.stop_background(proc, ledger) if proc is not None else None
        tasks = {ti["task_id"]: str(ti["state"]) for ti in ops.task_instances(DAG_ID, run_id)}
        report = self.report(run_id)
        if final is not None:
            # The run's average includes the freeze, when every write is refused by design: the rates
            # before it (all writes, and per kind) are the application's.
            stats = simulator.stats_for_report(simulator.stats_path_of(ledger), (report or {}).get("frozen_at")) or {}
        writes: dict[str, Any] = {}
        if simulate:
            # The endpoint, not a cluster: "on the database the endpoint now points to".
            writes = simulator.verify(ledger, endpoint.app_dsn()).as_dict()
            for keys, count in (("lost_keys", "lost"), ("lost_update_keys", "lost_updates"),
                                ("resurrected_keys", "resurrected_deletes")):
                if not writes.get(count):
                    writes.pop(keys, None)
        side = endpoint.points_to()
        self.echo(f"scenario: run {state}; endpoint on {side}; writes {json.dumps(writes)}")
        return ScenarioResult(run_id=run_id, state=state, tasks=tasks, report=report, writes=writes,
                              endpoint_side=side, simulator=stats)

    def report(self, run_id: str) -> dict[str, Any] | None:
        from bascule_lab.gates.client import AirflowApiError

        try:
            entry = self.client("bascule_ops")._call(
                "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/cutover_report",
                params={"deserialize": "true"})
        except AirflowApiError:
            return None
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) else value
