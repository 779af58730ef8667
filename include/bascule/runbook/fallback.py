"""Falling back after go-live: the ``rollback`` DAG's steps, one function each (ADR 0060).

After GO LIVE the application writes on the target and reverse replication
(target -> source) carries those writes back. A fallback is the cutover run
backwards with the sides swapped:

1. reverse replication must be streaming, or a fallback would lose writes;
2. a person decides (gate ``fallback``);
3. the **target** is frozen (the same revoke / end sessions / pause), the
   downtime clock starts;
4. reverse replication drains up to the target's frozen position, then stops;
5. the **source's** sequences are set past the target's (and the source's
   constraints and triggers checked: the reverse apply worker ran as replica);
6. the endpoint goes back to the source, the source's application role gets
   back what the cutover's freeze took, the endpoint resumes: writes reopen
   on the source; the target stays frozen;
7. smoke tests through the endpoint, then the report.

Any failure before writes reopen on the source undoes the fallback
(:func:`undo_fallback`): the application goes back, live, to the target, with
reverse replication running again. Every action is idempotent, like the
cutover's, because the blocks it calls are.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from bascule.notifications.events import CutoverOutcome
from bascule.replication.factory import runs_reverse
from bascule.runbook.actions import (
    _db,
    _push_evidence,
    endpoint_switch,
    flow_event,
    freeze_side,
    reopened,
    smoke_side,
)
from bascule.runbook.context import SafeMessage, StepContext
from bascule.runbook.registry import Runbook, TriggerRule, drain, gate, report, step

# The fallback's task ids: spelt here only.
ANNOUNCE = "announce_fallback"
CHECK = "check_reverse_replication"
GATE = "gate_fallback"
FREEZE_TARGET = "freeze_target"
DRAIN = "drain_reverse"
STOP = "stop_reverse_replication"
FIXUPS = "fallback_fixups"
SWITCH_BACK = "switch_back"
SMOKE = "fallback_smoke_tests"
UNDO = "undo_fallback"
ABORT = "abort_fallback"
REPORT = "report"


class FallbackCheckFailed(AirflowFailException, SafeMessage):
    """A condition the fallback depends on does not hold; the message names it. Not retried."""


def _reverse(ctx: StepContext, **overrides: Any) -> Any:
    from bascule.replication.factory import replication_from_plan

    return replication_from_plan(ctx.plan, "reverse", **overrides)


# --------------------------------------------------------------------------- before the freeze


def announce_fallback(ctx: StepContext) -> dict[str, Any]:
    from bascule.notifications.events import RunStarted
    from bascule.runbook.announce import notifier

    slack = notifier(ctx)
    if slack is not None:
        # Sides named as the data now flows: from the target back to the source.
        slack.open_thread(RunStarted(dag_id=ctx.dag_id, run_id=ctx.run_id, plan_id=ctx.plan.name,
                                     source=ctx.plan.target.engine.value, target=ctx.plan.source.engine.value,
                                     downtime_budget_s=ctx.plan.budget_seconds))
    ctx.log(f"fallback of plan {ctx.plan.name} ({ctx.plan.mode.value}) to the source starts")
    return {"plan": ctx.plan.name, "mode": ctx.plan.mode.value}


def _reverse_retired(ctx: StepContext) -> str | None:
    from bascule.hooks.replication import ReplicationHistoryHook

    last = ReplicationHistoryHook(history_conn_id=ctx.plan.target.conn_id).last_flow_event(
        method=ctx.plan.replication.method.value, direction="reverse")
    return last.describe() if last is not None and last.event == "retired" else None


def check_reverse_replication(ctx: StepContext, *, readings: int = 3, pause_s: float = 0.5) -> dict[str, Any]:
    """Reverse replication streaming (else a fallback would lose writes), the endpoint on the open target."""
    from bascule.replication.base import ReplicationState

    if not runs_reverse(ctx.plan):
        raise FallbackCheckFailed(
            f"replication.method {ctx.plan.replication.method.value}: bascule runs no reverse replication for it, "
            "so it cannot prove that the writes made on the target since go-live reached the source; "
            "fall back by the site's own procedure")
    retired = _reverse_retired(ctx)
    if retired is not None:
        # The rollback window was closed (dags/post_go_live.py, ADR 0057): the old source has no part left.
        raise FallbackCheckFailed(f"reverse replication was {retired}: the rollback window is closed and the source "
                                  "no longer receives the target's writes; there is no way back by this DAG")
    repl = _reverse(ctx)
    try:
        # The first reading of a fresh object may see a worker mid-restart: a few, until streaming.
        for i in range(readings):
            reading = repl.reading()
            if reading.state in (ReplicationState.STREAMING, ReplicationState.BROKEN):
                break
            if i + 1 < readings:
                time.sleep(pause_s)
    finally:
        repl.close()
    endpoint = endpoint_switch(ctx.plan)
    endpoint_state = endpoint.state().as_dict() if endpoint is not None else None
    result = {"replication": reading.to_json(), "endpoint": endpoint_state}
    _push_evidence(ctx, gate_body(ctx.plan, result))
    ctx.log(f"reverse replication {reading.state.value}, lag {reading.lag_seconds} s, {reading.lag_bytes} bytes")
    if reading.state is not ReplicationState.STREAMING:
        raise FallbackCheckFailed(
            f"reverse replication ({ctx.plan.replication.postgres_logical.subscription}_reverse) is "
            f"{reading.state.value}, not streaming" + (f": {reading.cause}" if reading.cause else "")
            + "; a fallback now would lose the writes it has not carried to the source")
    if endpoint_state is not None and endpoint_state["side"] != "target":
        raise FallbackCheckFailed(f"the endpoint points at the {endpoint_state['side']}, not the target: "
                                  "there is nothing to fall back from")
    return result


def gate_body(plan: Any, result: dict[str, Any]) -> str:
    rep = result["replication"]
    endpoint = result.get("endpoint")
    lines = [
        f"## Fall back to the source? Plan `{plan.name}` ({plan.mode.value})",
        "",
        "GO freezes the target (the application stops), drains reverse replication, advances the "
        "source's sequences, points the endpoint back at the source and reopens writes there.",
        "",
        "| evidence | value |",
        "|---|---|",
        f"| reverse replication | {rep['state']} |",
        f"| lag | {rep.get('lag_seconds')} s ({rep.get('lag_bytes')} bytes) |",
        f"| endpoint | {endpoint['side'] + (' (paused)' if endpoint['paused'] else ' (open)') if endpoint else 'none'} |",
        f"| downtime budget | {plan.budget_seconds:.0f} s |",
    ]
    if rep.get("cause"):
        lines.append(f"| finding | {rep['cause']} |")
    return "\n".join(lines)


def abort_fallback(ctx: StepContext) -> dict[str, Any]:
    from bascule.notifications.events import CutoverOutcome, FinalReport
    from bascule.runbook.announce import notify

    ctx.log("NO-GO for the fallback: nothing was changed; the application stays on the target")
    notify(ctx, FinalReport(dag_id=ctx.dag_id, run_id=ctx.run_id, outcome=CutoverOutcome.ABORTED,
                            downtime_s=0.0, downtime_budget_s=ctx.plan.budget_seconds, tables_migrated=0))
    return {"outcome": "aborted", "changed": False}


# --------------------------------------------------------------------------- the freeze and the drain


def freeze_target(ctx: StepContext) -> dict[str, Any]:
    return freeze_side(ctx, "target")


def stop_reverse_replication(ctx: StepContext) -> dict[str, Any]:
    """Disable the reverse subscription; its slot keeps the position, should the fallback be undone."""
    repl = _reverse(ctx, expect_running=False)
    try:
        repl.disable()
        reading = repl.reading()
    finally:
        repl.close()
    # On purpose: the rollback window's watch (dags/post_go_live.py) ends here, and no monitor reports it.
    flow_event(ctx, "reverse", "stopped")
    ctx.log(f"reverse replication stopped ({reading.state.value}); its slot on the target keeps the position")
    return {"state": reading.state.value, "applied_position": reading.applied_position}


def fallback_fixups(ctx: StepContext) -> dict[str, Any]:
    """The cutover's fix-ups with the sides swapped: the source's sequences past the target's."""
    from bascule.cutover.fixups import SequenceMargin, advance_sequences, check_constraints

    schemas = list(ctx.plan.scope.schemas)
    source = _db(ctx, "source")
    moved = advance_sequences(source=_db(ctx, "target"), target=source, schemas=schemas,
                              margin=SequenceMargin(ctx.plan.cutover.sequence_margin, 0.0))
    report = check_constraints(source, schemas=schemas, validate=True)
    ctx.log(f"{sum(1 for m in moved if m.moved)} of {len(moved)} source sequences advanced past the target's; "
            f"constraints {'ok' if report.ok else 'NOT ok'}")
    if not report.ok:
        raise FallbackCheckFailed(f"source constraints or triggers are not ready: {report.as_dict()}")
    return {"sequences": [m.as_dict() for m in moved], "constraints": report.as_dict()}


