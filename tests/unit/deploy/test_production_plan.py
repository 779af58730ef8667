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
