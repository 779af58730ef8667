"""The simulator's ledger of every kind of write: its lines, a session's bookkeeping, verify's judgement."""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from bascule_lab.simulator import (
    STATE_COLUMNS,
    KeyBook,
    Ledger,
    LedgerEvent,
    SimulatorStats,
    Write,
    digest,
    judge,
    new_values,
    parse_line,
    plan_write,
    read_events,
    read_ledger,
    stats_for_report,
)

pytestmark = pytest.mark.unit

D1, D2, D3 = digest(("SIM",)), digest(("SIM-3",)), digest(("SIM-9",))


def ev(kind: str, table: str, key: int | None, outcome: str = "acked", dig: str | None = "") -> LedgerEvent:
    if dig == "":
        dig = None if kind == "delete" else D1
    return LedgerEvent(kind, table, key, outcome, dig)


# ---------------------------------------------------------------- the lines
def test_ledger_lines_round_trip_and_hold_keys_and_digests_only(tmp_path: Path) -> None:
    events = [ev("insert", "observations", 10), ev("update", "observations", 10, dig=D2),
              ev("delete", "prescriptions", 7), ev("insert", "observations", None, "indeterminate"),
              ev("update", "encounters", 3, "indeterminate", D3), ev("delete", "observations", 11, "missing")]
    ledger = Ledger(tmp_path / "ledger.csv")
    for e in events:
        ledger.add(e)
    assert (tmp_path / "ledger.csv").read_text() == ""  # nothing before a flush
    ledger.flush()
    text = (tmp_path / "ledger.csv").read_text()
    assert text.splitlines()[:3] == [f"insert,observations,10,acked,{D1}", f"update,observations,10,acked,{D2}",
                                     "delete,prescriptions,7,acked,"]
    assert "observations,,indeterminate" in text
    assert read_events(tmp_path / "ledger.csv") == events
    # One key per acknowledged write, of every kind; indeterminate and missing writes are not acknowledged.
    assert read_ledger(tmp_path / "ledger.csv") == {"encounters": [], "prescriptions": [7],
                                                    "observations": [10, 10]}


@pytest.mark.parametrize("line", [
    "update,patients,1,acked,0123456789abcdef",  # not a table the simulator writes
    "update,observations,1,acked,72.50",  # a value, not a digest
    "update,observations,1,acked,",  # an update without its digest
    "delete,observations,1,acked,0123456789abcdef",  # a delete writes no value
    "insert,observations,,acked,0123456789abcdef",  # an acknowledged insert has its key
    "update,observations,,indeterminate,0123456789abcdef",  # only an insert may lack its key
    "upsert,observations,1,acked,0123456789abcdef",
    "update,observations,1,lost,0123456789abcdef",
    "update,observations,1,acked",
])
def test_ledger_reader_refuses_what_is_not_a_ledger_line(line: str) -> None:
    with pytest.raises(ValueError, match="not a ledger line"):
        parse_line(line)


def test_older_table_key_lines_read_as_acknowledged_inserts_without_a_digest() -> None:
    assert parse_line("encounters,12") == LedgerEvent("insert", "encounters", 12, "acked", None)


def test_the_digest_is_the_md5_postgresql_computes_over_the_columns_as_text() -> None:
    # verify() computes left(md5(concat_ws('|', dose_mg::text, frequency)), 16) inside the database.
    assert digest(("12.50", "bid")) == hashlib.md5(b"12.50|bid").hexdigest()[:16]
    assert STATE_COLUMNS["prescriptions"] == ("dose_mg", "frequency")
    rng = random.Random(1)
    for table in STATE_COLUMNS:
        for _ in range(200):
            values = new_values(table, rng)
            assert len(values) == len(STATE_COLUMNS[table])
            if table != "encounters":
                # numeric(10,2) prints two decimals: the text the database hashes is the text written.
                assert all(str(Decimal(v).quantize(Decimal("0.01"))) == v for v in values[:1])


