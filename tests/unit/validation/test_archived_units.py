"""Archived ranges as SQL text: both engines' data queries restricted, catalogue queries untouched."""

from __future__ import annotations

import pytest

from bascule.engines import dialect_for
from bascule.engines.restricted import RestrictedDialect, outside_predicate, restrict
from bascule.validation.archived import ArchivedRange, source_column

pytestmark = pytest.mark.unit


def _range(**kw: object) -> ArchivedRange:
    base = {"object": "clinic.audit_log_y2019m01", "root": "clinic.audit_log", "key_column": "logged_at",
            "key_type": "timestamp with time zone", "range_from": "2019-01-01 00:00:00+00",
            "range_to": "2019-02-01 00:00:00+00", "archived_to": "clinic_archive.clinic.audit_log_y2019m01",
            "rows": 12, "verified_at": "2026-01-01T00:00:00Z"}
    return ArchivedRange(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["postgres", "oracle"])
def test_data_queries_read_outside_the_ranges(engine: str) -> None:
    d = dialect_for(engine)
    pred = outside_predicate(d, "logged_at", [_range(), _range(range_from=None)])
    r = RestrictedDialect(d, schema="clinic", table="audit_log", predicate=pred)
    bounds, params = r.key_bounds_sql("clinic", "audit_log", "audit_id")
    assert f"FROM (SELECT * FROM {d.qualified('clinic', 'audit_log')} WHERE " in bounds and bounds.endswith(") b")
    assert params == {"arc_f0": "2019-01-01 00:00:00+00", "arc_t0": "2019-02-01 00:00:00+00",
                      "arc_t1": "2019-02-01 00:00:00+00"}
    assert d.param("arc_f0") in bounds
    hashes, hp = r.range_hashes_sql("clinic", "audit_log", key_column="audit_id", row_hash="h", lo=0, width=10)
    # Oracle groups an inline view's column (no bind repeated in GROUP BY), PostgreSQL by position.
    assert (") t) GROUP BY bucket" if engine == "oracle" else ") t GROUP BY") in hashes
    assert "lo" in hp and "arc_t1" in hp
    # Another table and the catalogue queries pass through unchanged.
    assert r.count_rows_sql("clinic", "patients") == d.count_rows_sql("clinic", "patients")
    assert r.primary_key_sql("clinic", "audit_log") == d.primary_key_sql("clinic", "audit_log")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="key_type"):
        _range(key_type="int; DROP TABLE x")
    with pytest.raises(ValueError, match="both empty"):
        _range(range_from=None, range_to=None)
    with pytest.raises(ValueError, match="once"):
        restrict(("SELECT 1 FROM x JOIN y ON true FROM x", {}), "x", ("true", {}))
    assert source_column("logged_at", [("logged_on", "logged_at")]) == "logged_on"
    assert _range().status == ("archived (verified at 2026-01-01T00:00:00Z, "
                               "to clinic_archive.clinic.audit_log_y2019m01)")
