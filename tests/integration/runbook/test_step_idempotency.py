"""Every runbook step, run twice in a row on the real lab, leaves the same state as run once.

The actions of the cutover (``bascule.runbook.actions``) and of the fallback
(``bascule.runbook.fallback``) are called directly, in the order of a night, with
an in-memory stand-in for the Airflow context (XCom in a dict); the databases,
replication and PgBouncer are real. After each call a snapshot is read from the
catalogs and the pooler: grants (aclexplode), login, sequences, freeze state,
restore points, subscriptions, publications, slots, the endpoint's side and pause.

Retried tasks are Airflow's normal life (``retries``), and a task can die after
its work and before recording it: this is what makes a retry safe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.integration

STEP_XCOM_KEY = "bascule_step"


@dataclass
class FakeTI:
    """The slice of a task instance the actions use: ids and XCom, kept in a dict shared by the run."""

    store: dict[tuple[str, str], Any]
    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1

    def xcom_push(self, key: str, value: Any) -> None:
        # A round trip through JSON, as XCom would: a result that is not JSON-able fails here.
        self.store[(self.task_id, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.store.get((task_ids, key))


@dataclass
class FakeDagRun:
    conf: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeRun:
    plan: Any
    dag_id: str
    run_id: str = "idempotency__1"
    store: dict[tuple[str, str], Any] = field(default_factory=dict)

    def call(self, task_id: str, action: Callable[..., Any]) -> dict[str, Any]:
        """Run ``action`` as task ``task_id`` would, recording its result like RunbookStepOperator."""
        from bascule.operators.steps import StepContext

        ti = FakeTI(self.store, self.dag_id, self.run_id, task_id)
        ctx = StepContext(plan=self.plan, airflow={"ti": ti, "dag_run": FakeDagRun()}, step=task_id)
        result = action(ctx) or {}
        ti.xcom_push(STEP_XCOM_KEY, {"step": task_id, "task_id": task_id, "result": result})
        return result


def snapshot(lab: Any) -> dict[str, Any]:
    from bascule_lab.pgbouncer import LabPgBouncer

    out: dict[str, Any] = {}
    for cluster in ("legacy", "new"):
        with lab.connect(cluster, "clinic") as conn:
            side: dict[str, Any] = {
                "grants": conn.execute(
                    """SELECT c.relname, a.privilege_type, a.is_grantable
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         CROSS JOIN LATERAL aclexplode(c.relacl) a
                        WHERE n.nspname = 'clinic' AND a.grantee = 'clinic_app'::regrole ORDER BY 1, 2"""
                ).fetchall(),
                "login": conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles "
                                      "WHERE rolname = 'clinic_app'").fetchone(),
                "sequences": conn.execute("SELECT sequencename, last_value FROM pg_sequences "
                                          "WHERE schemaname = 'clinic' ORDER BY 1").fetchall(),
                "subscriptions": conn.execute("SELECT subname, subenabled FROM pg_subscription "
                                              "ORDER BY 1").fetchall(),
                "publications": conn.execute(
                    "SELECT pubname, schemaname, tablename, attnames::text FROM pg_publication_tables "
                    "ORDER BY 1, 2, 3").fetchall(),
                "slots": conn.execute("SELECT slot_name, plugin FROM pg_replication_slots ORDER BY 1").fetchall(),
            }
            has_meta = conn.execute("SELECT to_regclass('bascule_meta.freeze_state') IS NOT NULL").fetchone()[0]
            side["freeze_state"] = conn.execute(
                "SELECT freeze_id, role_name, grants::text, can_login, conn_limit, frozen_at, "
                "frozen_position::text, released_at FROM bascule_meta.freeze_state ORDER BY 1").fetchall() \
                if has_meta else []
            side["restore_points"] = conn.execute(
                "SELECT name, position::text, created_at FROM bascule_meta.restore_points ORDER BY 1").fetchall() \
                if has_meta else []
        out[cluster] = side
    pgbouncer = LabPgBouncer(lab)
    with psycopg.connect(pgbouncer.admin_dsn(), autocommit=True, prepare_threshold=None) as admin:
        cur = admin.execute("SHOW DATABASES")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    out["endpoint"] = {"points_to": pgbouncer.points_to(),
                       "paused": {r["name"]: int(r["paused"]) for r in rows if r["name"] in ("clinic", "clinic_smoke")}}
    return out


def _restore(lab: Any) -> None:
    from bascule_lab.pgbouncer import LabPgBouncer

    for cluster in ("legacy", "new"):
        with lab.connect(cluster) as conn:
            conn.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
    LabPgBouncer(lab).reset()


def _drop_replication(plan: Any) -> None:
    from bascule_lab.testing.replication import drop_both_directions

    drop_both_directions(plan)


@pytest.fixture()
def plan() -> Any:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return load_plan(LAB_PLAN)


@pytest.fixture()
def night_lab(fresh_lab: Any, airflow_env: Any, plan: Any) -> Iterator[Any]:
    from bascule_lab.scenario import start_forward_replication

    _restore(fresh_lab)
    start_forward_replication(plan)
    try:
        yield fresh_lab
    finally:
        # The lab is shared by the session: no flow, freeze or pause left behind.
        _drop_replication(plan)
        _restore(fresh_lab)


def _writes(side: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The application role's grants other than SELECT: what a freeze takes away."""
    return [g for g in side["grants"] if g[1] != "SELECT"]


