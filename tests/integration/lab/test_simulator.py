"""The clinic simulator against the lab endpoint: ledger, verify, and a freeze in the middle."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bascule.cutover.endpoint import PgBouncerEndpoint
from bascule.hooks.cutover import CutoverDatabaseHook
from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.pgbouncer import LabPgBouncer
from bascule_lab.simulator import ClinicSimulator, read_ledger, start_background, stop_background, verify

pytestmark = pytest.mark.integration


def _no_canaries(*paths: Path) -> None:
    for path in paths:
        text = path.read_text(errors="replace")
        leaked = [c for c in CANARY_STRINGS if c in text]
        assert not leaked, f"{path.name} leaks canary values"


@pytest.fixture()
def endpoint(fresh_lab: Any) -> Any:
    ep = PgBouncerEndpoint(pgbouncer_conn_id="bascule_endpoint_admin", database="clinic",
                           source_conn_id="bascule_legacy_app", target_conn_id="bascule_new_app",
                           followers=("clinic_smoke",), command_timeout_s=10)
    ep.point_to("source")
    ep.resume()
    yield ep
    with fresh_lab.connect("legacy") as su:
        su.execute("ALTER ROLE clinic_app LOGIN CONNECTION LIMIT -1")
    ep.resume()


def test_simulator_writes_through_the_endpoint_and_loses_nothing(fresh_lab: Any, endpoint: Any,
                                                                 tmp_path: Path) -> None:
    dsn = LabPgBouncer(fresh_lab).app_dsn()
    ledger = tmp_path / "ledger.csv"
    stats = ClinicSimulator(dsn=dsn, ledger=ledger, sessions=3, rate=150).run(3)
    assert stats.acked > 0 and stats.errors == 0 and stats.refused == 0 and stats.reads > 0
    entries = read_ledger(ledger)
    assert sum(len(v) for v in entries.values()) == stats.acked
    assert all(entries[t] for t in ("encounters", "prescriptions", "observations"))
    result = verify(ledger, dsn)
    assert (result.acked, result.present, result.lost) == (stats.acked, stats.acked, 0)
    _no_canaries(ledger, ledger.with_name(ledger.name + ".stats.json"))


def test_freeze_while_simulating_counts_refusals_and_loses_no_acknowledged_write(
        fresh_lab: Any, endpoint: Any, tmp_path: Path) -> None:
    dsn = LabPgBouncer(fresh_lab).app_dsn()
    ledger, log = tmp_path / "ledger.csv", tmp_path / "simulator.log"
    db = CutoverDatabaseHook(db_conn_id="bascule_legacy", engine="postgres")
    proc = start_background(dsn=dsn, ledger=ledger, sessions=3, rate=150, log=log, python=sys.executable)
    try:
        time.sleep(2)
        frozen = db.freeze(role="clinic_app", schemas=["clinic"])
        time.sleep(1.5)  # revoked + NOLOGIN: every attempt now is refused
        endpoint.pause()
        time.sleep(0.5)  # paused: attempts wait in PgBouncer
        db.unfreeze(role="clinic_app")
        endpoint.resume()
        time.sleep(1.5)
    finally:
        stats = stop_background(proc, ledger)
    assert proc.returncode == 0
    assert stats.acked > 0 and stats.refused > 0 and stats.errors == 0, stats
    assert set(stats.refused_by) <= {"permission_denied", "login_refused", "terminated", "paused_timeout",
                                     "connection_refused"}
    result = verify(ledger, dsn)
    assert result.lost == 0 and result.acked == stats.acked and result.refused == stats.refused
    # Writes after the unfreeze were acknowledged too: the application came back.
    with fresh_lab.connect("legacy", "clinic") as su:
        (after,) = su.execute("SELECT count(*) FROM clinic.observations o WHERE o.code = 'SIM-HR' "
                              "AND o.observed_at > %s", (frozen.frozen_at,)).fetchone()
    assert after > 0
    assert log.read_text().strip().splitlines()[-1].startswith("acked=")
    _no_canaries(ledger, log, ledger.with_name(ledger.name + ".stats.json"))
