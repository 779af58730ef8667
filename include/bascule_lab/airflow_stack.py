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
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from bascule_lab.common import free_port, write_private

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
CELERY_WORKERS = 2


def component_env(env: dict[str, str], component: str) -> dict[str, str]:
    """The scheduler forks the LocalExecutor's workers, which fork the tasks: it pre-imports
    bascule's heavy modules once, so that no task spends its first second importing them.
    A Celery worker forks the tasks itself: it does the same, and names itself (``worker_hostname``)
    as two containers of the compose file would have two host names."""
    if component == "scheduler":
        return {**env, "BASCULE_PRELOAD": "1", "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False"}
    if component.startswith("celery-worker-"):
        return {**env, "BASCULE_PRELOAD": "1", "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
                "BASCULE_LAB_WORKER_NAME": component,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bascule_lab.airflow_env.worker_hostname"}
    return env


def component_command(airflow: str, component: str) -> list[str]:
    if component.startswith("celery-worker-"):
        # Both workers on one host: no log server each (the API server reads the shared log folder), and
        # the worker's own name in Celery.
        return [airflow, "celery", "worker", "--celery-hostname", f"{component}@%h", "--skip-serve-logs",
                "--without-mingle", "--without-gossip"]
    return [airflow, component]
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
        executor: str = "local",
        workers: int = CELERY_WORKERS,
    ) -> None:
        if executor not in ("local", "celery"):
            raise AirflowStackError(f"executor must be 'local' or 'celery', got {executor!r}")
        self.home = home
        self.executor = executor
        self.workers = workers
        self.redis_port: int | None = None
        self.base_env = dict(env)
        self.users = {**users, OBSERVER: "viewer"}
        self.echo = echo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port: int | None = None
        # The fault bench restarts components from more than one thread (the fault, its watchdog): one
        # restart at a time, so that a dead component is started once.
        self._restarting = threading.Lock()

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
            **self._celery_env(),
        }

    @property
    def components(self) -> tuple[str, ...]:
        if self.executor == "local":
            return COMPONENTS
        return (*COMPONENTS, *(f"celery-worker-{i}" for i in range(1, self.workers + 1)))

    def _celery_env(self) -> dict[str, str]:
        if self.executor != "celery":
            return {}
        assert self.redis_port is not None
        metadata = self.base_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            # Task states go to the same metadata database; Celery's own results too.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        }

    def _start_redis(self) -> None:
        """A private Redis for the broker: no persistence, loopback only, stopped with the stack."""
        import shutil

        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise AirflowStackError("redis-server is not installed: apt-get install -y redis-server "
                                    "(scripts/setup.sh does it)")
        self.redis_port = free_port()
        (self.home / "redis").mkdir(exist_ok=True)
        log = self.log_path("redis").open("ab")
        self.procs["redis"] = subprocess.Popen(
            [server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.home / "redis")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        import socket

        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise AirflowStackError(f"redis-server did not listen on {self.redis_port}; see {self.log_path('redis')}")

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
        if self.executor == "celery":
            self._start_redis()
        env = self.env()
        airflow = str(Path(sys.executable).with_name("airflow"))
        started = time.monotonic()
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if migrate.returncode != 0:
            raise AirflowStackError(f"airflow db migrate failed: {migrate.stderr[-800:]}")
        for component in self.components:
            self._spawn(component, env)
        self.echo(f"airflow: {', '.join(self.components)} starting on {self.base_url}")
        self.wait_healthy(timeout=timeout)
        if self.executor == "celery":
            self.wait_workers_ready(timeout=max(30.0, timeout - (time.monotonic() - started)))
        self.echo(f"airflow: healthy in {time.monotonic() - started:.0f} s, UI at {self.base_url}")

    def _spawn(self, component: str, env: dict[str, str] | None = None) -> None:
        airflow = str(Path(sys.executable).with_name("airflow"))
        log = self.log_path(component).open("ab")
        self.procs[component] = subprocess.Popen(
            component_command(airflow, component), env=component_env(env or self.env(), component), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        (self.home / "pids.json").write_text(json.dumps({c: p.pid for c, p in self.procs.items()}))

    # --------------------------------------------------------------- faults
    # The fault bench plays the process supervisor a deployment has (systemd, Kubernetes): it kills a
    # component, and starts it again as such a supervisor would. Such a supervisor ends everything its
    # service left behind before it starts it again (the container's processes die with it; systemd's
    # default KillMode=control-group ends the whole cgroup), and so does ``start_component``: each
    # component runs in a session of its own, the lab's stand-in for its cgroup.

    def pid(self, component: str) -> int:
        """The main process of ``component`` (its own process group; its children share the group)."""
        proc = self.procs.get(component)
        if proc is None or proc.poll() is not None:
            raise AirflowStackError(f"airflow {component} is not running")
        return proc.pid

    def kill(self, component: str, sig: signal.Signals = signal.SIGKILL, *, group: bool = False) -> int:
        """Send ``sig`` to the component's main process (or its whole group); wait until it is gone."""
        pid = self.pid(component)
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        try:
            self.procs[component].wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            self.procs[component].wait(timeout=10)
        self.echo(f"airflow: {component} (pid {pid}) ended by {sig.name}")
        return pid

    def start_component(self, component: str) -> list[int]:
        """Start ``component`` again if its main process has exited, after ending what it left behind.

        Returns the leftover processes it ended (the pids). A SIGKILLed scheduler leaves its LocalExecutor
        workers and its log server running, and they hold its metadata-database connection, inherited
        when they were forked: PostgreSQL sees no disconnect, so a transaction the scheduler had open stays
        open with its row locks on ``dag_run``, and the new scheduler, which skips locked runs, never
        schedules that run again (ADR 0053)."""
        if component not in self.components:
            raise AirflowStackError(f"no Airflow component named {component!r} (one of {', '.join(self.components)})")
        with self._restarting:
            proc = self.procs.get(component)
            if proc is not None and proc.poll() is None:
                return []
            reaped = end_session(proc.pid) if proc is not None else []
            if reaped:
                self.echo(f"airflow: {component}: ended {len(reaped)} process(es) its dead main process left "
                          f"running (pids {', '.join(map(str, reaped))}), as a supervisor ends a dead service's "
                          "cgroup")
            self._spawn(component)
            self.echo(f"airflow: {component} started again (pid {self.procs[component].pid})")
            return reaped

    def restart_dead(self) -> list[str]:
        """Start again every component whose process has exited, as a supervisor would; their names."""
        dead = [c for c in self.components if c not in self.procs or self.procs[c].poll() is not None]
        for component in dead:
            self.start_component(component)
        return dead

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

    def wait_workers_ready(self, *, timeout: float) -> None:
        """Each Celery worker logs ``ready.`` once connected to the broker and consuming."""
        deadline = time.monotonic() + timeout
        waiting = [c for c in self.components if c.startswith("celery-worker-")]
        while waiting and time.monotonic() < deadline:
            for c in list(waiting):
                if self.procs[c].poll() is not None:
                    raise AirflowStackError(f"airflow {c} exited with {self.procs[c].returncode}; "
                                            f"see {self.log_path(c)}")
                if b" ready." in self.log_path(c).read_bytes():
                    waiting.remove(c)
            time.sleep(0.3)
        if waiting:
            raise AirflowStackError(f"Celery workers not ready after {timeout:.0f} s: {', '.join(waiting)}")
        self.echo(f"airflow: {self.workers} Celery workers ready (broker redis://127.0.0.1:{self.redis_port})")

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
        for pid in pids:
            end_session(pid)  # a task process in a process group of its own, an orphan of a killed component
        pids_file.unlink(missing_ok=True)
        echo("airflow: stopped the stack left running by an earlier command")
        return True

    def stop(self) -> None:
        started = time.monotonic()
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = started + 20
        killed = []
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(name)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        for proc in self.procs.values():
            # What a killed component left behind (its log server holds port 8793 for the next stack).
            end_session(proc.pid)
        self.procs.clear()
        (self.home / "pids.json").unlink(missing_ok=True)
        # Said, so that a slow stop (a component that ignores SIGTERM for 20 s) is seen, not guessed.
        self.echo(f"airflow: stopped in {time.monotonic() - started:.1f} s"
                  + (f" ({', '.join(killed)} killed after 20 s)" if killed else ""))


def session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (``os.getsid``), whoever their parent is now (Linux's /proc).

    A zombie is not one: it is dead, and stays listed only until whoever adopted it reaps it."""
    members = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        try:
            if pid != os.getpid() and os.getsid(pid) == sid and _alive(pid):
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def end_session(sid: int, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process left in session ``sid``; the pids, once they are gone.

    Each component starts in a session of its own (``start_new_session``): its main process's pid is the
    session's id, and every process it forks stays in it, orphaned or not, even a task process that made a
    process group of its own (``setpgid``). A session that still has members after its leader died is what
    a cgroup still has when the container's main process died, and a supervisor ends it the same way: the
    container runtime with SIGKILL as the container's PID namespace goes, systemd with SIGTERM, then SIGKILL.
    Kernel-side, a session id is not reused while any member lives, so no stranger is hit."""
    members = session_members(sid)
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in members):
        time.sleep(0.05)
    return members


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed and awaiting its reaper, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