# ------------------------------------------------------------- bookkeeping
def test_a_session_changes_only_its_own_rows_and_never_writes_the_same_value_twice() -> None:
    rng = random.Random(3)
    book = KeyBook()
    first = plan_write(book, rng, update_share=0.5, delete_share=0.3)
    assert first.kind == "insert"  # nothing of its own yet: an insert, whatever the draw
    book.add("observations", 41, ("72.00",), rng)
    kinds = {plan_write(book, rng, update_share=0.5, delete_share=0.3).kind for _ in range(200)}
    assert kinds == {"insert", "update", "delete"}
    for _ in range(100):
        w = plan_write(book, rng, update_share=0.99, delete_share=0.0)
        if w.kind == "update":
            assert (w.table, w.key) == ("observations", 41) and w.values != ("72.00",)
    encounter_only = KeyBook()
    encounter_only.add("encounters", 5, ("SIM",), rng)
    # Encounters are never deleted (the other rows refer to them): a delete draw becomes an insert.
    assert {plan_write(encounter_only, rng, update_share=0.0, delete_share=0.99).kind for _ in range(50)} == {
        "insert"}


def test_the_mix_follows_the_shares() -> None:
    rng = random.Random(11)
    book = KeyBook()
    kinds = {"insert": 0, "update": 0, "delete": 0}
    for key in range(1, 5001):
        w = plan_write(book, rng, update_share=0.3, delete_share=0.1)
        kinds[w.kind] += 1
        if w.kind == "insert":
            book.add(w.table, key, w.values, rng)
        elif w.kind == "delete":
            book.retire(w.table, w.key)  # type: ignore[arg-type]
        else:
            book.set(w.table, w.key, w.values)  # type: ignore[arg-type]
    assert 0.27 < kinds["update"] / 5000 < 0.33 and 0.08 < kinds["delete"] / 5000 < 0.12, kinds


def test_the_key_book_retires_rows_and_forgets_at_random_when_full() -> None:
    rng = random.Random(5)
    book = KeyBook(cap=3)
    for key in (1, 2, 3):
        book.add("prescriptions", key, ("10.00", "daily"), rng)
    book.retire("prescriptions", 2)
    assert book.count("prescriptions") == 2 and book.values("prescriptions", 2) is None
    book.set("prescriptions", 2, ("5.00", "bid"))  # a retired row is not brought back by an update
    assert book.values("prescriptions", 2) is None
    book.add("prescriptions", 4, ("10.00", "daily"), rng)
    book.add("prescriptions", 5, ("10.00", "daily"), rng)
    assert book.count("prescriptions") == 3 and book.values("prescriptions", 5) == ("10.00", "daily")
    assert {book.pick("prescriptions", rng)[0] for _ in range(100)} <= {1, 3, 4, 5}


def test_a_write_becomes_its_ledger_event() -> None:
    w = Write("insert", "observations", None, ("80.00",))
    assert w.event("acked", key=9) == LedgerEvent("insert", "observations", 9, "acked", digest(("80.00",)))
    assert w.event("indeterminate") == LedgerEvent("insert", "observations", None, "indeterminate",
                                                   digest(("80.00",)))
    assert Write("delete", "prescriptions", 4).event("acked").digest is None


