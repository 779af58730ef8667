"""A local fake of the GoldenGate Administration Service REST API.

Serves Oracle's documented example payloads (``tests/fixtures/goldengate``, see
its SOURCES.md) on a loopback port, checks HTTP Basic auth, and can be switched
between scenarios while running: replicat running / stopped / abended, extract
running / stopped, heartbeat fresh / lag above threshold. Used by the
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

_STATUS = re.compile(r"^/services/v2/(extracts|replicats)/([^/]+)/info/status$")
_HEARTBEAT = re.compile(r"^/services/v2/connections/([^/]+)/tables/heartbeatData$")


@dataclass
class Scenario:
    replicat: str = "running"
    extract: str = "running"
    heartbeat: str = "fresh"


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

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

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

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            self.requests.append(path)
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if authorization != expected:
            return 401, None
        if m := _STATUS.match(path):
            kind, name = m.groups()
            if kind == "replicats":
                return (200, self._payload(REPLICAT_FIXTURES[self.scenario.replicat])) \
                    if name in self.replicats else (404, None)
            return (200, self._payload(EXTRACT_FIXTURES[self.scenario.extract])) \
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
                status, body = fake.answer(self.path.split("?", 1)[0], self.headers.get("Authorization"))
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
