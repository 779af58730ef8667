"""Milestones reached: a signed event on the milestone's Asset, with the stage's figures (ADR 0048)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from bascule.hooks.decision_key import DecisionKeyHook
from bascule.plan import MilestoneId, Plan
from bascule.runbook.context import DECISION_XCOM_KEY, SafeMessage, plan_for_run
from bascule.runbook.decisions import signature
from bascule.runbook.milestones import evidence, milestone_asset

__all__ = ["MilestoneNotRecorded", "MilestoneOperator"]


class MilestoneNotRecorded(AirflowFailException, SafeMessage):
    """The stage's sign-off cannot be read or does not hold; nothing is recorded."""


def _figures(result: Any) -> dict[str, Any]:
    # Counts, timings and verdicts only: a stage's result is already value-free, and only its
    # scalar top-level figures travel with the milestone.
    if not isinstance(result, Mapping):
        return {}
    return {str(k): v for k, v in result.items() if isinstance(v, bool | int | float) or k in ("verdict", "ok")}


class MilestoneOperator(BaseOperator):
    """Emit the milestone's Asset event: who signed off (from the gate's signed decision), the stage's
    figures, this run, signed with the workers' key. Runs only on the GO branch of its gate."""

    template_fields: Sequence[str] = ("milestone",)
    ui_color = "#e0f0ff"

    def __init__(self, *, plan: Plan, milestone: MilestoneId | str, gate_task_id: str | None = None,
                 evidence_task_id: str | None = None, **kwargs: Any) -> None:
        self._plan = plan
        self.milestone = MilestoneId(milestone).value
        self.gate_task_id = gate_task_id
        self.evidence_task_id = evidence_task_id
        self.asset = milestone_asset(plan, self.milestone)
        super().__init__(outlets=[self.asset], **kwargs)

    @cached_property
    def key_hook(self) -> DecisionKeyHook:
        return DecisionKeyHook(key_conn_id=self._plan.decisions.key_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        plan = plan_for_run(self._plan, getattr(context.get("dag_run"), "conf", None))
        key = self.key_hook.key()
        signed_off_by = None
        if self.gate_task_id is not None:
            record = ti.xcom_pull(task_ids=self.gate_task_id, key=DECISION_XCOM_KEY)
            if not isinstance(record, Mapping) or not hmac.compare_digest(
                    str(record.get("signature", "")), signature(key, record)):
                raise MilestoneNotRecorded(f"milestone {self.milestone}: the decision of {self.gate_task_id} is "
                                           "missing or not signed by a worker; nothing recorded")
            signed_off_by = str(record["by"])
        figures = _figures(ti.xcom_pull(task_ids=self.evidence_task_id)) if self.evidence_task_id else {}
        extra = evidence(key, plan=plan, milestone=self.milestone, dag_id=ti.dag_id, run_id=ti.run_id,
                         signed_off_by=signed_off_by, figures=figures)
        context["outlet_events"][self.asset].extra = extra
        self.log.info("milestone %s recorded on asset %s (signed off by %s, %d figures)", self.milestone,
                      self.asset.name, signed_off_by or "the stage", len(figures))
        return {k: v for k, v in extra.items() if k != "signature"}