# -------------------------------------------------------------- judgement
def test_each_key_is_judged_by_its_last_acknowledged_state() -> None:
    events = [
        ev("insert", "observations", 1),  # kept
        ev("insert", "observations", 2),  # lost: missing
        ev("insert", "observations", 3), ev("update", "observations", 3, dig=D2),  # updated, current
        ev("insert", "observations", 4), ev("update", "observations", 4, dig=D2),  # stale value: lost update
        ev("insert", "prescriptions", 5), ev("delete", "prescriptions", 5),  # deleted, absent
        ev("insert", "prescriptions", 6), ev("delete", "prescriptions", 6),  # resurrected
        ev("insert", "encounters", 7), ev("update", "encounters", 7, dig=D2),  # updated, then gone: lost update
        ev("insert", "observations", 8),  # there, but not as written: a lost write
    ]
    observed = {("observations", 1): D1, ("observations", 3): D2, ("observations", 4): D1,
                ("prescriptions", 6): D1, ("observations", 8): D3}
    r = judge(events, observed, refused=4)
    assert (r.acked, r.inserts, r.updates, r.deletes) == (13, 8, 3, 2)
    assert (r.keys, r.present, r.absent) == (8, 2, 1)
    assert (r.lost, r.lost_updates, r.resurrected_deletes, r.indeterminate, r.refused) == (2, 2, 1, 0, 4)
    assert r.lost_keys == {"observations": [2, 8]}
    assert r.lost_update_keys == {"encounters": [7], "observations": [4]}
    assert r.resurrected_keys == {"prescriptions": [6]}
    assert r.keys == r.present + r.absent + r.lost + r.lost_updates + r.resurrected_deletes


def test_an_indeterminate_write_is_judged_leniently_and_never_lost() -> None:
    events = [
        ev("insert", "observations", None, "indeterminate"),  # no key: nothing to look for
        ev("insert", "observations", 1), ev("update", "observations", 1, "indeterminate", D2),  # old value
        ev("insert", "observations", 2), ev("update", "observations", 2, "indeterminate", D2),  # new value
        ev("insert", "prescriptions", 3), ev("delete", "prescriptions", 3, "indeterminate"),  # deleted after all
        ev("insert", "prescriptions", 4), ev("delete", "prescriptions", 4, "indeterminate"),  # still there
        # Neither the acknowledged state nor the indeterminate write's: the acknowledged insert is lost.
        ev("insert", "observations", 5), ev("update", "observations", 5, "indeterminate", D2),
    ]
    observed = {("observations", 1): D1, ("observations", 2): D2, ("prescriptions", 4): D1,
                ("observations", 5): D3}
    r = judge(events, observed)
    assert r.indeterminate == 6 and r.acked == 5
    assert (r.present, r.absent, r.lost, r.lost_updates, r.resurrected_deletes) == (3, 1, 1, 0, 0)
    assert r.lost_keys == {"observations": [5]}


def test_a_write_acknowledged_on_a_missing_row_changes_nothing_and_the_row_is_judged_by_the_last_acknowledged(
) -> None:
    events = [ev("insert", "observations", 1), ev("update", "observations", 1, dig=D2),
              ev("update", "observations", 1, "missing", D3)]
    r = judge(events, {})
    assert (r.acked, r.lost_updates, r.lost_update_keys) == (2, 1, {"observations": [1]})


def test_the_summary_lists_keys_only_for_findings() -> None:
    clean = judge([ev("insert", "observations", 1)], {("observations", 1): D1}).summary()
    assert clean == {"checked_writes": 1, "checked_keys": 1, "lost_writes": 0, "lost_updates": 0,
                     "resurrected_deletes": 0, "checked_indeterminate": 0}
    found = judge([ev("insert", "prescriptions", 2), ev("delete", "prescriptions", 2)],
                  {("prescriptions", 2): D1}).summary()
    assert found["resurrected_deletes"] == 1 and found["resurrected_keys"] == {"prescriptions": [2]}


