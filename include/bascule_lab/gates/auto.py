"""Answering gates automatically: only for lab and demo plans, and said out loud.

A production plan's gates are answered by the people it assigns, in the Airflow
UI or through the REST API with their own credentials. Automation that answers
for them is refused with an error naming the plan's mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bascule_lab.gates.client import AirflowApiClient


class AutoAnswerRefused(PermissionError):
    pass


def ensure_auto_answer_allowed(plan: Any) -> None:
    if not plan.allows_auto_answer:
        where = plan.path or plan.name
        raise AutoAnswerRefused(
            f"{where}: mode: gates of a {plan.mode.value} plan must be answered by their assigned users "
            "(gates.<id>.assigned_users), in the Airflow UI or the REST API; automatic answers are only "
            "allowed for lab and demo plans"
        )


def answer_gates(
    plan: Any,
    *,
    client_for: Callable[[str], AirflowApiClient],
    dag_id: str,
    run_id: str,
    decisions: Mapping[str, str],
    echo: Callable[[str], None] = print,
    timeout: float = 900,
    parked: Callable[[Mapping[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Answer each gate (task ``gate_<id>``) in order, as its first assigned user; [AUTO] in every line.

    ``parked`` lets an answer follow the question as soon as Airflow can take it
    (see ``AirflowApiClient.wait_for_gate``).
    """
    ensure_auto_answer_allowed(plan)
    answered = []
    for gate_id, option in decisions.items():
        user = plan.gate(gate_id).assigned_users[0]
        client = client_for(user)
        task_id = f"gate_{gate_id}"
        for attempt in range(1, 4):
            client.wait_for_gate(dag_id, run_id, task_id, timeout=timeout, parked=parked)
            echo(f"[AUTO, {plan.mode.value} plan] gate {gate_id}: answering {option} as {user}")
            # A NO-GO needs its reason (the gate refuses one without): the lab says it is an automatic answer.
            params = {"reason": f"[AUTO] lab answer {option} as {user}"} if option == "NO-GO" else None
            answered.append(client.answer(dag_id, run_id, task_id, option=option, params=params))
            if client.wait_gate_settled(dag_id, run_id, task_id, timeout=timeout) != "asked_again":
                break
            echo(f"[AUTO, {plan.mode.value} plan] gate {gate_id} asked again (Airflow 3.3 answer/park race, "
                 f"try {attempt}): giving the same answer")
    return answered
