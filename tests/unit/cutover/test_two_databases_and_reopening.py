"""Source and target are two databases (refused at T-minus otherwise), and how the downtime ends.

Fake hooks stand in for the databases: what is checked is the decision, the message and that
nothing of the night runs after a refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bascule.cutover.freeze import prove_reopened
from bascule.cutover.identity import SameDatabaseError, check_two_databases
from bascule.hooks.cutover import DatabaseIdentity
from bascule.runbook.context import StepContext

pytestmark = pytest.mark.unit


class FakeDb:
    def __init__(self, conn_id: str, system: str, database: str) -> None:
        self.db_conn_id = conn_id
        self.identity = DatabaseIdentity(system, database)
        self.probed: list[dict[str, Any]] = []

    def database_identity(self) -> DatabaseIdentity:
        return self.identity

    def probe_write(self, **kwargs: Any) -> datetime:
        self.probed.append(kwargs)
        return datetime(2026, 11, 1, 22, 30, tzinfo=UTC)


def test_two_databases_pass_with_both_identities() -> None:
    out = check_two_databases(FakeDb("bascule_legacy", "7715", "16384"), FakeDb("bascule_new", "7716", "16384"))
    assert out == {"source": {"system": "7715", "database": "16384"},
                   "target": {"system": "7716", "database": "16384"}}
    # Same cluster, another database: two databases too.
    check_two_databases(FakeDb("a", "7715", "16384"), FakeDb("b", "7715", "16390"))


def test_one_database_behind_two_conn_ids_is_refused() -> None:
    with pytest.raises(SameDatabaseError) as caught:
        check_two_databases(FakeDb("bascule_legacy", "7715", "16384"), FakeDb("BASCULE_LEGACY_ALIAS", "7715", "16384"))
    assert str(caught.value) == ("source (bascule_legacy) and target (BASCULE_LEGACY_ALIAS) are the same database "
                                 "(system 7715, database 16384): the night is refused")


def test_tminus_refuses_the_night_before_anything_else(lab_plan: Any, ctx_factory: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule.runbook import actions

    def not_reached(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("T-minus went on after finding one database")

    same = {"source": FakeDb("bascule_legacy", "7715", "16384"), "target": FakeDb("bascule_new", "7715", "16384")}
    monkeypatch.setattr(actions, "_db", lambda ctx, side: same[side])
    monkeypatch.setattr(actions, "close_target", not_reached)
    monkeypatch.setattr(actions, "_replication", not_reached)
    ctx = StepContext(plan=lab_plan, airflow=ctx_factory("tminus_checks"), step="tminus_checks")
    # allow_findings waves findings through, never this.
    ctx.airflow["dag_run"].conf["allow_findings"] = True
    with pytest.raises(actions.CutoverCheckFailed, match=r"source \(bascule_legacy\) and target \(bascule_new\) "
                                                         r"are the same database"):
        actions.tminus_checks(ctx)


def test_the_downtime_ends_on_the_probes_commit_or_says_there_was_none() -> None:
    probe = FakeDb("bascule_endpoint_app", "x", "y")
    proof = prove_reopened(probe, run_id="r1", side="target", role="clinic_app", through="the endpoint")
    assert proof.as_dict() == {"downtime_end": "2026-11-01T22:30:00+00:00",
                               "end_event": "probe write committed as clinic_app through the endpoint on the target",
                               "probed_through": "bascule_endpoint_app"}
    assert probe.probed == [{"run_id": "r1", "side": "target", "database": None}]
    none = prove_reopened(None, run_id="r1", side="source", role="clinic_app", through="")
    assert none.probed_through is None and "no application connection to probe" in none.event


def test_a_production_rehearsal_on_production_itself_is_refused(lab_plan: Any, ctx_factory: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from bascule.hooks import cutover as cutover_hooks
    from bascule.plan import PlanMode
    from bascule.runbook import actions
    from bascule.runbook.context import plan_for_run

    def not_reached(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("T-minus went on with a rehearsal on production")

    rehearsal = plan_for_run(lab_plan.model_copy(update={"mode": PlanMode.PRODUCTION}), {"rehearsal": True})
    # The rehearsal's connections are another name for production's source: the identity tells.
    identities = {"bascule_rehearsal_legacy": FakeDb("bascule_rehearsal_legacy", "7715", "16384"),
                  "bascule_rehearsal_new": FakeDb("bascule_rehearsal_new", "7716", "16384"),
                  "bascule_legacy": FakeDb("bascule_legacy", "7715", "16384")}
    monkeypatch.setattr(actions, "_db", lambda ctx, side: identities[getattr(ctx.plan, side).conn_id])
    monkeypatch.setattr(cutover_hooks, "CutoverDatabaseHook", lambda db_conn_id, **_: identities[db_conn_id])
    monkeypatch.setattr(actions, "close_target", not_reached)
    ctx = StepContext(plan=rehearsal, airflow=ctx_factory("tminus_checks"), step="tminus_checks")
    with pytest.raises(actions.CutoverCheckFailed, match=r"the rehearsal's source \(bascule_rehearsal_legacy\) is "
                                                         r"production's source \(bascule_legacy\)"):
        actions.tminus_checks(ctx)
    # A lab plan may rehearse on its own clusters.
    lab_rehearsal = plan_for_run(lab_plan, {"rehearsal": True})
    assert lab_rehearsal.production is lab_plan and lab_rehearsal.mode is PlanMode.LAB
