"""The storage analysis at several "today" values: what is old follows the date it is measured from.

The catalogue is the lab's audit log as ``bascule_lab.sql.schema`` lays it out (36
months of history before the reference date, its month and the next, a default
partition), served by a fake reader; no database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import time_machine

from bascule.engines import postgres_assessment as q
from bascule.plan import PlanError, Storage, default_plan_path, load_plan
from bascule.preparation import storage
from bascule.today import retention_today
from bascule_lab.seed import AUDIT_HISTORY_MONTHS, PLANTED_WASTE, REFERENCE_DATE

pytestmark = pytest.mark.unit

REF = REFERENCE_DATE.date()


def _month(day: date, delta: int) -> date:
    index = day.year * 12 + day.month - 1 + delta
    return date(index // 12, index % 12 + 1, 1)


def _lab_layout() -> list[tuple[str, date, date]]:
    first = _month(REF, -AUDIT_HISTORY_MONTHS)
    return [(f"audit_log_y{m.year:04d}m{m.month:02d}", m, _month(m, 1))
            for m in (_month(first, i) for i in range(AUDIT_HISTORY_MONTHS + 2))]


class FakeCatalogue:
    """Answers the analysis's catalogue queries with the lab's partitions and nothing else."""

    def __init__(self) -> None:
        schemas = ["clinic"]
        parts = [("clinic", "audit_log", name, f"FOR VALUES FROM ('{lo} 00:00:00+00') TO ('{hi} 00:00:00+00')",
                  8192, 0) for name, lo, hi in _lab_layout()]
        parts.append(("clinic", "audit_log", "audit_log_default", "DEFAULT", 8192, 0))
        self.answers: dict[str, list[tuple[Any, ...]]] = {
            q.stats_age()[0]: [(None, datetime(2026, 1, 1, tzinfo=UTC))],
            q.table_sizes(schemas)[0]: [],
            q.index_usage(schemas)[0]: [],
            q.old_range_partitions(schemas)[0]: parts,
            q.table_bloat_estimate(schemas)[0]: [],
            q.scope_bytes(schemas)[0]: [(1 << 20, 0)],
        }

    def records(self, query: Any) -> list[tuple[Any, ...]]:
        text = query[0] if isinstance(query, tuple) else query
        if text not in self.answers:
            return []  # the per-partition index shares: none here
        return self.answers[text]


def _archived(today: date) -> set[str]:
    cat = FakeCatalogue()
    analysis = storage.analyse_storage(source=cat, target=cat, schemas=["clinic"], today=today)
    return {a.object for a in analysis.actions if a.kind is storage.ActionKind.ARCHIVE_PARTITION}


def _expected(today: date, retention_months: int = 24) -> set[str]:
    # A month is old when its whole range ends on or before the first day of the month
    # `retention_months` before today.
    cutoff = _month(today, -retention_months)
    return {f"clinic.{name}" for name, _lo, hi in _lab_layout() if hi <= cutoff}


@pytest.mark.parametrize(("months_ahead", "count"), [(0, 12), (1, 13), (13, 25), (25, 37)])
def test_archived_set_at_several_todays(months_ahead, count):
    today = _month(REF, months_ahead)
    archived = _archived(today)
    assert archived == _expected(today) and len(archived) == count
    assert "clinic.audit_log_default" not in archived
    if months_ahead == 0:
        # The lab's planted archive months are exactly what its reference date archives.
        assert archived == set(PLANTED_WASTE["archive_partitions"])
    else:
        assert archived > set(PLANTED_WASTE["archive_partitions"])


@pytest.mark.parametrize("months_ahead", [0, 1, 13, 25])
def test_the_lab_plan_measures_from_its_reference_date_on_any_day(months_ahead):
    plan = load_plan(default_plan_path())
    assert plan.storage.as_of == REF, "the lab plan's storage.as_of must be the seed's REFERENCE_DATE"
    with time_machine.travel(datetime.combine(_month(REF, months_ahead), datetime.min.time(), UTC), tick=False):
        assert retention_today(plan) == REF
        assert _archived(retention_today(plan)) == set(PLANTED_WASTE["archive_partitions"])


@pytest.mark.parametrize("months_ahead", [0, 1, 13, 25])
def test_a_production_plan_measures_from_the_real_date(months_ahead):
    plan = load_plan(default_plan_path()).model_copy(update={"storage": Storage(as_of=None)})
    day = _month(REF, months_ahead)
    with time_machine.travel(datetime.combine(day, datetime.min.time(), UTC).replace(hour=12), tick=False):
        assert retention_today(plan) == day
        assert _archived(retention_today(plan)) == _expected(day)


def test_a_production_plan_cannot_pin_the_date(tmp_path):
    text = default_plan_path().read_text().replace("mode: lab", "mode: production")
    plan_file = tmp_path / "prod.yaml"
    plan_file.write_text(text)
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "release_2_0.sql").write_text("-- empty\n")
    with pytest.raises(PlanError, match=r"storage\.as_of: only lab and demo plans may pin the date"):
        load_plan(plan_file)
