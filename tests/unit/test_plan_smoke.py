"""The plan's cutover.smoke section: typed checks, and one-line errors naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bascule.paths import LAB_PLAN, PLANS_DIR
from bascule.plan import PlanError, SmokeKind, load_plan

pytestmark = pytest.mark.unit

PLAN: dict[str, Any] = {
    "version": 1, "name": "unit", "mode": "lab",
    "source": {"conn_id": "src", "engine": "postgres", "app_role": "clinic_app"},
    "target": {"conn_id": "dst", "engine": "postgres", "app_role": "clinic_app"},
    "scope": {"schemas": ["clinic"]},
    "replication": {"method": "postgres-logical", "postgres_logical": {"replication_conn_id": "src_repl"}},
    "gates": {"go_for_freeze": {"title": "GO", "assigned_users": ["m"]},
              "go_live": {"title": "LIVE", "assigned_users": ["m"]}},
}
READ_KEY = {"name": "patient", "kind": "read", "sql": "SELECT min(patient_id) FROM clinic.encounters",
            "key": "patient_id"}
WRITE = {"name": "observation", "kind": "write",
         "sql": "INSERT INTO clinic.observations (encounter_id) VALUES (:patient_id) RETURNING observation_id",
         "key": "observation_id"}


def _load(tmp_path: Path, smoke: list[dict[str, Any]]) -> Any:
    data = copy.deepcopy(PLAN)
    data["cutover"] = {"smoke": smoke}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_plan(path)


def test_a_plan_without_smoke_checks_is_valid(tmp_path: Path) -> None:
    assert _load(tmp_path, []).cutover.smoke == ()


def test_checks_load_typed_in_order(tmp_path: Path) -> None:
    plan = _load(tmp_path, [READ_KEY, {"name": "chart", "kind": "read", "min_rows": 0,
                                       "sql": "SELECT 1 FROM clinic.patients WHERE patient_id = :patient_id"},
                            WRITE])
    read, chart, write = plan.cutover.smoke
    assert (read.kind, read.key, read.required_rows) == (SmokeKind.READ, "patient_id", 1)
    assert chart.required_rows == 0 and write.kind is SmokeKind.WRITE


@pytest.mark.parametrize(("smoke", "field", "message"), [
    ([{**READ_KEY, "kind": "delete"}], "cutover.smoke[0].kind", "must be one of read, write (got 'delete')"),
    ([{**READ_KEY, "sql": "   "}], "cutover.smoke[0].sql", "must not be empty"),
    ([{**READ_KEY, "sql": "SELECT 1;"}], "cutover.smoke[0].sql", "without a trailing ';'"),
    ([READ_KEY, {**WRITE, "sql": "INSERT INTO t VALUES (:encounter_id)"}], "cutover.smoke[1].sql",
     "binds :encounter_id, which is no key of an earlier read check (keys: patient_id)"),
    ([WRITE], "cutover.smoke[0].sql", "binds :patient_id, which is no key of an earlier read check (keys: none)"),
    ([READ_KEY, WRITE, {"name": "seen", "kind": "read", "sql": "SELECT 1 FROM t WHERE id = :observation_id"}],
     "cutover.smoke[2].sql", "is the key of a write, rolled back before the next check"),
    ([READ_KEY, {**READ_KEY, "key": "other"}], "cutover.smoke[1].name", "check 'patient' is listed twice"),
    ([READ_KEY, {**READ_KEY, "name": "again"}], "cutover.smoke[1].key", "key 'patient_id' is named by an earlier"),
    ([READ_KEY, {**WRITE, "min_rows": 1}], "cutover.smoke[1].min_rows", "is only for read checks"),
    ([{**READ_KEY, "min_rows": -1}], "cutover.smoke[0].min_rows", ">= 0"),
    ([{**READ_KEY, "name": "Patient Chart"}], "cutover.smoke[0].name", "lowercase id"),
    ([{**READ_KEY, "sqll": "SELECT 1"}], "cutover.smoke[0].sqll", "unknown field 'sqll' (did you mean 'sql'?)"),
])
def test_bad_checks_are_one_line_errors_naming_the_field(tmp_path: Path, smoke: list[dict[str, Any]],
                                                         field: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        _load(tmp_path, smoke)
    assert caught.value.field == field and message in caught.value.message
    assert "\n" not in str(caught.value)


def test_the_lab_plan_carries_the_chart_read_and_the_rolled_back_write() -> None:
    checks = {c.name: c for c in load_plan(LAB_PLAN).cutover.smoke}
    assert checks["encounters"].kind is SmokeKind.READ and ":patient_id" in checks["encounters"].sql
    assert checks["observation"].kind is SmokeKind.WRITE and checks["observation"].key == "observation_id"
    assert "clinic.observations" in checks["observation"].sql


def test_the_oracle_example_has_oracle_smoke_checks() -> None:
    checks = load_plan(PLANS_DIR / "production-oracle.example.yaml").cutover.smoke
    assert [c.kind for c in checks].count(SmokeKind.WRITE) == 1
    assert any("FETCH FIRST 1 ROWS ONLY" in c.sql for c in checks)
    assert all("hosp." in c.sql for c in checks)
