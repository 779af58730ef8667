"""The example production plan (Oracle 19c -> 19c, GoldenGate, 2 h, 10M patients) passes `bascule plan check`."""

from __future__ import annotations

import pytest

from bascule.paths import PLANS_DIR
from bascule.plan import load_plan
from bascule.plan_cli import EXIT_OK, check_command

pytestmark = pytest.mark.unit

PRODUCTION = PLANS_DIR / "production-oracle.example.yaml"


def test_production_example_passes_plan_check(capsys):
    assert check_command(str(PRODUCTION)) == EXIT_OK
    out = capsys.readouterr()
    assert out.err == ""
    assert "ok: plan 'hospital-prod-oracle', mode production, oracle -> oracle via goldengate" in out.out
    assert "budget 2h" in out.out


def test_production_example_matches_what_docs_production_md_explains():
    plan = load_plan(PRODUCTION)
    assert plan.mode.value == "production" and not plan.allows_auto_answer
    assert plan.budget_seconds == 2 * 3600
    assert plan.replication.goldengate is not None
    # Every gate names the people who may answer it: production never auto-answers.
    assert plan.gates and all(gate.assigned_users for gate in plan.gates.values())
    assert plan.downtime.point_of_no_return in plan.gates


def test_the_example_matches_the_mission_an_older_source_a_new_release_and_suites_that_exist():
    from bascule.validation.suites import SUITES_DIR, load_suite_file

    plan = load_plan(PRODUCTION)
    assert "12.2" in plan.description and "19c" in plan.description and "release 4 -> 5" in plan.description
    assert plan.release is not None and plan.release.column_mapping, "the new application release maps columns"
    mapping = plan.release.column_mapping
    assert any(m.renamed for m in mapping.values()) and any(m.added for m in mapping.values())
    assert plan.validation.suites and all((SUITES_DIR / f"{s}.json").exists() for s in plan.validation.suites)
    for suite in plan.validation.suites:
        load_suite_file(suite)  # loads: its table and parameters are well formed
    assert plan.gates["data_verified"].after == "final_validation"
    gg = plan.replication.goldengate
    assert gg is not None and gg.reverse_extract and gg.reverse_replicat and gg.heartbeat_owner
    assert plan.source.migration_user in plan.source.allowed_writers
