"""Validation pieces without a database: table specs, keys, buckets, reports, suites."""

from __future__ import annotations

import json

import pytest

from bascule.engines.base import ColumnKind, HashMode, bucket_layout
from bascule.engines.oracle import OracleDialect
from bascule.engines.postgres import PostgresDialect
from bascule.privacy.keys import HASH_PREFIX, KeyHasher, KeyRenderer, identifying_key
from bascule.validation.canonical import TableSetupError, build_table_spec
from bascule.validation.report import TableResult, TableStatus, ValidationFailed, render_summary
from bascule.validation.suites import (
    SUITES_DIR,
    SuiteError,
    load_suite_file,
    loaded_expectation_count,
    parameters_of,
    render_suites_html,
    suites_context,
    with_parameters,
)

pytestmark = pytest.mark.unit

PG = PostgresDialect()
SRC_COLS = [("patient_id", "bigint"), ("mrn", "character varying(16)"), ("phone", "character varying(20)"),
            ("dose", "numeric(10,2)"), ("old_flag", "boolean")]
TGT_COLS = [("patient_id", "bigint"), ("mrn", "character varying(16)"), ("phone", "character varying(32)"),
            ("dose", "numeric(12,4)"), ("preferred_language", "text")]
KEY = [("patient_id", "bigint")]


def spec(**kw):
    args = dict(schema="clinic", table="patients", source_columns=SRC_COLS, target_columns=TGT_COLS,
                source_key=KEY, target_key=KEY, source_dialect=PG, target_dialect=PG,
                added={"preferred_language": "'und'"}, dropped=["old_flag"])
    args.update(kw)
    return build_table_spec(**args)


def test_mapping_places_every_column() -> None:
    s = spec()
    assert [p.label for p in s.pairs] == ["patient_id", "mrn", "phone", "dose"]
    assert set(s.not_compared) == {"old_flag", "preferred_language"} and s.unmapped == ()
    by = {p.label: p for p in s.pairs}
    assert not by["phone"].source.canonical  # varchar widths print alike
    assert by["dose"].source.canonical and by["dose"].target.canonical  # numeric scales do not
    assert s.mode is HashMode.NATIVE and s.integer_key


def test_unmapped_columns_are_named_not_skipped() -> None:
    s = spec(added={}, dropped=[])
    assert s.unmapped == ("source.old_flag", "target.preferred_language")


def test_rename_and_bad_mappings() -> None:
    tgt = [("patient_id", "bigint"), ("mrn", "character varying(16)"), ("telephone", "character varying(32)"),
           ("dose", "numeric(10,2)"), ("preferred_language", "text")]
    s = spec(target_columns=tgt, renamed={"phone": "telephone"})
    assert "phone->telephone" in [p.label for p in s.pairs]
    with pytest.raises(TableSetupError, match="renames phone to fax"):
        spec(renamed={"phone": "fax"})
    with pytest.raises(TableSetupError, match="drops nope"):
        spec(dropped=["old_flag", "nope"])
    with pytest.raises(TableSetupError, match="no primary key"):
        spec(source_key=[])
    with pytest.raises(TableSetupError, match="primary keys differ"):
        spec(target_key=[("mrn", "text")])


def test_cross_engine_is_canonical_everywhere() -> None:
    s = spec(target_dialect=OracleDialect(), target_key=[("PATIENT_ID", "NUMBER(INTEGER)")],
             target_columns=[("PATIENT_ID", "NUMBER(INTEGER)"), ("MRN", "VARCHAR2"), ("PHONE", "VARCHAR2"),
                             ("DOSE", "NUMBER"), ("PREFERRED_LANGUAGE", "VARCHAR2")], cross_engine=True)
    assert s.mode is HashMode.CANONICAL and all(p.source.canonical for p in s.pairs)


def test_postgres_hash_sql_handles_nulls_spaces_and_parallel() -> None:
    s = spec()
    native = PG.row_hash_expr(s.source_columns, s.mode)
    assert native.startswith("hashtextextended(ROW(") and "trim_scale" in native
    sql, params = PG.range_hashes_sql("clinic", "patients", key_column="patient_id", row_hash=native, lo=1,
                                      width=100)
    assert "GROUP BY 1" in sql and params == {"lo": 1, "width": 100}
    assert "SET max_parallel_workers_per_gather = 2" in PG.session_setup_sql(parallel_workers=2)
    assert "SET TimeZone = 'UTC'" in PG.session_setup_sql(parallel_workers=0)
    canonical = PG.row_hash_expr(s.source_columns, HashMode.CANONICAL)
    assert "coalesce(md5(" in canonical and "'-'" in canonical and "::bit(64)::bigint" in canonical


def test_bucket_layout() -> None:
    assert bucket_layout(1, 1000, 10) == (1, 100)
    assert bucket_layout(5, 5, 3) == (5, 1)
    with pytest.raises(ValueError, match="hi must be"):
        bucket_layout(10, 1, 2)
    with pytest.raises(ValueError, match="buckets"):
        bucket_layout(1, 2, 0)


