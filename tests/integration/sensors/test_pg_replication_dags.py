"""replication_setup (with its deferrable lag sensor) and replication_monitor, run with dag.test() on the lab."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration


def test_setup_then_monitor(fresh_lab: Any, airflow_env: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    from bascule_lab.demo_run import run_dag

    logs = Path(tempfile.mkdtemp())
    run, result = run_dag("replication_setup", logs / "setup.log")
    states = {task: state for task, state, _ in result["tasks"]}
    assert str(run.state).endswith("success"), states
    assert states["wait_for_lag"].endswith("success"), "the deferrable sensor ran its trigger and succeeded"
    waited = result["values"]["wait_for_lag"]
    assert waited["status"] == "success" and waited["reading"]["state"] == "streaming"
    assert waited["stable_s"] >= 10, "lag stayed under the threshold for the plan's stable window"
    findings = result["values"]["check_prerequisites"]
    assert findings and all(f["ok"] or f["severity"] != "error" for f in findings)

    with fresh_lab.connect("legacy", "clinic") as src, fresh_lab.connect("new", "clinic") as dst:
        for table in ("patients", "encounters", "audit_log"):
            sql = f"SELECT count(*) FROM clinic.{table}"
            assert dst.execute(sql).fetchone() == src.execute(sql).fetchone()

    run, result = run_dag("replication_monitor", logs / "monitor.log")
    assert str(run.state).endswith("success")
    recorded = result["values"]["record_lag"]
    assert recorded["reading"]["state"] == "streaming" and recorded["alert"] is None
    assert recorded["samples"] == 3
    with fresh_lab.connect("new", "clinic") as dst:
        rows = dst.execute("SELECT state, lag_seconds, dag_run_id FROM bascule_meta.replication_history").fetchall()
    assert rows == [("streaming", recorded["reading"]["lag_seconds"], run.run_id)]

    everything = "".join(p.read_text() for p in logs.glob("*.log")) + json.dumps(result["values"], default=str) \
        + "".join(capfd.readouterr())
    assert not [c for c in CANARY_STRINGS if c in everything]


def test_monitor_alerts_when_replication_is_broken(fresh_lab: Any, airflow_env: dict[str, str],
                                                   slack_capture: Any) -> None:
    from bascule_lab.demo_run import run_dag

    # No subscription at all: the monitor records BROKEN, alerts, and still succeeds.
    logs = Path(tempfile.mkdtemp())
    before = len(slack_capture.records)
    run, result = run_dag("replication_monitor", logs / "monitor.log")
    assert str(run.state).endswith("success")
    recorded = result["values"]["record_lag"]
    assert recorded["alert"] == "broken"
    assert recorded["alert_delivered"] is True
    posted = [r for r in slack_capture.records[before:] if r["api_method"] == "chat.postMessage"]
    assert any("replication_broken" in json.dumps(r["body"]) or "broken" in json.dumps(r["body"]).lower()
               for r in posted), "the alert reached the (local) Slack"
    assert "subscription bascule_sub does not exist" in recorded["reading"]["cause"]
    assert "replication BROKEN" in (logs / "monitor.log").read_text()
