"""The Oracle night in order, under ``dag.test()``: the cutover DAG built from the Oracle example plan, against a
recording double of both Oracle databases (bascule_lab.testing.oracle_double), the GoldenGate REST fake, and
the worked command endpoint with stand-ins for dig/nsupdate/sqlplus. The driver is the seam
(``oracledb.connect``): the provider's OracleHook and every bascule hook above it run unchanged. Gates are
answered through Airflow's HITL route handler as their assigned users; the preparation's milestones are
recorded as the signed Asset events its stages leave (ADR 0056).

Checks: every step ran, the statements came in the night's order, GoldenGate's commands (forward replicat
stopped, reverse pair started, ADR 0055), the endpoint moved; and a scripted failure (a difference found by
the window's comparison) ends in the rollback, whose statements give the source back.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from bascule.paths import DAGS_DIR, PLANS_DIR, REPO_ROOT
from bascule.runbook.context import GO

pytestmark = pytest.mark.integration

EXAMPLE = PLANS_DIR / "production-oracle.example.yaml"
SCRIPT = REPO_ROOT / "scripts" / "endpoint" / "oracle-dns-service.sh"
STUBS = {
    "dig": '#!/bin/sh\ncat "$STATE/cname"\n',
    "nsupdate": ('#!/bin/sh\nhost=$(sed -n "s/^update add [^ ]* [0-9]* CNAME //p")\n'
                 'printf "%s\\n" "$host" > "$STATE/cname"\necho nsupdate >> "$STATE/calls"\n'),
    "sqlplus": ('#!/bin/sh\nside=$3\nsql=$(cat)\ncase "$sql" in\n'
                '  *STOP_SERVICE*) echo 0 > "$STATE/svc_$side"; echo "stop $side" >> "$STATE/calls" ;;\n'
                '  *START_SERVICE*) echo 1 > "$STATE/svc_$side"; echo "start $side" >> "$STATE/calls" ;;\n'
                '  *COUNT*) cat "$STATE/svc_$side" ;;\nesac\n'),
}
SOURCE_COLUMNS = [("PATIENT_ID", "NUMBER(INTEGER)"), ("MRN", "VARCHAR2"), ("NOTES", "CLOB"),
                  ("FAX_NUMBER", "VARCHAR2")]
TARGET_COLUMNS = [("PATIENT_ID", "NUMBER(INTEGER)"), ("MRN", "VARCHAR2"), ("NOTES", "CLOB"),
                  ("PREFERRED_LANGUAGE", "VARCHAR2")]


def _plan_file(tmp_path: Path) -> Path:
    """The example plan, as a copy whose release file sits beside it and whose endpoint is the worked script."""
    data = yaml.safe_load(EXAMPLE.read_text())
    shutil.copytree(PLANS_DIR / "production-oracle", tmp_path / "production-oracle")
    data["cutover"]["endpoint"]["command"] = [str(SCRIPT)]
    # The groups and heartbeat path of Oracle's documented payloads, which the GoldenGate fake serves.
    data["replication"]["goldengate"].update(extract="EXT2", replicat="REP2",
                                             heartbeat_connection="OracleGoldenGate.oggadmin")
    data["notifications"]["webhook_conn_id"] = None
    data["validation"]["suites"] = []  # GX reads Oracle through SQLAlchemy: not through the double
    data["release"]["column_mapping"] = {"HOSP.PATIENTS": data["release"]["column_mapping"]["HOSP.PATIENTS"]}
    path = tmp_path / "oracle-night.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _endpoint_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "bin", tmp_path / "endpoint"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (state / "cname").write_text("legacy-db.hosp.example.\n")
    (state / "svc_src").write_text("1\n")
    (state / "svc_tgt").write_text("0\n")
    for key, value in {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(state),
                       "HOSP_DNS_NAME": "hosp-db.hosp.example", "HOSP_DNS_SERVER": "10.0.0.53",
                       "HOSP_SOURCE_HOST": "legacy-db.hosp.example", "HOSP_TARGET_HOST": "new-db.hosp.example",
                       "HOSP_SERVICE": "HOSP_APP_SVC", "HOSP_SOURCE_SQL": "src", "HOSP_TARGET_SQL": "tgt"}.items():
        monkeypatch.setenv(key, value)
    return state


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


@pytest.fixture()
def oracle_night(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_env: dict[str, str]) -> Any:
    import oracledb
    from airflow.api_fastapi.app import _AuthManagerState

    from bascule.plan import load_plan
    from bascule_lab.slack_capture import CaptureServer
    from bascule_lab.testing.goldengate_fake import FakeGoldenGate
    from bascule_lab.testing.oracle_double import OracleNight, connection_json, driver_connect

    plan_path = _plan_file(tmp_path)
    plan = load_plan(plan_path)
    gg = plan.replication.goldengate
    night = OracleNight(source_conn_ids=(plan.source.conn_id, plan.source.app_conn_id),
                        target_conn_ids=(plan.target.conn_id, plan.target.app_conn_id),
                        tables={"HOSP.PATIENTS": SOURCE_COLUMNS}, target_columns={"HOSP.PATIENTS": TARGET_COLUMNS})
    _worker_like_in_process_comms(monkeypatch)
    # The answerer makes the API's auth manager in this process; the next test finds none, as before.
    monkeypatch.setattr(_AuthManagerState, "instance", None)
    # The driver is the seam: the provider's OracleHook and every bascule hook above it run unchanged.
    monkeypatch.setattr(oracledb, "connect", driver_connect(night))
    for conn_id in (*night.source_conn_ids, *night.target_conn_ids):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(conn_id))
    for conn_id in (plan.validation.key_hash_conn_id, plan.decisions.key_conn_id):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "generic", "password": "k" * 48}))
    monkeypatch.setenv("BASCULE_PLAN", str(plan_path))
    monkeypatch.setenv("BASCULE_REPORTS_DIR", str(tmp_path / "reports"))
    endpoint_state = _endpoint_env(tmp_path, monkeypatch)
    fake = FakeGoldenGate(extracts=(gg.extract, gg.reverse_extract), replicats=(gg.replicat, gg.reverse_replicat),
                          connections=(gg.heartbeat_connection,))
    fake.scenario.command_delay_reads = 0
    # The reverse pair, created stopped by the GoldenGate administrator during the preparation.
    fake.scenario.processes = {gg.reverse_extract: "stopped", gg.reverse_replicat: "stopped"}
    with fake, CaptureServer() as slack:
        monkeypatch.setenv(f"AIRFLOW_CONN_{gg.conn_id.upper()}", fake.connection_json())
        monkeypatch.setenv(f"AIRFLOW_CONN_{plan.notifications.slack_conn_id.upper()}", json.dumps(
            {"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": slack.api_url}}))
        yield night, fake, endpoint_state


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


def _went_live_events(run_id: str) -> list[dict[str, Any]]:
    """The extras of the went_live events the cutover run emitted (on the example plan's Asset)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from bascule.plan import load_plan
    from bascule.runbook.milestones import went_live_asset

    name = went_live_asset(load_plan(os.environ["BASCULE_PLAN"])).name
    with create_session() as session:
        return [dict(e.extra or {}) for e in session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(
                AssetModel.name == name, AssetEvent.source_dag_id == "cutover", AssetEvent.source_run_id == run_id))]


