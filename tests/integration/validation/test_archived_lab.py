"""Archived partitions on the lab: the comparison leaves their ranges out on both sides and names them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.testing.copy import copy_source_to_target

pytestmark = pytest.mark.integration

ARCHIVE_DB = "clinic_archive_loose"


def test_archived_partition_is_left_out_and_listed(fresh_lab: Any, airflow_env: dict[str, str]) -> None:
    from bascule.hooks.assessment import AssessmentHook
    from bascule.plan import default_plan_path, load_plan
    from bascule.preparation import storage
    from bascule.validation.report import render_summary
    from bascule.validation.service import full_comparison
    from bascule_lab.seed import PLANTED_WASTE

    plan = load_plan(default_plan_path())
    plan = plan.model_copy(update={"validation": plan.validation.model_copy(update={"wait_and_confirm_s": 0.0})})
    copy_source_to_target(fresh_lab)
    part = sorted(PLANTED_WASTE["archive_partitions"])[0]
    with fresh_lab.connect("legacy", "clinic") as c:
        archived_rows = c.execute(f"SELECT count(*) FROM {part}").fetchone()[0]
        total_rows = c.execute("SELECT count(*) FROM clinic.audit_log").fetchone()[0]
    assert archived_rows > 0
    target = AssessmentHook(db_conn_id="bascule_new")
    # The archive lives outside the target's cluster (the lab plan's bascule_archive, on the control cluster).
    with fresh_lab.connect("control") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {ARCHIVE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {ARCHIVE_DB} OWNER bascule_archive")
    archive = AssessmentHook(db_conn_id="bascule_archive", dbname=ARCHIVE_DB)
    try:
        action = storage.Action(storage.ActionKind.ARCHIVE_PARTITION, part, "test", 0, table=part,
                                root="clinic.audit_log")
        storage.apply_storage_actions(target, [action], schemas=["clinic"], archive=archive)
        with fresh_lab.connect("new", "clinic") as c:
            assert c.execute("SELECT to_regclass(%s)", (part,)).fetchone()[0] is None
            (key, lo, hi), = c.execute("SELECT key_column, range_from, range_to FROM "
                                       "bascule_meta.archived_partitions WHERE object = %s", (part,)).fetchall()
        assert key == "logged_at" and lo < hi

        report = full_comparison(plan, track_changes=False)
        assert report["ok"] and report["differences"] == 0, render_summary(report)
        audit = next(t for t in report["tables"] if t["table"] == "clinic.audit_log")
        assert audit["rows_source"] == audit["rows_target"] == total_rows - archived_rows
        (listed,) = audit["archived"]
        assert listed["partition"] == part and listed["rows_archived"] == archived_rows
        assert listed["status"].startswith("archived (verified at ")
        assert listed["status"].endswith(f", to {ARCHIVE_DB}.{part})")
        assert report["archived"] == [listed]
        summary = render_summary(report)
        assert f"left out: {part} ({archived_rows} rows) archived (verified at" in summary

        # Without the exclusion the same target reads as missing exactly the archived rows.
        blind = full_comparison(plan, track_changes=False, exclude_archived=False)
        audit = next(t for t in blind["tables"] if t["table"] == "clinic.audit_log")
        assert not blind["ok"] and blind["failed_tables"] == ["clinic.audit_log"]
        assert audit["counts"]["missing_on_target"] == archived_rows == blind["differences"]
        assert audit["archived"] == [] and blind["archived"] == []
        text = json.dumps(report) + summary + json.dumps(blind) + render_summary(blind)
        assert not [c for c in CANARY_STRINGS if c in text]
    finally:
        target.close()
        archive.close()
        with fresh_lab.connect("control") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {ARCHIVE_DB} WITH (FORCE)")
