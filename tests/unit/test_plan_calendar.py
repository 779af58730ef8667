"""The plan's calendar: milestones in order, rehearsals before the night, printed by ``plan check``."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from bascule.plan import MilestoneId, PlanError, load_plan
from bascule.plan_cli import check_command

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "plans" / "production-oracle.example.yaml"


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    # Relative paths of the example (its release migration) resolve from the plan's directory.
    path = EXAMPLE.parent / f".calendar-{tmp_path.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def plan_file(tmp_path: Path):
    made: list[Path] = []

    def make(change) -> Path:
        data = copy.deepcopy(_example())
        change(data["calendar"]) if change else None
        made.append(_write(tmp_path, data))
        return made[-1]

    yield make
    for path in made:
        path.unlink(missing_ok=True)


def test_the_example_plan_prints_its_calendar_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(str(EXAMPLE)) == 0
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.strip().startswith("calendar (Europe/Paris)"))
    dated = [line.split()[0:2] for line in out[start + 1:]]
    days = [date.fromisoformat(d) for d, _ in dated]
    assert days == sorted(days)
    events = [e for _, e in dated]
    assert events[-1] == "cutover" and events.count("rehearsal") == 3
    assert [e.rstrip(":") for e in events if e.rstrip(":") in {m.value for m in MilestoneId}] == \
        [m.value for m in MilestoneId]


def test_the_night_is_read_in_the_plans_time_zone() -> None:
    calendar = load_plan(EXAMPLE).calendar
    assert calendar is not None and calendar.night_date == date(2027, 3, 6)
    assert calendar.rehearsals.dates() == [date(2027, 2, 6), date(2027, 2, 16), date(2027, 2, 26)]


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda c: c["milestones"]["replay_passed"].update(date="2027-01-01"),
     "calendar.milestones.replay_passed.date", "is before initial_load_complete (2027-01-15)"),
    (lambda c: c["milestones"]["storage_applied"].update(date="2027-03-07"),
     "calendar.milestones.storage_applied.date", "2027-03-07 is not before the night (2027-03-06)"),
    (lambda c: c["rehearsals"].update(count=4),
     "calendar.rehearsals", "after 2027-02-27 (7 days before the night on 2027-03-06)"),
    (lambda c: c["rehearsals"].update(first="2027-01-10"),
     "calendar.rehearsals.first", "is before initial_load_complete"),
    (lambda c: c["milestones"]["go_no_go_meeting"].update(date="2027-02-20"),
     "calendar.rehearsals", "is after the go/no-go meeting"),
    (lambda c: c["milestones"].pop("replay_passed"),
     "calendar.milestones.replay_passed", "is required"),
    (lambda c: c.update(cutover="2027-03-06T22:00:00"),
     "calendar.cutover", "must carry its UTC offset"),
    (lambda c: c.update(timezone="Paris"),
     "calendar.timezone", "IANA time zone"),
], ids=["milestone-out-of-order", "milestone-after-night", "rehearsal-too-late", "rehearsal-before-load",
        "meeting-before-last-rehearsal", "milestone-missing", "naive-night", "unknown-zone"])
def test_a_calendar_out_of_order_is_refused_with_one_line(plan_file, capsys: pytest.CaptureFixture[str],
                                                          change, field: str, words: str) -> None:
    path = plan_file(change)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert caught.value.field == field and words in caught.value.message, str(caught.value)
    assert check_command(str(path)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and field in err


def test_a_production_plan_needs_a_calendar(plan_file) -> None:
    path = plan_file(None)
    data = yaml.safe_load(path.read_text())
    del data["calendar"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PlanError, match="calendar: is required in production mode"):
        load_plan(path)


def test_a_milestone_is_made_stale_by_every_one_before_it() -> None:
    assert MilestoneId.PLATFORM_INSTALLED.invalidated_by == ()
    assert MilestoneId.REPLAY_PASSED.invalidated_by == (
        MilestoneId.PLATFORM_INSTALLED, MilestoneId.ASSESSMENT_SIGNED_OFF, MilestoneId.SCHEMA_SIGNED_OFF,
        MilestoneId.INITIAL_LOAD_COMPLETE)
