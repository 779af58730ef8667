"""The rollback window's night and bounds, read from the evidence store (ADR 0057)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bascule.operators.post_go_live import NoNightToWatch, closed_by, find_night, night_of_events, window_of

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


# --------------------------------------------------------------------------- started by the night's event


def _event(run_id: str | None, *, at: int, dag_id: str | None = "cutover", extra_run: str | None = None) -> Any:
    return SimpleNamespace(source_dag_id=dag_id, source_run_id=run_id, timestamp=datetime(2026, 12, 4, at, tzinfo=UTC),
                           extra={"run_id": extra_run if extra_run is not None else run_id})


def test_the_watch_follows_the_night_whose_event_started_it() -> None:
    # The latest night's event, when the watch was paused across nights and consumed several.
    assert night_of_events([_event("night_1", at=1), _event("night_2", at=2)], "bascule.lab.went_live") == "night_2"
    # An event posted through the REST API has no source run; one whose extra names another run is not the
    # night's own: neither starts a watch.
    with pytest.raises(NoNightToWatch, match="bascule.lab.went_live that no cutover run emitted"):
        night_of_events([_event(None, at=1, dag_id=None, extra_run="night_1")], "bascule.lab.went_live")
    with pytest.raises(NoNightToWatch, match="no cutover run emitted"):
        night_of_events([_event("night_1", at=1, extra_run="night_0")], "bascule.lab.went_live")
    with pytest.raises(NoNightToWatch, match="no cutover run emitted"):
        night_of_events([_event("other_1", at=1, dag_id="rehearsal")], "bascule.lab.went_live")


def _sensor(cutover_run_id: str = "") -> Any:
    from bascule.operators.post_go_live import RollbackWindowSensor
    from bascule.paths import LAB_PLAN
    from bascule.plan import load_plan

    return RollbackWindowSensor(task_id="watch", plan=load_plan(LAB_PLAN), cutover_run_id=cutover_run_id)


def test_an_asset_triggered_run_reads_its_night_from_the_event_a_manual_one_from_its_param() -> None:
    from airflow.sdk import Asset

    asset = Asset(name="bascule.lab.went_live", group="bascule-milestones")
    started = {"triggering_asset_events": {asset: [_event("night_7", at=3)]},
               "dag_run": SimpleNamespace(run_type="asset_triggered")}
    assert _sensor().night_run_id(started) == "night_7"
    manual = {"triggering_asset_events": {}, "dag_run": SimpleNamespace(run_type="manual")}
    assert _sensor("night_3").night_run_id(manual) == "night_3"
    assert _sensor().night_run_id(manual) is None  # the last night that went live
    # Started by an asset event, but none of the night's: refused, not the last night by default.
    with pytest.raises(NoNightToWatch):
        _sensor().night_run_id({"triggering_asset_events": {}, "dag_run": SimpleNamespace(run_type="asset_triggered")})


def _closing(base: Path, run_id: str, night: str, closed: bool) -> None:
    folder = base / "lab" / "post_go_live" / run_id
    folder.mkdir(parents=True)
    (folder / "closing.json").write_text(json.dumps({"run_id": run_id, "night": night, "closed": closed}))


def test_a_window_already_closed_is_not_watched_again(tmp_path: Path) -> None:
    assert closed_by("lab", "night_1", base=tmp_path) is None
    _closing(tmp_path, "manual__1", "night_1", closed=False)  # NO-GO: the window stays open, watched again
    assert closed_by("lab", "night_1", base=tmp_path) is None
    _closing(tmp_path, "asset_triggered__2", "night_1", closed=True)
    assert closed_by("lab", "night_1", base=tmp_path) == "asset_triggered__2"
    assert closed_by("lab", "night_2", base=tmp_path) is None
