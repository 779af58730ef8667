"""Break glass: finish the night, or roll it back, by hand when Airflow itself is down.

``bascule runbook PLAN [--run RUN_ID]`` prints, from the runbook registry (with the plan's own
gates and manual steps placed), every task of the night and of the fallback in order: what it
needs (the gate answers before it), what it does, and the exact command that does it by hand.
With ``--run``, each task also shows where it stands: from the metadata database when it can be
reached (task states and results), and from the break-glass state file of runs finished by hand.

``bascule runbook PLAN --run RUN_ID step TASK`` runs one task's action outside Airflow, with
the same code the night runs (the action, the decision guard), results kept in the run's
break-glass state file (seeded from the metadata database when it can be read).
``... answer GATE OPTION --by USER`` records a gate's answer, checked against the plan's
assigned users and signed with the workers' key, marked ``break_glass``: only someone who
can read that key (a worker host) can do it, and the report says it was done so.

Because the printout is built from the same registry the DAGs are built from, it cannot drift
from the night: a test compares the two.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bascule.paths import reports_dir
from bascule.privacy.sanitize import sanitize_error_text
from bascule.runbook.context import DECISION_XCOM_KEY, DRAIN_TIMING_XCOM_KEY, STEP_XCOM_KEY, StepContext
from bascule.runbook.registry import Entry, EntryKind, Runbook
from bascule.today import utc_now

STATE_FILE = "break_glass.json"


class BreakGlassError(RuntimeError):
    """A break-glass command that cannot be done as asked; the message says why and what to do."""


# --------------------------------------------------------------------------- where the run stands


@dataclass
class RunRecord:
    """What is known of one run: each task's state and XCom values (from Airflow, and from the state file)."""

    run_id: str
    states: dict[str, str] = field(default_factory=dict)
    xcoms: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "none"  # "metadata database", "break-glass file", both, or "none"

    def result(self, task_id: str) -> dict[str, Any] | None:
        record = self.xcoms.get(task_id, {}).get(STEP_XCOM_KEY) or self.xcoms.get(task_id, {}).get(
            DRAIN_TIMING_XCOM_KEY)
        return None if record is None else (record.get("result") or {})


