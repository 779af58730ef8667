"""A small client for Airflow 3's public REST API, as a person's browser would use it.

It answers human-in-the-loop gates (`PATCH .../hitlDetails`), triggers and
watches runs. Used by the lab's tests and benches, and by the demo's explicitly
labelled auto-answer mode. Only identifiers and decisions travel through it.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import requests

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
# A gate's task in one of these states asks for its decision within a second or so.
GATE_ON_ITS_WAY = frozenset({"scheduled", "queued", "running", "up_for_retry", "awaiting_input"})


class RunEnded(RuntimeError):
    """The run finished (success or failure) before the gate asked: there is nothing left to answer."""

    def __init__(self, run_id: str, state: str, task_id: str) -> None:
        super().__init__(f"run {run_id} ended ({state}) before gate {task_id} asked for a decision")
        self.state = state


class AirflowApiError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"Airflow API {method} {path} answered {status}: {detail}")
        self.status = status
        self.detail = detail


class AirflowApiClient:
    def __init__(self, *, base_url: str, username: str, password: str, timeout: float = 30,
                 outage_s: float = 0.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.timeout = timeout
        # How long a call keeps trying through an outage of the API server or its metadata database
        # (the fault bench restarts both): reads on no answer or a 5xx, writes only when the connection
        # was refused, so that the request surely never arrived. 0: the usual three tries of a read.
        self.outage_s = outage_s
        self._session = requests.Session()
        resp = self._session.post(f"{self.base_url}/auth/token",
                                  json={"username": username, "password": password}, timeout=timeout)
        if resp.status_code >= 300:
            raise AirflowApiError("POST", "/auth/token", resp.status_code, f"cannot log in as {username}")
        self._session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        # Reads are retried: a busy api-server (one worker on two cores) can be slow to answer.
        # Writes are not: answering a gate twice is a 409, triggering twice is two runs.
        attempts = 3 if method == "GET" else 1
        outage_until = time.monotonic() + self.outage_s
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                refused = isinstance(exc, requests.ConnectionError) and "refused" in str(exc).lower()
                if (method == "GET" or refused) and time.monotonic() < outage_until:
                    time.sleep(0.5)
                    continue
                if attempt >= attempts:
                    raise
                time.sleep(1.0 * attempt)
                continue
            if resp.status_code >= 500 and method == "GET" and time.monotonic() < outage_until:
                time.sleep(0.5)
                continue
            break
        if resp.status_code >= 300:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise AirflowApiError(method, path, resp.status_code, str(detail)[:300])
        return resp.json() if resp.content else None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")

    # -------------------------------------------------------------- runs
    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{self._q(dag_id)}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{self._q(dag_id)}", json={"is_paused": True})

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                                  f"{self._q(task_id)}/xcomEntries/{self._q(key)}", params={"deserialize": "true"})
        value = entry.get("value")
        return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", f"/api/v2/dags/{self._q(dag_id)}")
                return
            except AirflowApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def trigger(self, dag_id: str, *, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        run = self._call("POST", f"/api/v2/dags/{self._q(dag_id)}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> dict[str, Any]:
        """Mark a task instance's state by hand, as "Mark success/failed" in the UI does (edit rights suffice)."""
        return self._call("PATCH", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                                   f"{self._q(task_id)}", json={"new_state": state})

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """Clear one task instance of a run (no downstream), as "Clear" in the UI does."""
        return self._call("POST", f"/api/v2/dags/{self._q(dag_id)}/clearTaskInstances",
                          json={"dag_run_id": run_id, "task_ids": [task_id], "dry_run": False,
                                "only_failed": False, "include_downstream": False, "include_upstream": False,
                                "reset_dag_runs": True})

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The text of one try's log, as the UI shows it."""
        data = self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                                 f"{self._q(task_id)}/logs/{try_number}", params={"full_content": "true"})
        content = (data or {}).get("content", "")
        if isinstance(content, list):
            # Structured lines: the event, and for a failure its exception (class, message, traceback).
            return "\n".join(json.dumps(c, default=str) if isinstance(c, dict) else str(c) for c in content)
        return str(content)

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        data = self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances",
                          params={"limit": 1000})
        return list(data["task_instances"])

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 600, poll: float = 0.5) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.run(dag_id, run_id)["state"])
            if state in TERMINAL_RUN_STATES:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)

    # ------------------------------------------------------------- gates
    def pending_gates(self, dag_id: str, run_id: str = "~") -> list[dict[str, Any]]:
        data = self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/hitlDetails",
                          params={"response_received": "false"})
        return list(data.get("hitl_details", []))

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                                      f"{self._q(task_id)}"))

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str:
        return str(self.task_instance(dag_id, run_id, task_id)["state"])

    def wait_for_gate(self, dag_id: str, run_id: str, task_id: str, *, timeout: float = 600,
                      poll: float = 0.1, idle_poll: float = 0.5, settle: float = 1.5,
                      parked: Callable[[Mapping[str, Any]], bool] | None = None) -> dict[str, Any]:
        """Wait until the gate asks for a decision and may be answered; fail early if the run ends without asking.

        Airflow 3.3 races when a gate is answered while its worker is still parking
        it: the scheduler then sees the worker's exit for a task the answer already
        re-queued, and fails that try; its retry asks again (see ``wait_gate_settled``).
        ``parked``, given the task instance, says whether the scheduler has processed
        that exit (``bascule_lab.gates.parked.SchedulerLogWatch``); the gate is answerable
        as soon as it has. Without it, or if it never says so, the gate is answerable
        once it has been ``awaiting_input`` for ``settle`` seconds (a person never
        answers faster). The window is the parked worker's supervisor noticing its
        process has exited, which can take up to ``[workers] min_heartbeat_interval``
        (1 s in the lab), plus a scheduler loop: 0.3 s was seen to lose the race
        (the try failed, and its retry could not be recorded), hence 1.5 s.

        It looks every ``poll`` seconds once the gate's task is on its way (scheduled,
        queued, running), every ``idle_poll`` seconds before: the GO LIVE gate is
        awaited through the whole downtime, and ten calls a second would load the
        single API server every task of the night talks to.
        """
        deadline = time.monotonic() + timeout
        awaiting_since: float | None = None
        pending: list[dict[str, Any]] = []
        run_checked = 0.0
        while True:
            # One call per poll while the gate has not asked yet: on cutover night this wait is downtime.
            ti = self.task_instance(dag_id, run_id, task_id)
            if str(ti["state"]) == "awaiting_input":
                if awaiting_since is None:
                    awaiting_since = time.monotonic()
                    # Looked up while settling, so the answer can follow the settle at once.
                    pending = [d for d in self.pending_gates(dag_id, run_id)
                               if d["task_instance"]["task_id"] == task_id]
                    if not pending:
                        awaiting_since = None
                if awaiting_since is not None and (
                        time.monotonic() - awaiting_since >= settle or (parked is not None and parked(ti))):
                    return pending[0]
            else:
                awaiting_since = None
                if time.monotonic() - run_checked >= 1.0:
                    run_checked = time.monotonic()
                    state = str(self.run(dag_id, run_id)["state"])
                    if state in TERMINAL_RUN_STATES:
                        raise RunEnded(run_id, state, task_id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate {task_id} of run {run_id} did not ask within {timeout:.0f} s")
            if awaiting_since is not None:
                time.sleep(min(poll, max(0.0, settle - (time.monotonic() - awaiting_since))))
            elif str(ti["state"]) in GATE_ON_ITS_WAY:
                time.sleep(poll)
            else:
                time.sleep(idle_poll)

    def wait_gate_settled(self, dag_id: str, run_id: str, task_id: str, *, timeout: float = 600,
                          poll: float = 0.5) -> str:
        """After an answer: the gate's final state, or ``"asked_again"`` if Airflow re-asks the question.

        A try failed by Airflow 3.3's answer/park race is retried under a new task
        instance id, which asks again; the answer has to be given again.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.task_state(dag_id, run_id, task_id)
            if state in ("success", "skipped", "failed", "upstream_failed"):
                return state
            if state in ("up_for_retry", "awaiting_input") and any(
                    d["task_instance"]["task_id"] == task_id for d in self.pending_gates(dag_id, run_id)):
                return "asked_again"
            time.sleep(poll)
        raise TimeoutError(f"gate {task_id} of run {run_id} did not settle within {timeout:.0f} s")

    def answer(self, dag_id: str, run_id: str, task_id: str, *, option: str,
               params: dict[str, Any] | None = None, map_index: int = -1) -> dict[str, Any]:
        path = (f"/api/v2/dags/{self._q(dag_id)}/dagRuns/{self._q(run_id)}/taskInstances/"
                f"{self._q(task_id)}/{map_index}/hitlDetails")
        return self._call("PATCH", path, json={"chosen_options": [option], "params_input": params or {}})
