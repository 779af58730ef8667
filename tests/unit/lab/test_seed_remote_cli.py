"""`python -m bascule_lab.remote` refuses bad input with one line naming what is missing, before any I/O."""

from __future__ import annotations

import pytest

from bascule_lab.remote import main, password_env_var, seed_remote

pytestmark = pytest.mark.unit

PASSWORDS = {"bascule_admin": "a", "clinic_app": "b", "bascule_repl": "c"}


def test_missing_dsn_is_named(capsys):
    assert main(["--patients", "100"], environ={}) == 2
    assert capsys.readouterr().err.strip() == "seed-remote: missing environment variable: BASCULE_LAB_SOURCE_DSN"


def test_missing_passwords_are_named(capsys):
    env = {"BASCULE_LAB_SOURCE_DSN": "host=nowhere", "BASCULE_LAB_TARGET_DSN": "host=nowhere",
           password_env_var("clinic_app"): "x"}
    assert main(["--patients", "100"], environ=env) == 2
    err = capsys.readouterr().err
    assert "BASCULE_LAB_BASCULE_ADMIN_PASSWORD" in err and "BASCULE_LAB_BASCULE_REPL_PASSWORD" in err
    assert "BASCULE_LAB_CLINIC_APP_PASSWORD" not in err


def test_bad_scale_and_missing_migration_fail_before_connecting(tmp_path):
    with pytest.raises(ValueError, match="patients must be >= 100"):
        seed_remote("host=nowhere", "host=nowhere", 5, None, passwords=PASSWORDS)
    with pytest.raises(RuntimeError, match="release_migration: no such file"):
        seed_remote("host=nowhere", "host=nowhere", 100, tmp_path / "missing.sql", passwords=PASSWORDS)
