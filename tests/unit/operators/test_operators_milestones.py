"""MilestoneOperator: the milestone's signed Asset event, from a signed sign-off, with value-free figures."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bascule.operators.milestones import MilestoneNotRecorded, MilestoneOperator
from bascule.plan import load_plan
from bascule.runbook.context import DECISION_XCOM_KEY
from bascule.runbook.decisions import sign
from bascule.runbook.milestones import Seen, findings

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[3] / "include" / "plans" / "production-oracle.example.yaml"


def _decision(ti: Any, by: str = "dba.oncall") -> dict[str, Any]:
    return sign(b"unit-tests-decision-key-0123456789abcdef", {
        "dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": "gate_schema_signoff", "gate": "schema_signoff",
        "decision": "GO", "by": by, "asked_at": "2027-01-08T09:00:00+00:00", "at": "2027-01-08T10:00:00+00:00",
        "decision_s": 3600.0, "recorded_at": "2027-01-08T10:00:01+00:00"})


def test_the_milestone_is_recorded_signed_with_who_signed_off(ctx_factory: Any, decision_key: bytes) -> None:
    plan = load_plan(EXAMPLE)
    op = MilestoneOperator(task_id="milestone_schema_signed_off", plan=plan, milestone="schema_signed_off",
                           gate_task_id="gate_schema_signoff", evidence_task_id="schema_comparison")
    assert [a.name for a in op.outlets] == ["bascule.hospital-prod-oracle.schema_signed_off"]
    context = ctx_factory("milestone_schema_signed_off", dag_id="prepare")
    ti = context["ti"]
    ti.store[("gate_schema_signoff", DECISION_XCOM_KEY)] = _decision(ti)
    ti.store[("schema_comparison", "return_value")] = {"tables": 12, "differences": 0, "verdict": "ok",
                                                      "details": [{"table": "hosp.patients"}]}
    context["outlet_events"] = defaultdict(lambda: SimpleNamespace(extra=None))
    result = op.execute(context)
    extra = context["outlet_events"][op.asset].extra
    assert extra["signed_off_by"] == "dba.oncall" and extra["figures"] == {"tables": 12, "differences": 0,
                                                                          "verdict": "ok"}
    assert result["milestone"] == "schema_signed_off" and "signature" not in result
    seen = Seen(extra=extra, source_dag_id=ti.dag_id, source_run_id=ti.run_id)
    missing = findings(plan, {"schema_signed_off": [seen]}, key=decision_key)
    assert not any(f.startswith("milestone schema_signed_off") for f in missing)


def test_a_sign_off_not_signed_by_a_worker_records_nothing(ctx_factory: Any) -> None:
    plan = load_plan(EXAMPLE)
    op = MilestoneOperator(task_id="m", plan=plan, milestone="schema_signed_off", gate_task_id="gate_schema_signoff")
    context = ctx_factory("m", dag_id="prepare")
    forged = {**_decision(context["ti"]), "by": "someone.else"}
    context["ti"].store[("gate_schema_signoff", DECISION_XCOM_KEY)] = forged
    context["outlet_events"] = defaultdict(lambda: SimpleNamespace(extra=None))
    with pytest.raises(MilestoneNotRecorded, match="gate_schema_signoff is missing or not signed"):
        op.execute(context)
    assert context["outlet_events"][op.asset].extra is None
