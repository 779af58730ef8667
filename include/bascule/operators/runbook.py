"""A runbook's tasks and edges, built from its registry (``bascule.runbook.registry``).

The DAG files call :func:`build_runbook` inside their ``@dag`` function: every step,
gate and drain of the runbook becomes its operator (a freeze that drains in its own
task, one operator for both: ADR 0071), every declared edge an edge,
and every guarded entry an upstream of the runbook's rollback-on-failure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.task.trigger_rule import TriggerRule

from bascule.operators.decisions import guard_for
from bascule.operators.drain import DrainSensor, FreezeAndDrainOperator
from bascule.operators.gates import CheckpointOperator, GateOperator
from bascule.operators.steps import RunbookStepOperator
from bascule.plan import Plan
from bascule.replication.factory import drain_config
from bascule.runbook.context import STEP_XCOM_KEY
from bascule.runbook.evidence import checkpoint_body
from bascule.runbook.registry import Entry, EntryKind, Runbook

# A retry inside the downtime window waits this long, not the DAGs' default 10 s: every second of it is
# downtime, and what a retry there recovers from (a killed task process, a restarted database or pooler)
# is over by then or fails the retry too (ADR 0039).
WINDOW_RETRY_DELAY = timedelta(seconds=1)


def _task(entry: Entry, runbook: Runbook, plan: Plan) -> Any:
    common: dict[str, Any] = {"task_id": entry.task_id, "trigger_rule": TriggerRule(entry.trigger_rule.value)}
    if entry.retries is not None:
        common.update(retries=entry.retries, retry_delay=WINDOW_RETRY_DELAY)
    elif entry.guarded or entry.ends_downtime is not None:
        common["retry_delay"] = WINDOW_RETRY_DELAY
    if entry.inlets_from is not None:
        common["inlets"] = list(entry.inlets_from(plan))
    if entry.outlets_from is not None:
        common["outlets"] = list(entry.outlets_from(plan))
    # Airflow runs pre_execute before execute (and before a deferred task resumes): the signed answers of
    # the gates before this task are checked before it can act, whatever state a person set by hand.
    guard = guard_for(runbook, entry.task_id, plan)
    if guard is not None:
        common["pre_execute"] = guard
    if entry.kind is EntryKind.STEP and entry.drains is not None:
        return FreezeAndDrainOperator(plan=plan, direction=entry.drains, drain_step=entry.drain_step,
                                      step=entry.step, action=entry.action, runbook=runbook,  # type: ignore[arg-type]
                                      critical_path=entry.critical_path, **common)
    if entry.kind is EntryKind.STEP:
        return RunbookStepOperator(step=entry.step, action=entry.action, runbook=runbook,  # type: ignore[arg-type]
                                   critical_path=entry.critical_path, **common)
    if entry.kind is EntryKind.GATE and entry.checkpoint:
        return CheckpointOperator(plan=plan, gate_id=str(entry.gate_id), manual=entry.manual, runbook=runbook,
                                  body_from=entry.body_from, **common)
    if entry.kind is EntryKind.GATE:
        return GateOperator(plan=plan, gate_id=entry.gate_id, go_task_id=entry.go, no_go_task_id=entry.no_go,  # type: ignore[arg-type]
                            evidence_task_id=entry.evidence_from, body_from=entry.body_from, runbook=runbook,
                            **common)
    return DrainSensor(
        plan=plan, step=entry.step, runbook=runbook, replication_config=drain_config(plan, str(entry.direction)),
        position="{{ ti.xcom_pull(task_ids='" + str(entry.position_from) + "', key='" + STEP_XCOM_KEY
                 + "')['result']['position'] }}",
        poll_interval=plan.replication.poll_interval_s, timeout=plan.budget_seconds, **common,
    )


def build_runbook(runbook: Runbook, plan: Plan) -> dict[str, Any]:
    """Every task of ``runbook``, with the plan's own gates and manual steps placed in it, and its edges,
    inside the current DAG; returned by task id."""
    runbook = runbook.placed(plan, body_from=checkpoint_body)
    tasks = {entry.task_id: _task(entry, runbook, plan) for entry in runbook.entries}
    for upstream, downstream in runbook.edges():
        tasks[upstream] >> tasks[downstream]
    return tasks
