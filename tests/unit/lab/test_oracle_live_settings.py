"""The live Oracle suite's settings (bascule_lab.testing.oracle_live) and ``make test-oracle``'s skip line."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from bascule.paths import REPO_ROOT
from bascule_lab.testing import oracle_live as live

pytestmark = pytest.mark.unit

SECRET = "s3cr@t/pw"


def _makefile_vars() -> tuple[str, ...]:
    text = (REPO_ROOT / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(r"^ORACLE_LIVE_VARS := (.+)$", text, re.MULTILINE)
    assert m, "the Makefile has no ORACLE_LIVE_VARS"
    return tuple(m[1].split())


def test_the_makefile_asks_for_what_the_night_needs() -> None:
    assert _makefile_vars() == live.NIGHT_VARS


def test_make_test_oracle_without_the_variables_says_what_it_needs_and_exits_0() -> None:
    env = {k: v for k, v in os.environ.items() if k not in live.NIGHT_VARS}
    env["BASCULE_GG_URL"] = "http://127.0.0.1:1"  # one set: the line names only the others
    done = subprocess.run(["make", "-s", "test-oracle"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("test-oracle: skipped: set "), done.stdout
    named = lines[0].removeprefix("test-oracle: skipped: set ").split(" (")[0].split()
    assert named == [v for v in live.NIGHT_VARS if v != "BASCULE_GG_URL"]


def test_a_dsn_becomes_an_oracle_connection() -> None:
    env = {live.SOURCE_DSN: f"bascule_admin/{SECRET}@db.example:1522/HOSPPDB",
           live.TARGET_DSN: f"bascule_admin/{SECRET}@db2.example/HOSP19"}
    source = json.loads(live.oracle_connection(live.SOURCE_DSN, env))
    assert source == {"conn_type": "oracle", "host": "db.example", "port": 1522, "login": "bascule_admin",
                      "password": SECRET, "extra": {"service_name": "HOSPPDB"}}
    assert json.loads(live.oracle_connection(live.TARGET_DSN, env))["port"] == 1521
    assert live.dsn_target(live.SOURCE_DSN, env) == "bascule_admin@db.example:1522/HOSPPDB"


@pytest.mark.parametrize("value", [f"bascule_admin:{SECRET}@db.example/HOSP", "bascule_admin/no-host-here",
                                   f"bascule_admin/{SECRET}@db.example:port/HOSP"])
def test_a_malformed_dsn_is_named_and_not_shown(value: str) -> None:
    with pytest.raises(live.LiveSettingError) as caught:
        live.oracle_connection(live.TARGET_DSN, {live.TARGET_DSN: value})
    assert live.TARGET_DSN in str(caught.value) and SECRET not in str(caught.value)
    assert "no-host-here" not in str(caught.value)


def test_the_goldengate_connection_and_a_bad_url() -> None:
    env = {live.GG_URL: "https://ogg.example/hospdep/adminsrvr/", live.GG_USER: "bascule",
           live.GG_PASSWORD: SECRET, live.GG_VERIFY: "false"}
    conn = json.loads(live.goldengate_connection(env))
    assert (conn["host"], conn["port"], conn["schema"], conn["extra"]) == (
        "ogg.example", None, "https", {"base_path": "/hospdep/adminsrvr", "verify": False})
    with pytest.raises(live.LiveSettingError, match=live.GG_URL):
        live.goldengate_connection({**env, live.GG_URL: "ogg.example:9012"})
    with pytest.raises(live.LiveSettingError, match=live.GG_PASSWORD):
        live.goldengate_connection({k: v for k, v in env.items() if k != live.GG_PASSWORD})


@pytest.mark.parametrize("value", [None, "", "true", "YES", "no"])
def test_the_live_night_refuses_without_the_explicit_confirmation(value: str | None) -> None:
    env = {} if value is None else {live.DISPOSABLE: value}
    with pytest.raises(live.LiveSettingError, match=f"refusing the live Oracle night.*{live.DISPOSABLE}=yes"):
        live.require_disposable(env)
    live.require_disposable({live.DISPOSABLE: "yes"})


def test_the_endpoint_command_plan_and_outcome() -> None:
    assert live.endpoint_command({}) == [str(live.WORKED_ENDPOINT)] and live.WORKED_ENDPOINT.is_file()
    assert live.endpoint_command({live.ENDPOINT_COMMAND: "/opt/site/switch.sh --zone 'hosp db'"}) == [
        "/opt/site/switch.sh", "--zone", "hosp db"]
    with pytest.raises(live.LiveSettingError, match=live.ENDPOINT_COMMAND):
        live.endpoint_command({live.ENDPOINT_COMMAND: "'unclosed"})
    assert live.plan_file({}) == live.EXAMPLE_PLAN and live.EXAMPLE_PLAN.is_file()
    assert live.outcome({}) == "go-live" and live.outcome({live.OUTCOME: "rollback"}) == "rollback"
    with pytest.raises(live.LiveSettingError, match=live.OUTCOME):
        live.outcome({live.OUTCOME: "maybe"})