# ---------------------------------------------------------------- the rates
def test_rates_per_kind_before_the_freeze_from_the_start_and_over_a_window(tmp_path: Path) -> None:
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    # (seconds, acked, inserts, updates, deletes)
    timeline = [(1.0, 10, 6, 3, 1), (50.0, 500, 300, 150, 50), (100.0, 1000, 600, 300, 100),
                (110.0, 1000, 600, 300, 100)]
    stats = SimulatorStats(acked=1000, inserts=600, updates=300, deletes=100, seconds=120.0,
                           started_at=start.isoformat(), timeline=timeline)
    frozen = start + timedelta(seconds=100.5)
    assert stats.rates_before(frozen) == {"insert": 6.0, "update": 3.0, "delete": 1.0}
    window = stats.rates_before(frozen, window_s=60)  # from the sample at 1 s, the last one 60 s before 100 s
    assert window is not None and round(window["update"], 3) == round(297 / 99, 3)
    assert stats.rates_before(start + timedelta(seconds=0.5)) is None
    assert SimulatorStats(timeline=[(1.0, 10)], started_at=start.isoformat()).rates_before(frozen) is None

    path = tmp_path / "ledger.csv.stats.json"
    path.write_text(json.dumps({**stats.as_dict(), "timeline": [list(s) for s in timeline]}))
    out = stats_for_report(path, frozen.isoformat())
    assert out is not None and "timeline" not in out
    assert out["write_rates_before_freeze"] == {"insert": 6.0, "update": 3.0, "delete": 1.0}
    assert out["write_rates_60s_before_freeze"]["delete"] == 1.0
    assert (out["inserts"], out["updates"], out["deletes"]) == (600, 300, 100)
    assert stats_for_report(path, None)["write_rates_before_freeze"] is None


# ------------------------------------------------------------------- checks
def test_a_check_waits_for_writes_in_flight_and_holds_new_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    import threading
    import time

    from bascule_lab import simulator

    seen: list[int] = []
    sim = simulator.ClinicSimulator(dsn="host=nowhere", ledger=tmp_path / "ledger.csv")

    def fake_verify(ledger: Path, dsn: str) -> simulator.VerifyResult:
        seen.append(sim._busy)
        time.sleep(0.2)
        return judge(read_events(ledger), {})

    monkeypatch.setattr(simulator, "verify", fake_verify)
    assert sim._enter()  # a session with a write in flight
    sim._record(Write("insert", "observations", None, ("80.00",)).event("acked", key=1))
    threading.Timer(0.3, sim._leave).start()
    entered: list[float] = []
    later = threading.Thread(target=lambda: (time.sleep(0.1), sim._enter(), entered.append(time.monotonic())))
    later.start()
    started = time.monotonic()
    answer = sim.check()
    later.join()
    assert answer["check"] == "done" and answer["held_s"] >= 0.45, answer
    assert seen == [0], "verified with no write in flight"
    assert entered and entered[0] - started >= 0.45, "a new write waited for the check to end"
    # The acknowledged insert was flushed to the ledger before the check and is missing from the (empty) database.
    assert answer["lost_writes"] == 1 and answer["lost_keys"] == {"observations": [1]}
    sim._leave()


def test_a_report_asks_the_running_simulator_for_a_check_and_says_why_when_none_comes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from bascule_lab import simulator

    ledger = tmp_path / "ledger.csv"
    sim = simulator.ClinicSimulator(dsn="host=nowhere", ledger=ledger)
    monkeypatch.setattr(simulator, "verify", lambda ledger, dsn: judge(read_events(ledger), {}))
    answer = simulator.request_check(ledger, timeout=1)
    assert answer["check"] == "no simulator stats" and answer["lost_updates"] is None
    sim._started = time.monotonic()
    sim._write_stats(sim.stats())
    flusher = threading.Thread(target=sim._flush_loop, daemon=True)
    flusher.start()
    try:
        answer = simulator.request_check(ledger, timeout=5)
    finally:
        sim.stopping.set()
        flusher.join()
    assert answer["check"] == "done" and answer["lost_writes"] == 0 and answer["checked_writes"] == 0, answer
    assert not (tmp_path / "ledger.csv.check-request").exists()
    old = time.time() - 60
    os.utime(tmp_path / "ledger.csv.stats.json", (old, old))
    assert simulator.request_check(ledger, timeout=1)["check"] == "simulator not running"
