"""The cutover's steps, one function each, in the order of the night, and the night's runbook.

Every action takes a :class:`~bascule.runbook.context.StepContext`, does one
thing through the library's hooks, and returns a small JSON-able result of
positions, counts and timings (never a row value). Each is idempotent: run
twice, it leaves the same state, because the blocks it calls are.

:data:`CUTOVER` at the end declares the night's tasks (``bascule.runbook.registry``):
``dags/cutover.py`` builds the DAG from it, and the report reads it.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bascule.notifications.events import CutoverOutcome
from bascule.runbook.context import EVIDENCE_XCOM_KEY, SafeMessage, StepContext
from bascule.runbook.registry import Runbook, TriggerRule, gate, report, step
from bascule.today import parse_instant, utc_now

if TYPE_CHECKING:
    from bascule.cutover.endpoint import EndpointSwitch
    from bascule.hooks.cutover import CutoverDatabaseHook

# The night's task ids: spelt here only.
ANNOUNCE_START = "announce_start"
CALENDAR = "calendar_checks"
TMINUS = "tminus_checks"
GATE_FREEZE = "gate_go_for_freeze"
ABORT = "abort_before_freeze"
RESTORE_POINT = "restore_point"
CATCH_UP = "catch_up_checks"
FREEZE = "freeze_source"
DRAIN = "drain"
STOP = "stop_replication"
FINAL_VALIDATION = "final_validation"
TARGET_SUITES = "target_suites"
FIXUPS = "fixups"
SWITCH = "switch_endpoint"
SMOKE = "smoke_tests"
PREPARE_REVERSE = "prepare_reverse_replication"
GATE_LIVE = "gate_go_live"
OPEN_WRITES = "open_target_writes"
START_REVERSE = "start_reverse_replication"
RETIRE_FORWARD = "retire_forward_replication"
ANNOUNCE_LIVE = "announce_live"
ROLLBACK = "rollback"
ROLLBACK_ON_FAILURE = "rollback_on_failure"
REPORT = "report"
SMOKE_FOLLOWER = "clinic_smoke"


class CutoverCheckFailed(AirflowFailException, SafeMessage):
    """A check the night depends on did not hold; the message names it. Not retried."""


# --------------------------------------------------------------------------- building blocks


def _db(ctx: StepContext, side: str) -> CutoverDatabaseHook:
    from bascule.hooks.cutover import CutoverDatabaseHook

    endpoint = ctx.plan.source if side == "source" else ctx.plan.target
    return CutoverDatabaseHook(db_conn_id=endpoint.conn_id, engine=endpoint.engine.value,
                               allowed_writers=endpoint.allowed_writers)


def close_target(ctx: StepContext) -> dict[str, Any]:
    """The target refuses every writer but the allowed ones until GO LIVE (ADR 0038): its application
    role's write rights are taken and recorded there, reads left open; idempotent. ``open_target_writes``
    gives them back; every rollback calls this again."""
    from bascule.cutover.freeze import close_writes

    state = close_writes(_db(ctx, "target"), role=ctx.plan.target.app_role, schemas=list(ctx.plan.scope.schemas))
    data = state.as_dict()
    ctx.log(f"target closed to the application until GO LIVE ({data['revoked']} rights held back"
            f"{', already closed' if data['already_frozen'] else ''}, {data['terminated_sessions']} sessions ended)")
    return data


def reopened(ctx: StepContext, side: str) -> dict[str, Any]:
    """The last act of reopening ``side``: a probe write committed as the application through the endpoint's
    application connection (else the side's own). The downtime ends when it returns (ADR 0038)."""
    from bascule.cutover.freeze import prove_reopened
    from bascule.hooks.cutover import CutoverDatabaseHook

    endpoint = ctx.plan.source if side == "source" else ctx.plan.target
    pgbouncer = ctx.plan.cutover.endpoint.pgbouncer
    if pgbouncer is not None:
        conn_id, through = pgbouncer.app_conn_id, "the endpoint"
    elif endpoint.app_conn_id:
        conn_id, through = endpoint.app_conn_id, f"the {side}'s application connection"
    else:
        conn_id, through = None, ""
    probe = CutoverDatabaseHook(db_conn_id=conn_id, engine=endpoint.engine.value) if conn_id else None
    proof = prove_reopened(probe, run_id=ctx.run_id, side=side, role=endpoint.app_role, through=through)
    ctx.log(f"downtime ends at {proof.at.isoformat()}: {proof.event}")
    return proof.as_dict()


def endpoint_switch(plan: Any) -> EndpointSwitch | None:
    from bascule.cutover.endpoint import CommandEndpoint, PgBouncerEndpoint
    from bascule.plan import EndpointKind

    cfg = plan.cutover.endpoint
    if cfg.kind is EndpointKind.PGBOUNCER:
        return PgBouncerEndpoint(pgbouncer_conn_id=cfg.pgbouncer.admin_conn_id, database=cfg.pgbouncer.database,
                                 source_conn_id=plan.source.conn_id, target_conn_id=plan.target.conn_id,
                                 followers=(SMOKE_FOLLOWER,))
    if cfg.kind is EndpointKind.COMMAND:
        return CommandEndpoint(command=list(cfg.command))
    return None


def _replication(ctx: StepContext, direction: str = "forward") -> Any:
    from bascule.replication.factory import replication_from_plan

    return replication_from_plan(ctx.plan, direction)


def flow_event(ctx: StepContext, direction: str, event: str) -> None:
    """Record on the target what this run did to a flow on purpose, so that no monitor reports a flow the
    night stopped or retired as broken (ADR 0057). Bookkeeping: it never fails a step."""
    from bascule.hooks.replication import ReplicationHistoryHook

    try:
        ReplicationHistoryHook(history_conn_id=ctx.plan.target.conn_id).record_flow_event(
            method=ctx.plan.replication.method.value, direction=direction, event=event, dag_id=ctx.dag_id,
            run_id=ctx.run_id)
    except Exception as exc:
        from bascule.privacy.sanitize import sanitize_error_text

        ctx.log(f"the {direction} flow's {event} event was not recorded: {sanitize_error_text(exc)}")


def _push_evidence(ctx: StepContext, markdown: str) -> None:
    ctx.ti.xcom_push(key=EVIDENCE_XCOM_KEY, value=markdown)


# --------------------------------------------------------------------------- before the freeze


def announce_start(ctx: StepContext) -> dict[str, Any]:
    from bascule.runbook.announce import notifier, run_started

    rehearsal = bool(ctx.conf.get("rehearsal", False))
    slack = notifier(ctx)
    if slack is not None:
        slack.open_thread(run_started(ctx))
    ctx.log(f"cutover of plan {ctx.plan.name} ({ctx.plan.mode.value}) starts"
            + (" as a rehearsal" if rehearsal else ""))
    return {"plan": ctx.plan.name, "mode": ctx.plan.mode.value, "rehearsal": rehearsal}


def calendar_checks(ctx: StepContext) -> dict[str, Any]:
    """The night starts for real only on the preparation's evidence (ADR 0048): every milestone's Asset has a
    signed event newer than the milestones it builds on, and the last rehearsal is green and recent. A
    rehearsal is exempt; a plan without a calendar (lab, demo) has nothing to check."""
    from bascule.hooks.decision_key import DecisionKeyHook
    from bascule.runbook import milestones

    calendar = ctx.plan.production.calendar
    if calendar is None:
        ctx.log("no calendar in the plan: no milestone to check")
        return {"checked": False, "reason": "no calendar"}
    if ctx.conf.get("rehearsal"):
        ctx.log("a rehearsal: the milestones are not required")
        return {"checked": False, "reason": "rehearsal"}
    inlets = ctx.airflow["inlet_events"]
    events = {asset.name.rsplit(".", 1)[1]: [milestones.Seen.of(e) for e in inlets[asset]]
              for asset in milestones.calendar_assets(ctx.plan)}
    key = DecisionKeyHook(key_conn_id=ctx.plan.decisions.key_conn_id).key()
    found = milestones.findings(ctx.plan, events, key=key)
    if found:
        # One line each in the log: the error's text is clipped by the sanitiser, and every condition counts.
        for line in found:
            ctx.log(f"calendar: {line}")
        raise CutoverCheckFailed(f"the night may not start for real: {len(found)} condition(s) fail: "
                                 + "; ".join(found))
    ctx.log(f"calendar: {len(events) - 1} milestones and the last rehearsal hold")
    return {"checked": True, "milestones": len(events) - 1}


def tminus_checks(ctx: StepContext) -> dict[str, Any]:
    """Source and target two databases, the target closed to the application, replication healthy and
    under the threshold, a green full comparison, the endpoint on the open source."""
    from bascule.cutover.identity import SameDatabaseError, check_not_production, check_two_databases
    from bascule.hooks.cutover import CutoverDatabaseHook
    from bascule.plan import PlanMode
    from bascule.replication.base import ReplicationState
    from bascule.runbook import evidence
    from bascule.validation.service import full_comparison

    try:
        identity = check_two_databases(_db(ctx, "source"), _db(ctx, "target"))
        if ctx.plan.production is not ctx.plan and ctx.plan.mode is PlanMode.PRODUCTION:
            # A rehearsal: its source must be a copy, not production itself (the lab may rehearse on itself).
            production = ctx.plan.production.source
            check_not_production(_db(ctx, "source"), CutoverDatabaseHook(
                db_conn_id=production.conn_id, engine=production.engine.value))
    except SameDatabaseError as exc:
        # Not a finding a person may wave through (conf allow_findings): the night is refused.
        raise CutoverCheckFailed(f"t-minus checks failed: {exc}") from None
    # From here until GO LIVE the target refuses the application (a FreezeError fails T-minus).
    target_closed = close_target(ctx)
    findings: list[str] = []
    repl = _replication(ctx)
    readings = [repl.reading() for _ in range(3)]
    reading = readings[-1]
    if reading.state is not ReplicationState.STREAMING:
        findings.append(f"replication is {reading.state.value}" + (f": {reading.cause}" if reading.cause else ""))
    elif reading.lag_seconds is None or reading.lag_seconds > ctx.plan.replication.lag_threshold_s:
        findings.append(f"lag {reading.lag_seconds} s is above the threshold "
                        f"{ctx.plan.replication.lag_threshold_s} s")
    ctx.log(f"replication {reading.state.value}, lag {reading.lag_seconds} s, {reading.lag_bytes} bytes")
    # A full comparison now, with change tracking from here where the engine has it (PostgreSQL's
    # logical decoding): the one after the freeze then only re-checks what moved since. Oracle has
    # none: the final validation compares everything again, in parallel (ADR 0052).
    comparison = full_comparison(ctx.plan, track_changes=_tracks_changes(ctx.plan))
    if not comparison["ok"]:
        findings.append(f"full comparison found differences in {', '.join(comparison['failed_tables'])}")
    ctx.log(f"full comparison: {comparison['rows_compared']:,} rows, "
            f"{comparison['differences']} differences, {comparison['seconds']:.1f} s")
    # The suites and the constraints in full now, while replication streams: the window then checks only
    # the rows changed since (ADR 0061).
    baseline = window_baseline(ctx)
    findings.extend(baseline.pop("findings"))
    endpoint = endpoint_switch(ctx.plan)
    endpoint_state = endpoint.state().as_dict() if endpoint is not None else None
    if endpoint_state is not None and (endpoint_state["side"] != "source" or endpoint_state["paused"]):
        findings.append(f"the endpoint points at the {endpoint_state['side']} "
                        f"({'paused' if endpoint_state['paused'] else 'open'}), not the open source")
    forecast = evidence.forecast_downtime(ctx.plan, ctx.dag_id, run_id=ctx.run_id)
    result = {
        "identity": identity,
        "target_closed": target_closed,
        "replication": reading.to_json(),
        "lag_history_s": [r.lag_seconds for r in readings],
        "validation": {"ok": comparison["ok"], "tables": len(comparison["tables"]),
                       "rows_compared": comparison["rows_compared"], "differences": comparison["differences"],
                       "failed_tables": comparison["failed_tables"], "seconds": comparison["seconds"]},
        "comparison_report": comparison,
        "endpoint": endpoint_state,
        "window_baseline": baseline,
        "forecast_downtime_s": forecast,
        "findings": findings,
    }
    _push_evidence(ctx, evidence.freeze_gate_body(ctx.plan, result))
    if findings and not ctx.conf.get("allow_findings", False):
        raise CutoverCheckFailed("t-minus checks failed: " + "; ".join(findings))
    return result


def _window_tracks_changes(plan: Any) -> bool:
    """Both engines decode their log: the window's deltas can be read on the target (ADR 0061)."""
    from bascule.engines import dialect_for

    return all(dialect_for(e.engine.value).supports_logical_decoding for e in (plan.source, plan.target))


def window_baseline(ctx: StepContext) -> dict[str, Any]:
    """The target's suites and constraints checked in full before the freeze, each behind a change tracker
    started just before it (a slot of its own on the target): what the window then re-checks is only what
    changed since. Where the engines track no change the window runs them in full, and nothing is done here."""
    import time

    from bascule.cutover.fixups import check_constraints
    from bascule.hooks.validation import ValidationHook
    from bascule.validation.delta import DeltaTracker, delta_slot
    from bascule.validation.runner import run_baseline_suites

    if not _window_tracks_changes(ctx.plan):
        ctx.log(f"no change tracker on {ctx.plan.target.engine.value}: the suites and the constraints run in "
                "full in the window")
        return {"tracked": False, "findings": []}
    started = time.monotonic()
    hook = ValidationHook(db_conn_id=ctx.plan.target.conn_id, engine=ctx.plan.target.engine.value)
    findings: list[str] = []
    result: dict[str, Any] = {"tracked": True}
    if ctx.plan.validation.suites:
        result["suites_tracking"] = DeltaTracker(hook=hook, slot=delta_slot(ctx.plan.name, "suites")).start()
        suites = run_baseline_suites(ctx.plan)
        result["suites"] = {"ok": suites["ok"],
                            "suites": [{"suite": x["suite"], "success": x["success"]} for x in suites["suites"]]}
        if not suites["ok"]:
            findings.append("suites failed on the target: " + ", ".join(
                x["suite"] for x in suites["suites"] if not x["success"]))
    result["constraints_tracking"] = DeltaTracker(hook=hook, slot=delta_slot(ctx.plan.name, "constraints")).start()
    report = check_constraints(_db(ctx, "target"), schemas=list(ctx.plan.scope.schemas), validate=True)
    result["constraints"] = report.as_dict()
    if not report.ok:
        findings.append("target constraints or triggers are not ready")
    result["seconds"] = round(time.monotonic() - started, 3)
    ctx.log(f"window baseline: suites {'ok' if result.get('suites', {}).get('ok', True) else 'FAILED'}, "
            f"constraints {'ok' if report.ok else 'NOT ok'} in full, {result['seconds']:.1f} s; the window "
            "checks the rows changed since")
    return {**result, "findings": findings}


# The catch-up before the freeze (ADR 0070): passes until one takes at most this long, at most this many.
CATCH_UP_PASS_S = 5.0
CATCH_UP_MAX_PASSES = 3


def catch_up_checks(ctx: StepContext) -> dict[str, Any]:
    """After GO, before the freeze, while the application still writes: the window's three checks (the
    comparison, the suites, the foreign keys) brought from T-minus up to now, in passes, each moving its
    change tracker on once what it read is proven. The window then re-checks only what changed during the
    last pass, however long T-minus and the gate took: its cost no longer grows with the database."""
    import time

    from bascule.validation.service import incremental_comparison

    if int(getattr(ctx.ti, "try_number", 1) or 1) > 1:
        # A pass moves the trackers on and keeps the keys still different in its own result only: a second
        # try (a retry, a task cleared by hand) would start from T-minus's report and could lose them.
        raise CutoverCheckFailed(f"{CATCH_UP} already ran in this night (this is try {ctx.ti.try_number}): its "
                                 "passes moved the change trackers on, so it cannot run again; start the night "
                                 "again from T-minus (ADR 0070)")
    compare = _tracks_changes(ctx.plan)
    window = _window_tracks_changes(ctx.plan)
    previous = (ctx.result_of(TMINUS) or {}).get("comparison_report")
    if not (compare and previous) and not window:
        ctx.log("no change tracker: nothing to catch up; the window checks in full")
        return {"passes": []}
    passes: list[dict[str, Any]] = []
    for number in range(1, CATCH_UP_MAX_PASSES + 1):
        started = time.monotonic()
        done: dict[str, Any] = {"pass": number}
        if compare and previous:
            previous = incremental_comparison(ctx.plan, previous, consume=False)
            done["comparison"] = {k: previous[k] for k in ("rows_compared", "differences", "seconds")}
        if window:
            done["suites"] = _catch_up_suites(ctx)
            done["constraints"] = _catch_up_constraints(ctx)
        done["seconds"] = round(time.monotonic() - started, 3)
        passes.append(done)
        ctx.log(f"catch-up pass {number}: {done['seconds']:.1f} s"
                + (f"; comparison {done['comparison']['rows_compared']:,} rows re-checked, "
                   f"{done['comparison']['differences']} still different" if "comparison" in done else "")
                + (f"; suites on {done['suites'].get('rows_in_scope', 0):,} rows changed"
                   if done.get("suites") else "")
                + (f"; foreign keys on {done['constraints'].get('rows_changed', 0):,} rows changed"
                   if done.get("constraints") else ""))
        if done["seconds"] <= CATCH_UP_PASS_S:
            break
    return {"passes": passes, "comparison_report": previous if compare else None}


def _catch_up_suites(ctx: StepContext) -> dict[str, Any] | None:
    """One pass of the suites on the rows changed since their tracker's position; moved on if they pass.
    A failure moves nothing: the window checks those rows again, and fails there as it would have."""
    from bascule.hooks.validation import ValidationHook
    from bascule.validation.delta import DeltaTracker, referenced_tables
    from bascule.validation.runner import run_suites_in_window
    from bascule.validation.suites import load_suite_file

    if not ctx.plan.validation.suites:
        return None
    docs = [load_suite_file(name) for name in ctx.plan.validation.suites]
    changed, tracking = _window_changes(ctx, "suites", referenced_tables(docs))
    if changed is None:
        return {"skipped": tracking["reason"]}
    result = run_suites_in_window(ctx.plan, changed=changed, tracking=tracking, deltas_only=True)
    failed = [s["suite"] for s in result["suites"] if not s["success"]]
    rows = sum(int(s.get("rows_in_scope") or 0) for s in result["suites"])
    if failed:
        ctx.log(f"catch-up: suites failed on the target ({', '.join(failed)}): not moved on, the window "
                "checks these rows again")
        return {"ok": False, "failed": failed, "rows_in_scope": rows}
    hook = ValidationHook(db_conn_id=ctx.plan.target.conn_id, engine=ctx.plan.target.engine.value)
    DeltaTracker(hook=hook, slot=tracking["slot"]).advance(tracking["to_position"])
    return {"ok": True, "rows_in_scope": rows, "advanced_to": tracking["to_position"]}


def _catch_up_constraints(ctx: StepContext) -> dict[str, Any]:
    """One pass of the foreign keys among the rows changed since their tracker's position (validated in
    full at T-minus: nothing is validated again here); moved on if no row is orphaned."""
    from bascule.cutover.fixups import check_constraints
    from bascule.hooks.validation import ValidationHook
    from bascule.validation.delta import DeltaTracker

    changed, tracking = _window_changes(ctx, "constraints", _tables_in_scope(ctx))
    if changed is None:
        return {"skipped": tracking["reason"]}
    report = check_constraints(_db(ctx, "target"), schemas=list(ctx.plan.scope.schemas), validate=False,
                               changed=changed)
    if report.orphans:
        ctx.log(f"catch-up: {len(report.orphans)} foreign key(s) with orphans among the rows changed: not "
                "moved on, the window checks these rows again")
        return {"ok": False, "rows_changed": tracking["rows_changed"]}
    hook = ValidationHook(db_conn_id=ctx.plan.target.conn_id, engine=ctx.plan.target.engine.value)
    DeltaTracker(hook=hook, slot=tracking["slot"]).advance(tracking["to_position"])
    return {"ok": True, "rows_changed": tracking["rows_changed"], "advanced_to": tracking["to_position"]}


def _window_changes(ctx: StepContext, purpose: str, tables: list[tuple[str, str]]) -> tuple[Any, dict[str, Any]]:
    """What changed on the target since the baseline of ``purpose`` (suites, constraints), or (None, why)
    when the window must check in full: no tracker, no baseline, or a baseline that did not pass."""
    from bascule.hooks.validation import ValidationHook
    from bascule.validation.delta import DeltaTracker

    baseline = (ctx.result_of(TMINUS) or {}).get("window_baseline") or {}
    if not baseline.get("tracked"):
        return None, {"reason": f"no change tracker on {ctx.plan.target.engine.value}: run in full in the window"}
    part = baseline.get(purpose) or {}
    tracking = baseline.get(f"{purpose}_tracking")
    if tracking is None or not part.get("ok"):
        return None, {"reason": f"the T-minus {purpose} baseline did not pass: run in full in the window"}
    hook = ValidationHook(db_conn_id=ctx.plan.target.conn_id, engine=ctx.plan.target.engine.value)
    changed, reading = DeltaTracker(hook=hook, slot=tracking["slot"]).changes(tables)
    return changed, {"from_position": tracking["position"], "baseline_at": tracking["started_at"], **reading}


def drop_window_slots(ctx: StepContext) -> str | None:
    """The window's delta slots hold the target's WAL: dropped once the night is decided. Best effort."""
    from bascule.hooks.validation import ValidationHook
    from bascule.privacy.sanitize import sanitize_error_text
    from bascule.validation.delta import DeltaTracker, delta_slot

    if not _window_tracks_changes(ctx.plan):
        return None
    hook = ValidationHook(db_conn_id=ctx.plan.target.conn_id, engine=ctx.plan.target.engine.value)
    try:
        for purpose in ("suites", "constraints"):
            DeltaTracker(hook=hook, slot=delta_slot(ctx.plan.name, purpose)).stop()
    except Exception as exc:  # a person drops it later; the night's outcome matters more
        return f"not dropped: {sanitize_error_text(exc)}"
    return "dropped"


def abort_before_freeze(ctx: StepContext) -> dict[str, Any]:
    from bascule.notifications.events import CutoverOutcome, FinalReport
    from bascule.runbook.announce import notify

    repl = _replication(ctx)
    state = repl.reading().state.value
    slots = drop_window_slots(ctx)
    ctx.log(f"NO-GO for freeze: nothing was changed; replication keeps running ({state})"
            + (f"; the window's delta slots {slots}" if slots else ""))
    notify(ctx, FinalReport(dag_id=ctx.dag_id, run_id=ctx.run_id, outcome=CutoverOutcome.ABORTED,
                            downtime_s=0.0, downtime_budget_s=ctx.plan.budget_seconds, tables_migrated=0))
    return {"outcome": "aborted", "replication": state, "changed": False}


# --------------------------------------------------------------------------- the freeze and the drain


def restore_point(ctx: StepContext) -> dict[str, Any]:
    from bascule.cutover.freeze import restore_point as make

    name = f"bascule_{ctx.plan.name}_{ctx.run_id}"[:60]
    point = make(_db(ctx, "source"), "".join(c if c.isalnum() or c == "_" else "_" for c in name))
    ctx.log(f"restore point {point.name} at {point.position}")
    return point.as_dict()


def freeze_side(ctx: StepContext, side: str) -> dict[str, Any]:
    """Stop the application writing on ``side`` (revoke, end sessions, pause the endpoint)."""
    from bascule.cutover.freeze import freeze

    endpoint = ctx.plan.source if side == "source" else ctx.plan.target
    result = freeze(_db(ctx, side), role=endpoint.app_role, schemas=list(ctx.plan.scope.schemas),
                    endpoint=endpoint_switch(ctx.plan))
    data = result.as_dict()
    # frozen_at is the worker's UTC clock right before the REVOKE was sent (ADR 0038).
    data["start_event"] = f"before the REVOKE of {endpoint.app_role}'s write rights on the {side}"
    others = f" (and of {', '.join(data['other_writers'])})" if data["other_writers"] else ""
    ctx.log(f"{side} frozen: the downtime clock started at {data['frozen_at']}, {data['start_event']}; "
            f"{data['revoked']} rights revoked{others}, {data['terminated_sessions']} sessions ended, nothing but "
            f"{', '.join(endpoint.allowed_writers) or 'bascule'} can write; position {data['position']}")
    return data


def freeze_source(ctx: StepContext) -> dict[str, Any]:
    return freeze_side(ctx, "source")


def stop_replication(ctx: StepContext) -> dict[str, Any]:
    repl = _replication(ctx)
    if hasattr(repl, "disable"):
        repl.disable()
    reading = repl.reading()
    flow_event(ctx, "forward", "stopped")
    # Logical replication's slot, or GoldenGate's trail, keeps every later change for a restart.
    ctx.log(f"forward replication stopped ({reading.state.value}); later changes stay queued for a restart")
    return {"state": reading.state.value, "applied_position": reading.applied_position}


# --------------------------------------------------------------------------- after the drain


def _tracks_changes(plan: Any) -> bool:
    from bascule.engines import dialect_for

    return dialect_for(plan.source.engine.value).supports_logical_decoding


def final_validation(ctx: StepContext) -> dict[str, Any]:
    """Every row of every table in scope proven equal, or its key named: an incremental re-check of what
    changed since the T-minus comparison where the source tracks changes, else a full pushdown
    comparison again, ``validation.parallelism`` ranges at a time (Oracle: ADR 0052)."""
    from bascule.validation.service import full_comparison, incremental_comparison

    # The last comparison before the freeze: the catch-up's last pass where it ran, else T-minus's (ADR 0070).
    report = (ctx.result_of(CATCH_UP) or {}).get("comparison_report") \
        or (ctx.result_of(TMINUS) or {}).get("comparison_report")
    if _tracks_changes(ctx.plan):
        comparison = incremental_comparison(ctx.plan, report)
    else:
        comparison = {**full_comparison(ctx.plan, track_changes=False), "kind": "full"}
    summary = {"ok": bool(comparison["ok"]), "kind": comparison.get("kind"), "tables": len(comparison["tables"]),
               "rows_compared": comparison["rows_compared"], "differences": comparison["differences"],
               "failed_tables": comparison["failed_tables"], "seconds": comparison["seconds"]}
    ctx.log(f"final comparison: {summary['rows_compared']:,} rows re-checked, {summary['differences']} "
            f"differences in {summary['seconds']:.1f} s")
    _notify_validation(ctx, ok=summary["ok"], tables=summary["tables"], failed=summary["failed_tables"])
    if not summary["ok"]:
        raise CutoverCheckFailed(f"final comparison found differences in {', '.join(summary['failed_tables'])} "
                                 f"(full report in XCom {ctx.dag_id}.{FINAL_VALIDATION}, run {ctx.run_id})")
    return summary


def target_suites(ctx: StepContext) -> dict[str, Any]:
    """The clinical invariants (Great Expectations, BOOLEAN_ONLY) on the target, after the drain: on the
    rows changed since T-minus's full run where a change tracker names them, else whole (ADR 0061)."""
    from bascule.validation.delta import referenced_tables
    from bascule.validation.runner import run_suites_in_window
    from bascule.validation.suites import load_suite_file

    if not ctx.plan.validation.suites:
        return {"ok": True, "suites": []}
    docs = [load_suite_file(name) for name in ctx.plan.validation.suites]
    changed, tracking = _window_changes(ctx, "suites", referenced_tables(docs))
    if changed is None:
        result = run_suites_in_window(ctx.plan, changed=None, tracking=tracking, whole_reason=tracking["reason"])
    else:
        result = run_suites_in_window(ctx.plan, changed=changed, tracking=tracking)
    ctx.log("suites on the target: " + ", ".join(
        f"{s['suite']} {'passed' if s['success'] else 'FAILED'} ({s['run']}"
        + (f", {s['rows_in_scope']} rows" if s.get("rows_in_scope") is not None else "") + ")"
        for s in result["suites"]))
    failed = [s["suite"] for s in result["suites"] if not s["success"]]
    _notify_validation(ctx, ok=not failed, tables=len(result["suites"]), failed=[])
    if failed:
        raise CutoverCheckFailed(f"suites failed on the target: {', '.join(failed)} "
                                 f"(outcomes in XCom {ctx.dag_id}.{TARGET_SUITES}, run {ctx.run_id})")
    return {"ok": True, "tracking": result["tracking"], "seconds": result["seconds"],
            "suites": [{k: s[k] for k in ("suite", "success", "run", "reason", "rows_in_scope", "proven_by_index")}
                       for s in result["suites"]]}


def _notify_validation(ctx: StepContext, *, ok: bool, tables: int, failed: list[str]) -> None:
    from bascule.notifications.events import ValidationOutcome, ValidationResult
    from bascule.runbook.announce import notify

    notify(ctx, ValidationResult(
        dag_id=ctx.dag_id, run_id=ctx.run_id, outcome=ValidationOutcome.PASSED if ok else ValidationOutcome.FAILED,
        tables_checked=tables, checks_run=tables, checks_failed=len(failed), failed_tables=tuple(failed)))


def fixups(ctx: StepContext) -> dict[str, Any]:
    from bascule.cutover.fixups import SequenceMargin, advance_sequences, check_constraints

    schemas = list(ctx.plan.scope.schemas)
    moved = advance_sequences(source=_db(ctx, "source"), target=_db(ctx, "target"), schemas=schemas,
                              margin=SequenceMargin(ctx.plan.cutover.sequence_margin, 0.0))
    # Validated and counted in full at T-minus; here only among the rows changed since (ADR 0061).
    changed, tracking = _window_changes(ctx, "constraints", _tables_in_scope(ctx))
    report = check_constraints(_db(ctx, "target"), schemas=schemas, validate=True, changed=changed)
    ctx.log(f"{sum(1 for m in moved if m.moved)} of {len(moved)} target sequences advanced; constraints "
            f"{'ok' if report.ok else 'NOT ok'} "
            + (f"(foreign keys on {tracking['rows_changed']} rows changed since T-minus)" if changed is not None
               else f"({tracking['reason']})"))
    if not report.ok:
        raise CutoverCheckFailed(f"target constraints or triggers are not ready: {report.as_dict()}")
    return {"sequences": [m.as_dict() for m in moved], "constraints": report.as_dict(), "tracking": tracking}


def _tables_in_scope(ctx: StepContext) -> list[tuple[str, str]]:
    from bascule.hooks.validation import ValidationHook
    from bascule.validation.service import tables_in_scope

    if not _window_tracks_changes(ctx.plan):
        return []
    source = ValidationHook(db_conn_id=ctx.plan.source.conn_id, engine=ctx.plan.source.engine.value)
    return [(ref.schema, ref.table) for ref in tables_in_scope(ctx.plan, source)]


def switch_endpoint(ctx: StepContext) -> dict[str, Any]:
    endpoint = endpoint_switch(ctx.plan)
    if endpoint is None:
        ctx.log("no endpoint to switch in this plan (cutover.endpoint.kind: none)")
        return {"switched": False}
    changed = endpoint.point_to("target")
    state = endpoint.state().as_dict()
    ctx.log(f"endpoint now points at the {state['side']} (paused: {state['paused']})")
    return {"switched": changed, **state}


def smoke_side(ctx: StepContext, side: str, *, error: type[Exception] | None = None) -> dict[str, Any]:
    """Read a chart and write a rolled-back observation through the endpoint, now on ``side``."""
    from bascule.cutover.smoke import smoke_through
    from bascule.plan import SmokeKind

    cfg = ctx.plan.cutover.endpoint.pgbouncer
    endpoint = ctx.plan.source if side == "source" else ctx.plan.target
    checks = ctx.plan.cutover.smoke
    if not checks:
        ctx.log("the plan names no smoke checks (cutover.smoke): nothing is tested through the endpoint")
    # A side closed to the application (the target before GO LIVE) refuses its writes by design: the
    # write checks then run as the application with its rights lent in a rolled-back transaction.
    writes = any(c.kind is SmokeKind.WRITE for c in checks)
    lending = _db(ctx, side).lent_rights(endpoint.app_role) if writes else nullcontext()
    with lending as lent:
        if cfg is None:
            ctx.log(f"no endpoint application connection: smoke tests run on the {side}'s own connection")
            result = smoke_through(endpoint.app_conn_id or endpoint.conn_id, checks=checks,
                                   engine=endpoint.engine.value, lent=lent)
        else:
            result = smoke_through(cfg.app_conn_id, checks=checks, engine=endpoint.engine.value,
                                   database=SMOKE_FOLLOWER, lent=lent)
    data = result.as_dict()
    if result.write_path == "lent":
        ctx.log(f"the {side} is closed until GO LIVE: the write checks ran as {endpoint.app_role} with its "
                "rights lent in a transaction rolled back, the reads through the endpoint")
    elif result.write_path == "skipped":
        ctx.log(f"the {side} is closed until GO LIVE and its engine cannot lend rights: write checks "
                f"{', '.join(result.skipped)} skipped (the probe write at the reopening proves writes)")
    ctx.log(f"smoke tests through the endpoint, now on the {side}: {'ok' if result.ok else 'FAILED'}")
    if not result.ok:
        raise (error or CutoverCheckFailed)(f"smoke tests on the {side} failed: {data}")
    return data


def smoke_tests(ctx: StepContext) -> dict[str, Any]:
    return smoke_side(ctx, "target")


def go_live_evidence(ctx: StepContext) -> str:
    """The GO LIVE gate's body, computed by the gate itself when it opens (one task less in the window)."""
    from bascule.runbook import evidence

    freeze = ctx.result_of(FREEZE) or {}
    elapsed = None
    if freeze.get("frozen_at"):
        elapsed = (utc_now() - parse_instant(freeze["frozen_at"])).total_seconds()
    validation = dict(ctx.result_of(FINAL_VALIDATION) or {})
    validation["suites"] = (ctx.result_of(TARGET_SUITES) or {}).get("suites", [])
    result = {"downtime_so_far_s": elapsed, "validation": validation,
              "smoke": ctx.result_of(SMOKE), "endpoint": ctx.result_of(SWITCH)}
    return evidence.go_live_gate_body(ctx.plan, result)


# --------------------------------------------------------------------------- GO LIVE, or back


def prepare_reverse_replication(ctx: StepContext) -> dict[str, Any]:
    """Target -> source, created disabled while the target is still frozen.

    Its slot on the target is made now, before any write can reach the target, so every
    write after GO LIVE is kept for the source, however long enabling it takes: the writes
    can reopen right after the gate, and the subscription is enabled alongside (ADR 0032).
    GoldenGate: the reverse extract is started now, its replicat stays stopped (ADR 0055).
    """
    if _goldengate_reverse(ctx):
        reverse = _replication(ctx, "reverse")
        reverse.start_capture()
        ctx.log(f"reverse capture started on the target (extract {reverse.extract}); replicat "
                f"{reverse.replicat} stopped until GO LIVE")
        return {"prepared": True, "extract": reverse.extract}
    if not _has_reverse(ctx):
        ctx.log("reverse replication for this method is configured outside bascule")
        return {"prepared": False}
    reverse = _replication(ctx, "reverse")
    replaced = reverse.subscription_facts() is not None
    if replaced:
        # Left by an earlier attempt (or a retry of this step): its slot may predate this freeze and
        # would send the source what forward replication brought to the target. The target is still
        # closed, so a new slot made now misses nothing.
        reverse.drop()
        ctx.log("a reverse subscription from an earlier attempt was dropped before preparing this one")
    tables = reverse.create_publication()
    reverse.create_subscription(copy_data=False, enabled=False)
    ctx.log(f"reverse replication prepared (disabled, its slot on the target): {len(tables)} tables published")
    return {"prepared": True, "tables": len(tables), "replaced_earlier": replaced}


def start_reverse_replication(ctx: StepContext) -> dict[str, Any]:
    """Enable the reverse subscription prepared during the freeze; its slot has kept every write since.
    GoldenGate: start the reverse replicat; its extract has captured every write since (ADR 0055)."""
    if _goldengate_reverse(ctx):
        reverse = _replication(ctx, "reverse")
        reverse.enable()
        ctx.log(f"reverse replication started: replicat {reverse.replicat} applies the target's writes "
                "to the source")
        return {"started": True, "replicat": reverse.replicat}
    if not _has_reverse(ctx):
        ctx.log("reverse replication for this method is configured outside bascule")
        return {"started": False}
    reverse = _replication(ctx, "reverse")
    tables = reverse.create_publication()
    reverse.create_subscription(copy_data=False, enabled=True)
    flow_event(ctx, "reverse", "started")
    ctx.log(f"reverse replication started: {len(tables)} tables published by the target")
    return {"started": True, "tables": len(tables)}


def retire_forward_replication(ctx: StepContext) -> dict[str, Any]:
    """After GO LIVE: drop the forward subscription, its slot and publication on the source.

    Left in place, the disabled subscription's slot would hold the source's WAL for ever; and
    the source now receives the target's writes through reverse replication, which forward
    replication must never send back.
    """
    if not _has_reverse(ctx):
        ctx.log("forward replication for this method is retired outside bascule")
        return {"retired": False}
    _replication(ctx).drop()
    slots = drop_window_slots(ctx)
    flow_event(ctx, "forward", "retired")
    ctx.log("forward replication retired: subscription, slot and publication dropped"
            + (f"; the window's delta slots {slots}" if slots else ""))
    return {"retired": True, "window_slots": slots}


def open_target_writes(ctx: StepContext) -> dict[str, Any]:
    """GO LIVE: the endpoint on the target, the application's write rights given back there (closed
    since T-minus), the endpoint resumed, and a probe write through it: the downtime ends."""
    from bascule.cutover.freeze import unfreeze

    endpoint = endpoint_switch(ctx.plan)
    if endpoint is not None:
        endpoint.point_to("target")
    opened = unfreeze(_db(ctx, "target"), role=ctx.plan.target.app_role, endpoint=endpoint, resume=True)
    proof = reopened(ctx, "target")
    ctx.log(f"writes reopen on the target ({opened.as_dict()['restored']} rights given back): the application "
            "is live on the new platform")
    return {**proof, "opened": opened.as_dict(), "endpoint": endpoint.state().as_dict() if endpoint else None}


def announce_live(ctx: StepContext) -> dict[str, Any]:
    reading = _replication(ctx, "reverse").reading() if _has_reverse(ctx) else None
    ctx.log("GO LIVE done" + (f"; reverse replication {reading.state.value}" if reading else ""))
    return {"reverse_replication": reading.to_json() if reading else None}


def _goldengate_reverse(ctx: StepContext) -> bool:
    from bascule.replication.factory import goldengate_reverse

    return goldengate_reverse(ctx.plan)


def _has_reverse(ctx: StepContext) -> bool:
    from bascule.replication.factory import runs_reverse

    return runs_reverse(ctx.plan)


def rollback(ctx: StepContext) -> dict[str, Any]:
    """Back to the source: endpoint, writes, forward replication. Keeps every piece of evidence."""
    from bascule.cutover.freeze import unfreeze

    if not ctx.result_of(FREEZE) and ctx.result_of(RESTORE_POINT) is None and ctx.step_task != ROLLBACK:
        # Reached through a failure before the freeze: nothing was changed, nothing to undo.
        raise AirflowSkipException("the source was never frozen: nothing to roll back")
    if ctx.step_task == ROLLBACK_ON_FAILURE:
        failed = _failed_upstream(ctx)
        if not failed:
            raise AirflowSkipException("no step failed: nothing to roll back")
        ctx.log(f"rolling back after the failure of {', '.join(failed)}")
    # The target refuses the application again (it has since T-minus, unless someone opened it), so a
    # write can never land on both sides; then the source reopens and a probe write proves it.
    target_closed = close_target(ctx)
    endpoint = endpoint_switch(ctx.plan)
    if endpoint is not None:
        endpoint.point_to("source")
    result = unfreeze(_db(ctx, "source"), role=ctx.plan.source.app_role, endpoint=endpoint, resume=True)
    proof_error = None
    try:
        proof = reopened(ctx, "source")
    except Exception as exc:  # the replication below must still be put back; this step fails after it
        from bascule.privacy.sanitize import sanitize_error_text

        proof, proof_error = {"downtime_end": None, "end_event": None}, sanitize_error_text(exc)
    resumed = None
    reverse_dropped = _drop_prepared_reverse(ctx)
    # The next night's T-minus starts them again.
    drop_window_slots(ctx)
    repl = _replication(ctx)
    if hasattr(repl, "enable"):
        try:
            repl.enable()
            resumed = "enabled"
            flow_event(ctx, "forward", "resumed")
        except Exception as exc:  # the evidence matters more than this step's success
            from bascule.privacy.sanitize import sanitize_error_text

            resumed = f"not resumed: {sanitize_error_text(exc)}"
    ctx.log(f"rolled back: endpoint on the source, writes reopened there ({result.as_dict()['restored']} "
            f"grants restored), the target closed to the application, forward replication {resumed}")
    if proof_error is not None:
        raise CutoverCheckFailed(f"rolled back, but no write of the application is proven on the source: "
                                 f"{proof_error}")
    return {**proof, "unfreeze": result.as_dict(), "target_closed": target_closed,
            "forward_replication": resumed, "reverse_replication_dropped": reverse_dropped,
            "endpoint": endpoint.state().as_dict() if endpoint else None}


def _failed_upstream(ctx: StepContext) -> list[str]:
    """The steps before this one that failed in this run.

    ``rollback_on_failure`` waits for every branch to be done (trigger rule ``all_done``), not for
    the first failure: rolling back while a sibling branch still runs could let that branch (the
    endpoint switch) undo the rollback.
    """
    upstream = sorted(getattr(ctx.airflow.get("task"), "upstream_task_ids", None) or ())
    states = ctx.ti.get_task_states(dag_id=ctx.dag_id, task_ids=upstream, run_ids=[ctx.run_id]) or {}
    of_run = states.get(ctx.run_id, {}) if isinstance(states, dict) else {}
    return sorted(t for t, state in of_run.items() if str(state) in ("failed", "TaskInstanceState.FAILED"))


def _drop_prepared_reverse(ctx: StepContext) -> str | None:
    """The reverse subscription prepared for GO LIVE is not wanted any more; its slot would hold WAL.

    Dropped whether or not its step finished: a half-made one (slot, no subscription) holds WAL too.
    """
    if not _has_reverse(ctx):
        return None
    try:
        _replication(ctx, "reverse").drop()
        return "dropped"
    except Exception as exc:  # the rollback itself matters more: report it, a person drops it later
        from bascule.privacy.sanitize import sanitize_error_text

        return f"not dropped: {sanitize_error_text(exc)}"


# --------------------------------------------------------------------------- the runbook


def report_sections(results: Any) -> dict[str, Any]:
    """The night's own part of the report: the last comparison (the final one, else T-minus's) and the suites."""
    validation = dict(results.get(FINAL_VALIDATION) or (results.get(TMINUS) or {}).get("validation") or {})
    if results.get(TARGET_SUITES):
        validation["suites"] = results[TARGET_SUITES].get("suites", [])
    return {"validation": validation or None}


def _run_report(ctx: StepContext) -> dict[str, Any]:
    """The night's report, then, for a real night that went live, the ``went_live`` event that starts the
    rollback window's watch (``post_go_live`` is scheduled on it, ADR 0057). Emitted here, not by
    ``open_target_writes``: the watch reads the night's report (its go-live instant, its Slack thread) and
    reverse replication is running by now. A report that fails (a night rolled back after a failure) emits
    nothing; a rehearsal, an abort or a NO-GO adds no event to the alias, so Airflow records none."""
    from bascule.runbook import milestones
    from bascule.runbook.report import run_report

    result = run_report(ctx)
    extra = milestones.went_live_extra(ctx.plan, result)
    if extra is None:
        ctx.log(f"no {milestones.WENT_LIVE} event: the night ended {result.get('outcome')}"
                + (" as a rehearsal" if result.get("rehearsal") else ""))
        return result
    asset = milestones.went_live_asset(ctx.plan)
    ctx.airflow["outlet_events"][milestones.went_live_alias(ctx.plan)].add(asset, extra=extra)
    ctx.log(f"went live: event on asset {asset.name} for run {extra['run_id']} (the rollback window's watch starts)")
    return result


def _went_live_outlets(plan: Any) -> list[Any]:
    from bascule.runbook.milestones import went_live_alias

    return [went_live_alias(plan)]


def _calendar_inlets(plan: Any) -> list[Any]:
    from bascule.runbook.milestones import calendar_assets

    return calendar_assets(plan)


CUTOVER = Runbook(
    dag_id="cutover",
    noun="cutover",
    on_failure=ROLLBACK_ON_FAILURE,
    sections=report_sections,
    entries=(
        step(ANNOUNCE_START, announce_start, critical_path=False),
        step(CALENDAR, calendar_checks, after=(ANNOUNCE_START,), critical_path=False,
             inlets_from=_calendar_inlets),
        step(TMINUS, tminus_checks, after=(CALENDAR,), critical_path=False),
        gate(GATE_FREEZE, gate_id="go_for_freeze", go=RESTORE_POINT, no_go=ABORT, evidence_from=TMINUS,
             after=(TMINUS,), retries=1),
        step(ABORT, abort_before_freeze, critical_path=False, is_ending=True),
        step(RESTORE_POINT, restore_point),
        step(CATCH_UP, catch_up_checks, after=(RESTORE_POINT,)),
        # The freeze's task then waits for the drain (step "drain" in the report): no task boundary between the
        # two inside the window (ADR 0071).
        step(FREEZE, freeze_source, after=(CATCH_UP,), starts_downtime=True, guarded=True, drains="forward",
             drain_step=DRAIN),
        # Once drained, the frozen source sends nothing more: stopping the (idle) subscription is one more
        # branch, not a step the checks must wait for; the reverse flow is prepared only once the forward
        # one is stopped (ADR 0032).
        step(STOP, stop_replication, after=(FREEZE,), guarded=True),
        step(FINAL_VALIDATION, final_validation, after=(FREEZE,), guarded=True),
        step(TARGET_SUITES, target_suites, after=(FREEZE,), guarded=True),
        step(FIXUPS, fixups, after=(FREEZE,), guarded=True),
        step(SWITCH, switch_endpoint, after=(FIXUPS,), guarded=True),
        step(SMOKE, smoke_tests, after=(SWITCH,), guarded=True),
        step(PREPARE_REVERSE, prepare_reverse_replication, after=(STOP,), guarded=True),
        gate(GATE_LIVE, gate_id="go_live", go=OPEN_WRITES, no_go=ROLLBACK, body_from=go_live_evidence,
             after=(FINAL_VALIDATION, TARGET_SUITES, SMOKE, PREPARE_REVERSE), guarded=True, retries=1),
        step(OPEN_WRITES, open_target_writes, ends_downtime=CutoverOutcome.COMPLETED, is_ending=True),
        step(START_REVERSE, start_reverse_replication, after=(OPEN_WRITES,)),
        step(RETIRE_FORWARD, retire_forward_replication, after=(START_REVERSE,), critical_path=False),
        step(ANNOUNCE_LIVE, announce_live, after=(RETIRE_FORWARD,), critical_path=False),
        step(ROLLBACK, rollback, ends_downtime=CutoverOutcome.ROLLED_BACK, is_ending=True),
        # all_done, not one_failed: the rollback waits for the sibling branches, so that none of them (the
        # endpoint switch) runs after it; the step skips itself when nothing failed. After GO LIVE there is
        # no automatic way back: the rollback DAG is (it needs reverse replication).
        step(ROLLBACK_ON_FAILURE, rollback, trigger_rule=TriggerRule.ALL_DONE,
             ends_downtime=CutoverOutcome.ROLLED_BACK,
             fails_run="the cutover was rolled back after a failure"),
        report(REPORT, _run_report, after=(ABORT, ANNOUNCE_LIVE, ROLLBACK, ROLLBACK_ON_FAILURE),
               outlets_from=_went_live_outlets),
    ),
)