def switch_back(ctx: StepContext) -> dict[str, Any]:
    """Endpoint to the source, the source's application role unfrozen, the endpoint resumed."""
    from bascule.cutover.freeze import unfreeze

    endpoint = endpoint_switch(ctx.plan)
    moved = endpoint.point_to("source") if endpoint is not None else False
    # The cutover froze the source and, on GO, never gave its rights back: they
    # are in the source's freeze_state, and unfreeze restores exactly those.
    result = unfreeze(_db(ctx, "source"), role=ctx.plan.source.app_role, endpoint=endpoint, resume=True)
    # The downtime ends when a probe write of bascule's commits through the endpoint (ADR 0038).
    proof = reopened(ctx, "source")
    state = endpoint.state().as_dict() if endpoint is not None else None
    ctx.log(f"endpoint on the source{' (moved)' if moved else ''}, {result.as_dict()['restored']} grants "
            "restored there, writes reopen on the source; the target stays frozen")
    return {**proof, "switched": bool(moved), "unfreeze": result.as_dict(), "endpoint": state}


def fallback_smoke_tests(ctx: StepContext) -> dict[str, Any]:
    return smoke_side(ctx, "source", error=FallbackCheckFailed)


def undo_fallback(ctx: StepContext) -> dict[str, Any]:
    """A step before writes reopened on the source failed: back, live, to the target.

    The source is frozen again if the switch had already unfrozen it (nothing may
    write there behind reverse replication's back), reverse replication is
    enabled again (its slot kept the position), and the target reopens.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from bascule.cutover.freeze import freeze, unfreeze

    target = _db(ctx, "target")
    if not ctx.result_of(FREEZE_TARGET) and target.active_freeze(ctx.plan.target.app_role) is None:
        # Reached through a failure before the freeze (upstream_failed counts): nothing to undo.
        raise AirflowSkipException("the target was never frozen: nothing to undo")
    source = _db(ctx, "source")
    refrozen = False
    if source.active_freeze(ctx.plan.source.app_role) is None:
        # The source refuses the application again before the target reopens: never both sides open.
        freeze(source, role=ctx.plan.source.app_role, schemas=list(ctx.plan.scope.schemas))
        refrozen = True
    reverse = None
    if runs_reverse(ctx.plan):
        repl = _reverse(ctx)
        try:
            repl.enable()
            reverse = "enabled"
            flow_event(ctx, "reverse", "resumed")
        except Exception as exc:  # the application's way back matters more than this step's success
            from bascule.privacy.sanitize import sanitize_error_text

            reverse = f"not resumed: {sanitize_error_text(exc)}"
        finally:
            repl.close()
    endpoint = endpoint_switch(ctx.plan)
    if endpoint is not None:
        endpoint.point_to("target")
    result = unfreeze(target, role=ctx.plan.target.app_role, endpoint=endpoint, resume=True)
    proof = reopened(ctx, "target")
    ctx.log(f"fallback undone: endpoint on the target, writes reopened there ({result.as_dict()['restored']} "
            f"grants restored), source {'frozen again' if refrozen else 'still frozen'}, reverse replication "
            f"{reverse}")
    return {**proof, "unfreeze": result.as_dict(), "source_refrozen": refrozen,
            "reverse_replication": reverse, "endpoint": endpoint.state().as_dict() if endpoint else None}


# --------------------------------------------------------------------------- the runbook


def report_sections(results: Any) -> dict[str, Any]:
    """The fallback's own part of the report: undone or not, sequences, reverse replication, the endpoint."""
    return {"fallback": {
        "undone": UNDO in results,
        "sequences_advanced": sum(1 for s in (results.get(FIXUPS) or {}).get("sequences", []) if s.get("moved")),
        "reverse_replication": (results.get(STOP) or {}).get("state"),
        "endpoint": (results.get(UNDO) or results.get(SWITCH_BACK) or {}).get("endpoint"),
    }}


