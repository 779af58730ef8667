"""The inventory DAG, end to end with dag.test() on the real lab."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bascule.paths import DAGS_DIR
from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration


def test_inventory_runs_end_to_end(fresh_lab: Any, airflow_env: dict[str, str],
                                   capfd: pytest.CaptureFixture[str]) -> None:
    import tempfile
    from pathlib import Path

    from bascule_lab.demo_run import run_dag

    log_path = Path(tempfile.mkdtemp()) / "run.log"
    run, result = run_dag("inventory", log_path)
    assert str(run.state).endswith("success")
    report = result["values"]["report"]
    source = {t["name"]: t for t in report["source"]["tables"]}
    target = {t["name"]: t for t in report["target"]["tables"]}

    with fresh_lab.connect("legacy", "clinic") as conn:
        patients = conn.execute("SELECT count(*) FROM clinic.patients").fetchone()[0]
    assert source["patients"]["rows"] == patients > 0
    assert source["patients"]["primary_key"] == ["patient_id"]
    assert source["audit_log"]["partitioned"] and source["audit_log"]["partitions"] > 12
    assert set(source) == set(target)
    assert all(t["rows"] == 0 for t in target.values()), "the target holds the schema only"
    assert report["source"]["sequences"], "sequences are recorded"

    log_text = log_path.read_text()
    assert "source rows" in log_text and "clinic.patients" in log_text, "the readable table is in the task log"
    everything = log_text + json.dumps(result["values"]) + "".join(capfd.readouterr())
    leaked = [c for c in CANARY_STRINGS if c in everything]
    assert not leaked, f"canary values leaked: {leaked}"


def test_dag_file_reads_only_the_plan(monkeypatch: pytest.MonkeyPatch, airflow_env: dict[str, str]) -> None:
    import builtins
    import io

    from airflow.dag_processing.dagbag import DagBag

    opened: list[str] = []
    real_open = builtins.open

    def spying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spying_open)
    monkeypatch.setattr(io, "open", spying_open)
    bag = DagBag(dag_folder=str(DAGS_DIR / "inventory.py"))
    assert bag.import_errors == {}
    project_files = [f for f in opened if f.startswith(str(DAGS_DIR.parent)) and not f.endswith(".py")]
    assert project_files and all(f.endswith(".yaml") for f in project_files), project_files
