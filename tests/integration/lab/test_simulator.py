"""The clinic simulator against the lab endpoint: ledger, verify, a freeze in the middle, and what verify finds."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bascule.cutover.endpoint import PgBouncerEndpoint
from bascule.hooks.cutover import CutoverDatabaseHook
from bascule.paths import LAB_PLAN
from bascule.plan import load_plan
from bascule_lab.canary import CANARY_STRINGS
from bascule_lab.pgbouncer import LabPgBouncer
from bascule_lab.simulator import (
    ClinicSimulator,
    LedgerEvent,
    read_events,
    read_ledger,
    request_check,
    start_background,
    stop_background,
    verify,
)

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
    assert stats.acked == stats.inserts + stats.updates + stats.deletes
    # The default mix changes rows as well as adding them.
    assert stats.updates > 0 and stats.deletes > 0 and (stats.updates + stats.deletes) / stats.acked > 0.25, stats
    entries = read_ledger(ledger)
    assert sum(len(v) for v in entries.values()) == stats.acked
    assert all(entries[t] for t in ("encounters", "prescriptions", "observations"))
    kinds = {(e.kind, e.table) for e in read_events(ledger) if e.outcome == "acked"}
    assert {("update", "encounters"), ("update", "prescriptions"), ("update", "observations"),
            ("delete", "prescriptions"), ("delete", "observations")} <= kinds, kinds
    result = verify(ledger, dsn)
    assert (result.acked, result.inserts, result.updates, result.deletes) == (
        stats.acked, stats.inserts, stats.updates, stats.deletes)
    assert (result.lost, result.lost_updates, result.resurrected_deletes, result.indeterminate) == (0, 0, 0, 0)
    assert result.absent > 0 and result.keys == result.present + result.absent, result.as_dict()
    _no_canaries(ledger, ledger.with_name(ledger.name + ".stats.json"))


def _last_acked(events: list[LedgerEvent], kind: str, table: str) -> int:
    """The first key of ``table`` whose last write is an acknowledged ``kind``."""
    last = {(e.table, e.key): e for e in events if e.key is not None}
    return min(k for (t, k), e in last.items() if t == table and e.kind == kind and e.outcome == "acked")


def test_verify_names_a_lost_write_a_lost_update_and_a_resurrected_delete_on_the_target(
        fresh_lab: Any, endpoint: Any, tmp_path: Path) -> None:
    from bascule_lab.testing.copy import copy_source_to_target

    dsn = LabPgBouncer(fresh_lab).app_dsn()
    ledger = tmp_path / "ledger.csv"
    ClinicSimulator(dsn=dsn, ledger=ledger, sessions=2, rate=400, update_share=0.4, delete_share=0.2).run(2)
    events = read_events(ledger)
    updated = _last_acked(events, "update", "encounters")  # every encounter is admitted to ward 'SIM'
    deleted = _last_acked(events, "delete", "observations")
    inserted = _last_acked(events, "insert", "prescriptions")
    copy_source_to_target(fresh_lab)
    with fresh_lab.connect("new", "clinic") as su:
        # A stale value: the ward the encounter had before it was moved. A deleted row back. A row gone.
        su.execute("UPDATE clinic.encounters SET ward = 'SIM' WHERE encounter_id = %s", (updated,))
        su.execute("INSERT INTO clinic.observations (observation_id, encounter_id, code, value_num, unit, "
                   "observed_at) SELECT %s, min(encounter_id), 'SIM-HR', 80, 'bpm', now() FROM clinic.encounters",
                   (deleted,))
        su.execute("DELETE FROM clinic.prescriptions WHERE prescription_id = %s", (inserted,))
    on_source = verify(ledger, dsn)  # through the endpoint, still on the source: every write as acknowledged
    assert (on_source.lost, on_source.lost_updates, on_source.resurrected_deletes) == (0, 0, 0), on_source
    endpoint.point_to("target")
    try:
        result = verify(ledger, dsn)
    finally:
        endpoint.point_to("source")
    assert (result.lost, result.lost_updates, result.resurrected_deletes) == (1, 1, 1), result.as_dict()
    assert result.lost_keys == {"prescriptions": [inserted]}
    assert result.lost_update_keys == {"encounters": [updated]}
    assert result.resurrected_keys == {"observations": [deleted]}
    assert result.keys == result.present + result.absent + 3


def test_freeze_while_simulating_counts_refusals_and_loses_no_acknowledged_write(
        fresh_lab: Any, endpoint: Any, tmp_path: Path) -> None:
    dsn = LabPgBouncer(fresh_lab).app_dsn()
    ledger, log = tmp_path / "ledger.csv", tmp_path / "simulator.log"
    # The night's hook, with the writers the lab plan lets through a freeze (its superuser among them).
    source = load_plan(LAB_PLAN).source
    db = CutoverDatabaseHook(db_conn_id=source.conn_id, engine="postgres", allowed_writers=source.allowed_writers)
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
        # What a report does: the running simulator checks its ledger so far, its sessions held meanwhile.
        check = request_check(ledger)
        assert check["check"] == "done" and check["checked_writes"] > 0, check
        assert (check["lost_writes"], check["lost_updates"], check["resurrected_deletes"]) == (0, 0, 0), check
        time.sleep(0.5)
    finally:
        stats = stop_background(proc, ledger)
    assert proc.returncode == 0
    assert stats.acked > 0 and stats.refused > 0 and stats.errors == 0, stats
    assert set(stats.refused_by) <= {"permission_denied", "login_refused", "terminated", "paused_timeout",
                                     "connection_refused"}
    result = verify(ledger, dsn)
    assert result.lost == 0 and result.acked == stats.acked and result.refused == stats.refused
    assert result.lost_updates == 0 and result.resurrected_deletes == 0, result.as_dict()
    assert result.indeterminate == stats.indeterminate and stats.updates > 0 and stats.deletes > 0, stats
    # Writes after the unfreeze were acknowledged too: the application came back.
    with fresh_lab.connect("legacy", "clinic") as su:
        (after,) = su.execute("SELECT count(*) FROM clinic.observations o WHERE o.code = 'SIM-HR' "
                              "AND o.observed_at > %s", (frozen.frozen_at,)).fetchone()
    assert after > 0
    assert log.read_text().strip().splitlines()[-1].startswith("acked=")
    _no_canaries(ledger, log, ledger.with_name(ledger.name + ".stats.json"))