def twice(run: FakeRun, lab: Any, task_id: str, action: Callable[..., Any]) -> tuple[dict, dict, dict]:
    """Call the step twice; the state after the second call must equal the state after the first."""
    first = run.call(task_id, action)
    after_first = snapshot(lab)
    second = run.call(task_id, action)
    after_second = snapshot(lab)
    assert after_second == after_first, f"{task_id}: the second run changed the state"
    return first, second, after_second


def test_every_step_run_twice_leaves_the_same_state(night_lab: Any, plan: Any) -> None:
    from bascule.runbook import actions, fallback

    lab = night_lab
    night = FakeRun(plan=plan, dag_id="cutover")
    before = snapshot(lab)

    # -- the night up to the GO LIVE gate, then NO-GO: the cutover's rollback.
    first, second, state = twice(night, lab, "restore_point", actions.restore_point)
    assert first["created"] and not second["created"] and first["position"] == second["position"]
    assert len(state["legacy"]["restore_points"]) == len(before["legacy"]["restore_points"]) + 1

    first, second, state = twice(night, lab, "freeze_source", actions.freeze_source)
    assert first["revoked"] > 0 and second["already_frozen"] and first["frozen_at"] == second["frozen_at"]
    assert _writes(state["legacy"]) == [] and state["legacy"]["login"] == (False, 0)
    assert state["endpoint"] == {"points_to": "legacy", "paused": {"clinic": 1, "clinic_smoke": 0}}

    _, _, state = twice(night, lab, "stop_replication", actions.stop_replication)
    assert state["new"]["subscriptions"] == [("bascule_sub", False)]

    first, second, state = twice(night, lab, "prepare_reverse_replication", actions.prepare_reverse_replication)
    assert not first["replaced_earlier"] and second["replaced_earlier"], "a second run makes a fresh slot"
    assert state["legacy"]["subscriptions"] == [("bascule_sub_reverse", False)]
    assert ("bascule_sub_reverse", "pgoutput") in state["new"]["slots"], "the slot keeps writes from now on"

    first, second, state = twice(night, lab, "fixups", actions.fixups)
    assert any(s["moved"] for s in first["sequences"]) and not any(s["moved"] for s in second["sequences"])

    first, second, state = twice(night, lab, "switch_endpoint", actions.switch_endpoint)
    assert first["switched"] and not second["switched"]
    assert state["endpoint"]["points_to"] == "new" and state["endpoint"]["paused"]["clinic"] == 1

    _, _, state = twice(night, lab, "rollback", actions.rollback)
    assert state["endpoint"] == {"points_to": "legacy", "paused": {"clinic": 0, "clinic_smoke": 0}}
    assert state["legacy"]["grants"] == before["legacy"]["grants"]
    assert state["legacy"]["login"] == before["legacy"]["login"]
    assert state["new"]["subscriptions"] == [("bascule_sub", True)], "forward replication resumed"
    assert state["legacy"]["subscriptions"] == [] and state["new"]["slots"] == before["new"]["slots"], \
        "the prepared reverse replication is dropped"

    # -- a second night, GO LIVE this time (steps already proven above run once).
    night = FakeRun(plan=plan, dag_id="cutover", run_id="idempotency__2")
    for task_id, action in (("freeze_source", actions.freeze_source), ("stop_replication", actions.stop_replication),
                            ("prepare_reverse_replication", actions.prepare_reverse_replication),
                            ("fixups", actions.fixups), ("switch_endpoint", actions.switch_endpoint)):
        night.call(task_id, action)
    _, _, state = twice(night, lab, "open_target_writes", actions.open_target_writes)
    assert state["endpoint"] == {"points_to": "new", "paused": {"clinic": 0, "clinic_smoke": 0}}

    _, _, state = twice(night, lab, "start_reverse_replication", actions.start_reverse_replication)
    assert state["legacy"]["subscriptions"] == [("bascule_sub_reverse", True)]
    assert {p[0] for p in state["new"]["publications"]} == {"bascule_pub_reverse"}

    first, _, state = twice(night, lab, "retire_forward_replication", actions.retire_forward_replication)
    assert first["retired"] and state["new"]["subscriptions"] == []
    assert "bascule_sub" not in {s[0] for s in state["legacy"]["slots"]}, "no slot holds the source's WAL"
    assert not {p[0] for p in state["legacy"]["publications"]} & {"bascule_pub"}

    # -- days later: the fallback (dags/rollback.py), and its undo.
    back = FakeRun(plan=plan, dag_id="rollback", run_id="idempotency__3")
    first, second, state = twice(back, lab, fallback.FREEZE_TARGET, fallback.freeze_target)
    assert second["already_frozen"] and first["position"] == second["position"]
    assert _writes(state["new"]) == [] and state["new"]["login"] == (False, 0)
    assert state["endpoint"] == {"points_to": "new", "paused": {"clinic": 1, "clinic_smoke": 0}}

    _, _, state = twice(back, lab, fallback.STOP, fallback.stop_reverse_replication)
    assert state["legacy"]["subscriptions"] == [("bascule_sub_reverse", False)]

    first, second, state = twice(back, lab, fallback.FIXUPS, fallback.fallback_fixups)
    assert any(s["moved"] for s in first["sequences"]) and not any(s["moved"] for s in second["sequences"])
    target_seq = dict(state["new"]["sequences"])
    for name, value in state["legacy"]["sequences"]:
        if target_seq[name] is not None:
            assert value is not None and value > target_seq[name], name

    first, second, state = twice(back, lab, fallback.SWITCH_BACK, fallback.switch_back)
    assert first["switched"] and not second["switched"]
    assert first["unfreeze"]["was_frozen"] and not second["unfreeze"]["was_frozen"]
    assert state["endpoint"] == {"points_to": "legacy", "paused": {"clinic": 0, "clinic_smoke": 0}}
    assert state["legacy"]["grants"] == before["legacy"]["grants"]
    assert state["legacy"]["login"] == before["legacy"]["login"]
    assert state["new"]["login"] == (False, 0), "the target stays frozen"

    first, second, state = twice(back, lab, fallback.UNDO, fallback.undo_fallback)
    assert first["source_refrozen"] and not second["source_refrozen"]
    assert state["endpoint"] == {"points_to": "new", "paused": {"clinic": 0, "clinic_smoke": 0}}
    assert state["new"]["grants"] == before["new"]["grants"] and state["new"]["login"] == before["new"]["login"]
    assert _writes(state["legacy"]) == [] and state["legacy"]["login"] == (False, 0)
    assert state["legacy"]["subscriptions"] == [("bascule_sub_reverse", True)]