def test_hmac_keys() -> None:
    h = KeyHasher(b"0123456789abcdef-secret")
    a = h.hash("clinic.patients", ["MRN0001"])
    assert a.startswith(HASH_PREFIX) and len(a) == len(HASH_PREFIX) + 64 and "MRN0001" not in a
    assert a == KeyHasher(b"0123456789abcdef-secret").hash("clinic.patients", ["MRN0001"])
    assert a != KeyHasher(b"another-secret-of-16+").hash("clinic.patients", ["MRN0001"])
    assert a != h.hash("clinic.encounters", ["MRN0001"])
    assert "secret" not in repr(h).replace("secret=", "")
    with pytest.raises(ValueError, match="16 bytes"):
        KeyHasher(b"short")
    assert identifying_key("clinic.patients", ["mrn"], ["clinic.patients.MRN"])
    assert not identifying_key("clinic.patients", ["patient_id"], ["clinic.patients.mrn"])
    with pytest.raises(ValueError, match="identifying but no HMAC secret"):
        KeyRenderer("clinic.patients", ["mrn"], hashed=True, hasher=None)
    assert KeyRenderer("t.x", ["a", "b"], hashed=False, hasher=None).render((1, 2)) == [1, 2]


def test_report_summary_and_failure_message() -> None:
    t = TableResult(table="clinic.patients", status=TableStatus.DIFFERENT, rows_source=10, rows_target=9)
    t.counts["missing_on_target"] = 1
    t.keys["missing_on_target"] = [7]
    report = {"kind": "full", "ok": False, "source_conn_id": "s", "target_conn_id": "t", "seconds": 1.0,
              "rows_compared": 10, "differences": 1, "tables": [t.to_json()]}
    text = render_summary(report)
    assert "clinic.patients" in text and "different" in text and "[7]" not in text
    exc = ValidationFailed("full comparison", ["clinic.patients"], "XCom validate.full_comparison")
    assert "clinic.patients" in str(exc) and "XCom validate.full_comparison" in str(exc)


@pytest.mark.parametrize("path", sorted(SUITES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_suite_loads_with_exactly_its_expectations(path, tmp_path) -> None:
    doc = load_suite_file(path.stem)
    params = {p: 1 for p in parameters_of(doc)}
    context = suites_context(tmp_path, [with_parameters(doc, params)])
    assert loaded_expectation_count(context, doc["name"]) == len(json.loads(path.read_text())["expectations"])


def test_a_misspelt_type_is_caught_by_the_count(tmp_path) -> None:
    doc = with_parameters(load_suite_file("clinic_patients"), {"source_rows": 1})
    doc["expectations"][0]["type"] = "expect_column_values_to_not_be_nul"
    context = suites_context(tmp_path, [doc])
    assert loaded_expectation_count(context, doc["name"]) == len(doc["expectations"]) - 1


def test_suite_file_errors(tmp_path) -> None:
    (tmp_path / "bad.json").write_text(json.dumps({"name": "bad", "meta": {"bascule": {"table": "a.b"}},
                                                   "expectations": [{"type": "x", "kwargs": {
                                                       "unexpected_rows_query": "SELECT * FROM {batch} b"}}]}))
    with pytest.raises(SuiteError, match="subselect"):
        load_suite_file("bad", tmp_path)
    with pytest.raises(SuiteError, match="no file"):
        load_suite_file("missing", tmp_path)
    with pytest.raises(SuiteError, match="no value for parameter"):
        with_parameters(load_suite_file("clinic_patients"), {})


def test_suite_html_is_self_contained() -> None:
    page = render_suites_html({"success": False, "suites": [{"suite": "s", "expectations": [
        {"type": "expect_column_values_to_be_unique", "column": "mrn", "success": False}]}]}, title="s")
    assert "FAIL" in page and "http" not in page and "<script" not in page


def test_kinds() -> None:
    assert PG.column_kind("timestamp with time zone") is ColumnKind.TIMESTAMPTZ
    assert PG.column_kind("character varying(32)") is ColumnKind.TEXT
    assert PG.column_kind("integer[]") is ColumnKind.OTHER


def test_tables_start_largest_first_and_are_reported_in_the_given_order() -> None:
    import contextlib
    from types import SimpleNamespace

    from bascule.validation.compare import Comparator, CompareSettings, TableRef, start_order

    refs = [TableRef("clinic", "audit_log", size_bytes=300), TableRef("clinic", "observations", size_bytes=9000),
            TableRef("clinic", "staff"), TableRef("clinic", "patients", size_bytes=300)]
    assert start_order(refs) == [1, 0, 3, 2]  # ties keep the given order; unknown sizes (0) last

    side = SimpleNamespace(engine="postgres", db_conn_id="x", pooled=contextlib.nullcontext)
    comparator = Comparator(source=side, target=side, settings=CompareSettings(parallelism=1))
    started = []

    def compare_table(ref):
        started.append(ref.table)
        return TableResult(table=ref.qualified)

    comparator.compare_table = compare_table
    report = comparator.compare(refs)
    assert started == ["observations", "audit_log", "patients", "staff"]
    assert [t.table for t in report.tables] == [r.qualified for r in refs]
