"""Keys hashed unless marked surrogate; a production plan refuses a weak or known HMAC key."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest

from bascule.paths import REPO_ROOT
from bascule.plan_cli import check_command
from bascule.privacy.keys import key_is_hashed, weak_key_reason

pytestmark = pytest.mark.unit

EXAMPLE = REPO_ROOT / "include" / "plans" / "production-oracle.example.yaml"
LAB_KEY = "lab-only-hmac-key-change-me"  # docker-compose.yaml's default: any reader of the repository has it


def test_a_key_is_hashed_unless_all_its_columns_are_surrogate() -> None:
    surrogate = ["clinic.patients.patient_id", "clinic.audit_log.audit_id"]
    assert not key_is_hashed("clinic.patients", ["patient_id"], surrogate=surrogate)
    assert key_is_hashed("clinic.patients", ["mrn"], surrogate=surrogate)
    assert key_is_hashed("clinic.visits", ["mrn", "visit_no"], surrogate=surrogate)  # nobody thought of it
    assert key_is_hashed("clinic.audit_log", ["audit_id", "logged_at"], surrogate=surrogate)
    assert key_is_hashed("clinic.patients", ["patient_id"], surrogate=surrogate,
                         identifying=["clinic.patients.patient_id"])


def test_the_lab_plan_marks_patient_id_surrogate_and_mrn_identifying() -> None:
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    plan = load_plan(LAB_PLAN)
    assert "clinic.patients.patient_id" in plan.validation.surrogate_keys
    assert "clinic.patients.mrn" not in plan.validation.surrogate_keys
    assert key_is_hashed("clinic.patients", ["mrn"], surrogate=plan.validation.surrogate_keys)


def test_weak_and_known_keys() -> None:
    assert "needs at least 32" in (weak_key_reason(LAB_KEY) or "")
    # Long enough, but written here: this file is in the repository, so anyone can read it.
    known = "a-key-written-in-a-test-file-of-the-repository-0042"
    assert "appears in bascule's repository" in (weak_key_reason(known) or "")
    assert "appears in bascule's repository" in (
        weak_key_reason("x" * 40, texts=["a line with " + "x" * 40 + " in it"]) or "")
    assert weak_key_reason(secrets.token_hex(32)) is None


def _production_plan(tmp_path: Path) -> Path:
    plan = tmp_path / "production.yaml"
    shutil.copy(EXAMPLE, plan)
    # The example's migration file is relative to its folder.
    text = plan.read_text()
    for line in text.splitlines():
        if line.strip().startswith("migration:"):
            target = (EXAMPLE.parent / line.split(":", 1)[1].strip().split()[0]).resolve()
            text = text.replace(line, f"  migration: {target}")
    plan.write_text(text)
    return plan


def test_plan_check_refuses_the_repositorys_lab_key_in_production(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _production_plan(tmp_path)
    assert check_command(str(plan)) == 0  # the plan alone is valid
    capsys.readouterr()
    monkeypatch.setenv("AIRFLOW_CONN_HOSP_KEY_HMAC", json.dumps({"conn_type": "generic", "password": LAB_KEY}))
    assert check_command(str(plan), connections=True) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and LAB_KEY not in err
    assert "validation.key_hash_conn_id" in err and "at least 32" in err

    monkeypatch.setenv("AIRFLOW_CONN_HOSP_KEY_HMAC",
                       json.dumps({"conn_type": "generic", "password": secrets.token_hex(32)}))
    assert check_command(str(plan), connections=True) == 2  # the key passes; the next connection is unknown
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be resolved" in err and "key_hash" not in err
