"""The suites' one file context, as the cutover's library call uses it: pass on a copy, fail on a gap."""

from __future__ import annotations

import os
from typing import Any

import pytest

from bascule_lab.testing.copy import copy_source_to_target

pytestmark = pytest.mark.integration


def test_run_suites_shares_the_operator_context(fresh_lab: Any, airflow_env: dict[str, str]) -> None:
    from bascule.plan import default_plan_path, load_plan
    from bascule.validation.runner import run_suites
    from bascule.validation.suites import datasource_env_var

    plan = load_plan(default_plan_path())
    copy_source_to_target(fresh_lab)
    ok = run_suites(plan, side="target", suites=["clinic_patients"])
    assert ok["ok"] and [s["suite"] for s in ok["suites"]] == ["clinic_patients"]
    assert datasource_env_var("target") not in os.environ
    with fresh_lab.connect("new", "clinic") as c:
        c.execute("SET session_replication_role = replica")
        c.execute("DELETE FROM clinic.patients WHERE patient_id = (SELECT max(patient_id) FROM clinic.patients)")
    bad = run_suites(plan, side="target", suites=["clinic_patients"])
    assert not bad["ok"]
    failed = {e["type"] for s in bad["suites"] for e in s["expectations"] if not e["success"]}
    assert "expect_table_row_count_to_equal" in failed
