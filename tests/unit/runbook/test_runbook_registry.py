"""The runbook registry: one entry per task, checked when built; DAGs and the report read it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bascule.runbook import actions, fallback
from bascule.runbook.actions import CUTOVER
from bascule.runbook.fallback import FALLBACK
from bascule.runbook.registry import EntryKind, Runbook, RunbookError, step

pytestmark = pytest.mark.unit


def _noop(ctx):
    return {}


def test_the_night_and_the_fallback_declare_their_freeze_endings_and_guards():
    assert CUTOVER.freeze_task == actions.FREEZE and FALLBACK.freeze_task == fallback.FREEZE_TARGET
    assert [g.gate_id for g in CUTOVER.gates] == ["go_for_freeze", "go_live"]
    assert [g.gate_id for g in FALLBACK.gates] == ["fallback"]
    guarded = {up for up, down in CUTOVER.edges() if down == actions.ROLLBACK_ON_FAILURE}
    assert guarded == {actions.FREEZE, actions.STOP, actions.FINAL_VALIDATION, actions.TARGET_SUITES,
                       actions.FIXUPS, actions.SWITCH, actions.SMOKE, actions.PREPARE_REVERSE, actions.GATE_LIVE}
    # After GO LIVE there is no automatic way back.
    assert actions.OPEN_WRITES not in guarded and actions.START_REVERSE not in guarded
    order = CUTOVER.order()
    assert order.index(actions.FREEZE) < order.index(actions.FINAL_VALIDATION) < order.index(actions.GATE_LIVE) \
        < order.index(actions.OPEN_WRITES) < order.index(actions.REPORT)
    assert actions.REPORT not in {e.task_id for e in CUTOVER.report_entries()}
    # The night's freeze drains in its own task, the fallback's drain is a task of its own (ADR 0071).
    assert CUTOVER.entry(actions.FREEZE).drains == "forward" and CUTOVER.entry(actions.FREEZE).drain_step == "drain"
    assert not any(e.kind is EntryKind.DRAIN for e in CUTOVER.entries)
    assert {e.task_id for e in FALLBACK.entries if e.kind is EntryKind.DRAIN} == {fallback.DRAIN}
    assert all(actions.FREEZE in CUTOVER.entry(t).after
               for t in (actions.STOP, actions.FINAL_VALIDATION, actions.TARGET_SUITES, actions.FIXUPS))


def test_a_new_step_is_one_entry_placed_between_two_others():
    extra = step("record_checkpoint", _noop, after=(actions.FIXUPS,), before=(actions.SWITCH,), guarded=True)
    entries = list(CUTOVER.entries)
    entries.insert(entries.index(CUTOVER.entry(actions.SWITCH)), extra)
    night = replace(CUTOVER, entries=tuple(entries))
    edges = set(night.edges())
    assert {(actions.FIXUPS, "record_checkpoint"), ("record_checkpoint", actions.SWITCH),
            ("record_checkpoint", actions.ROLLBACK_ON_FAILURE)} <= edges
    order = night.order()
    assert order.index(actions.FIXUPS) < order.index("record_checkpoint") < order.index(actions.SWITCH)
    assert "record_checkpoint" in {e.task_id for e in night.report_entries()}


@pytest.mark.parametrize(("change", "message"), [
    (lambda es: es + [step("x", _noop, after=("nowhere",))], r"x\.after names no task \('nowhere'\)"),
    (lambda es: es + [step(actions.FIXUPS, _noop)], "declared twice"),
    (lambda es: es + [step("y", _noop, starts_downtime=True)], "exactly one entry starts the downtime"),
    (lambda es: es + [step("a", _noop, after=("b",)), step("b", _noop, after=("a",))], "cycle"),
    (lambda es: es + [step("z", _noop, drains="forward")], r"z\.drains: only the step that starts the downtime"),
])
def test_a_broken_runbook_fails_when_built_naming_the_entry(change, message):
    with pytest.raises(RunbookError, match=message):
        Runbook(dag_id="cutover", noun="cutover", entries=tuple(change(list(CUTOVER.entries))),
                on_failure=CUTOVER.on_failure, sections=CUTOVER.sections)


def test_every_entry_kind_is_built_by_the_dag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    from bascule.paths import DAGS_DIR

    bag = DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)
    for runbook in (CUTOVER, FALLBACK):
        dag = bag.get_dag(runbook.dag_id)
        assert {t.task_id for t in dag.tasks} == {e.task_id for e in runbook.entries}
        for up, down in runbook.edges():
            assert up in dag.get_task(down).upstream_task_ids, (up, down)
        kinds = {e.task_id: e.kind for e in runbook.entries}
        drains = {type(dag.get_task(t)).__name__ for t, k in kinds.items() if k is EntryKind.DRAIN}
        drains |= {type(dag.get_task(e.task_id)).__name__ for e in runbook.entries if e.drains is not None}
        assert drains == {"DrainSensor"} if runbook is FALLBACK else {"FreezeAndDrainOperator"}
        assert {type(dag.get_task(t)).__name__ for t, k in kinds.items() if k is EntryKind.GATE} == {"GateOperator"}