def _run_report(ctx: StepContext) -> dict[str, Any]:
    from bascule.runbook.report import run_report

    return run_report(ctx)


FALLBACK = Runbook(
    dag_id="rollback",
    noun="fallback",
    # Only failures before writes reopen on the source are undone: after that, the source holds
    # writes the target has not seen.
    on_failure=UNDO,
    sections=report_sections,
    entries=(
        step(ANNOUNCE, announce_fallback, critical_path=False),
        step(CHECK, check_reverse_replication, after=(ANNOUNCE,), critical_path=False),
        gate(GATE, gate_id="fallback", go=FREEZE_TARGET, no_go=ABORT, evidence_from=CHECK, after=(CHECK,),
             retries=1),
        step(ABORT, abort_fallback, critical_path=False, is_ending=True),
        step(FREEZE_TARGET, freeze_target, starts_downtime=True, guarded=True),
        drain(DRAIN, step_name="drain", direction="reverse", position_from=FREEZE_TARGET, after=(FREEZE_TARGET,),
              guarded=True),
        step(STOP, stop_reverse_replication, after=(DRAIN,), guarded=True),
        step(FIXUPS, fallback_fixups, after=(STOP,), guarded=True),
        step(SWITCH_BACK, switch_back, after=(FIXUPS,), guarded=True, ends_downtime=CutoverOutcome.ROLLED_BACK),
        step(SMOKE, fallback_smoke_tests, after=(SWITCH_BACK,), is_ending=True),
        step(UNDO, undo_fallback, trigger_rule=TriggerRule.ONE_FAILED, ends_downtime=CutoverOutcome.ABORTED,
             fails_run="the fallback failed and was undone: the application is on the target again"),
        report(REPORT, _run_report, after=(ABORT, SMOKE, UNDO)),
    ),
)
