"""The runbook registry: every task of a night declared once, with what it needs and what it tells.

A :class:`Runbook` is an ordered tuple of :class:`Entry`. Each entry holds its task
id, what it runs, what it waits for, whether it is on the critical path, whether
the runbook's rollback-on-failure must wait for it, and what it contributes to the
report (the freeze that starts the downtime, the step whose result ends it, a
failure that must make the run read as failed). The DAG files build their tasks and
edges from it (``bascule.operators.runbook``); the one report builder
(``bascule.runbook.report.run_report``) reads it for the night and for the fallback.

Adding a step is one entry plus its action:

    step("record_checkpoint", record_checkpoint, after=(FIXUPS,), before=(SWITCH,), guarded=True)

``after`` and ``before`` add edges only: a step placed between two others leaves
their own edge in place (redundant, harmless), so no other entry changes.

Entries are checked when a runbook is built: unknown task ids, edges that make a
cycle, a runbook without exactly one freeze, or a rollback that nothing guards fail
at import, naming the entry, long before a night.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bascule.notifications.events import CutoverOutcome
from bascule.runbook.context import DONE, GO, NO_GO, Action, StepContext
from bascule.runbook.decisions import Requirement

__all__ = ["Entry", "EntryKind", "Runbook", "RunbookError", "TriggerRule", "drain", "gate", "report", "step"]


class RunbookError(ValueError):
    """A runbook that cannot be built; the message names the entry."""


class EntryKind(enum.StrEnum):
    STEP = "step"  # a RunbookStepOperator running ``action``
    GATE = "gate"  # a GateOperator: GO / NO-GO by the plan's assigned users
    DRAIN = "drain"  # a DrainSensor: the other side has applied everything up to the frozen position


class TriggerRule(enum.StrEnum):
    """The Airflow trigger rules a runbook uses (their values are Airflow's)."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"


@dataclass(frozen=True)
class Entry:
    task_id: str
    kind: EntryKind
    action: Action | None = None
    # The step's name in the report and in Slack; the task id unless said otherwise.
    step_name: str | None = None
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    critical_path: bool = True
    # The runbook's rollback-on-failure waits for this entry to be done, and rolls back if it failed.
    guarded: bool = False
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    # Gates: the plan's gate, the entry each answer leads to, and where the body comes from. A checkpoint
    # (a gate the plan places, or a manual step) has no branches: its ``options`` are GO / NO-GO, or DONE,
    # and NO-GO fails it.
    gate_id: str | None = None
    go: str | None = None
    no_go: str | None = None
    options: tuple[str, ...] = ()
    manual: bool = False
    evidence_from: str | None = None
    body_from: Callable[[StepContext], str] | None = None
    # Drains: which direction of replication, and the freeze whose result holds the position.
    direction: str | None = None
    position_from: str | None = None
    # A freeze step whose own task then waits for the drain in this direction (ADR 0071): one task boundary
    # less inside the downtime window. The drain keeps its own record and step name (``drain_step``) in the
    # report, under DRAIN_TIMING_XCOM_KEY of the freeze's task.
    drains: str | None = None
    drain_step: str = "drain"
    # The report: this step's result starts the downtime (the freeze) ...
    starts_downtime: bool = False
    # ... or its ``downtime_end`` ends it, with this outcome (first such entry in the runbook that ran wins).
    ends_downtime: CutoverOutcome | None = None
    # A run that reaches this entry without a failure has finished as it should.
    is_ending: bool = False
    # A run where this entry ran must read as failed: the report task fails with this text.
    fails_run: str | None = None
    # The runbook's report itself: not timed in it.
    is_report: bool = False
    retries: int | None = None
    # The Airflow Assets this entry reads (its inlets), from the plan (ADR 0048).
    inlets_from: Callable[[Any], Sequence[Any]] | None = None
    # ... and those it may emit events on (its outlets), from the plan (ADR 0057).
    outlets_from: Callable[[Any], Sequence[Any]] | None = None

    @property
    def step(self) -> str:
        return self.step_name or self.task_id

    @property
    def checkpoint(self) -> bool:
        """A gate with no branches: the plan's own gates and the manual steps."""
        return self.kind is EntryKind.GATE and self.go is None and self.no_go is None


def step(task_id: str, action: Action, **kwargs: Any) -> Entry:
    return Entry(task_id=task_id, kind=EntryKind.STEP, action=action, **kwargs)


def gate(task_id: str, *, gate_id: str, go: str, no_go: str, **kwargs: Any) -> Entry:
    return Entry(task_id=task_id, kind=EntryKind.GATE, gate_id=gate_id, go=go, no_go=no_go, **kwargs)


def drain(task_id: str, *, direction: str, position_from: str, **kwargs: Any) -> Entry:
    return Entry(task_id=task_id, kind=EntryKind.DRAIN, direction=direction, position_from=position_from, **kwargs)


@dataclass(frozen=True)
class Runbook:
    """The tasks of one DAG (the night, or the fallback), in the order they are declared."""

    dag_id: str
    noun: str  # "cutover", "fallback": how the report's messages name a run of it
    entries: tuple[Entry, ...]
    # The step that rolls back after a failure, downstream of every guarded entry.
    on_failure: str | None = None
    # The runbook's own report sections, from the results of its steps by task id.
    sections: Callable[[Mapping[str, Mapping[str, Any]]], Mapping[str, Any]] | None = None
    _by_id: dict[str, Entry] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Entry] = {}
        for e in self.entries:
            if e.task_id in by_id:
                raise RunbookError(f"runbook {self.dag_id}: task {e.task_id!r} is declared twice")
            by_id[e.task_id] = e
        object.__setattr__(self, "_by_id", by_id)
        self._check()

    def _check(self) -> None:
        def known(entry: Entry, what: str, ids: Iterable[str | None]) -> None:
            for task_id in ids:
                if task_id is not None and task_id not in self._by_id:
                    raise RunbookError(f"runbook {self.dag_id}: {entry.task_id}.{what} names no task ({task_id!r})")

        for e in self.entries:
            known(e, "after", e.after)
            known(e, "before", e.before)
            known(e, "go", [e.go])
            known(e, "no_go", [e.no_go])
            known(e, "evidence_from", [e.evidence_from])
            known(e, "position_from", [e.position_from])
            if e.kind is EntryKind.STEP and e.action is None:
                raise RunbookError(f"runbook {self.dag_id}: step {e.task_id} has no action")
            if e.drains is not None and not (e.kind is EntryKind.STEP and e.starts_downtime):
                # Only the freeze's result holds the position to drain to.
                raise RunbookError(f"runbook {self.dag_id}: {e.task_id}.drains: only the step that starts the "
                                   "downtime (the freeze) can drain in its own task")
            if e.kind is EntryKind.GATE and (e.gate_id is None or (e.evidence_from is None) == (e.body_from is None)):
                raise RunbookError(f"runbook {self.dag_id}: gate {e.task_id} needs a gate_id and exactly one of "
                                   "evidence_from and body_from")
            if e.kind is EntryKind.GATE and (e.go is None) != (e.no_go is None):
                raise RunbookError(f"runbook {self.dag_id}: gate {e.task_id} needs both go and no_go, or neither "
                                   "(a checkpoint)")
        freezes = [e.task_id for e in self.entries if e.starts_downtime]
        if len(freezes) != 1:
            raise RunbookError(f"runbook {self.dag_id}: exactly one entry starts the downtime (got {freezes})")
        if self.on_failure is not None:
            if self.on_failure not in self._by_id:
                raise RunbookError(f"runbook {self.dag_id}: on_failure names no task ({self.on_failure!r})")
            if not any(e.guarded for e in self.entries):
                raise RunbookError(f"runbook {self.dag_id}: {self.on_failure} guards nothing")
        self.order()  # raises on a cycle

    # ----------------------------------------------------------------- reading it

    def __iter__(self) -> Any:
        return iter(self.entries)

    def entry(self, task_id: str) -> Entry:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise KeyError(f"runbook {self.dag_id} has no task {task_id!r}") from None

    @property
    def freeze_task(self) -> str:
        return next(e.task_id for e in self.entries if e.starts_downtime)

    @property
    def gates(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind is EntryKind.GATE)

    def edges(self) -> list[tuple[str, str]]:
        """(upstream, downstream) pairs: each entry's after and before, gates' answers, the rollback's guards."""
        out: list[tuple[str, str]] = []
        for e in self.entries:
            out += [(up, e.task_id) for up in e.after]
            out += [(e.task_id, down) for down in e.before]
            out += [(e.task_id, answer) for answer in (e.go, e.no_go) if answer is not None]
        if self.on_failure is not None:
            out += [(e.task_id, self.on_failure) for e in self.entries if e.guarded]
        seen: set[tuple[str, str]] = set()
        return [x for x in out if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]

    def order(self) -> list[str]:
        """Task ids in an order that respects every edge (declaration order among equals)."""
        upstream: dict[str, set[str]] = {e.task_id: set() for e in self.entries}
        for up, down in self.edges():
            upstream[down].add(up)
        done: list[str] = []
        pending = [e.task_id for e in self.entries]
        while pending:
            ready = next((t for t in pending if upstream[t] <= set(done)), None)
            if ready is None:
                raise RunbookError(f"runbook {self.dag_id}: its edges make a cycle among {', '.join(pending)}")
            done.append(ready)
            pending.remove(ready)
        return done

    def downstream_of(self, task_id: str, *, guards: bool = True) -> set[str]:
        """Every task that runs after ``task_id`` along the runbook's edges (not ``task_id`` itself);
        ``guards=False`` leaves out the edges into the rollback-on-failure."""
        below: dict[str, set[str]] = {e.task_id: set() for e in self.entries}
        for up, down in self.edges():
            if guards or down != self.on_failure or up in self.entry(down).after:
                below[up].add(down)
        seen: set[str] = set()
        todo = list(below[task_id])
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(below[t])
        return seen

    def requirements(self, task_id: str) -> tuple[Requirement, ...]:
        """The answers ``task_id`` needs before it acts: for each gate, the option that (alone) leads to it.

        Followed along the runbook's own edges, not along the rollback-on-failure's guards: the rollback runs
        because something failed, whatever was answered, and its action checks what there is to undo.
        """
        if self.entry(task_id).is_report:
            # The report records whatever happened, a NO-GO at a checkpoint included (that NO-GO failed the
            # checkpoint and rolled the night back): it acts on nothing, so it waits for no answer.
            return ()
        out = []
        for g in self.gates:
            if g.checkpoint:
                if task_id in self.downstream_of(g.task_id, guards=False):
                    out.append(Requirement(g.task_id, str(g.gate_id), DONE if g.manual else GO))
                continue
            after_go = {g.go, *self.downstream_of(str(g.go), guards=False)}
            after_no_go = {g.no_go, *self.downstream_of(str(g.no_go), guards=False)}
            if task_id in after_go and task_id not in after_no_go:
                out.append(Requirement(g.task_id, str(g.gate_id), GO))
            elif task_id in after_no_go and task_id not in after_go:
                out.append(Requirement(g.task_id, str(g.gate_id), NO_GO))
        return tuple(out)

    def placed(self, plan: Any, *, body_from: Callable[[StepContext], str]) -> Runbook:
        """This runbook with the plan's own gates and manual steps at the places the plan gives them.

        A checkpoint placed after task X waits for X, and everything that waited for X waits for it too;
        inside the downtime window it is guarded like X, so a NO-GO there rolls the night back. Its body
        comes from ``body_from`` (``bascule.runbook.evidence.checkpoint_body``).
        """
        wanted = [(f"gate_{gid}", gid, g.title, g.after, False) for gid, g in plan.gates.items()
                  if g.after is not None and g.dag == self.dag_id]
        wanted += [(f"manual_{sid}", sid, m.title, m.after, True) for sid, m in plan.manual_steps.items()
                   if m.dag == self.dag_id]
        if not wanted:
            return self
        entries = list(self.entries)
        for task_id, gate_id, _title, after, manual in wanted:
            where = "manual_steps" if manual else "gates"
            anchor = next((e for e in entries if e.task_id == after), None)
            if anchor is None:
                raise RunbookError(f"{where}.{gate_id}.after: {self.dag_id} has no task {after!r} "
                                   f"(tasks: {', '.join(e.task_id for e in entries)})")
            if anchor.is_report:
                raise RunbookError(f"{where}.{gate_id}.after: nothing runs after {after!r}; place it earlier")
            if anchor.kind is EntryKind.GATE and not anchor.checkpoint:
                raise RunbookError(f"{where}.{gate_id}.after: {after!r} is a gate whose answers branch; place it "
                                   f"after the step its answer leads to ({anchor.go})")
            checkpoint = Entry(task_id=task_id, kind=EntryKind.GATE, gate_id=gate_id, after=(after,),
                               options=(DONE,) if manual else (GO, NO_GO), manual=manual,
                               body_from=body_from, guarded=anchor.guarded, retries=1)
            waited = {e.task_id for e in entries if after in e.after} | set(anchor.before)
            entries = [replace(e, after=(*e.after, task_id)) if e.task_id in waited else e for e in entries]
            entries.insert(entries.index(anchor) + 1, checkpoint)
        return replace(self, entries=tuple(entries))

    def report_entries(self) -> tuple[Entry, ...]:
        """Everything the report times, in declaration order: every step, gate and drain but the report."""
        return tuple(e for e in self.entries if not e.is_report)


def report(task_id: str, action: Action, *, after: tuple[str, ...],
           outlets_from: Callable[[Any], Sequence[Any]] | None = None) -> Entry:
    """The runbook's report: off the critical path, run whatever happened before it."""
    return Entry(task_id=task_id, kind=EntryKind.STEP, action=action, after=after, critical_path=False,
                 trigger_rule=TriggerRule.ALL_DONE, is_report=True, outlets_from=outlets_from)