def state_path(plan_name: str, dag_id: str, run_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return reports_dir() / plan_name / dag_id / safe / STATE_FILE


def read_metadata(dag_id: str, run_id: str) -> RunRecord | None:
    """The run's task states and XComs from Airflow's metadata database, or None if it cannot be read."""
    try:
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            tis = session.query(TaskInstance.task_id, TaskInstance.state).filter(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id).all()
            rows = session.query(XComModel.task_id, XComModel.key, XComModel.value).filter(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id).all()
    except Exception:  # the metadata database is down, or this host is not configured for it
        return None
    if not tis:
        return None
    record = RunRecord(run_id=run_id, source="metadata database")
    record.states = {t: str(getattr(s, "value", s)) for t, s in tis if s is not None}
    for task_id, key, value in rows:
        record.xcoms.setdefault(task_id, {})[key] = XComModel.deserialize_value(_Row(value))
    return record


@dataclass
class _Row:
    value: Any


def read_state(plan_name: str, dag_id: str, run_id: str) -> RunRecord:
    """What Airflow recorded (if it can be read), overlaid with what was done by hand since."""
    record = read_metadata(dag_id, run_id) or RunRecord(run_id=run_id)
    path = state_path(plan_name, dag_id, run_id)
    if path.exists():
        data = json.loads(path.read_text())
        for task_id, state in data.get("states", {}).items():
            record.states[task_id] = state
        for task_id, values in data.get("xcoms", {}).items():
            record.xcoms.setdefault(task_id, {}).update(values)
        record.source = "break-glass file" if record.source == "none" else record.source + " + break-glass file"
    return record


def _write_state(plan_name: str, dag_id: str, record: RunRecord, task_id: str, state: str,
                 pushed: Mapping[str, Any]) -> Path:
    path = state_path(plan_name, dag_id, record.run_id)
    data = json.loads(path.read_text()) if path.exists() else {"states": {}, "xcoms": {}}
    data["states"][task_id] = state
    data["xcoms"].setdefault(task_id, {}).update(pushed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- the printout


def command_for(plan_path: str, entry: Entry, run_id: str | None) -> str:
    run = run_id or "RUN_ID"
    base = f"bascule runbook {plan_path} --run {run}"
    if entry.kind is EntryKind.GATE:
        options = "|".join(entry.options or ("GO", "NO-GO"))
        return f"{base} answer {entry.task_id} {options} --by <assigned user>"
    return f"{base} step {entry.task_id}"


def _what(entry: Entry) -> str:
    if entry.kind is EntryKind.GATE:
        if entry.checkpoint:
            return "manual step: confirm DONE" if entry.manual else "gate: GO goes on, NO-GO stops here"
        return f"gate: GO -> {entry.go}, NO-GO -> {entry.no_go}"
    if entry.kind is EntryKind.DRAIN:
        return f"wait until the {entry.direction} replication has applied the frozen position"
    doc = (entry.action.__doc__ or "").strip().splitlines() if entry.action else []
    what = doc[0].rstrip(".") if doc else entry.task_id.replace("_", " ")
    if entry.drains is not None:
        what += f"; then ({entry.drain_step}) wait until the {entry.drains} replication has applied the frozen position"
    return what


def render(plan: Any, runbook: Runbook, *, plan_path: str, record: RunRecord | None = None) -> list[str]:
    """The runbook as lines: every task in order, its needs, what it does, its command, where it stands."""
    lines = [f"runbook {runbook.dag_id} of plan {plan.name} ({plan.mode.value})"
             + (f", run {record.run_id} (state from: {record.source})" if record else "")]
    for n, task_id in enumerate(runbook.order(), start=1):
        entry = runbook.entry(task_id)
        state = (record.states.get(task_id, "not started") if record else None)
        needs = ", ".join(f"{r.gate_id}={r.option}" for r in runbook.requirements(task_id))
        flags = [f for f, on in (("critical path", entry.critical_path and entry.kind is not EntryKind.GATE),
                                 ("starts the downtime", entry.starts_downtime),
                                 (f"ends the downtime ({entry.ends_downtime})", entry.ends_downtime is not None),
                                 (f"{runbook.on_failure} waits for it", entry.guarded)) if on]
        lines.append(f"{n:>2}. {task_id}" + (f"  [{state}]" if state else "") + (f"  ({'; '.join(flags)})"
                                                                              if flags else ""))
        lines.append(f"    what: {_what(entry)}")
        if entry.after:
            lines.append(f"    after: {', '.join(entry.after)}")
        if needs:
            lines.append(f"    needs: {needs}")
        if entry.is_report:
            lines.append(f"    by hand: {command_for(plan_path, entry, record.run_id if record else None)}"
                         " (once every other task is done or abandoned)")
        else:
            lines.append(f"    by hand: {command_for(plan_path, entry, record.run_id if record else None)}")
    if runbook.on_failure:
        lines.append(f"If a step fails after the freeze: {command_for(plan_path, runbook.entry(runbook.on_failure), None if record is None else record.run_id)}")
    return lines


# --------------------------------------------------------------------------- doing a step by hand


class BreakGlassTI:
    """A task instance for a step run by hand: XCom from the run's record, pushes kept in the state file."""

    def __init__(self, *, dag_id: str, run_id: str, task_id: str, record: RunRecord) -> None:
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self.map_index, self.try_number = -1, 1
        self.record = record
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, *, task_ids: str | Iterable[str], key: str = "return_value", **_: Any) -> Any:
        if isinstance(task_ids, str):
            return self.record.xcoms.get(task_ids, {}).get(key)
        return [self.record.xcoms.get(t, {}).get(key) for t in task_ids]

    def xcom_push(self, key: str, value: Any, **_: Any) -> None:
        self.pushed[key] = value

    def get_task_states(self, **_: Any) -> dict[str, Any]:
        return {self.run_id: dict(self.record.states)}


def _key(plan: Any) -> bytes:
    from bascule.hooks.decision_key import DecisionKeyError, DecisionKeyHook

    try:
        return DecisionKeyHook(key_conn_id=plan.decisions.key_conn_id).key()
    except DecisionKeyError as exc:
        raise BreakGlassError(f"{exc}: break glass on a host that can read it (a worker)") from None


def run_step(plan: Any, runbook: Runbook, *, plan_name: str, run_id: str, task_id: str,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``task_id``'s action by hand: the gate answers it needs are verified first, as on the night."""
    from bascule.notifications.slack import MemoryThreadStore, SlackNotifications
    from bascule.runbook.decisions import DecisionForged, assigned_people, check_answers

    entry = runbook.entry(task_id)
    if entry.kind is EntryKind.GATE:
        raise BreakGlassError(f"{task_id} is a gate, not a step: record its answer with `answer`")
    record = read_state(plan_name, runbook.dag_id, run_id)
    requirements = runbook.requirements(task_id)
    if requirements:
        try:
            other = check_answers(_key(plan), lambda gate: record.xcoms.get(gate, {}).get(DECISION_XCOM_KEY),
                                  dag_id=runbook.dag_id, run_id=run_id, requirements=requirements,
                                  assigned=assigned_people(plan))
        except DecisionForged as exc:
            raise BreakGlassError(f"{task_id}: {exc}") from None
        if other:
            raise BreakGlassError(f"{task_id} is not on the branch chosen: {'; '.join(other)}")
    ti = BreakGlassTI(dag_id=runbook.dag_id, run_id=run_id, task_id=task_id, record=record)
    ctx = StepContext(plan=plan, airflow={"ti": ti, "dag_run": None}, step=entry.step, runbook=runbook)
    # Slack still hears about it, in a thread of its own (Airflow's Variables may be out of reach).
    ctx.slack = SlackNotifications.for_plan(plan.notifications, ti=ti, thread_store=MemoryThreadStore())
    started = utc_now()
    log(f"break glass: {task_id} of run {run_id} by {getpass.getuser()}, by hand, outside Airflow")

    def recorded(part: Callable[[StepContext], dict[str, Any] | None], *, step: str, key: str,
                 critical_path: bool) -> dict[str, Any]:
        """Run ``part`` and keep its record under ``key``, as the night's task would; a failure is kept too."""
        begun = utc_now()
        try:
            out = part(ctx) or {}
        except BaseException:
            _write_state(plan_name, runbook.dag_id, record, task_id, "failed", ti.pushed)
            raise
        finally:
            if ctx.slack is not None:
                ctx.slack.wait_posted()
        done = utc_now()
        ti.pushed[key] = {"step": step, "task_id": task_id, "started_at": begun.isoformat(),
                          "ended_at": done.isoformat(), "seconds": round((done - begun).total_seconds(), 4),
                          "critical_path": critical_path, "result": out, "break_glass": True,
                          "by": getpass.getuser()}
        return out

    action = entry.action if entry.kind is EntryKind.STEP else _drain_by_hand(entry)
    result = recorded(action, step=entry.step,  # type: ignore[arg-type]
                      key=STEP_XCOM_KEY if entry.kind is EntryKind.STEP else DRAIN_TIMING_XCOM_KEY,
                      critical_path=entry.critical_path)
    if entry.drains is not None:
        # The freeze drains in its own task on the night (ADR 0071): by hand too, recorded as its own step.
        ctx.step = entry.drain_step
        ctx._results[task_id] = result  # the frozen position, just recorded
        recorded(_drain_by_hand(Entry(task_id=task_id, kind=EntryKind.DRAIN, step_name=entry.drain_step,
                                      direction=entry.drains, position_from=task_id)),
                 step=entry.drain_step, key=DRAIN_TIMING_XCOM_KEY, critical_path=True)
    ended = utc_now()
    path = _write_state(plan_name, runbook.dag_id, record, task_id, "success", ti.pushed)
    log(f"break glass: {task_id} done in {(ended - started).total_seconds():.1f} s; recorded in {path}")
    return result


def _drain_by_hand(entry: Entry, *, poll_s: float = 1.0) -> Callable[[StepContext], dict[str, Any]]:
    """The drain as a step: wait until replication has applied the frozen position, within the budget."""

    def drain(ctx: StepContext) -> dict[str, Any]:
        import time

        from bascule.replication.factory import replication_from_plan

        position = (ctx.result_of(str(entry.position_from)) or {}).get("position")
        if not position:
            raise BreakGlassError(f"{entry.task_id}: {entry.position_from} has recorded no frozen position")
        repl = replication_from_plan(ctx.plan, str(entry.direction))
        started = time.monotonic()
        try:
            while not repl.applied_through(str(position)):
                if time.monotonic() - started > ctx.plan.budget_seconds:
                    raise BreakGlassError(f"{entry.task_id}: position {position} not applied after "
                                          f"{ctx.plan.budget_seconds:.0f} s: roll back")
                ctx.log(f"waiting for position {position}: {repl.reading().state.value}")
                time.sleep(poll_s)
        finally:
            repl.close()
        return {"position": position, "waited_s": round(time.monotonic() - started, 3)}

    return drain


def answer_gate(plan: Any, runbook: Runbook, *, plan_name: str, run_id: str, task_id: str, option: str,
                by: str, reason: str | None = None) -> dict[str, Any]:
    """Record a gate's answer by hand: checked against the plan, signed with the workers' key, marked break-glass."""
    from bascule.runbook.decisions import assigned_people, sign

    entry = runbook.entry(task_id)
    if entry.kind is not EntryKind.GATE or entry.gate_id is None:
        raise BreakGlassError(f"{task_id} is not a gate of {runbook.dag_id}")
    options = entry.options or ("GO", "NO-GO")
    if option not in options:
        raise BreakGlassError(f"{task_id}: {option!r} is not one of {', '.join(options)}")
    if option == "NO-GO" and not (reason or "").strip():
        raise BreakGlassError(f"{task_id}: a NO-GO needs a reason (--reason)")
    people = assigned_people(plan).get(entry.gate_id, ())
    if by not in people:
        raise BreakGlassError(f"{task_id}: {by!r} is not among its assigned users ({', '.join(people)})")
    record = read_state(plan_name, runbook.dag_id, run_id)
    now = utc_now().isoformat()
    decision = sign(_key(plan), {"dag_id": runbook.dag_id, "run_id": run_id, "task_id": task_id,
                                 "gate": entry.gate_id, "decision": option, "by": by, "at": now,
                                 "asked_at": None, "decision_s": None, "recorded_at": now,
                                 "break_glass": {"os_user": getpass.getuser(), "host": os.uname().nodename},
                                 **({"reason": sanitize_error_text(reason.strip(), max_chars=300)}
                                    if reason and reason.strip() else {})})
    _write_state(plan_name, runbook.dag_id, record, task_id, "success", {DECISION_XCOM_KEY: decision})
    return decision
