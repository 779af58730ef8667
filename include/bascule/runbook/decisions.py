"""Gate decisions that cannot be forged: signed by the gate, verified by every step after it (ADR 0036).

Airflow checks a human-in-the-loop task's ``assigned_users`` only when someone
*answers* it. Anyone with edit rights on the DAG can instead mark the gate success,
clear it, set a later task's state, or write an XCom through the REST API. None of
those may stand in for the assigned person's answer.

So the gate, when its answer arrives (``GateOperator.execute_complete``), records
the decision signed with HMAC-SHA256 under a key that only the workers hold (an
Airflow connection, from the secrets backend; users never see it). Every step after
the gate verifies, before it acts:

- that a decision exists for this run and this gate (marking the gate success or
  clearing it leaves none);
- its signature (a decision written by hand through the API has none that holds);
- that it is for this DAG, run, gate task and gate (a decision copied from another
  run or gate does not match what was signed);
- the option that leads to this step (a GO-branch step never runs on a NO-GO, and
  the other way round);
- that the responder is one of the gate's assigned users in the plan.

A missing, unsigned, mismatched or foreign decision stops the step with a message
naming the gate and what was found. A valid decision for the other option skips
the step: that is the branch the person did not choose.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SIGNATURE_PREFIX = "hmac-sha256:"
# What the signature covers: everything that says who decided what, where and when.
SIGNED_FIELDS = ("dag_id", "run_id", "task_id", "gate", "decision", "by", "at")


class DecisionForged(Exception):
    """A step's gate decision is missing or does not hold; the message names the gate and what was found."""


class Verdict(enum.StrEnum):
    HOLDS = "holds"  # signed, for this run and gate, the option that leads here, by an assigned user
    OTHER_OPTION = "other_option"  # signed and valid, but the person chose the other branch


@dataclass(frozen=True)
class Requirement:
    """A step runs only if gate task ``gate_task`` (plan gate ``gate_id``) was answered ``option``."""

    gate_task: str
    gate_id: str
    option: str


def signature(key: bytes, record: Mapping[str, Any]) -> str:
    message = json.dumps({f: record.get(f) for f in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":"),
                         default=str)
    return SIGNATURE_PREFIX + hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with its signature; ``record`` must carry every field of :data:`SIGNED_FIELDS`."""
    missing = [f for f in SIGNED_FIELDS if record.get(f) in (None, "")]
    if missing:
        raise ValueError(f"a decision cannot be signed without {', '.join(missing)}")
    return {**record, "signature": signature(key, record)}


def verify(key: bytes, record: Mapping[str, Any] | None, *, dag_id: str, run_id: str, requirement: Requirement,
           assigned: Sequence[str]) -> Verdict:
    """Whether ``record`` lets a step that needs ``requirement`` run; raises :class:`DecisionForged` if it cannot."""
    gate = f"gate {requirement.gate_id!r} (task {requirement.gate_task})"
    if not record:
        raise DecisionForged(f"{gate} has no recorded decision in run {run_id}: it was not answered through its "
                             "Required Action (marked, cleared or skipped by hand?); this step does not run")
    if not isinstance(record, Mapping) or not str(record.get("signature", "")).startswith(SIGNATURE_PREFIX):
        raise DecisionForged(f"{gate}: the recorded decision is not signed by a worker; this step does not run")
    if not hmac.compare_digest(str(record["signature"]), signature(key, record)):
        raise DecisionForged(f"{gate}: the recorded decision's signature does not hold (written or altered by "
                             "hand?); this step does not run")
    expected = {"dag_id": dag_id, "run_id": run_id, "task_id": requirement.gate_task, "gate": requirement.gate_id}
    wrong = [f"{k}={record.get(k)!r}" for k, v in expected.items() if record.get(k) != v]
    if wrong:
        raise DecisionForged(f"{gate}: the recorded decision belongs elsewhere ({', '.join(wrong)}); "
                             "this step does not run")
    if record.get("by") not in set(assigned):
        raise DecisionForged(f"{gate}: answered by {record.get('by')!r}, who is not among its assigned users "
                             f"({', '.join(assigned)}); this step does not run")
    return Verdict.HOLDS if record.get("decision") == requirement.option else Verdict.OTHER_OPTION


def assigned_people(plan: Any) -> dict[str, tuple[str, ...]]:
    """Who may answer each gate and manual step of ``plan``, by id."""
    people = {gate_id: tuple(gate.assigned_users) for gate_id, gate in plan.gates.items()}
    people.update({step_id: tuple(step.owners) for step_id, step in plan.manual_steps.items()})
    return people


def check_answers(key: bytes, pull: Any, *, dag_id: str, run_id: str, requirements: Sequence[Requirement],
                  assigned: Mapping[str, Sequence[str]]) -> list[str]:
    """Verify each required answer (``pull(gate_task)`` gives its recorded decision).

    Raises :class:`DecisionForged` on the first that does not hold; returns the gates that were validly
    answered with the other option ("go_live was answered NO-GO"), empty when the step may run.
    """
    other = []
    for need in requirements:
        record = pull(need.gate_task)
        verdict = verify(key, record, dag_id=dag_id, run_id=run_id, requirement=need,
                         assigned=tuple(assigned.get(need.gate_id, ())))
        if verdict is Verdict.OTHER_OPTION:
            other.append(f"{need.gate_id} was answered {record.get('decision')}")
    return other
