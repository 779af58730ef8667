"""The guard that runs before every task after a gate: no signed answer, no action (ADR 0037).

``build_runbook`` gives each task ``pre_execute=DecisionGuard(...)`` (Airflow runs it before
``execute``, and again before a deferred task resumes) with the answers the runbook says the
task needs (``Runbook.requirements``). A missing, unsigned, altered, foreign or unassigned
decision fails the task, not retried, naming the gate and what was found; a valid answer
for the other option skips it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.runbook.context import DECISION_XCOM_KEY, SafeMessage
from bascule.runbook.decisions import DecisionForged, Requirement, assigned_people, check_answers


class DecisionRefused(AirflowFailException, SafeMessage):
    """A gate before this task was not answered as it must be; nothing was done. Not retried."""


class DecisionGuard:
    """A ``pre_execute`` callable: verify each required gate answer before the task acts."""

    def __init__(self, *, key_conn_id: str, requirements: Sequence[Requirement],
                 assigned: Mapping[str, Sequence[str]]) -> None:
        self.key_conn_id = key_conn_id
        self.requirements = tuple(requirements)
        self.assigned = {gate: tuple(users) for gate, users in assigned.items()}

    def __call__(self, context: Any) -> None:
        if not self.requirements:
            return
        from bascule.hooks.decision_key import DecisionKeyError, DecisionKeyHook

        ti = context["ti"]
        try:
            key = DecisionKeyHook(key_conn_id=self.key_conn_id).key()
            other = check_answers(key, lambda gate_task: ti.xcom_pull(task_ids=gate_task, key=DECISION_XCOM_KEY),
                                  dag_id=ti.dag_id, run_id=ti.run_id, requirements=self.requirements,
                                  assigned=self.assigned)
        except (DecisionKeyError, DecisionForged) as exc:
            raise DecisionRefused(f"{ti.task_id}: {exc}") from None
        if other:
            raise AirflowSkipException(f"{ti.task_id} is not on the branch chosen: {'; '.join(other)}")
        print(f"[decisions] {ti.task_id}: "
              + ", ".join(f"{r.gate_id}={r.option}" for r in self.requirements) + " answered and signed", flush=True)


def guard_for(runbook: Any, task_id: str, plan: Any) -> DecisionGuard | None:
    """The guard of ``task_id`` in ``runbook`` for ``plan``, or None if it follows no gate."""
    requirements = runbook.requirements(task_id)
    if not requirements:
        return None
    return DecisionGuard(key_conn_id=plan.decisions.key_conn_id, requirements=requirements,
                         assigned=assigned_people(plan))
