"""``bascule plan check <file>``: validate a plan; a summary and where each gate sits, or one line saying why not.

A plan is checked against the DAGs it drives as well as against itself: every gate it declares must be
asked somewhere (by a runbook, by the prepare DAG, or at the place its ``after`` gives it), and every
gate a DAG asks must be in the plan; a DAG would fail to build otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bascule.durations import format_duration
from bascule.plan import Plan, PlanError, load_plan

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


def check_command(path: str, *, connections: bool = False) -> int:
    """Print a one-line summary and return 0, or one ``<file>: <field>: <message>`` line on stderr and 2.

    Never lets a traceback out: the output is read on a cutover call or parsed by CI.
    """
    try:
        plan = load_plan(path)
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:  # a bug in bascule, not in the plan: still one line
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{path}: (internal): {message}", file=sys.stderr)
        return EXIT_INTERNAL
    try:
        places = gate_places(plan)
        check_suite_deltas(plan)
        if connections:
            check_connections(plan)
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print(
        f"{path}: ok: plan {plan.name!r}, mode {plan.mode.value}, "
        f"{plan.source.engine.value} -> {plan.target.engine.value} via {plan.replication.method.value}, "
        f"budget {format_duration(plan.budget_seconds)}, {len(plan.gates)} gates"
        + (f", {len(plan.manual_steps)} manual steps" if plan.manual_steps else "")
    )
    for line in places:
        print(f"  {line}")
    for line in calendar_lines(plan):
        print(f"  {line}")
    return EXIT_OK


def check_suite_deltas(plan: Plan, *, suites_dir: Path | None = None) -> None:
    """Where the window checks only what changed (a change tracker on both engines), every expectation of
    a suite not run whole in the window needs a delta method (ADR 0061); else the plan must say
    ``validation.suites_in_full`` and accept the cost."""
    from bascule.engines import dialect_for
    from bascule.validation.delta import suite_delta_findings
    from bascule.validation.suites import SuiteError, load_suite_file

    tracked = all(dialect_for(e.engine.value).supports_logical_decoding for e in (plan.source, plan.target))
    for i, name in enumerate(plan.validation.suites):
        try:
            doc = load_suite_file(name) if suites_dir is None else load_suite_file(name, suites_dir)
        except SuiteError as exc:
            raise PlanError(plan.path or plan.name, f"validation.suites[{i}]", str(exc)) from None
        if not tracked or name in plan.validation.suites_in_full:
            continue
        found = suite_delta_findings(doc)
        if found:
            raise PlanError(plan.path or plan.name, f"validation.suites[{i}]",
                            f"suite {name}: {'; '.join(found)}: no delta method for the window; list the suite "
                            "in validation.suites_in_full to run it whole there")


def calendar_lines(plan: Plan) -> list[str]:
    """The calendar, one dated line per milestone, rehearsal and the night, in order."""
    calendar = plan.calendar
    if calendar is None:
        return []
    lines = [f"calendar ({calendar.timezone}): {len(calendar.milestones)} milestones, "
             f"{calendar.rehearsals.count} rehearsals every {calendar.rehearsals.every_days} days, the last "
             f"{calendar.rehearsals.last_by_days}+ days before the night"]
    for day, event in calendar.timeline():
        milestone = next((m for mid, m in calendar.milestones.items() if mid.value == event), None)
        done = f": {milestone.done}" if milestone is not None else ""
        lines.append(f"  {day.isoformat()} {event}{done}")
    return lines


def _resolve(plan: Plan, field: str, conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a secrets backend that cannot be reached
        raise PlanError(plan.path or plan.name, field,
                        f"connection {conn_id!r} cannot be resolved ({type(exc).__name__})") from None


def check_connections(plan: Plan) -> None:
    """Resolve every connection the plan names (no database is contacted) and judge the HMAC key.

    A production plan refuses a key shorter than 32 bytes or written anywhere in the repository (the lab's):
    with a known key, anyone can hash every MRN and read a report's hashes back. Then, on the source's
    catalog, warn (stderr, exit still 0) on each table key neither surrogate nor identifying: it is hashed.
    """
    from bascule.privacy.keys import weak_key_reason

    key = _resolve(plan, "validation.key_hash_conn_id", plan.validation.key_hash_conn_id)
    if plan.mode.value == "production":
        reason = weak_key_reason(key.password or "")
        if reason:
            raise PlanError(plan.path or plan.name, "validation.key_hash_conn_id",
                            f"connection {plan.validation.key_hash_conn_id!r}: the HMAC key {reason}")
    _resolve(plan, "decisions.key_conn_id", plan.decisions.key_conn_id)
    for conn_id in sorted(plan.connection_ids()):
        _resolve(plan, "(connections)", conn_id)
    for line in unmarked_keys(plan):
        print(f"warning: {line}", file=sys.stderr)


def unmarked_keys(plan: Plan) -> list[str]:
    """Table keys on the source that the plan marks neither surrogate nor identifying (they are hashed)."""
    from bascule.hooks.validation import ValidationHook
    from bascule.privacy.keys import identifying_key, surrogate_key

    hook = ValidationHook(db_conn_id=plan.source.conn_id, engine=plan.source.engine.value)
    try:
        # The catalog's tables and primary keys only: no row is counted or read.
        tables = hook.records(hook.dialect.inventory_tables_sql(list(plan.scope.schemas)))
    except Exception as exc:  # the check of the plan itself is done; the catalog is a bonus
        return [f"cannot read the source's keys ({type(exc).__name__}): key columns not checked"]
    out = []
    for schema, table, _partitioned, _partitions, _bytes, pk, _replident in tables:
        if not plan.scope.contains(schema, table):
            continue
        name = f"{schema}.{table}"
        columns = pk.split(",") if pk else []
        if not columns or identifying_key(name, columns, plan.validation.identifying_keys):
            continue
        if not surrogate_key(name, columns, plan.validation.surrogate_keys):
            out.append(f"{name} key ({', '.join(columns)}) is neither in validation.surrogate_keys nor in "
                       "validation.identifying_keys: reports hash it")
    return out


def gate_places(plan: Plan) -> list[str]:
    """One line per gate and manual step: where it sits, what its answers do, who answers.

    Raises :class:`PlanError` (one line, naming the gate) on a gate no DAG asks, a gate a DAG asks
    that the plan lacks, or a place that does not exist.
    """
    from bascule.preparation import SIGNOFF_GATES
    from bascule.runbook.actions import CUTOVER
    from bascule.runbook.evidence import checkpoint_body
    from bascule.runbook.fallback import FALLBACK
    from bascule.runbook.registry import RunbookError

    where = str(plan.path or plan.name)
    lines: list[str] = []
    asked: set[str] = set()
    for runbook in (CUTOVER, FALLBACK):
        try:
            placed = runbook.placed(plan, body_from=checkpoint_body)
        except RunbookError as exc:
            raise PlanError(where, str(exc).split(":", 1)[0], str(exc).split(":", 1)[1].strip()) from None
        for entry in placed.entries:
            if entry.gate_id is None:
                continue
            asked.add(entry.gate_id)
            if entry.gate_id not in plan.gates and not entry.manual:
                raise PlanError(where, f"gates.{entry.gate_id}",
                                f"the {runbook.dag_id} DAG asks this gate (task {entry.task_id}); add it with its "
                                "assigned users")
            after = ", ".join(entry.after) or "the start"
            if entry.manual:
                spec: Any = plan.manual_steps[entry.gate_id]
                lines.append(f"manual step {entry.gate_id}: {runbook.dag_id}, after {after}; DONE goes on; "
                             f"owners: {', '.join(spec.owners)}")
                continue
            spec = plan.gates[entry.gate_id]
            if entry.checkpoint:
                answers = "GO goes on, NO-GO " + ("rolls back" if entry.guarded else "stops the run")
            else:
                answers = f"GO -> {entry.go}, NO-GO -> {entry.no_go}"
            lines.append(f"gate {entry.gate_id}: {runbook.dag_id}, after {after} ({answers}); "
                         f"assigned: {', '.join(spec.assigned_users)}")
    for gate_id in SIGNOFF_GATES:
        if gate_id not in plan.gates:
            raise PlanError(where, f"gates.{gate_id}", "the prepare DAG asks this sign-off gate; add it with its "
                                                       "assigned users")
        asked.add(gate_id)
        lines.append(f"gate {gate_id}: prepare, sign-off; assigned: {', '.join(plan.gates[gate_id].assigned_users)}")
    # After GO LIVE (dags/post_go_live.py, ADR 0057): the end of the rollback window.
    from bascule.operators.post_go_live import CLOSE_GATE

    if CLOSE_GATE not in plan.gates:
        raise PlanError(where, f"gates.{CLOSE_GATE}", "the post_go_live DAG asks this gate at the end of the "
                                                      "rollback window; add it with its assigned users")
    asked.add(CLOSE_GATE)
    lines.append(f"gate {CLOSE_GATE}: post_go_live, after {plan.cutover.rollback_window:.0f} s of rollback window "
                 f"(GO retires reverse replication, NO-GO keeps it); assigned: "
                 f"{', '.join(plan.gates[CLOSE_GATE].assigned_users)}")
    for gate_id in plan.gates:
        if gate_id not in asked:
            raise PlanError(where, f"gates.{gate_id}", "no DAG asks this gate: give it a place (after: <task>) "
                                                       "or remove it")
    return lines


def grants_lines(plan: Plan) -> list[str]:
    """What ``bascule plan grants`` prints: for each Oracle side, the DBA's one-off DDL and every privilege
    the night and the preparation need, derived from the dialect's own statements (ADR 0023); then the
    GoldenGate role, derived from the calls the GoldenGate hook declares."""
    from bascule.engines import derives_grants
    from bascule.engines.oracle_catalogue import Names
    from bascule.engines.oracle_grants import meta_schema_ddl, oracle_privileges
    from bascule.hooks.goldengate import ENDPOINT_ROLES, GG_ROLES

    lines = [f"-- bascule plan grants: plan {plan.name!r}. Derived from the statements bascule emits (ADR 0023);",
             "-- `bascule plan grants FILE` prints them again after any upgrade: run what changed."]
    gg = plan.replication.goldengate
    for label, side in (("source", plan.source), ("target", plan.target)):
        if not derives_grants(side.engine):
            lines += ["", f"-- {label}: {side.conn_id} is {side.engine.value}: no Oracle grants (see docs/production.md)"]
            continue
        user = (side.migration_user or "BASCULE_MIG").upper()
        names = Names(schemas=tuple(s.upper() for s in plan.scope.schemas), app_role=side.app_role.upper(),
                      allowed=tuple(w.upper() for w in side.allowed_writers),
                      heartbeat_owner=(gg.heartbeat_owner if gg else None))
        lines += ["", f"-- {label}: {side.conn_id}, migration user {user}"
                  + ("" if side.migration_user else " (the plan names none: set migration_user)"),
                  "-- once, as a DBA: bascule's own schema and tables (then it needs no CREATE ANY TABLE)"]
        lines += [f"{ddl};" for ddl in meta_schema_ddl(user)]
        for privilege in oracle_privileges(names, user):
            lines.append(f"-- {privilege.why} ({', '.join(privilege.when)})")
            # A PL/SQL block ends with a slash line in SQL*Plus and SQLcl.
            lines += [f"{privilege.grant};"] if not privilege.grant.startswith("BEGIN") else [privilege.grant, "/"]
    if gg is not None:
        needed = max((role for _m, _p, role, _w in ENDPOINT_ROLES), key=GG_ROLES.index)
        lines += ["", f"-- GoldenGate ({gg.conn_id}): bascule's Microservices user needs the {needed} role:"]
        lines += [f"--   {role:<8} {method:<4} {pattern}: {why}" for method, pattern, role, why in ENDPOINT_ROLES]
    return lines


def grants_command(path: str) -> int:
    """Print the grants of a plan (exit 0), or one line on stderr (exit 2 for a bad plan, 1 for a bug)."""
    try:
        plan = load_plan(path)
    except PlanError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    try:
        lines = grants_lines(plan)
    except Exception as exc:  # an unclassified statement is a bug in bascule: one line, not a traceback
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"{path}: (internal): {message}", file=sys.stderr)
        return EXIT_INTERNAL
    print("\n".join(lines))
    return EXIT_OK
