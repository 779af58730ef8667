"""Which suite expectation the window proves how (ADR 0061), and how a suite is split for the window."""

from __future__ import annotations

import pytest

from bascule.engines.base import TableChanges
from bascule.engines.postgres import PostgresDialect
from bascule.validation.delta import (
    Reference,
    delta_method,
    plan_suite,
    row_local_references,
    suite_delta_findings,
)

pytestmark = pytest.mark.unit

ORPHAN = ("SELECT subselect.encounter_id FROM {batch} WHERE NOT EXISTS "
          "(SELECT 1 FROM clinic.patients p WHERE p.patient_id = subselect.patient_id)")


def _exp(kind: str, **kwargs: object) -> dict[str, object]:
    return {"type": kind, "kwargs": kwargs}


@pytest.mark.parametrize(("expectation", "kind"), [
    (_exp("expect_column_values_to_not_be_null", column="a"), "rows"),
    (_exp("expect_column_values_to_be_between", column="a", min_value=0, max_value=1), "rows"),
    (_exp("expect_column_values_to_be_unique", column="a"), "unique"),
    (_exp("expect_table_row_count_to_equal", value=3), "whole"),
    (_exp("unexpected_rows_expectation", unexpected_rows_query="SELECT subselect.a FROM {batch} WHERE subselect.a < 0"),
     "rows"),
    (_exp("unexpected_rows_expectation", unexpected_rows_query=ORPHAN), "rows"),
    # No delta method: a share of the table, an aggregate, a statistic.
    (_exp("expect_column_values_to_not_be_null", column="a", mostly=0.95), None),
    (_exp("unexpected_rows_expectation",
          unexpected_rows_query="SELECT subselect.a FROM {batch} GROUP BY subselect.a HAVING count(*) > 1"), None),
    (_exp("expect_column_mean_to_be_between", column="a", min_value=0, max_value=1), None),
])
def test_delta_method_by_type(expectation: dict[str, object], kind: str | None) -> None:
    assert delta_method(expectation).kind == kind


def test_a_referential_query_names_its_table_and_equalities() -> None:
    refs, _ = row_local_references(ORPHAN)
    assert refs == (Reference("clinic.patients", (("patient_id", "patient_id"),)),)
    # A subquery not tied to the row by an equality, or one inside an OR, proves nothing on changed rows.
    loose, why = row_local_references(
        "SELECT subselect.a FROM {batch} WHERE NOT EXISTS (SELECT 1 FROM s.t p WHERE p.x > subselect.a)")
    assert loose is None and "not tied to the row" in why
    ored, _ = row_local_references(
        "SELECT subselect.a FROM {batch} WHERE NOT EXISTS (SELECT 1 FROM s.t p WHERE p.x = subselect.a OR p.y)")
    assert ored is None


def test_findings_name_the_expectation() -> None:
    doc = {"expectations": [_exp("expect_column_values_to_not_be_null", column="a"),
                            _exp("expect_column_median_to_be_between", column="a")]}
    (finding,) = suite_delta_findings(doc)
    assert finding.startswith("expectations[1] (expect_column_median_to_be_between)")


def _doc(*expectations: dict[str, object]) -> dict[str, object]:
    return {"name": "enc", "meta": {"bascule": {"table": "clinic.encounters"}}, "expectations": list(expectations)}


def _split(doc: dict[str, object], changed: dict[str, TableChanges], indexes: dict[str, tuple[str, ...]] | None = None,
           in_full: bool = False):  # type: ignore[no-untyped-def]
    d = PostgresDialect()
    return plan_suite(doc, changed=changed, in_full=in_full, unique_indexes=indexes or {},
                      literal_keys=d.literal_keys_sql, quote=d.quote_ident)


ENC = (("encounter_id", "bigint"),)
PAT = (("patient_id", "bigint"),)


def test_the_batch_holds_the_changed_rows_and_the_rows_of_changed_parents() -> None:
    doc = _doc(_exp("expect_column_values_to_be_unique", column="encounter_id"),
               _exp("unexpected_rows_expectation", unexpected_rows_query=ORPHAN),
               _exp("expect_table_row_count_to_equal", value=3))
    split = _split(doc, {"clinic.encounters": TableChanges(ENC, frozenset({("7",)})),
                         "clinic.patients": TableChanges(PAT, frozenset({("it's",)}))},
                   indexes={"encounters_pkey": ("encounter_id",)})
    assert split.whole_reason is None
    assert split.proven_by_index == ["encounter_id: unique index encounters_pkey"]
    assert [e["type"] for e in split.whole_table["expectations"]] == ["expect_table_row_count_to_equal"]
    assert split.rows_in_scope == 2
    assert split.delta_query == (
        'SELECT t.* FROM "clinic"."encounters" t WHERE (t."encounter_id") IN (SELECT * FROM unnest('
        "ARRAY['7']::text[]::bigint[])) UNION ALL "
        'SELECT t.* FROM "clinic"."encounters" t WHERE (t."patient_id") IN (SELECT * FROM unnest('
        "ARRAY['it''s']::text[]::bigint[]))")


def test_uniqueness_without_an_index_is_looked_up_for_the_changed_rows() -> None:
    doc = _doc(_exp("expect_column_values_to_be_unique", column="code"))
    split = _split(doc, {"clinic.encounters": TableChanges(ENC, frozenset({("1",)}))})
    (lookup,) = split.delta["expectations"]
    assert lookup["type"] == "unexpected_rows_expectation"
    assert ('JOIN "clinic"."encounters" o ON o."code" = subselect."code" AND (o."encounter_id" IS DISTINCT FROM'
            ' subselect."encounter_id")') in lookup["kwargs"]["unexpected_rows_query"]


@pytest.mark.parametrize(("changed", "in_full", "why"), [
    ({"clinic.encounters": TableChanges(ENC, whole="a TRUNCATE since the baseline")}, False, "TRUNCATE"),
    ({}, False, "not tracked"),
    ({"clinic.encounters": TableChanges(ENC)}, True, "suites_in_full"),
    # The referenced table's changes are unknown: the rows pointing at it cannot be chosen.
    ({"clinic.encounters": TableChanges(ENC)}, False, "clinic.patients is not tracked"),
])
def test_a_suite_runs_whole_when_its_delta_proves_nothing(changed: dict[str, TableChanges], in_full: bool,
                                                         why: str) -> None:
    doc = _doc(_exp("unexpected_rows_expectation", unexpected_rows_query=ORPHAN))
    assert why in (_split(doc, changed, in_full=in_full).whole_reason or "")


def test_nothing_changed_runs_no_batch() -> None:
    doc = _doc(_exp("expect_column_values_to_not_be_null", column="encounter_id"))
    split = _split(doc, {"clinic.encounters": TableChanges(ENC)})
    assert split.whole_reason is None and split.delta is None and split.rows_in_scope == 0
