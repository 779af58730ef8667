"""A local fake of the GoldenGate Administration Service REST API.

Serves Oracle's documented example payloads (``tests/fixtures/goldengate``, see
its SOURCES.md) on a loopback port, checks HTTP Basic auth, and can be switched
between scenarios while running: replicat running / stopped / abended, extract
running / stopped, heartbeat fresh / lag above threshold. It takes start / stop
commands (``POST /services/v2/commands/execute``), records them in ``commands``,
and changes the process's status after ``scenario.command_delay_reads`` reads. Used by the
integration tests; the lab and demo can reuse it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bascule.paths import REPO_ROOT

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "goldengate"

REPLICAT_FIXTURES = {
    "running": "replicat_status_running.json",
    "stopped": "replicat_status_stopped.json",
    "abended": "replicat_status_abended.json",
}
EXTRACT_FIXTURES = {
    "running": "extract_status_running.json",
    "stopped": "extract_status_stopped.json",
}
HEARTBEAT_FIXTURES = {
    "fresh": "heartbeat_data_fresh.json",
    "lag_high": "heartbeat_data_documented.json",
}

COMMAND_FIXTURES = {"start": "command_execute_start.json", "stop": "command_execute_stop.json"}

_STATUS = re.compile(r"^/services/v2/(extracts|replicats)/([^/]+)/info/status$")
_EXECUTE = "/services/v2/commands/execute"
_HEARTBEAT = re.compile(r"^/services/v2/connections/([^/]+)/tables/heartbeatData$")


@dataclass
class Scenario:
    replicat: str = "running"
    extract: str = "running"
    heartbeat: str = "fresh"
    # A start/stop command takes effect after this many status reads (GoldenGate acts asynchronously).
    command_delay_reads: int = 1
    # What a started replicat becomes: "running", or "abended" to play a replicat that fails on start.
    start_outcome: str = "running"
    # Processes with a state of their own (name -> state), e.g. a reverse pair created stopped; the others
    # share ``extract`` / ``replicat``.
    processes: dict[str, str] = field(default_factory=dict)

    def state(self, kind: str, name: str) -> str:
        return self.processes.get(name, getattr(self, kind))

    def set_state(self, kind: str, name: str, state: str) -> None:
        if name in self.processes:
            self.processes[name] = state
        else:
            setattr(self, kind, state)


@dataclass
class FakeGoldenGate:
    """Start with ``with FakeGoldenGate(...) as gg:``; switch with ``gg.scenario.replicat = "abended"``."""

    user: str = "oggadmin"
    password: str = "fake-password"
    extracts: tuple[str, ...] = ("EXT2",)
    replicats: tuple[str, ...] = ("REP2",)
    connections: tuple[str, ...] = ("OracleGoldenGate.oggadmin",)
    fixtures: Path = FIXTURES
    scenario: Scenario = field(default_factory=Scenario)
    requests: list[str] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], list[Any]] = {}  # (kind, name) -> [reads left, state to reach]

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake GoldenGate is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection_json(self) -> str:
        """The Airflow connection, JSON form, for ``AIRFLOW_CONN_<ID>``."""
        return json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": self.port,
                           "login": self.user, "password": self.password, "schema": "http"})

    def _payload(self, name: str) -> dict[str, Any]:
        return json.loads((self.fixtures / name).read_text())

    def _authorized(self, authorization: str | None) -> bool:
        return authorization == "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def execute(self, path: str, authorization: str | None, body: Any) -> tuple[int, dict[str, Any] | None]:
        """``POST /services/v2/commands/execute``: record the command, change the state a bit later."""
        with self._lock:
            self.requests.append(f"POST {path}")
            self.commands.append(body if isinstance(body, dict) else {"invalid": True})
        if not self._authorized(authorization):
            return 401, None
        if path != _EXECUTE or not isinstance(body, dict):
            return 404 if path != _EXECUTE else 400, None
        action, kind, name = body.get("name"), body.get("processType"), body.get("processName")
        names = {"replicat": self.replicats, "extract": self.extracts}.get(str(kind))
        if action not in COMMAND_FIXTURES or names is None or body.get("$schema", "ogg:command") != "ogg:command":
            return 400, None
        if name not in names:
            return 404, None
        reached = "stopped" if action == "stop" else (
            self.scenario.start_outcome if kind == "replicat" else "running")
        with self._lock:
            self._pending[(str(kind), str(name))] = [self.scenario.command_delay_reads, reached]
        return 200, self._payload(COMMAND_FIXTURES[action])

    def _advance(self, kind: str, name: str) -> None:
        with self._lock:
            pending = self._pending.get((kind, name))
            if pending is None:
                return
            if pending[0] > 0:
                pending[0] -= 1
                return
            del self._pending[(kind, name)]
            self.scenario.set_state(kind, name, pending[1])

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            self.requests.append(path)
        if not self._authorized(authorization):
            return 401, None
        if m := _STATUS.match(path):
            kind, name = m.groups()
            self._advance(kind[:-1], name)
            if kind == "replicats":
                return (200, self._payload(REPLICAT_FIXTURES[self.scenario.state("replicat", name)])) \
                    if name in self.replicats else (404, None)
            return (200, self._payload(EXTRACT_FIXTURES[self.scenario.state("extract", name)])) \
                if name in self.extracts else (404, None)
        if m := _HEARTBEAT.match(path):
            if m.group(1) not in self.connections:
                return 404, None
            return 200, self._payload(HEARTBEAT_FIXTURES[self.scenario.heartbeat])
        return 404, None

    def start(self) -> FakeGoldenGate:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(*fake.answer(self.path.split("?", 1)[0], self.headers.get("Authorization")))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                self._reply(*fake.execute(self.path.split("?", 1)[0], self.headers.get("Authorization"), body))

            def _reply(self, status: int, body: dict[str, Any] | None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="OGG"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-goldengate",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeGoldenGate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
