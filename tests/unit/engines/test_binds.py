"""Bind variables of the team's SQL (smoke checks): ``:name`` found outside literals and respelt per driver."""

from __future__ import annotations

import pytest

from bascule.engines import dialect_for
from bascule.engines.binds import bind_names, render_binds

pytestmark = pytest.mark.unit

SQL = ("SELECT e.encounter_id::text, ':not_a_bind' AS \"a:b\", 'it''s :x' FROM clinic.encounters e -- :c\n"
       "WHERE e.patient_id = :patient_id AND e.ward LIKE 'W%' /* :z */ AND e.encounter_id > :encounter_id"
       " AND e.patient_id = :patient_id")


def test_binds_are_found_outside_literals_comments_and_casts() -> None:
    assert bind_names(SQL) == ["patient_id", "encounter_id"]
    assert bind_names("SELECT now()::date, x::int FROM t") == []
    assert bind_names("SELECT TO_CHAR(t, 'HH24:MI') FROM dual WHERE id = :id") == ["id"]


def test_postgres_spells_binds_for_psycopg_and_doubles_percent_signs() -> None:
    text = dialect_for("postgres").driver_sql(SQL)
    assert "= %(patient_id)s AND" in text and "> %(encounter_id)s" in text
    assert "LIKE 'W%%'" in text and "':not_a_bind'" in text and "::text" in text
    # Nothing bound: the text goes as it is (psycopg then reads no placeholder at all).
    assert dialect_for("postgres").driver_sql("SELECT 1 WHERE 'a' LIKE 'a%'") == "SELECT 1 WHERE 'a' LIKE 'a%'"


def test_oracle_keeps_its_own_spelling() -> None:
    assert dialect_for("oracle").driver_sql(SQL) == SQL


def test_render_binds_with_any_spelling() -> None:
    assert render_binds("a = :k AND b = ':k'", lambda n: f"?{n}", escape_percent=False) == "a = ?k AND b = ':k'"
