"""The worked `command` endpoint for Oracle (scripts/endpoint/oracle-dns-service.sh) driven by CommandEndpoint.

dig, nsupdate and sqlplus are stand-ins on PATH that keep the DNS record and the service's state in files,
so the script's own logic (which side, is-paused, idempotent verbs, errors not swallowed) runs for real.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bascule.cutover.endpoint import CommandEndpoint, EndpointError, Side
from bascule.paths import REPO_ROOT

pytestmark = pytest.mark.unit

SCRIPT = REPO_ROOT / "scripts" / "endpoint" / "oracle-dns-service.sh"

STUBS = {
    "dig": '#!/bin/sh\ncat "$STATE/cname"\n',
    "nsupdate": ('#!/bin/sh\necho "nsupdate $*" >> "$STATE/calls"\n'
                 'host=$(sed -n "s/^update add [^ ]* [0-9]* CNAME //p")\nprintf "%s\\n" "$host" > "$STATE/cname"\n'),
    # `sqlplus -s -L <connect>`: the connect string names the side; the script's SQL arrives on stdin.
    "sqlplus": ('#!/bin/sh\nside=$3\nsql=$(cat)\necho "sqlplus $side $(echo "$sql" | grep -E "SERVICE|COUNT" | '
                'tr -s " ")" >> "$STATE/calls"\n'
                'case "$sql" in\n  *FAIL_ME*) echo "ORA-01031: insufficient privileges"; exit 1 ;;\n'
                '  *STOP_SERVICE*) echo 0 > "$STATE/svc_$side" ;;\n  *START_SERVICE*) echo 1 > "$STATE/svc_$side" ;;\n'
                '  *COUNT*) cat "$STATE/svc_$side" ;;\nesac\n'),
}


@pytest.fixture()
def endpoint(tmp_path: Path) -> tuple[CommandEndpoint, Path]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(stat.S_IRWXU)
    (state / "cname").write_text("legacy-db.hosp.example.\n")
    (state / "svc_src_wallet").write_text("1\n")
    (state / "svc_tgt_wallet").write_text("1\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(state), "HOSP_DNS_NAME": "hosp-db.hosp.example",
           "HOSP_DNS_SERVER": "10.0.0.53", "HOSP_SOURCE_HOST": "legacy-db.hosp.example",
           "HOSP_TARGET_HOST": "new-db.hosp.example", "HOSP_SERVICE": "HOSP_APP_SVC",
           "HOSP_SOURCE_SQL": "src_wallet", "HOSP_TARGET_SQL": "tgt_wallet"}
    return CommandEndpoint(command=[str(SCRIPT)], env=env), state


def test_the_night_pauses_the_source_points_at_the_target_and_resumes_it(endpoint) -> None:
    ep, state = endpoint
    assert ep.state().as_dict() == {"side": "source", "paused": False}
    assert ep.pause() is True and ep.is_paused() is True  # the freeze: the service stops on the source
    assert (state / "svc_src_wallet").read_text().strip() == "0"
    assert ep.pause() is False  # idempotent: already paused
    (state / "svc_tgt_wallet").write_text("0\n")  # the target's service is stopped until GO LIVE
    assert ep.point_to(Side.TARGET) is True and ep.current() is Side.TARGET
    assert ep.point_to("target") is False  # already there: no DNS update
    assert ep.resume() is True and ep.state().as_dict() == {"side": "target", "paused": False}
    calls = (state / "calls").read_text().splitlines()
    assert sum(c.startswith("nsupdate") for c in calls) == 1
    assert any("STOP_SERVICE" in c and c.startswith("sqlplus src_wallet") for c in calls)
    assert any("START_SERVICE" in c and c.startswith("sqlplus tgt_wallet") for c in calls)


def test_errors_are_not_swallowed(endpoint) -> None:
    ep, state = endpoint
    (state / "cname").write_text("somewhere-else.example.\n")
    with pytest.raises(EndpointError, match="neither source nor target"):
        ep.current()
    (state / "cname").write_text("legacy-db.hosp.example.\n")
    ep.env["HOSP_SERVICE"] = "FAIL_ME"
    with pytest.raises(EndpointError, match="is-paused"):
        ep.is_paused()
    del ep.env["HOSP_TARGET_SQL"]
    with pytest.raises(EndpointError, match="HOSP_TARGET_SQL is not set"):
        ep.current()
