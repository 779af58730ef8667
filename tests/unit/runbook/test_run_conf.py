"""dag_run.conf: a key the DAG does not declare in its params is refused, naming the key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk import DAG, Param
from airflow.sdk.exceptions import AirflowFailException

from bascule.runbook.context import run_conf

pytestmark = pytest.mark.unit


def _context(conf: dict) -> dict:
    dag = DAG("cutover", schedule=None, params={"rehearsal": Param(False, type="boolean"),
                                                "allow_findings": Param(False, type="boolean")})
    return {"dag": dag, "dag_run": SimpleNamespace(conf=conf)}


def test_declared_keys_pass() -> None:
    assert run_conf(_context({"rehearsal": True})) == {"rehearsal": True}
    assert run_conf(_context({})) == {}


@pytest.mark.parametrize("key", ["simulator_stats", "allow_finding"])
def test_an_unknown_key_is_refused_by_name(key: str) -> None:
    with pytest.raises(AirflowFailException, match=rf"dag_run.conf: unknown key '{key}'; this DAG takes only: "
                                                   r"allow_findings, rehearsal"):
        run_conf(_context({key: "/etc/passwd", "rehearsal": False}))


def test_the_refusal_never_echoes_a_value() -> None:
    with pytest.raises(AirflowFailException) as raised:
        run_conf(_context({"x": "Zqxcanaryfenwick"}))
    assert "Zqxcanaryfenwick" not in str(raised.value)


def test_the_cutover_dag_refuses_an_unknown_key_in_its_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule.operators.steps import RunbookStepOperator

    op = RunbookStepOperator(task_id="tminus_checks", step="tminus_checks", action=lambda ctx: {})
    with pytest.raises(AirflowFailException, match="unknown key 'simulator_stats'"):
        op.execute(_context({"simulator_stats": "/var/lib/anything"}))
