"""The window's deltas (ADR 0061) on the lab: suites and foreign keys proven in full at a baseline, then only
on the rows changed since, and still catching what the apply worker can break with its checks off."""

from __future__ import annotations

from typing import Any

import pytest

from bascule_lab.testing.copy import copy_source_to_target

pytestmark = pytest.mark.integration


def test_the_window_checks_only_what_changed_and_still_catches_it(fresh_lab: Any, airflow_env: dict[str, str]
                                                                   ) -> None:
    from bascule.cutover.fixups import check_constraints
    from bascule.hooks.cutover import CutoverDatabaseHook
    from bascule.hooks.validation import ValidationHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.validation.delta import DeltaTracker, delta_slot, referenced_tables
    from bascule.validation.runner import run_baseline_suites, run_suites_in_window
    from bascule.validation.service import tables_in_scope
    from bascule.validation.suites import load_suite_file

    plan = load_plan(default_plan_path())
    copy_source_to_target(fresh_lab)
    hook = ValidationHook(db_conn_id=plan.target.conn_id, engine="postgres")
    target = CutoverDatabaseHook(db_conn_id=plan.target.conn_id, engine="postgres")
    suites_slot = DeltaTracker(hook=hook, slot=delta_slot("delta_test", "suites"))
    fk_slot = DeltaTracker(hook=hook, slot=delta_slot("delta_test", "constraints"))
    docs = [load_suite_file(n) for n in plan.validation.suites]
    source = ValidationHook(db_conn_id=plan.source.conn_id, engine="postgres")
    every_table = [(r.schema, r.table) for r in tables_in_scope(plan, source)]
    try:
        # The baseline: trackers first, then everything in full.
        suites_slot.start()
        fk_slot.start()
        assert run_baseline_suites(plan)["ok"]
        assert check_constraints(target, schemas=["clinic"]).ok

        # Nothing changed: the window proves it without reading a row of any table.
        changed, reading = suites_slot.changes(referenced_tables(docs))
        assert reading["rows_changed"] == 0
        quiet = run_suites_in_window(plan, changed=changed)
        assert quiet["ok"] and {s["run"] for s in quiet["suites"]} == {"delta"}
        assert all(s["rows_in_scope"] == 0 for s in quiet["suites"])
        patients = next(s for s in quiet["suites"] if s["suite"] == "clinic_patients")
        assert {p.split(":")[0] for p in patients["proven_by_index"]} == {"patient_id", "mrn", "nin"}

        # What the apply worker can do with its checks off: a patient deleted under its encounters and
        # prescriptions, a dose out of the suite's range.
        with fresh_lab.connect("new", "clinic") as c:
            c.execute("SET session_replication_role = replica")
            (victim, encounters) = c.execute(
                "SELECT patient_id, count(*) FROM clinic.encounters GROUP BY patient_id ORDER BY 2 DESC, 1"
                " LIMIT 1").fetchone()
            c.execute("DELETE FROM clinic.patients WHERE patient_id = %s", (victim,))
            c.execute("UPDATE clinic.prescriptions SET dose_mg = 200000 WHERE prescription_id ="
                      " (SELECT min(prescription_id) FROM clinic.prescriptions WHERE patient_id <> %s)", (victim,))
            (prescribed,) = c.execute("SELECT count(*) FROM clinic.prescriptions WHERE patient_id = %s",
                                      (victim,)).fetchone()
            (rows,) = c.execute("SELECT count(*) FROM clinic.encounters").fetchone()

        changed, reading = suites_slot.changes(referenced_tables(docs))
        # Peeked, not consumed: a retry of the step reads the same changes.
        assert suites_slot.changes(referenced_tables(docs))[0] == changed
        assert reading["rows_changed"] == 2 and reading["to_position"]
        window = run_suites_in_window(plan, changed=changed, tracking=reading)
        outcome = {s["suite"]: s for s in window["suites"]}
        assert not window["ok"]
        assert {n for n, s in outcome.items() if not s["success"]} == {
            "clinic_patients", "clinic_encounters", "clinic_prescriptions"}
        assert outcome["clinic_observations"]["success"] and outcome["clinic_observations"]["run"] == "delta"
        failed = {(n, e["type"]) for n, s in outcome.items() for e in s["expectations"] if not e["success"]}
        # The count is re-run whole; the orphans are found through the deleted parent's key; the dose is a
        # changed row's.
        assert ("clinic_patients", "expect_table_row_count_to_equal") in failed
        assert ("clinic_encounters", "unexpected_rows_expectation") in failed
        assert ("clinic_prescriptions", "expect_column_values_to_be_between") in failed
        # Only the rows involved were in the batch, not the table.
        assert outcome["clinic_encounters"]["rows_in_scope"] == 1 < rows

        fk_changed, _ = fk_slot.changes(every_table)
        report = check_constraints(target, schemas=["clinic"], changed=fk_changed)
        orphans = {f.name: f.detail["orphan_rows"] for f in report.orphans}
        assert orphans["encounters_patient_id_fkey"] == encounters
        if prescribed:
            assert orphans["prescriptions_patient_id_fkey"] == prescribed
        scopes = {s["foreign_key"].rsplit(".", 1)[1]: s["checked"] for s in report.orphan_scope}
        assert scopes["encounters_patient_id_fkey"] == "changed rows"
        assert scopes["staff_hospital_id_fkey"] == "unchanged since the full count"
        # The full count agrees: the delta missed nothing.
        full = {f.name: f.detail["orphan_rows"] for f in check_constraints(target, schemas=["clinic"]).orphans}
        assert full == orphans
    finally:
        suites_slot.stop()
        fk_slot.stop()
