"""Talk to an Oracle GoldenGate Microservices Administration Service over its REST API.

Endpoints used (REST API for Oracle GoldenGate, service version ``v2``):

* ``GET /services/v2/extracts/{extract}`` and ``.../info/status``
* ``GET /services/v2/replicats/{replicat}`` and ``.../info/status``
* ``GET /services/v2/connections/{connection}/tables/heartbeatData``
* ``POST /services/v2/commands/execute`` with an ``ogg:command`` ``start`` / ``stop``
  (Operator role): the documented way to start and stop an Extract or Replicat

Every answer is wrapped in the documented "RESTful API Standard Response"
(``$schema: api:standardResponse`` with ``links``, ``messages`` and ``response``);
the hook returns the inner ``response`` document.

We use ``requests`` directly (it ships with Airflow) because the HTTP provider is
not part of this project's pinned stack.

Connection (``goldengate_conn_id``, conn type ``goldengate`` or ``http``):
host, port, schema = ``https`` (default) or ``http``, login/password for Basic
auth. Extra (JSON), all optional:

* ``verify``: ``true`` / ``false`` / path to a CA bundle (default ``true``)
* ``base_path``: prefix before ``/services`` when the Administration Service
  sits behind the Service Manager's reverse proxy, e.g. ``/hospdep/adminsrvr``
* ``connect_timeout`` / ``read_timeout``: seconds (defaults 5 / 15)
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any
from urllib.parse import quote

import requests
from airflow.sdk.bases.hook import BaseHook

PROCESS_KINDS = ("extract", "replicat")
PROCESS_ACTIONS = ("start", "stop")


# Every call this hook makes, and the least GoldenGate Microservices role that may make it (the
# role model of the Administration Service: User reads, Operator starts and stops processes,
# Administrator creates and alters them). ``bascule plan grants`` prints the highest one needed.
ENDPOINT_ROLES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", r"/services/v2/extracts", "User", "test the connection"),
    ("GET", r"/services/v2/(extracts|replicats)/[^/]+", "User", "a process's definition and status"),
    ("GET", r"/services/v2/(extracts|replicats)/[^/]+/info/status", "User", "status, lag, position"),
    ("GET", r"/services/v2/connections/[^/]+/tables/heartbeatData", "User", "heartbeat lag"),
    ("POST", r"/services/v2/commands/execute", "Operator", "stop the replicat after the drain; start the reverse extract and replicat"),
)
GG_ROLES = ("User", "Operator", "Administrator", "Security")


def required_role(method: str, endpoint: str) -> str:
    """The role :data:`ENDPOINT_ROLES` gives a call; ValueError for a call it does not declare."""
    for m, pattern, role, _why in ENDPOINT_ROLES:
        if m == method and re.fullmatch(pattern, endpoint):
            return role
    raise ValueError(f"GoldenGate call {method} {endpoint} is not declared in ENDPOINT_ROLES")


class GoldenGateApiError(RuntimeError):
    """A GoldenGate REST call failed; names the endpoint and the HTTP status, never the body."""

    def __init__(self, method: str, endpoint: str, status: int | None, reason: str) -> None:
        where = f"{method} {endpoint}"
        super().__init__(f"{where}: HTTP {status} {reason}" if status else f"{where}: {reason}")
        self.method = method
        self.endpoint = endpoint
        self.status = status


class GoldenGateHook(BaseHook):
    """REST client for one GoldenGate deployment's Administration Service."""

    conn_name_attr = "goldengate_conn_id"
    default_conn_name = "goldengate_default"
    conn_type = "goldengate"
    hook_name = "Oracle GoldenGate (Microservices REST)"

    def __init__(self, *, goldengate_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.goldengate_conn_id = goldengate_conn_id

    @cached_property
    def _conn(self) -> Any:
        return self.get_connection(self.goldengate_conn_id)

    @cached_property
    def _extra(self) -> dict[str, Any]:
        return dict(self._conn.extra_dejson or {})

    @cached_property
    def base_url(self) -> str:
        conn = self._conn
        scheme = (conn.schema or "https").lower()
        if scheme not in ("http", "https"):
            # The Connection "schema" field is ours to mean the URL scheme; anything else is a typo.
            raise ValueError(f"connection {self.goldengate_conn_id}: schema must be http or https")
        host = conn.host or "localhost"
        port = f":{conn.port}" if conn.port else ""
        base_path = str(self._extra.get("base_path", "")).rstrip("/")
        return f"{scheme}://{host}{port}{base_path}"

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        if self._conn.login:
            session.auth = (self._conn.login, self._conn.password or "")
        session.headers["Accept"] = "application/json"
        verify = self._extra.get("verify", True)
        if isinstance(verify, str) and verify.lower() in ("true", "false"):
            verify = verify.lower() == "true"
        session.verify = verify
        return session

    @property
    def timeout(self) -> tuple[float, float]:
        # Short on purpose: a sensor poke must fail fast and retry, not hang a worker slot.
        return (float(self._extra.get("connect_timeout", 5)), float(self._extra.get("read_timeout", 15)))

    def get_conn(self) -> requests.Session:
        return self.session

    def _get(self, endpoint: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        document = self._call("GET", endpoint, params=params)
        inner = document.get("response", document)
        if not isinstance(inner, dict):
            raise GoldenGateApiError("GET", endpoint, 200, "'response' is not an object")
        return inner

    def _call(self, method: str, endpoint: str, *, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One REST call; the whole standard response (``links``, ``messages``, ``response``).

        Only the calls :data:`ENDPOINT_ROLES` declares are made: the grants command lists the
        GoldenGate role bascule's user needs from that table, so a new call cannot go unlisted."""
        required_role(method, endpoint)
        url = self.base_url + endpoint
        try:
            resp = self.session.request(method, url, params=params, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise GoldenGateApiError(method, endpoint, None, type(exc).__name__) from None
        if resp.status_code not in (200, 201):
            # The body may echo process parameters or messages: only status and reason leave here.
            raise GoldenGateApiError(method, endpoint, resp.status_code, resp.reason or "")
        try:
            document = resp.json()
        except (ValueError, json.JSONDecodeError):
            raise GoldenGateApiError(method, endpoint, resp.status_code, "response is not JSON") from None
        if not isinstance(document, dict):
            raise GoldenGateApiError(method, endpoint, resp.status_code, "response is not a JSON object")
        return document

    def execute_command(self, action: str, kind: str, name: str) -> list[dict[str, str]]:
        """``POST /services/v2/commands/execute``: ``start`` or ``stop`` one Extract or Replicat.

        Returns the answer's messages as ``{"code", "severity"}`` (their titles are
        not kept: they are free text). An ``ERROR`` message raises, naming its codes.
        The command is asynchronous: poll :meth:`get_process_status` for the outcome.
        """
        if action not in PROCESS_ACTIONS:
            raise ValueError(f"action must be one of {PROCESS_ACTIONS}, not {action!r}")
        if kind not in PROCESS_KINDS:
            raise ValueError(f"kind must be one of {PROCESS_KINDS}, not {kind!r}")
        endpoint = "/services/v2/commands/execute"
        document = self._call("POST", endpoint, body={
            "$schema": "ogg:command", "name": action, "processType": kind, "processName": name,
        })
        raw = document.get("messages") or []
        messages = [{"code": str(m.get("code", "")), "severity": str(m.get("severity", "")).upper()}
                    for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
        errors = [m["code"] or "?" for m in messages if m["severity"] == "ERROR"]
        if errors:
            raise GoldenGateApiError("POST", endpoint, 200, f"{action} {kind} {name} refused: {', '.join(errors)}")
        return messages

    @staticmethod
    def _name(value: str) -> str:
        return quote(value, safe="")

    def get_extract(self, name: str) -> dict[str, Any]:
        """``GET /services/v2/extracts/{extract}``: the extract's definition and status."""
        return self._get(f"/services/v2/extracts/{self._name(name)}")

    def get_replicat(self, name: str) -> dict[str, Any]:
        """``GET /services/v2/replicats/{replicat}``: the replicat's definition and status."""
        return self._get(f"/services/v2/replicats/{self._name(name)}")

    def get_process_status(self, kind: str, name: str) -> dict[str, Any]:
        """``GET /services/v2/{kind}s/{name}/info/status``: status, lag, lastStarted, position."""
        if kind not in PROCESS_KINDS:
            raise ValueError(f"kind must be one of {PROCESS_KINDS}, not {kind!r}")
        return self._get(f"/services/v2/{kind}s/{self._name(name)}/info/status")

    def get_lag(self, kind: str, name: str) -> int | None:
        """The process lag in seconds from ``info/status`` (checkpoint lag, not end-to-end)."""
        return _as_int(self.get_process_status(kind, name).get("lag"))

    def get_heartbeat_data(self, connection: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """``GET /services/v2/connections/{connection}/tables/heartbeatData``: heartbeat entries.

        ``connection`` is the credential-store connection, ``domain.alias``.
        """
        params = {"limit": str(limit)} if limit is not None else None
        document = self._get(f"/services/v2/connections/{self._name(connection)}/tables/heartbeatData",
                             params=params)
        heartbeats = document.get("heartbeats", [])
        return [hb for hb in heartbeats if isinstance(hb, dict)] if isinstance(heartbeats, list) else []

    def test_connection(self) -> tuple[bool, str]:
        try:
            self._get("/services/v2/extracts")
        except GoldenGateApiError as exc:
            return False, str(exc)
        return True, "GoldenGate Administration Service answered"


def _as_int(value: Any) -> int | None:
    # The documented schema says integer, yet the documented example sends "lag":"0": accept both.
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None
