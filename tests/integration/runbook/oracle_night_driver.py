"""The Oracle night's driver, shared by the night against the recording double (test_oracle_night.py) and the
live night against two real databases (test_oracle_night_live.py): the plan's copy, the environment every
night needs (the keys, the plan, the reports, Slack to a local capture), the worker-like in-process channel,
the preparation's milestones, the gates answered as their users, and ``dag.test()`` itself (ADR 0056).

What differs between the two nights is only what sits behind the Airflow connections: the double's driver
and the GoldenGate fake, or ``oracledb`` and a real GoldenGate deployment.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from bascule.paths import DAGS_DIR
from bascule.runbook.context import GO


def plan_copy(plan_file: Path, dest: Path, *, endpoint_command: list[str],
              edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """``plan_file`` copied to ``dest``, its endpoint the given command, its release file (relative to the
    plan) made absolute so the copy finds it, Slack's degraded fallback off (the capture serves the Web
    API only), then ``edit`` applied."""
    data = yaml.safe_load(plan_file.read_text())
    release = data.get("release") or {}
    if release.get("migration"):
        release["migration"] = str((plan_file.parent / release["migration"]).resolve())
    data["cutover"]["endpoint"]["command"] = endpoint_command
    data["notifications"]["webhook_conn_id"] = None
    if edit is not None:
        edit(data)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


@contextmanager
def night_environment(monkeypatch: pytest.MonkeyPatch, plan_path: Path, reports: Path) -> Iterator[Any]:
    """What every night needs besides its databases and GoldenGate: the plan, the reports' directory, the
    HMAC and decision keys (fresh for the run), Slack's Web API pointed at a local capture (a test night
    never pages the team), the worker-like channel, and no auth manager left for the next test. Yields
    the loaded plan."""
    import secrets

    from airflow.api_fastapi.app import _AuthManagerState

    from bascule.plan import load_plan
    from bascule_lab.slack_capture import CaptureServer

    plan = load_plan(plan_path)
    _worker_like_in_process_comms(monkeypatch)
    # The answerer makes the API's auth manager in this process; the next test finds none, as before.
    monkeypatch.setattr(_AuthManagerState, "instance", None)
    for conn_id in (plan.validation.key_hash_conn_id, plan.decisions.key_conn_id):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "generic", "password": secrets.token_hex(24)}))
    monkeypatch.setenv("BASCULE_PLAN", str(plan_path))
    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(reports))
    with CaptureServer() as slack:
        monkeypatch.setenv(f"AIRFLOW_CONN_{plan.notifications.slack_conn_id.upper()}", json.dumps(
            {"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": slack.api_url}}))
        yield plan


def run_night(answers: dict[str, str] | None = None) -> tuple[Any, dict[str, str], list[str]]:
    """The cutover DAG of ``BASCULE_PLAN`` under ``dag.test()``, each gate answered (GO unless ``answers``
    says otherwise) once it waits: the run, each task's state, the gates answered in order."""
    from airflow.dag_processing.dagbag import DagBag

    from bascule.plan import load_plan

    bag = DagBag(dag_folder=str(DAGS_DIR / "cutover.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["cutover"]
    _register(dag)
    _record_milestones(load_plan(os.environ["BASCULE_PLAN"]))
    stop, answered = threading.Event(), []
    answerer = threading.Thread(target=_answer_gates, args=(stop, answers or {}, answered), daemon=True)
    answerer.start()
    try:
        run = dag.test()
    finally:
        stop.set()
        answerer.join(5)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert not [a for a in answered if a.startswith("error")], answered
    return run, states, answered


def _answer_gates(stop: threading.Event, answers: dict[str, str], answered: list[str]) -> None:
    """Answer each waiting gate through Airflow's own HITL route handler, as its first assigned user."""
    while not stop.wait(0.2):
        try:
            _answer_once(answers, answered)
        except Exception as exc:
            # The test fails on this; the waiting gate fails too, or dag.test() would wait for ever.
            answered.append(f"error: {type(exc).__name__}: {exc}")
            _fail_waiting_gates()
            return


def _fail_waiting_gates() -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(TaskInstance).where(TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
                        .values(state=TaskInstanceState.FAILED))


def _answer_once(answers: dict[str, str], answered: list[str]) -> None:
    """What ``PATCH .../hitlDetails`` does (the route's function, called with the user it would
    authenticate): it checks the user is assigned and the option valid, records the answer and resumes the
    parked task. Only a parked gate is answered, as a person sees it in Required Actions."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    create_auth_manager()
    with create_session() as session:
        waiting = session.execute(select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id,
                                         TaskInstance.map_index, HITLDetail.assignees)
                                  .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
                                  .where(HITLDetail.responded_at.is_(None),
                                         TaskInstance.state == TaskInstanceState.AWAITING_INPUT)).all()
    for dag_id, run_id, task_id, map_index, assignees in waiting:
        user = SimpleAuthManagerUser(username=(assignees or [{"id": "anyone"}])[0]["id"], role="user")
        payload = UpdateHITLDetailPayload(chosen_options=[answers.get(task_id, GO)], params_input={})
        with create_session() as session:
            update_hitl_detail(dag_id, run_id, task_id, payload, user, session, map_index)
        answered.append(task_id)


# The in-process Execution API's threads (its event loop, the thread pool its sync routes run in): the
# server side, which in a worker is another process.
SERVER_THREADS = ("InProcessExecutionAPI", "AnyIO worker thread")


class _SupervisorSide(threading.local):
    serving = False


def _worker_like_in_process_comms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make dag.test()'s in-process Task SDK channel behave as a worker's does when the task has threads.

    In a worker, the task process always holds ``SUPERVISOR_COMMS`` and its ``CommsDecoder.send`` holds a
    lock, so the task's threads (the downtime clock, the Slack poster) take turns; the supervisor serving
    a request is another process. Under dag.test() (Airflow 3.3), ``InProcessSupervisorComms.send`` has no
    lock and serves the request in the task's process after deleting the module-global ``SUPERVISOR_COMMS``
    (so that the server-side code it calls does not take itself for a task): any other thread of the task
    then finds it gone (ImportError, or NameError on the task's next XCom). Here the global stays, the
    serving thread and the in-process API's threads alone see it absent, and sends take turns under a lock: the worker's behaviour. The
    product is unchanged.
    """
    import types

    from airflow.sdk.execution_time import supervisor, task_runner
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms

    side = _SupervisorSide()

    class TaskRunnerModule(types.ModuleType):
        def __getattribute__(self, name: str) -> Any:
            if name == "SUPERVISOR_COMMS" and (side.serving or threading.current_thread().name.startswith(
                    SERVER_THREADS)):
                raise AttributeError(name)
            return super().__getattribute__(name)

    lock = threading.RLock()

    def send(self: Any, msg: Any) -> Any:
        with lock:
            side.serving = True
            try:
                self.supervisor._handle_request(msg, supervisor.log, 0)
            finally:
                side.serving = False
            return self._get_response()

    monkeypatch.setattr(task_runner, "__class__", TaskRunnerModule)
    monkeypatch.setattr(InProcessSupervisorComms, "send", send)


def _register(dag: Any) -> None:
    """dag.test() only runs serialized DAGs (as in tests/integration/notifications/test_notifications_dag.py)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def _record_milestones(plan: Any) -> None:
    """The preparation's evidence, as its stages leave it (bascule.operators.milestones): one event per
    milestone on its Asset, in the calendar's order, and a green rehearsal, each signed with the workers'
    key by the run that emitted it. Without them ``calendar_checks`` refuses the production night, as it
    must; the stages themselves are tested with the preparation."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from bascule.hooks.decision_key import DecisionKeyHook
    from bascule.plan import MilestoneId
    from bascule.runbook.milestones import GREEN, REHEARSAL, asset_name, evidence

    key = DecisionKeyHook(key_conn_id=plan.decisions.key_conn_id).key()
    with create_session() as session:
        for milestone in [*MilestoneId, REHEARSAL]:
            asset = session.scalar(select(AssetModel).where(AssetModel.name == asset_name(plan, milestone)))
            assert asset is not None, f"the cutover DAG declares no inlet for milestone {milestone}"
            dag_id = "cutover" if milestone == REHEARSAL else "prepare"
            run_id = f"manual__{milestone}"
            extra = evidence(key, plan=plan, milestone=str(milestone), dag_id=dag_id, run_id=run_id,
                             signed_off_by=None if milestone == REHEARSAL else "dba",
                             outcome=GREEN if milestone == REHEARSAL else None)
            session.add(AssetEvent(asset_id=asset.id, extra=extra, source_dag_id=dag_id, source_run_id=run_id,
                                   source_task_id=f"record_{milestone}", source_map_index=-1))
