"""The Oracle night, live: the cutover DAG of the Oracle plan under ``dag.test()``, as in
test_oracle_night.py, but against two real databases through the real ``oracledb`` driver, a real
GoldenGate Microservices deployment and the site's endpoint command. ``make test-oracle`` runs it
(docs/oracle-live.md); skipped unless every variable of ``bascule_lab.testing.oracle_live.NIGHT_VARS`` is set.

It freezes and switches both databases, so it refuses to run unless ``BASCULE_ORACLE_NIGHT_DISPOSABLE=yes``
says they are disposable test systems. Before the night it checks, through the product's own hooks, that
each of the four Oracle connections opens, that GoldenGate answers and knows the plan's four groups, and
that the endpoint command says the application is on the source: a side that is not there fails the test
before anything is frozen, naming the connection (never a password).

Gates are answered as in the double's night (test_oracle_night.py, the shared oracle_night_driver.py):
GO at each, or NO-GO at ``gate_data_verified`` when ``BASCULE_ORACLE_NIGHT_OUTCOME=rollback``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import pytest
from oracle_night_driver import night_environment, plan_copy, run_night  # type: ignore[import-not-found]

from bascule.runbook.context import NO_GO
from bascule_lab.testing import oracle_live as live

MISSING = live.missing(live.NIGHT_VARS)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.oracle_live,
    pytest.mark.skipif(bool(MISSING), reason="the live Oracle night needs " + ", ".join(MISSING)),
]


def _fail(message: str) -> NoReturn:
    # One line, no traceback: what is wrong and where, not the test's frames nor the driver's chained errors.
    raise pytest.fail.Exception(message, pytrace=False) from None


def _connections(plan: Any) -> dict[str, tuple[str, str]]:
    """conn_id -> (variable, Airflow connection JSON) for the plan's four Oracle connections."""
    wanted = {plan.source.conn_id: live.SOURCE_DSN, plan.source.app_conn_id: live.SOURCE_APP_DSN,
              plan.target.conn_id: live.TARGET_DSN, plan.target.app_conn_id: live.TARGET_APP_DSN}
    return {conn_id: (var, live.oracle_connection(var)) for conn_id, var in wanted.items()}


def _check_plan(plan: Any, path: Path) -> None:
    gg = plan.replication.goldengate
    problems = [what for what, bad in (
        ("both sides must be Oracle", {plan.source.engine.value, plan.target.engine.value} != {"oracle"}),
        ("replication.method must be goldengate", gg is None),
        ("cutover.endpoint.kind must be command", plan.cutover.endpoint.kind.value != "command"),
        ("source.app_conn_id and target.app_conn_id must be set",
         not (plan.source.app_conn_id and plan.target.app_conn_id)),
    ) if bad]
    if problems:
        _fail(f"{live.PLAN} ({path}): not a plan for the live Oracle night: {'; '.join(problems)}")


def _preflight(plan: Any, connections: dict[str, tuple[str, str]], command: list[str]) -> None:
    """Every side answers before anything is frozen; a failure names the connection and its variable."""
    from bascule.cutover.endpoint import CommandEndpoint, Side
    from bascule.hooks.database import MigrationDatabaseHook
    from bascule.hooks.goldengate import GoldenGateApiError, GoldenGateHook

    for conn_id, (var, _) in connections.items():
        try:
            MigrationDatabaseHook(db_conn_id=conn_id, engine="oracle").connect().close()
        except Exception as exc:
            _fail(f"{var} ({live.dsn_target(var)}): {exc}".splitlines()[0])  # the hook's text: "<conn_id>: ..."
    gg = plan.replication.goldengate
    hook = GoldenGateHook(goldengate_conn_id=gg.conn_id)
    ok, message = hook.test_connection()
    if not ok:
        _fail(f"{live.GG_URL}, connection {gg.conn_id}: {message}".splitlines()[0])
    # Where a night starts (ADR 0055): the forward pair replicating, the reverse pair created and stopped.
    for kind, name, running in (("extract", gg.extract, True), ("replicat", gg.replicat, True),
                                ("extract", gg.reverse_extract, False), ("replicat", gg.reverse_replicat, False)):
        if name is None:
            _fail(f"{live.PLAN}: replication.goldengate names no reverse {kind}: the night starts one (ADR 0055)")
        try:
            status = str(hook.get_process_status(kind, name)["status"]).lower()
        except GoldenGateApiError as exc:
            _fail(f"GoldenGate ({gg.conn_id}): {kind} {name} of the plan: {exc}".splitlines()[0])
        if (status == "running") is not running:
            _fail(f"GoldenGate ({gg.conn_id}): {kind} {name} is {status}; a night starts with it "
                  f"{'running' if running else 'created and stopped'}")
    try:
        where = CommandEndpoint(command=command).current()
    except Exception as exc:
        _fail(f"endpoint command ({live.ENDPOINT_COMMAND}): {exc}".splitlines()[0])
    if where is not Side.SOURCE:
        _fail(f"endpoint command `{' '.join(command)} current` says {where.value}: the night starts on the source")


