"""build_runbook: with the lab plan, every registry entry becomes its task, with its trigger rule and upstreams."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.sdk import DAG

from bascule.operators.drain import DrainSensor, FreezeAndDrainOperator
from bascule.operators.gates import GO, NO_GO, GateOperator
from bascule.operators.runbook import build_runbook
from bascule.operators.steps import RunbookStepOperator
from bascule.replication.factory import drain_config
from bascule.runbook.actions import CUTOVER
from bascule.runbook.context import STEP_XCOM_KEY
from bascule.runbook.fallback import FALLBACK
from bascule.runbook.registry import EntryKind

pytestmark = pytest.mark.unit

KIND_CLASS = {EntryKind.STEP: RunbookStepOperator, EntryKind.GATE: GateOperator, EntryKind.DRAIN: DrainSensor}


def _built(runbook, plan):
    with DAG(runbook.dag_id, schedule=None) as dag:
        tasks = build_runbook(runbook, plan)
    return dag, tasks


@pytest.mark.parametrize("runbook", [CUTOVER, FALLBACK], ids=lambda r: r.dag_id)
def test_every_entry_becomes_a_task_of_its_kind_with_its_rule_and_upstreams(lab_plan, runbook):
    dag, tasks = _built(runbook, lab_plan)

    assert set(tasks) == {e.task_id for e in runbook.entries} == set(dag.task_ids)
    upstreams = {e.task_id: set() for e in runbook.entries}
    for up, down in runbook.edges():
        upstreams[down].add(up)
    for entry in runbook.entries:
        task = tasks[entry.task_id]
        kind = FreezeAndDrainOperator if entry.drains is not None else KIND_CLASS[entry.kind]
        assert type(task) is kind, entry.task_id
        assert task.trigger_rule == entry.trigger_rule.value, entry.task_id
        assert task.upstream_task_ids == upstreams[entry.task_id], entry.task_id
        if entry.retries is not None:
            assert task.retries == entry.retries and task.retry_delay == timedelta(seconds=1)


@pytest.mark.parametrize("runbook", [CUTOVER, FALLBACK], ids=lambda r: r.dag_id)
def test_a_retry_in_the_downtime_window_waits_one_second(lab_plan, runbook):
    _, tasks = _built(runbook, lab_plan)
    in_window = [e for e in runbook.entries if e.guarded or e.ends_downtime is not None]
    assert in_window
    for entry in in_window:
        assert tasks[entry.task_id].retry_delay == timedelta(seconds=1), entry.task_id


def test_steps_run_their_action_in_their_runbook(lab_plan):
    _, tasks = _built(CUTOVER, lab_plan)
    for entry in CUTOVER.entries:
        if entry.kind is EntryKind.STEP:
            task = tasks[entry.task_id]
            assert task.action is entry.action and task.runbook is CUTOVER
            assert task.step == entry.step and task.critical_path == entry.critical_path


def test_the_rollback_on_failure_waits_for_every_guarded_task_and_runs_when_all_are_done(lab_plan):
    from bascule.runbook import actions

    _, tasks = _built(CUTOVER, lab_plan)
    guard = tasks[actions.ROLLBACK_ON_FAILURE]
    assert guard.trigger_rule == "all_done"
    assert guard.upstream_task_ids == {e.task_id for e in CUTOVER.entries if e.guarded}
    assert tasks[actions.REPORT].trigger_rule == "all_done" and tasks[actions.REPORT].critical_path is False
    # After GO LIVE there is no automatic way back.
    assert actions.OPEN_WRITES not in guard.upstream_task_ids


def test_gates_branch_to_their_answers_with_the_plans_people(lab_plan):
    from bascule.runbook import actions

    _, tasks = _built(CUTOVER, lab_plan)
    freeze_gate, live_gate = tasks[actions.GATE_FREEZE], tasks[actions.GATE_LIVE]
    assert freeze_gate.options_mapping == {GO: actions.RESTORE_POINT, NO_GO: actions.ABORT}
    assert live_gate.options_mapping == {GO: actions.OPEN_WRITES, NO_GO: actions.ROLLBACK}
    assert {actions.RESTORE_POINT, actions.ABORT} <= freeze_gate.downstream_task_ids
    assert [u["id"] for u in live_gate.assigned_users] == list(lab_plan.gate("go_live").assigned_users)
    # The freeze gate shows what T-minus pushed; GO LIVE gathers its own evidence as it opens.
    assert f"task_ids='{actions.TMINUS}'" in freeze_gate.body and freeze_gate.body_from is None
    assert live_gate.body is None and live_gate.body_from is CUTOVER.entry(actions.GATE_LIVE).body_from


def test_the_nights_freeze_drains_in_its_own_task_to_the_position_it_froze(lab_plan):
    from bascule.runbook import actions

    _, tasks = _built(CUTOVER, lab_plan)
    freeze = tasks[actions.FREEZE]
    assert isinstance(freeze, FreezeAndDrainOperator) and freeze.direction == "forward"
    drain = freeze._drain_sensor("0/3A5F1C8")  # built in the task, from the position the freeze returned
    assert not drain.has_dag() and drain.task_id == actions.FREEZE and drain.position == "0/3A5F1C8"
    assert drain.replication_config == drain_config(lab_plan, "forward")
    assert drain.poll_interval == lab_plan.replication.poll_interval_s
    assert drain.timeout == lab_plan.budget_seconds == drain.inline_wait_s
    assert drain.step == "drain" and drain.runbook is CUTOVER
    # Nothing waits for a drain task: the checks start when the freeze's task (freeze and drain) ends.
    assert all(tasks[t].upstream_task_ids == {actions.FREEZE}
               for t in (actions.STOP, actions.FINAL_VALIDATION, actions.TARGET_SUITES, actions.FIXUPS))


@pytest.mark.parametrize(("runbook", "direction"), [(FALLBACK, "reverse")], ids=["fallback"])
def test_the_drain_waits_for_the_freezes_position_on_its_direction(lab_plan, ctx_factory, runbook, direction):
    _, tasks = _built(runbook, lab_plan)
    (entry,) = [e for e in runbook.entries if e.kind is EntryKind.DRAIN]
    drain = tasks[entry.task_id]
    assert drain.replication_config == drain_config(lab_plan, direction)
    assert drain.replication_config["direction"] == direction
    assert drain.poll_interval == lab_plan.replication.poll_interval_s
    assert drain.timeout == lab_plan.budget_seconds == drain.inline_wait_s
    assert drain.step == entry.step and drain.runbook is runbook
    # Its position is the frozen one, read from the freeze's step record when the drain runs.
    context = ctx_factory(entry.task_id, xcoms={(entry.position_from, STEP_XCOM_KEY): {
        "result": {"position": "0/3A5F1C8", "frozen_at": "2026-05-01T22:20:00+00:00"}}})
    drain.render_template_fields(context)
    assert drain.position == "0/3A5F1C8"
