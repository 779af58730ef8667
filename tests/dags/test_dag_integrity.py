"""Every DAG imports cleanly with every plan in include/plans/, follows the house rules, and does no I/O
at parse time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bascule.paths import DAGS_DIR, PLANS_DIR
from bascule.plan import PLAN_ENV_VAR, load_plan

pytestmark = pytest.mark.unit

DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
# Every plan shipped: a new user starts from one of them (issue 18: the Oracle example once broke prepare.py).
PLAN_FILES = sorted(PLANS_DIR.glob("*.yaml"))


class _NoIO(Exception):
    pass


@pytest.fixture(scope="module", params=PLAN_FILES, ids=lambda p: p.name)
def dagbag(request: pytest.FixtureRequest, airflow_env: dict[str, str]) -> Any:
    """Parse the DAGs, with each plan in turn, and every way out to a database, a connection or a Variable
    cut off."""
    import oracledb
    import psycopg
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseHook, Variable

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise _NoIO("I/O at DAG parse time")

    mp = pytest.MonkeyPatch()
    mp.setenv(PLAN_ENV_VAR, str(request.param))
    mp.setattr(psycopg, "connect", refuse)
    mp.setattr(oracledb, "connect", refuse)
    mp.setattr(BaseHook, "get_connection", classmethod(refuse))
    mp.setattr(Variable, "get", staticmethod(refuse))
    try:
        bag = DagBag(dag_folder=str(DAGS_DIR))
        bag.bascule_plan = request.param
        yield bag
    finally:
        mp.undo()


def test_dag_files_exist() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"
    assert {p.name for p in PLAN_FILES} >= {"lab.yaml", "production-oracle.example.yaml"}


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(DAG_FILES)
    # The plan the DAGs were built from is the one parametrised, not the lab's by default.
    plan_name = load_plan(dagbag.bascule_plan).name
    assert {f"plan:{plan_name}"} == {t for d in dagbag.dags.values() for t in d.tags if t.startswith("plan:")}


def test_each_file_defines_the_dag_named_after_its_function(dagbag: Any) -> None:
    for path in DAG_FILES:
        assert path.stem in dagbag.dag_ids, f"{path.name} should define a DAG named {path.stem!r}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_house_rules(dagbag: Any, path: Path) -> None:
    dag = dagbag.get_dag(path.stem)
    assert dag is not None
    assert "bascule" in dag.tags
    assert any(t.startswith("plan:") for t in dag.tags)
    assert dag.doc_md and dag.doc_md.strip().startswith("###"), "the module docstring is the DAG's doc_md"
    assert dag.catchup is False
    from bascule.notifications.slack import BasculeSlackNotifier

    for task in dag.tasks:
        assert task.owner == "bascule", f"{task.task_id}: owner"
        assert task.retries >= 1, f"{task.task_id}: retries"
        # A failure anywhere says so in Slack (the lab plan has a notifications section).
        callbacks = task.on_failure_callback or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert any(isinstance(c, BasculeSlackNotifier) for c in callbacks), f"{task.task_id}: failure notifier"
        if _is_sensor(task):
            assert task.timeout is not None, f"{task.task_id}: sensor timeout"
            # Airflow 3 keeps a sensor's timeout as float seconds; older code passed timedeltas.
            seconds = task.timeout.total_seconds() if hasattr(task.timeout, "total_seconds") else float(task.timeout)
            # A day at most; the rollback window's watch runs for the plan's window (days) in reschedule mode,
            # holding no worker slot between readings, and ends a day after it at most (ADR 0057).
            limit = 24 * 3600.0
            if task.mode == "reschedule" and path.stem == "post_go_live":
                limit += load_plan(dagbag.bascule_plan).cutover.rollback_window
            assert 0 < seconds <= limit, f"{task.task_id}: sensor timeout {seconds} s"


def _is_sensor(task: Any) -> bool:
    from airflow.sdk.bases.sensor import BaseSensorOperator

    return isinstance(task, BaseSensorOperator)


def test_a_bad_plan_is_an_import_error_naming_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        airflow_env: dict[str, str]) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: Bad Name\n")
    monkeypatch.setenv("BASCULE_PLAN", str(bad))
    bag = DagBag(dag_folder=str(DAGS_DIR / "inventory.py"))
    (message,) = bag.import_errors.values()
    assert f"{bad}: name:" in message


def test_the_rollback_window_s_watch_is_scheduled_on_the_night_s_went_live_event(dagbag: Any) -> None:
    """ADR 0057: post_go_live starts by itself on the Asset the cutover's report adds to its alias only for a real
    night that went live; no cutover task has the Asset itself as an outlet (it would get an event on every
    success, a rehearsal's or an aborted night's too)."""
    from airflow.sdk import Asset

    from bascule.runbook.milestones import went_live_alias, went_live_asset

    plan = load_plan(dagbag.bascule_plan)
    watch = dagbag.get_dag("post_go_live")
    assert list(watch.timetable.asset_condition.objects) == [went_live_asset(plan)]
    assert watch.max_active_runs == 1
    outlets = {t.task_id: t.outlets for t in dagbag.get_dag("cutover").tasks if t.outlets}
    assert outlets == {"report": [went_live_alias(plan)]}
    assert not any(isinstance(o, Asset) and o.name == went_live_asset(plan).name
                   for d in dagbag.dags.values() for t in d.tasks for o in t.outlets)
