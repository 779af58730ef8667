"""GoldenGateHook and GoldenGateReplication against a local fake Administration Service.

The fake serves Oracle's documented example payloads (tests/fixtures/goldengate,
SOURCES.md) and checks Basic auth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bascule.hooks.goldengate import GoldenGateApiError, GoldenGateHook
from bascule.replication.base import ReplicationBroken, ReplicationState
from bascule.replication.goldengate import GoldenGateReplication
from bascule_lab.testing.goldengate_fake import FakeGoldenGate

pytestmark = pytest.mark.integration

CONN_ID = "gg_fake"
HEARTBEAT_CONNECTION = "OracleGoldenGate.oggadmin"
LAG_THRESHOLD_SECONDS = 30.0  # ZDM's default acceptable GoldenGate lag


@pytest.fixture
def fake_gg(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoldenGate]:
    with FakeGoldenGate() as gg:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", gg.connection_json())
        yield gg


def _replication(**kwargs: object) -> GoldenGateReplication:
    return GoldenGateReplication(goldengate_conn_id=CONN_ID, extract="EXT2", replicat="REP2",
                                 heartbeat_connection=HEARTBEAT_CONNECTION, **kwargs)  # type: ignore[arg-type]


def test_hook_reads_documented_replicat_status(fake_gg: FakeGoldenGate) -> None:
    hook = GoldenGateHook(goldengate_conn_id=CONN_ID)
    status = hook.get_process_status("replicat", "REP2")
    assert status["$schema"] == "ogg:replicatStatus"
    assert status["status"] == "running"
    assert hook.get_lag("replicat", "REP2") == 0  # documented as the string "0"
    assert fake_gg.requests[-1] == "/services/v2/replicats/REP2/info/status"


def test_hook_reads_heartbeat_data(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.heartbeat = "lag_high"
    beats = GoldenGateHook(goldengate_conn_id=CONN_ID).get_heartbeat_data(HEARTBEAT_CONNECTION)
    assert beats[0]["lagSeconds"] == 53
    assert beats[0]["ageSeconds"] == 97.78


def _use_wrong_password(fake_gg: FakeGoldenGate, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(fake_gg.connection_json())
    conn["password"] = "wrong-password"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


def test_wrong_password_names_endpoint_and_status_only(fake_gg: FakeGoldenGate,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _use_wrong_password(fake_gg, monkeypatch)
    with pytest.raises(GoldenGateApiError) as err:
        GoldenGateHook(goldengate_conn_id=CONN_ID).get_process_status("replicat", "REP2")
    assert err.value.status == 401
    assert str(err.value).startswith("GET /services/v2/replicats/REP2/info/status: HTTP 401")


def test_running_with_fresh_heartbeat_streams_below_threshold(fake_gg: FakeGoldenGate) -> None:
    reading = _replication().reading()
    assert reading.state is ReplicationState.STREAMING
    assert reading.lag_seconds == 2.0
    assert reading.lag_seconds < LAG_THRESHOLD_SECONDS
    assert reading.cause is None
    assert reading.details["lag_source"] == "rest:heartbeatData"
    assert reading.details["replicat_trail_position"] == "ea:0:0"
    json.dumps(reading.to_json())  # XCom-able


def test_lag_above_threshold_from_documented_heartbeat(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.heartbeat = "lag_high"
    reading = _replication().reading()
    assert reading.state is ReplicationState.STREAMING
    # lag 53 s, last heartbeat 97.78 s old, one due every 60 s: at least 90.78 s behind.
    assert reading.lag_seconds == pytest.approx(90.78)
    assert reading.lag_seconds > LAG_THRESHOLD_SECONDS


def test_abended_replicat_is_broken_with_one_line_cause(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "abended"
    reading = _replication().reading()
    assert reading.state is ReplicationState.BROKEN
    assert reading.cause == "replicat REP2 is ABENDED"


def test_stopped_replicat_is_broken_when_expected_to_run(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "stopped"
    reading = _replication().reading()
    assert reading.state is ReplicationState.BROKEN
    assert reading.cause == "replicat REP2 is STOPPED but expected to run"


def test_stopped_replicat_is_stopped_when_drained_on_purpose(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "stopped"
    fake_gg.scenario.extract = "stopped"
    reading = _replication(expect_running=False).reading()
    assert reading.state is ReplicationState.STOPPED
    assert "\n" not in (reading.cause or "")


def test_stopped_extract_is_broken(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.extract = "stopped"
    reading = _replication().reading()
    assert reading.state is ReplicationState.BROKEN
    assert reading.cause == "extract EXT2 is STOPPED but expected to run"


def test_unknown_replicat_is_broken(fake_gg: FakeGoldenGate) -> None:
    reading = GoldenGateReplication(goldengate_conn_id=CONN_ID, extract="EXT2",
                                    replicat="REPHOSP").reading()
    assert reading.state is ReplicationState.BROKEN
    assert reading.cause == "replicat REPHOSP does not exist in the GoldenGate deployment"


def test_heartbeat_for_another_path_gives_no_lag(fake_gg: FakeGoldenGate) -> None:
    fake_gg.replicats = ("REP2", "REPX")
    reading = GoldenGateReplication(goldengate_conn_id=CONN_ID, extract="EXT2", replicat="REPX",
                                    heartbeat_connection=HEARTBEAT_CONNECTION).reading()
    assert reading.state is ReplicationState.STREAMING
    assert reading.lag_seconds is None  # unknown, so never "below threshold"
    assert reading.details["lag_source"] == "none"


# -- lifecycle: the cutover stops the replicat after the drain, a rollback starts it again ----------


def test_disable_stops_the_replicat_with_the_documented_command_and_waits(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.command_delay_reads = 2  # GoldenGate takes a moment: still running on the next reads
    repl = _replication()
    repl.disable(poll_s=0.01)

    assert fake_gg.commands == [
        {"$schema": "ogg:command", "name": "stop", "processType": "replicat", "processName": "REP2"}]
    assert fake_gg.scenario.replicat == "stopped"
    assert fake_gg.scenario.extract == "running"  # the trail keeps the changes for a restart
    # Status reads: one before the command, then until the replicat reports stopped.
    assert fake_gg.requests.count("/services/v2/replicats/REP2/info/status") == 4
    reading = repl.reading()
    assert reading.state is ReplicationState.STOPPED  # stopped on purpose, not broken
    assert reading.cause == "replicat REP2 is STOPPED"


def test_disable_and_enable_are_idempotent(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "stopped"
    _replication().disable(poll_s=0.01)
    fake_gg.scenario.replicat = "running"
    _replication().enable(poll_s=0.01)
    assert fake_gg.commands == []  # nothing to do either time: no command sent


def test_enable_starts_the_replicat_again(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "stopped"
    repl = _replication(expect_running=False)
    repl.enable(poll_s=0.01)
    assert fake_gg.commands[-1] == {"$schema": "ogg:command", "name": "start", "processType": "replicat",
                                    "processName": "REP2"}
    assert repl.reading().state is ReplicationState.STREAMING


def test_a_replicat_that_abends_on_start_is_named(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "stopped"
    fake_gg.scenario.start_outcome = "abended"
    with pytest.raises(ReplicationBroken, match=r"^replicat REP2 is ABENDED after START$"):
        _replication().enable(poll_s=0.01)


def test_an_abended_replicat_is_not_stopped_silently(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.replicat = "abended"
    with pytest.raises(ReplicationBroken, match=r"^replicat REP2 is ABENDED$"):
        _replication().disable(poll_s=0.01)
    assert fake_gg.commands == []


def test_a_stop_that_never_lands_times_out_by_name(fake_gg: FakeGoldenGate) -> None:
    fake_gg.scenario.command_delay_reads = 10_000
    with pytest.raises(ReplicationBroken, match=r"^replicat REP2 still RUNNING 0 s after STOP$"):
        _replication().disable(timeout_s=0.05, poll_s=0.01)


def test_a_refused_command_names_the_endpoint_and_status(fake_gg: FakeGoldenGate,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _use_wrong_password(fake_gg, monkeypatch)
    with pytest.raises(GoldenGateApiError) as err:
        GoldenGateHook(goldengate_conn_id=CONN_ID).execute_command("stop", "replicat", "REP2")
    assert str(err.value) == "POST /services/v2/commands/execute: HTTP 401 Unauthorized"


def test_the_hook_keeps_message_codes_not_their_text(fake_gg: FakeGoldenGate) -> None:
    messages = GoldenGateHook(goldengate_conn_id=CONN_ID).execute_command("stop", "replicat", "REP2")
    assert messages == [{"code": "OGG-08100", "severity": "INFO"}, {"code": "OGG-00979", "severity": "INFO"}]
    with pytest.raises(ValueError, match="action must be one of"):
        GoldenGateHook(goldengate_conn_id=CONN_ID).execute_command("kill", "replicat", "REP2")


def test_an_error_message_in_the_answer_raises_with_its_code(fake_gg: FakeGoldenGate,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    documented = fake_gg._payload("command_execute_stop.json")
    # The documented answer with its second message turned into an error (its text stays out of ours).
    documented["messages"][1].update({"severity": "ERROR", "code": "OGG-01234", "title": "patient 4711"})
    served = fake_gg._payload
    monkeypatch.setattr(fake_gg, "_payload",
                        lambda name: documented if name == "command_execute_stop.json" else served(name))
    with pytest.raises(GoldenGateApiError) as err:
        _replication().disable(poll_s=0.01)
    assert str(err.value) == ("POST /services/v2/commands/execute: HTTP 200 stop replicat REP2 refused: OGG-01234")


def _reverse(fake_gg: FakeGoldenGate) -> GoldenGateReplication:
    """The rollback window's pair (ADR 0055), created stopped during the preparation."""
    fake_gg.extracts, fake_gg.replicats = ("EXT2", "EXTBACK"), ("REP2", "REPBACK")
    fake_gg.scenario.processes = {"EXTBACK": "stopped", "REPBACK": "stopped"}
    return GoldenGateReplication(goldengate_conn_id=CONN_ID, extract="EXTBACK", replicat="REPBACK",
                                 heartbeat_connection=HEARTBEAT_CONNECTION, expect_running=False)


