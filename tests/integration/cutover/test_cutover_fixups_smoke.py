"""Fix-ups on the target (sequences, constraints, triggers, orphans) and smoke tests through the endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from cutover_lab_helpers import catalog_snapshot  # type: ignore[import-not-found]

from bascule.cutover.fixups import SequenceMargin, advance_sequences, check_constraints
from bascule.cutover.smoke import smoke_through
from bascule.paths import LAB_PLAN
from bascule.plan import load_plan
from bascule_lab.canary import CANARY_STRINGS

pytestmark = pytest.mark.integration


def _lab_smoke() -> dict[str, Any]:
    """The lab plan's smoke checks (cutover.smoke) and the engine they run on."""
    return {"checks": load_plan(LAB_PLAN).cutover.smoke, "engine": "postgres"}


def test_sequences_advance_past_the_source_once_and_never_back(cutover_lab: Any, source_db: Any,
                                                                target_db: Any) -> None:
    lab = cutover_lab
    source = dict(catalog_snapshot(lab, "legacy")["sequences"])
    first = advance_sequences(source=source_db, target=target_db, schemas=["clinic"])
    after_first = catalog_snapshot(lab, "new")["sequences"]
    assert dict(after_first)["encounters_encounter_id_seq"] == source["encounters_encounter_id_seq"] + 1000
    assert all(a.moved for a in first if a.source_value is not None)

    second = advance_sequences(source=source_db, target=target_db, schemas=["clinic"])
    assert not any(a.moved for a in second)
    assert catalog_snapshot(lab, "new")["sequences"] == after_first

    with lab.connect("new", "clinic") as su:
        su.execute("SELECT setval('clinic.patients_patient_id_seq', 10000000)")
    advance_sequences(source=source_db, target=target_db, schemas=["clinic"],
                      margin=SequenceMargin(absolute=5, fraction=0))
    assert dict(catalog_snapshot(lab, "new")["sequences"])["patients_patient_id_seq"] == 10000000


def test_constraint_check_finds_what_replication_skipped(cutover_lab: Any, target_db: Any) -> None:
    lab = cutover_lab
    assert check_constraints(target_db, schemas=["clinic"]).ok
    with lab.connect("new", "clinic") as su:
        su.execute("ALTER TABLE clinic.encounters ADD CONSTRAINT encounters_ward_set CHECK (ward <> '') NOT VALID")
        su.execute("CREATE FUNCTION clinic.touch() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RETURN NEW; END $$")
        su.execute("CREATE TRIGGER patients_touch BEFORE UPDATE ON clinic.patients "
                   "FOR EACH ROW EXECUTE FUNCTION clinic.touch()")
        su.execute("ALTER TABLE clinic.patients DISABLE TRIGGER patients_touch")
        # What the apply worker can do: a child row whose parent never arrived.
        with su.transaction():
            su.execute("SET LOCAL session_replication_role = replica")
            su.execute("INSERT INTO clinic.encounters (patient_id, hospital_id, attending_staff_id, "
                       "encounter_type, ward, admitted_at) VALUES (424242, 1, 1, 'inpatient', 'W', now())")
    report = check_constraints(target_db, schemas=["clinic"])
    assert report.validated_now == ("clinic.encounters.encounters_ward_set",)
    assert report.not_validated == ()  # validated just now
    assert [(f.table, f.name, f.kind) for f in report.silent_triggers] == [("patients", "patients_touch", "disabled")]
    orphans = {f.name: f.detail["orphan_rows"] for f in report.orphans}
    assert orphans["encounters_patient_id_fkey"] == 1 and not report.ok
    assert check_constraints(target_db, schemas=["clinic"]).as_dict() == {**report.as_dict(), "validated_now": []}


def test_smoke_through_the_endpoint_while_the_app_entry_is_paused(cutover_lab: Any, endpoint: Any) -> None:
    with cutover_lab.connect("legacy", "clinic") as su:
        (before,) = su.execute("SELECT count(*) FROM clinic.observations").fetchone()
    endpoint.pause()
    result = smoke_through("bascule_endpoint_app", database="clinic_smoke", **_lab_smoke())
    assert result.ok and result.server == "bascule-legacy" and result.chart["encounters"] >= 1
    assert result.observation_id is not None
    with cutover_lab.connect("legacy", "clinic") as su:
        assert su.execute("SELECT count(*) FROM clinic.observations").fetchone() == (before,)  # rolled back
    text = repr(result.as_dict())
    assert not [c for c in CANARY_STRINGS if c in text]


def test_smoke_reports_a_refused_write_by_class_only(cutover_lab: Any, source_db: Any) -> None:
    with cutover_lab.connect("legacy") as su:
        su.execute("ALTER ROLE clinic_app CONNECTION LIMIT -1")
    with cutover_lab.connect("legacy", "clinic") as su:
        su.execute("REVOKE INSERT ON clinic.observations FROM clinic_app")
    try:
        result = smoke_through("bascule_endpoint_app", database="clinic_smoke", **_lab_smoke())
        assert result.read_ok and not result.write_ok and result.write_error == "InsufficientPrivilege"
    finally:
        with cutover_lab.connect("legacy", "clinic") as su:
            su.execute("GRANT INSERT ON clinic.observations TO clinic_app")
