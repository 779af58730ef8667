"""The comparison engine on the lab: zero differences on a faithful copy, exactly the 18 planted ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bascule_lab.canary import CANARY_PATIENTS, CANARY_STRINGS
from bascule_lab.testing.copy import copy_source_to_target, plant_differences

pytestmark = pytest.mark.integration


def _plan(**validation: Any) -> Any:
    from bascule.plan import default_plan_path, load_plan

    plan = load_plan(default_plan_path())
    return plan.model_copy(update={"validation": plan.validation.model_copy(update=validation)})


def _found(report: dict[str, Any]) -> dict[str, set[tuple[str, Any]]]:
    return {kind: {(t["table"], tuple(k) if isinstance(k, list) else k) for t in report["tables"]
                   for k in t["keys"][kind]}
            for kind in ("changed", "missing_on_target", "extra_on_target")}


def _canary_patient_id(lab: Any) -> int:
    with lab.connect("legacy", "clinic") as c:
        return c.execute("SELECT patient_id FROM clinic.patients WHERE mrn = %s",
                         (CANARY_PATIENTS[0]["mrn"],)).fetchone()[0]


def _no_canary(text: str) -> None:
    assert not [c for c in CANARY_STRINGS if c in text], "a canary value leaked"


@pytest.fixture()
def copied(fresh_lab: Any) -> Any:
    copy_source_to_target(fresh_lab)
    return fresh_lab


def test_identical_then_exactly_the_18_differences(copied: Any, airflow_env: dict[str, str]) -> None:
    from bascule.validation.report import render_summary
    from bascule.validation.service import full_comparison

    plan = _plan(wait_and_confirm_s=0.0)
    same = full_comparison(plan, track_changes=False)
    assert same["ok"] and same["differences"] == 0
    assert {t["table"] for t in same["tables"]} == {
        "clinic.hospitals", "clinic.staff", "clinic.patients", "clinic.encounters", "clinic.prescriptions",
        "clinic.observations", "clinic.clinical_notes", "clinic.audit_log"}
    patients = next(t for t in same["tables"] if t["table"] == "clinic.patients")
    # The release's added column is named, with its reason; the widened phone is compared.
    assert "preferred_language" in patients["not_compared"] and "phone" in patients["columns_compared"]
    assert patients["rows_source"] == patients["rows_target"] > 0
    expected = plant_differences(copied, patient_id=_canary_patient_id(copied))
    diff = full_comparison(plan, track_changes=False)
    assert not diff["ok"] and diff["differences"] == 18
    assert _found(diff) == expected
    # The first pass split into block ranges on serial sessions sharing a snapshot (ADR 0065; the lab's
    # tables are below the default size, so here every plain table is split) finds exactly the same.
    split = full_comparison(plan, track_changes=False, chunk_min_blocks=1)
    assert _found(split) == expected
    chunked = {t["table"]: t["block_chunks"] for t in split["tables"]}
    assert chunked["clinic.observations"] == {"source": 3, "target": 3}
    assert chunked["clinic.audit_log"] == {}  # partitioned: one query through the root
    assert [t["rows_source"] for t in split["tables"]] == [t["rows_source"] for t in diff["tables"]]
    assert sorted(diff["failed_tables"]) == sorted({t for keys in expected.values() for t, _ in keys})
    text = json.dumps(diff) + render_summary(diff)
    _no_canary(text)


def test_identifying_keys_are_keyed_hashes(copied: Any, airflow_env: dict[str, str]) -> None:
    from airflow.sdk import BaseHook

    from bascule.privacy.keys import HASH_PREFIX, KeyHasher
    from bascule.validation.service import full_comparison

    pid = _canary_patient_id(copied)
    expected = plant_differences(copied, patient_id=pid)
    plan = _plan(wait_and_confirm_s=0.0, identifying_keys=("clinic.patients.mrn", "clinic.patients.patient_id"))
    report = full_comparison(plan, track_changes=False)
    patients = next(t for t in report["tables"] if t["table"] == "clinic.patients")
    assert patients["keys_hashed"] and patients["counts"]["changed"] == 3
    assert all(k.startswith(HASH_PREFIX) for k in patients["keys"]["changed"])
    secret = BaseHook.get_connection("bascule_key_hmac").password.encode()
    wanted = {KeyHasher(secret).hash("clinic.patients", [k]) for t, k in expected["changed"]
              if t == "clinic.patients"}
    assert set(patients["keys"]["changed"]) == wanted
    assert str(pid) not in json.dumps(patients["keys"])
    encounters = next(t for t in report["tables"] if t["table"] == "clinic.encounters")
    assert not encounters["keys_hashed"]


def test_incremental_finds_the_same_18_after_a_full_comparison(copied: Any, airflow_env: dict[str, str]) -> None:
    from bascule.validation.service import full_comparison, incremental_comparison, stop_tracking

    plan = _plan(wait_and_confirm_s=0.0)
    full = full_comparison(plan, track_changes=True)
    try:
        assert full["ok"] and full["tracking"]["slot"]
        expected = plant_differences(copied)
        inc = incremental_comparison(plan, full)
        assert inc["kind"] == "incremental" and inc["differences"] == 18
        assert _found(inc) == expected
        assert all(t["full_recheck_reason"] is None for t in inc["tables"])
        assert sum(t["rechecked_keys"] for t in inc["tables"]) == 18
        # A second incremental run re-checks the previous differences: still the same 18.
        again = incremental_comparison(plan, inc)
        assert _found(again) == expected
    finally:
        stop_tracking(plan)


def test_wait_and_confirm_drops_rows_that_arrive_while_waiting(copied: Any, airflow_env: dict[str, str]) -> None:
    from bascule.validation.compare import Comparator, CompareSettings
    from bascule.validation.service import hooks_for, tables_in_scope

    plan = _plan()
    with copied.connect("new", "clinic") as c:
        c.execute("UPDATE clinic.staff SET email = email || 'x' WHERE staff_id IN (3, 4)")

    def replication_catches_up(_seconds: float) -> None:
        with copied.connect("legacy", "clinic") as s, copied.connect("new", "clinic") as t:
            (email,) = s.execute("SELECT email FROM clinic.staff WHERE staff_id = 3").fetchone()
            t.execute("UPDATE clinic.staff SET email = %s WHERE staff_id = 3", (email,))

    source, target = hooks_for(plan)
    comparator = Comparator(source=source, target=target, settings=CompareSettings(wait_and_confirm_s=1.0),
                            surrogate_keys=plan.validation.surrogate_keys, sleep=replication_catches_up)
    staff = next(r for r in tables_in_scope(plan, source) if r.table == "staff")
    result = comparator.compare([staff]).to_json()["tables"][0]
    assert result["keys"]["changed"] == [4] and result["in_flight_resolved"] == 1


def test_unmapped_column_is_named_and_fails(copied: Any, airflow_env: dict[str, str]) -> None:
    from bascule.validation.service import full_comparison

    with copied.connect("new", "clinic") as c:
        c.execute("ALTER TABLE clinic.hospitals ADD COLUMN beds_icu integer")
    report = full_comparison(_plan(wait_and_confirm_s=0.0), track_changes=False, tables=["clinic.hospitals"])
    (hospitals,) = report["tables"]
    assert hospitals["status"] == "unmapped_columns" and hospitals["unmapped"] == ["target.beds_icu"]
    assert report["failed_tables"] == ["clinic.hospitals"]


def test_database_errors_are_sanitised(copied: Any, airflow_env: dict[str, str]) -> None:
    from bascule.validation.compare import Comparator, CompareSettings
    from bascule.validation.service import hooks_for, tables_in_scope

    plan = _plan()
    source, target = hooks_for(plan)
    comparator = Comparator(source=source, target=target, settings=CompareSettings(),
                            surrogate_keys=plan.validation.surrogate_keys)
    patients = next(r for r in tables_in_scope(plan, source) if r.table == "patients")
    # PostgreSQL quotes the offending value: invalid input syntax for type bigint: "MRNCANARY0001".
    result = comparator.recheck(patients, [(CANARY_PATIENTS[0]["mrn"],)]).to_json()
    assert result["status"] == "error"
    # The class, the SQLSTATE and the names the plan knows: no word of the driver's message.
    assert result["error"].startswith("ValidationDatabaseError: bascule_legacy: InvalidTextRepresentation "
                                      "[SQLSTATE 22P02]")
    assert "\n" not in result["error"]
    _no_canary(json.dumps(result))



def test_range_hashes_are_planned_as_parallel_hash_aggregates(lab: Any) -> None:
    """Left alone the planner sorts every row before grouping by range (ADR 0020); our session settings stop it."""
    from bascule.engines.postgres import PostgresDialect

    dialect = PostgresDialect()
    sql, params = dialect.range_hashes_sql("public", "plan_probe", key_column="id",
                                           row_hash="hashtextextended(t::text, 0)", lo=1, width=100_000)
    with lab.connect("legacy") as c:
        c.execute("DROP TABLE IF EXISTS public.plan_probe")
        c.execute("CREATE UNLOGGED TABLE public.plan_probe AS SELECT g AS id, md5(g::text) AS v"
                  " FROM generate_series(1, 400000) g")
        c.execute("ANALYZE public.plan_probe")
        try:
            def plan(statements: list[str]) -> str:
                c.execute("RESET ALL")
                for statement in statements:
                    c.execute(statement)
                return "\n".join(r[0] for r in c.execute(f"EXPLAIN {sql}", params).fetchall())

            assert "Sort" in plan(["SET max_parallel_workers_per_gather = 2"]), "the probe no longer shows the problem"
            tuned = plan(dialect.session_setup_sql(parallel_workers=2))
            # A block range on a serial session: a TID range scan hashed and aggregated in the one process.
            block_sql, block_params = dialect.block_range_hashes_sql(
                "public", "plan_probe", key_column="id", row_hash="hashtextextended(t::text, 0)", lo=1,
                width=100_000, blocks=(10, 20))
            c.execute("RESET ALL")
            for statement in dialect.session_setup_sql(parallel_workers=0):
                c.execute(statement)
            ranged = "\n".join(r[0] for r in c.execute(f"EXPLAIN {block_sql}", block_params).fetchall())
        finally:
            c.execute("RESET ALL")  # the session settings make it read-only, like a comparison's
            c.execute("DROP TABLE public.plan_probe")
    # Whether the workers also aggregate (Partial HashAggregate) is the planner's cost call; either way
    # they compute the row hashes and nothing sorts.
    assert "HashAggregate" in tuned and "Parallel Seq Scan" in tuned and "Sort" not in tuned, tuned
    assert "HashAggregate" in ranged and "Tid Range Scan" in ranged, ranged
    assert "Gather" not in ranged and "Sort" not in ranged, ranged


def test_pooled_sessions_are_reused_and_a_failed_one_is_not(lab: Any, airflow_env: dict[str, str]) -> None:
    from bascule.hooks.validation import ValidationDatabaseError, ValidationHook

    hook = ValidationHook(db_conn_id=_plan().source.conn_id, engine="postgres")
    pid = ("SELECT pg_backend_pid()", {})
    with hook.pooled():
        with hook.session() as a:
            first = a.rows(pid)[0][0]
        with hook.session() as b:
            assert b.rows(pid)[0][0] == first
        with hook.session(parallel_workers=0) as serial:  # another setting: another session
            assert serial.rows(pid)[0][0] != first
        with pytest.raises(ValidationDatabaseError), hook.session() as c:
            c.rows(("SELECT 1/0", {}))
        with hook.session() as d:
            assert d.rows(pid)[0][0] != first
    with hook.session() as e:
        assert e.rows(pid)[0][0] != first
