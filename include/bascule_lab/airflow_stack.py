"""A real Airflow on the lab: api-server, scheduler, dag-processor and triggerer.

`dag.test()` runs a DAG in one process, but the cutover's gates are answered by
people through the REST API, and its timings must include the scheduler's own
gaps. So the lab can also run the four components against the control
cluster's metadata database, as a small deployment would.

Users are those the plan assigns to gates (plus an `observer` with no gate),
authenticated by Airflow's simple auth manager with passwords generated here.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from bascule_lab.common import free_port, write_private

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def component_env(env: dict[str, str], component: str) -> dict[str, str]:
    """The scheduler forks the LocalExecutor's workers, which fork the tasks: it pre-imports
    bascule's heavy modules once, so that no task spends its first second importing them."""
    if component != "scheduler":
        return env
    return {**env, "BASCULE_PRELOAD": "1", "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False"}
OBSERVER = "observer"


class AirflowStackError(RuntimeError):
    pass


class AirflowStack:
    """Start, health-check and stop the four Airflow components for the lab."""

    def __init__(
        self,
        *,
        home: Path,
        env: Mapping[str, str],
        users: Mapping[str, str],
        echo: Callable[[str], None] = print,
    ) -> None:
        self.home = home
        self.base_env = dict(env)
        self.users = {**users, OBSERVER: "viewer"}
        self.echo = echo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port: int | None = None

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise AirflowStackError("the Airflow stack is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def simulator_dir(self) -> Path:
        """Where the lab links each run's simulator stats for the report (``simulator.report_writes``)."""
        return self.home / "simulator"

    def passwords(self) -> dict[str, str]:
        return json.loads(self.passwords_file.read_text())

    def env(self) -> dict[str, str]:
        state_file = self.home / "stack.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if "jwt_secret" not in state:
            state["jwt_secret"] = secrets.token_urlsafe(32)
            write_private(state_file, json.dumps(state))
        assert self.port is not None
        return {
            **os.environ,
            **self.base_env,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            # Without base_url the workers call localhost:8080/execution/ whatever the port.
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": state["jwt_secret"],
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in self.users.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            # New DAG files are found within 5 s; known ones are parsed again every 30 s (Airflow's default).
            # Every 5 s, the processor re-parsed all seven files about once a second, on the lab's two
            # cores, while the cutover's steps and their task starts competed for them.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.1",
            "BASCULE_LAB_SIMULATOR_DIR": str(self.simulator_dir),
        }

    def log_path(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def _write_passwords(self) -> None:
        existing = self.passwords() if self.passwords_file.exists() else {}
        wanted = {u: existing.get(u) or secrets.token_urlsafe(12) for u in self.users}
        write_private(self.passwords_file, json.dumps(wanted))

    def start(self, *, timeout: float = 180) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self.port = free_port()
        self._write_passwords()
        env = self.env()
        airflow = str(Path(sys.executable).with_name("airflow"))
        started = time.monotonic()
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if migrate.returncode != 0:
            raise AirflowStackError(f"airflow db migrate failed: {migrate.stderr[-800:]}")
        for component in COMPONENTS:
            log = self.log_path(component).open("ab")
            self.procs[component] = subprocess.Popen(
                [airflow, component], env=component_env(env, component), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (self.home / "pids.json").write_text(json.dumps({c: p.pid for c, p in self.procs.items()}))
        self.echo(f"airflow: {', '.join(COMPONENTS)} starting on {self.base_url}")
        self.wait_healthy(timeout=timeout)
        self.echo(f"airflow: healthy in {time.monotonic() - started:.0f} s, UI at {self.base_url}")

    def wait_healthy(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for component, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AirflowStackError(
                        f"airflow {component} exited with {proc.returncode}; see {self.home / 'logs'}")
            try:
                health = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=2).json()
                states = {k: v.get("status") for k, v in health.items() if isinstance(v, dict)}
                if all(states.get(k) == "healthy" for k in ("metadatabase", "scheduler", "triggerer",
                                                             "dag_processor")):
                    return
                last = json.dumps(states)
            except (requests.RequestException, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise AirflowStackError(f"Airflow not healthy after {timeout:.0f} s ({last}); see {self.home / 'logs'}")

    @staticmethod
    def stop_recorded(home: Path, echo: Callable[[str], None] = print) -> bool:
        """Stop a stack a previous command started and left running (the demo's UI); True if one was."""
        pids_file = home / "pids.json"
        if not pids_file.exists():
            return False
        pids = list(json.loads(pids_file.read_text()).values())
        alive = []
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGTERM)
                alive.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 20
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _exists(p)]
            time.sleep(0.2)
        for pid in alive:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pids_file.unlink(missing_ok=True)
        echo("airflow: stopped the stack left running by an earlier command")
        return True

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self.procs.clear()
        (self.home / "pids.json").unlink(missing_ok=True)
        self.echo("airflow: stopped")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