def _run(answers: dict[str, str] | None = None) -> tuple[Any, dict[str, str], list[str]]:
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


def _in_order(night: Any, *wanted: tuple[str, str]) -> None:
    """``wanted`` ((connection, label), ...) were sent in this order, other statements in between."""
    sent = [(s.conn_id, s.label) for s in night.sent]
    at = 0
    for step in wanted:
        try:
            at = sent.index(step, at) + 1
        except ValueError:
            raise AssertionError(f"{step} not sent after {wanted[:wanted.index(step)][-1:]}: sent "
                                 f"{[x for x in sent if x[1] != 'session_setup']}") from None


def _endpoint_calls(state: Path) -> list[str]:
    calls = state / "calls"
    return calls.read_text().split("\n") if calls.exists() else []


def _commands(fake: Any) -> list[tuple[str, str, str]]:
    return [(c["name"], c["processType"], c["processName"]) for c in fake.commands]


SRC, TGT, TGT_APP = "hosp_prod_legacy", "hosp_prod_new", "hosp_prod_new_app"


def test_the_oracle_night_runs_every_step_in_order(oracle_night: Any) -> None:
    night, fake, endpoint_state = oracle_night
    run, states, answered = _run()
    failed = {t: s for t, s in states.items() if s not in ("success", "skipped")}
    assert not failed, failed
    assert "?" not in night.labels(), [s.sql[:80] for s in night.sent if s.label == "?"]
    ran = {t for t, s in states.items() if s == "success"}
    assert {"announce_start", "calendar_checks", "tminus_checks", "restore_point", "freeze_source", "drain",
            "stop_replication", "final_validation", "fixups", "prepare_reverse_replication", "switch_endpoint",
            "smoke_tests", "open_target_writes", "start_reverse_replication", "retire_forward_replication",
            "announce_live", "report"} <= ran
    assert {"rollback_on_failure", "abort_before_freeze"} & ran == set()
    assert answered == ["gate_go_for_freeze", "gate_data_verified", "gate_go_live"]
    _in_order(night,
              # T-minus: two databases, the target kept closed, a full comparison of both sides.
              (SRC, "identity"), (TGT, "identity"), (TGT, "restrict"), (TGT, "revoke"), (TGT, "mark_frozen"),
              (SRC, "range_hashes"), (TGT, "range_hashes"),
              # After GO: the guaranteed restore point, then the source's freeze and its proof.
              (SRC, "create_restore_point"), (SRC, "restore_point_lookup"),
              (SRC, "record_freeze"), (SRC, "restrict"), (SRC, "revoke"), (SRC, "lock_user"), (SRC, "sessions"),
              (SRC, "kill"), (SRC, "sessions"), (SRC, "freeze_proof"), (SRC, "mark_frozen"),
              # The drain to the frozen SCN, the window's comparison in full.
              (SRC, "scn_to_utc"), (TGT, "gg_watermark"),
              (SRC, "count_rows"), (TGT, "count_rows"), (SRC, "range_hashes"), (TGT, "range_hashes"),
              # Smoke tests through the application's account, then the target opened: rights back, unlocked,
              # restricted session off, its freeze released, a write proven through the application's login.
              (TGT_APP, "smoke_read"), (TGT, "grant"), (TGT, "unlock_user"), (TGT, "unrestrict"),
              (TGT, "release_freeze"), (TGT_APP, "probe_write"))
    # The fix-ups (a branch beside the comparison): after the drain, before the target opens.
    _in_order(night, (TGT, "gg_watermark"), (SRC, "sequences"), (TGT, "sequences"), (TGT, "constraints"),
              (TGT, "triggers"), (TGT, "unlock_user"))
    source = night.labels(SRC)
    assert "unlock_user" not in source and "unrestrict" not in source  # the source stays frozen
    # GoldenGate, through the documented command: the forward replicat stopped after the drain, the reverse
    # extract started while the target was still closed, the reverse replicat after GO LIVE.
    assert _commands(fake) == [("stop", "replicat", "REP2"), ("start", "extract", "EXTBACK"),
                               ("start", "replicat", "REPBACK")]
    assert fake.scenario.processes == {"EXTBACK": "running", "REPBACK": "running"}
    assert endpoint_state.joinpath("cname").read_text().startswith("new-db")
    # The worked endpoint script: the service stopped on the source, the name moved, the service started on
    # the target.
    calls = _endpoint_calls(endpoint_state)
    assert calls.index("stop src") < calls.index("nsupdate") < calls.index("start tgt"), calls
    # The night went live for real: its report emitted the went_live event the rollback window's watch is
    # scheduled on (ADR 0057), naming this run.
    assert [e["run_id"] for e in _went_live_events(run.run_id)] == [run.run_id]


