"""The Oracle night in order, under ``dag.test()``: the cutover DAG built from the Oracle example plan, against a
recording double of both Oracle databases (bascule_lab.testing.oracle_double), the GoldenGate REST fake, and
the worked command endpoint with stand-ins for dig/nsupdate/sqlplus. The driver is the seam
(``oracledb.connect``): the provider's OracleHook and every bascule hook above it run unchanged. Gates are
answered through Airflow's HITL route handler as their assigned users; the preparation's milestones are
recorded as the signed Asset events its stages leave (ADR 0056). The driver (oracle_night_driver.py) is
the live night's too (test_oracle_night_live.py, ADR 0066): only what sits behind the connections differs.

Checks: every step ran, the statements came in the night's order, GoldenGate's commands (forward replicat
stopped, reverse pair started, ADR 0055), the endpoint moved; and a scripted failure (a difference found by
the window's comparison) ends in the rollback, whose statements give the source back.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from oracle_night_driver import night_environment, plan_copy, run_night  # type: ignore[import-not-found]

from bascule.paths import PLANS_DIR, REPO_ROOT

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
    """The example plan, as a copy whose endpoint is the worked script."""

    def edit(data: dict[str, Any]) -> None:
        # The groups and heartbeat path of Oracle's documented payloads, which the GoldenGate fake serves.
        data["replication"]["goldengate"].update(extract="EXT2", replicat="REP2",
                                                 heartbeat_connection="OracleGoldenGate.oggadmin")
        data["validation"]["suites"] = []  # GX reads Oracle through SQLAlchemy: not through the double
        data["release"]["column_mapping"] = {"HOSP.PATIENTS": data["release"]["column_mapping"]["HOSP.PATIENTS"]}

    return plan_copy(EXAMPLE, tmp_path / "oracle-night.yaml", endpoint_command=[str(SCRIPT)], edit=edit)


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


@pytest.fixture()
def oracle_night(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_env: dict[str, str]) -> Any:
    import oracledb

    from bascule_lab.testing.goldengate_fake import FakeGoldenGate
    from bascule_lab.testing.oracle_double import OracleNight, connection_json, driver_connect

    plan_path = _plan_file(tmp_path)
    with night_environment(monkeypatch, plan_path, tmp_path / "reports") as plan:
        gg = plan.replication.goldengate
        night = OracleNight(source_conn_ids=(plan.source.conn_id, plan.source.app_conn_id),
                            target_conn_ids=(plan.target.conn_id, plan.target.app_conn_id),
                            tables={"HOSP.PATIENTS": SOURCE_COLUMNS},
                            target_columns={"HOSP.PATIENTS": TARGET_COLUMNS})
        # The driver is the seam: the provider's OracleHook and every bascule hook above it run unchanged.
        monkeypatch.setattr(oracledb, "connect", driver_connect(night))
        for conn_id in (*night.source_conn_ids, *night.target_conn_ids):
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(conn_id))
        endpoint_state = _endpoint_env(tmp_path, monkeypatch)
        fake = FakeGoldenGate(extracts=(gg.extract, gg.reverse_extract),
                              replicats=(gg.replicat, gg.reverse_replicat), connections=(gg.heartbeat_connection,))
        fake.scenario.command_delay_reads = 0
        # The reverse pair, created stopped by the GoldenGate administrator during the preparation.
        fake.scenario.processes = {gg.reverse_extract: "stopped", gg.reverse_replicat: "stopped"}
        with fake:
            monkeypatch.setenv(f"AIRFLOW_CONN_{gg.conn_id.upper()}", fake.connection_json())
            yield night, fake, endpoint_state


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


def test_the_oracle_night_runs_every_step_in_order(oracle_night: Any) -> None:
    night, fake, endpoint_state = oracle_night
    run, states, answered = run_night()
    failed = {t: s for t, s in states.items() if s not in ("success", "skipped")}
    assert not failed, failed
    assert "?" not in night.labels(), [s.sql[:80] for s in night.sent if s.label == "?"]
    ran = {t for t, s in states.items() if s == "success"}
    assert {"announce_start", "calendar_checks", "tminus_checks", "restore_point", "freeze_source",
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
    run, states, answered = run_night()
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
    # The reverse replicat never started: nothing of the target's reached the source.
    assert ("start", "replicat", "REPBACK") not in _commands(fake) and fake.scenario.processes["REPBACK"] == "stopped"
    assert _went_live_events(run.run_id) == [], "a rolled-back night starts no rollback window's watch"