def test_start_capture_starts_the_reverse_extract_only(fake_gg: FakeGoldenGate) -> None:
    reverse = _reverse(fake_gg)
    reverse.start_capture(poll_s=0.01)
    assert fake_gg.commands == [
        {"$schema": "ogg:command", "name": "start", "processType": "extract", "processName": "EXTBACK"}]
    assert fake_gg.scenario.processes == {"EXTBACK": "running", "REPBACK": "stopped"}
    assert fake_gg.scenario.replicat == "running" and fake_gg.scenario.extract == "running"  # forward untouched
    reverse.start_capture(poll_s=0.01)
    assert len(fake_gg.commands) == 1  # idempotent
    reverse.enable(poll_s=0.01)
    assert fake_gg.commands[-1]["processName"] == "REPBACK" and fake_gg.scenario.processes["REPBACK"] == "running"


@pytest.mark.parametrize(("state", "message"), [
    ("running", r"^replicat REPBACK is RUNNING: it must be stopped until GO LIVE"),
    ("abended", r"^replicat REPBACK is ABENDED$"),
])
def test_start_capture_refuses_a_reverse_replicat_not_stopped(fake_gg: FakeGoldenGate, state: str,
                                                              message: str) -> None:
    reverse = _reverse(fake_gg)
    fake_gg.scenario.processes["REPBACK"] = state
    with pytest.raises(ReplicationBroken, match=message):
        reverse.start_capture(poll_s=0.01)
    assert fake_gg.commands == []


def test_start_capture_names_a_missing_reverse_extract(fake_gg: FakeGoldenGate) -> None:
    reverse = _reverse(fake_gg)
    fake_gg.extracts = ("EXT2",)
    with pytest.raises(ReplicationBroken, match=r"^extract EXTBACK does not exist in the GoldenGate deployment$"):
        reverse.start_capture(poll_s=0.01)