def test_a_difference_found_in_the_window_ends_in_the_rollback(oracle_night: Any) -> None:
    night, fake, endpoint_state = oracle_night
    night.mismatch_after_freeze = True
    run, states, answered = _run()
    assert "?" not in night.labels(), [s.sql[:80] for s in night.sent if s.label == "?"]
    assert states["final_validation"] == "failed", states
    assert states["rollback_on_failure"] == "success", states
    assert "gate_go_live" not in answered and states["open_target_writes"] != "success"
    assert endpoint_state.joinpath("cname").read_text().startswith("legacy-db")
    # The service, stopped on the source by the freeze, started there again; never started on the target
    # (the switch, a branch beside the comparison, may have moved the name: the rollback moved it back).
    calls = _endpoint_calls(endpoint_state)
    assert "start tgt" not in calls and calls.index("start src") > calls.index("stop src"), calls
    # The rollback gives the source back: rights, the account, restricted session off, its freeze released.
    _in_order(night, (SRC, "mark_frozen"), (TGT, "range_hashes"), (SRC, "grant"), (SRC, "unlock_user"),
              (SRC, "unrestrict"), (SRC, "release_freeze"))
    assert "unlock_user" not in night.labels(TGT)  # the target never opened
    assert _went_live_events(run.run_id) == [], "a rolled-back night starts no rollback window's watch"
    # The reverse replicat never started: nothing of the target's reached the source.
    assert ("start", "replicat", "REPBACK") not in _commands(fake) and fake.scenario.processes["REPBACK"] == "stopped"
