"""Pure parts of the lab's clinic simulator: refusal classes, the ledger reader, its stats for a report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule_lab.simulator import Refusal, classify, read_ledger

pytestmark = pytest.mark.unit


class FakeDiag:
    def __init__(self, sqlstate: str | None) -> None:
        self.sqlstate = sqlstate


class FakeError(Exception):
    def __init__(self, text: str, sqlstate: str | None = None) -> None:
        super().__init__(text)
        self.diag = FakeDiag(sqlstate)


@pytest.mark.parametrize("text, sqlstate, kind", [
    ("permission denied for table observations", "42501", Refusal.PERMISSION_DENIED),
    ('FATAL:  role "clinic_app" is not permitted to log in', "28000", Refusal.LOGIN_REFUSED),
    ("server login has been failing, try again later (server_login_retry)", "08P01", Refusal.LOGIN_REFUSED),
    ("terminating connection due to administrator command", "57P01", Refusal.TERMINATED),
    ("server conn crashed?", "08P01", Refusal.TERMINATED),
    ("query_wait_timeout", "08P01", Refusal.PAUSED_TIMEOUT),
    ("connection failed: Connection refused", None, Refusal.CONNECTION_REFUSED),
    ("cannot execute INSERT in a read-only transaction", "25006", Refusal.READ_ONLY),
    ("duplicate key value violates unique constraint", "23505", None),
])
def test_simulator_classifies_refusals(text: str, sqlstate: str | None, kind: Refusal | None) -> None:
    assert classify(FakeError(text, sqlstate)) is kind


def test_ledger_reader_names_bad_lines(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.csv"
    ledger.write_text("encounters,1\nobservations,22\n")
    assert read_ledger(ledger)["observations"] == [22]
    ledger.write_text("encounters,1\npatients,Smith\n")
    with pytest.raises(ValueError, match="ledger.csv:2: not a ledger line"):
        read_ledger(ledger)


def test_simulator_rate_before_a_moment_uses_the_last_sample_before_it() -> None:
    from datetime import UTC, datetime, timedelta

    from bascule_lab.simulator import SimulatorStats

    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    stats = SimulatorStats(acked=1500, seconds=30.0, started_at=start.isoformat(),
                           timeline=[(1.0, 150), (2.0, 300), (10.0, 1500), (20.0, 1500)])
    assert stats.write_rate == 50.0  # the whole run, the freeze included
    assert stats.write_rate_before(start + timedelta(seconds=10.5)) == 150.0
    assert stats.write_rate_before(start + timedelta(seconds=0.5)) is None
    assert SimulatorStats(acked=1).write_rate_before(start) is None


def test_simulator_stats_for_a_report_carry_the_rate_before_the_freeze_not_the_timeline(tmp_path: Path) -> None:
    import json

    from bascule_lab.simulator import stats_for_report

    path = tmp_path / "ledger.csv.stats.json"
    assert stats_for_report(path, None) is None
    path.write_text(json.dumps({"acked": 300, "seconds": 6.0, "write_rate": 50.0,
                                "started_at": "2026-11-27T09:00:00+00:00", "timeline": [[1.0, 100], [2.0, 200]]}))
    out = stats_for_report(path, "2026-11-27T09:00:02.5+00:00")
    assert out is not None and "timeline" not in out
    assert out["write_rate_before_freeze"] == 100.0 and out["write_rate"] == 50.0
    assert stats_for_report(path, None)["write_rate_before_freeze"] is None