@pytest.fixture()
def live_night(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_env: dict[str, str]) -> Any:
    from bascule.plan import PlanError, load_plan

    try:
        live.require_disposable()
        source_plan = live.plan_file()
        command = live.endpoint_command()
        outcome = live.outcome()
        gg_connection = live.goldengate_connection()
    except live.LiveSettingError as exc:
        _fail(str(exc))
    try:
        _check_plan(load_plan(source_plan), source_plan)
        plan_path = plan_copy(source_plan, tmp_path / "oracle-night-live.yaml", endpoint_command=command)
    except PlanError as exc:
        _fail(f"{live.PLAN}: {exc}")
    with night_environment(monkeypatch, plan_path, tmp_path / "reports") as plan:
        try:
            connections = _connections(plan)
        except live.LiveSettingError as exc:
            _fail(str(exc))
        for conn_id, (_, conn_json) in connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json)
        monkeypatch.setenv(f"AIRFLOW_CONN_{plan.replication.goldengate.conn_id.upper()}", gg_connection)
        _preflight(plan, connections, command)
        yield plan, outcome


def _statuses(plan: Any) -> dict[str, str]:
    from bascule.hooks.goldengate import GoldenGateHook

    gg = plan.replication.goldengate
    hook = GoldenGateHook(goldengate_conn_id=gg.conn_id)
    return {name: str(hook.get_process_status(kind, name)["status"]).lower() for kind, name in (
        ("replicat", gg.replicat), ("extract", gg.reverse_extract), ("replicat", gg.reverse_replicat))}


def test_the_live_oracle_night(live_night: Any) -> None:
    from bascule.cutover.endpoint import CommandEndpoint, Side

    plan, outcome = live_night
    gg = plan.replication.goldengate
    endpoint = CommandEndpoint(command=list(plan.cutover.endpoint.command))
    if outcome == "go-live":
        run, states, answered = run_night()
        failed = {t: s for t, s in states.items() if s not in ("success", "skipped")}
        assert not failed, failed
        assert {"calendar_checks", "tminus_checks", "restore_point", "freeze_source", "stop_replication",
                "final_validation", "fixups", "prepare_reverse_replication", "switch_endpoint", "smoke_tests",
                "open_target_writes", "start_reverse_replication", "report"} <= {
            t for t, s in states.items() if s == "success"}
        assert states.get("rollback_on_failure") != "success", states
        assert answered == ["gate_go_for_freeze", "gate_data_verified", "gate_go_live"]
        # What the night left, read back from GoldenGate and the site's switch, not from the night's own log.
        statuses = _statuses(plan)
        assert statuses[gg.replicat] != "running" and statuses[gg.reverse_extract] == "running", statuses
        assert statuses[gg.reverse_replicat] == "running", statuses
        assert endpoint.current() is Side.TARGET
    else:
        run, states, answered = run_night({"gate_data_verified": NO_GO})
        assert states["rollback_on_failure"] == "success", states
        assert "gate_go_live" not in answered and states.get("open_target_writes") != "success", states
        statuses = _statuses(plan)
        assert statuses[gg.reverse_replicat] != "running", statuses  # nothing of the target's reached the source
        assert statuses[gg.replicat] == "running", statuses  # the rollback started the forward replicat again
        assert endpoint.current() is Side.SOURCE
