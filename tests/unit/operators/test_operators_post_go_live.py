"""The rollback window's night and bounds, read from the evidence store (ADR 0057)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bascule.operators.post_go_live import NoNightToWatch, find_night, window_of

pytestmark = pytest.mark.unit


def _report(base: Path, run_id: str, **fields: object) -> None:
    folder = base / "lab" / "cutover" / run_id
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"run_id": run_id, **fields}))


def test_the_window_follows_the_last_night_that_went_live_for_real(tmp_path: Path) -> None:
    with pytest.raises(NoNightToWatch, match="no cutover of plan 'lab' went live"):
        find_night("lab", base=tmp_path)
    _report(tmp_path, "a", outcome="completed", downtime_end="2026-12-01T22:30:00+00:00", rehearsal=False)
    _report(tmp_path, "b", outcome="completed", downtime_end="2026-12-02T22:30:00+00:00", rehearsal=True)
    _report(tmp_path, "c", outcome="rolled_back", downtime_end="2026-12-03T22:30:00+00:00", rehearsal=False)
    _report(tmp_path, "d", outcome="aborted", downtime_end=None, rehearsal=False)
    # A rehearsal's go-live, a rolled-back night and an aborted one open no window.
    assert find_night("lab", base=tmp_path)["run_id"] == "a"
    assert find_night("lab", "b", base=tmp_path)["run_id"] == "b"  # named: a rehearsal's window may be watched
    with pytest.raises(NoNightToWatch, match="cutover run 'c' ended 'rolled_back': it did not go live"):
        find_night("lab", "c", base=tmp_path)
    with pytest.raises(NoNightToWatch, match="no report of cutover run 'zz'"):
        find_night("lab", "zz", base=tmp_path)


def test_the_window_runs_from_the_go_live_instant_for_the_plan_s_length() -> None:
    start, end = window_of({"downtime_end": "2026-12-03T23:30:00+01:00"}, 7 * 86400.0)
    assert start == datetime(2026, 12, 3, 22, 30, tzinfo=UTC) and end - start == timedelta(days=7)
