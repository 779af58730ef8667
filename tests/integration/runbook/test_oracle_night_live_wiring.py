"""The live Oracle night's wiring, where no Oracle exists: with the variables set, ``make test-oracle``'s
night (test_oracle_night_live.py) starts, refuses without the disposable confirmation, and with it fails fast
on an unreachable database, naming the variable and the connection, never printing a password."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bascule.paths import REPO_ROOT
from bascule_lab.testing import oracle_live as live

pytestmark = pytest.mark.integration

SECRET = "n0t-a-real-s3cret"
NIGHT = "tests/integration/runbook/test_oracle_night_live.py"


def _night(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASCULE_ORACLE_", "BASCULE_GG_"))}
    env.update({var: f"bascule_admin/{SECRET}@127.0.0.1:1/NONE" for var in
                (live.SOURCE_DSN, live.SOURCE_APP_DSN, live.TARGET_DSN, live.TARGET_APP_DSN)})
    env.update({live.GG_URL: "http://127.0.0.1:1", live.GG_USER: "bascule", live.GG_PASSWORD: SECRET, **extra})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "oracle_live",
                           "--tb=short", NIGHT], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_live_night_refuses_without_the_confirmation_then_fails_on_an_unreachable_source_naming_it() -> None:
    refused = _night()
    out = refused.stdout + refused.stderr
    # The refusal is the fixture's: pytest counts it an error of the test.
    assert refused.returncode == 1 and "1 error" in out, out[-3000:]
    assert "refusing the live Oracle night" in out and f"{live.DISPOSABLE}=yes" in out, out[-3000:]
    assert SECRET not in out and "Traceback" not in out and "During handling" not in out, out[-3000:]

    unreachable = _night(**{live.DISPOSABLE: "yes"})
    out = unreachable.stdout + unreachable.stderr
    assert unreachable.returncode == 1 and "1 error" in out, out[-3000:]
    # The source's migration connection is the first the night opens; the error says which and why.
    assert live.SOURCE_DSN in out and "hosp_prod_legacy" in out and "cannot connect" in out, out[-3000:]
    assert "bascule_admin@127.0.0.1:1/NONE" in out
    assert SECRET not in out and "Traceback" not in out and "During handling" not in out, out[-3000:]
