"""The Oracle half of the comparison, as text: hashes, canonical forms, buckets, binds."""

from __future__ import annotations

import pytest

from bascule.engines.base import ColumnKind, HashColumn, HashMode, KeyRange
from bascule.engines.oracle import OracleDialect
from bascule.engines.postgres import PostgresDialect

pytestmark = pytest.mark.unit

ORA = OracleDialect()
COLS = [HashColumn("patient_id", ColumnKind.INTEGER), HashColumn("dose", ColumnKind.NUMERIC),
        HashColumn("note", ColumnKind.LARGE_TEXT), HashColumn("seen_at", ColumnKind.TIMESTAMPTZ),
        HashColumn("phone", ColumnKind.TEXT)]


def test_native_hash_is_64_bits_of_ora_hash_per_value_then_one_md5_per_row() -> None:
    expr = ORA.row_hash_expr(COLS, HashMode.NATIVE)
    # Two seeds per value, each value read once; the row's fields hashed once (60 bits of MD5).
    assert expr.count("ORA_HASH(") == 2 * len(COLS) and "4294967296" in expr
    assert expr.count("STANDARD_HASH(") == 1
    assert expr.count("'FM00000000000000000000'") == len(COLS)
    assert 'DBMS_CRYPTO.HASH(t."NOTE", 2)' in expr  # a CLOB is hashed, never concatenated
    assert "|| ':' ||" not in expr and "'|'" not in expr  # no length-prefixed row text


def test_canonical_hash_matches_postgres_layout() -> None:
    expr = ORA.row_hash_expr(COLS, HashMode.CANONICAL)
    assert "STANDARD_HASH(" in expr and "'MD5'" in expr and "'XXXXXXXXXXXXXXX'" in expr
    assert expr.count("STANDARD_HASH(") == len(COLS) + 1 and "THEN '-'" in expr
    pg = PostgresDialect().row_hash_expr([HashColumn(c.name, c.kind, True) for c in COLS], HashMode.CANONICAL)
    assert "substr(md5(" in pg and ", 1, 15)" in pg  # the same 60 bits of the same MD5
    assert pg.count("md5(") == len(COLS) + 1 + 1  # + the CLOB's own md5 (LARGE_TEXT)


def test_canonical_values() -> None:
    assert ORA.value_expr(COLS[1], HashMode.CANONICAL) == \
        "REGEXP_REPLACE(TO_CHAR(t.\"DOSE\", 'TM9'), '^(-?)\\.', '\\10.')"
    assert "SYS_EXTRACT_UTC" in ORA.value_expr(COLS[3], HashMode.CANONICAL)
    assert "TIMESTAMP(6)" in ORA.value_expr(COLS[3], HashMode.CANONICAL)
    assert ORA.column_kind("DATE") is ColumnKind.TIMESTAMP
    assert ORA.column_kind("TIMESTAMP(6) WITH TIME ZONE") is ColumnKind.TIMESTAMPTZ
    assert ORA.column_kind("NUMBER(INTEGER)") is ColumnKind.INTEGER
    assert ORA.column_kind("CLOB") is ColumnKind.LARGE_TEXT


def test_range_hashes_and_leaves_bind_by_name() -> None:
    sql, params = ORA.range_hashes_sql("clinic", "patients", key_column="patient_id", row_hash="H", lo=1,
                                       width=50, within=KeyRange(1, 101))
    assert 'FLOOR((t."PATIENT_ID" - :lo) / :width) AS bucket' in sql and sql.endswith(") GROUP BY bucket")
    assert ":r_lo" in sql and params == {"lo": 1, "width": 50, "r_lo": 1, "r_hi": 101}
    sql, params = ORA.leaf_rows_sql("clinic", "patients", key_columns=["patient_id"], row_hash="H",
                                    hash_bucket=(8, 3))
    assert "MOD(ORA_HASH(" in sql and params == {"buckets": 8, "bucket": 3}
    sql, _ = ORA.rows_by_keys_sql("clinic", "audit_log", key_columns=[("audit_id", "NUMBER"),
                                                                      ("logged_at", "TIMESTAMP")],
                                  row_hash="H", count=2)
    assert "(:k0_0, :k1_0), (:k0_1, :k1_1)" in sql
    assert ORA.bind_keys([("a", "NUMBER"), ("b", "DATE")], [(1, "x"), (2, "y")]) == {
        "k0_0": 1, "k1_0": "x", "k0_1": 2, "k1_1": "y"}
    with pytest.raises(ValueError, match="1000"):
        ORA.rows_by_keys_sql("s", "t", key_columns=[("a", "NUMBER")], row_hash="H", count=1001)


def test_session_pins_formats_and_parallelism() -> None:
    stmts = ORA.session_setup_sql(parallel_workers=2)
    assert "ALTER SESSION SET TIME_ZONE = 'UTC'" in stmts
    assert "ALTER SESSION FORCE PARALLEL QUERY PARALLEL 2" in stmts
    sql, binds = ORA.primary_key_sql("clinic", "patients")
    assert binds == {"owner": "CLINIC", "table_name": "PATIENTS"} and "constraint_type = 'P'" in sql


def test_incremental_is_not_offered_on_oracle() -> None:
    assert not hasattr(ORA, "create_change_slot_sql")
