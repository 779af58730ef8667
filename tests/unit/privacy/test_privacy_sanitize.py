from __future__ import annotations

import pytest

from bascule.privacy.sanitize import REDACTED, sanitize_error_text

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            'duplicate key value violates unique constraint "patients_pkey"\n'
            "DETAIL:  Key (mrn)=(MRNCANARY0001) already exists.",
            'duplicate key value violates unique constraint "patients_pkey"',
        ),
        ("Key (mrn)=(MRNCANARY0001) already exists", f"Key (mrn)=({REDACTED}) already exists"),
        ("Key (a, b)=(x (y), z) exists", f"Key (a, b)=({REDACTED}) exists"),
        (
            'invalid input syntax for type integer: "abc"',
            f"invalid input syntax for type integer: {REDACTED}",
        ),
        ("ValueError: invalid literal for int() with base 10: 'fenwick'", None),
        ('relation "public.patients" does not exist', 'relation "public.patients" does not exist'),
        ("replication slot is inactive", "replication slot is inactive"),
        ("ORA-00001: unique constraint violated", "ORA-00001: unique constraint violated"),
        ("", ""),
        (None, ""),
    ],
)
def test_known_shapes(raw, expected):
    result = sanitize_error_text(raw)
    if expected is not None:
        assert result == expected
    assert "\n" not in result


@pytest.mark.parametrize(
    ("raw", "secrets"),
    [
        ("Zqxcanaryfenwick", ["Zqxcanaryfenwick"]),
        ("new row for patient Zqxcanaryfenwick Canaryquilla violates check", ["Zqxcanary", "Canaryquilla"]),
        ("born 1961-03-14, phone +44 7700 900001", ["1961", "900001"]),
        ("contact zqx@example.org", ["zqx@example.org"]),
        ("value 'Fenwick' rejected", ["Fenwick"]),
        ("Failing row contains (MRNCANARY0001, Zqxcanaryfenwick)", ["MRNCANARY0001", "Zqxcanaryfenwick"]),
        ("error\nDETAIL: Failing row contains (17 Canarywharf Xylo Lane).", ["Canarywharf"]),
        ('ERROR: null value\nCONTEXT: COPY patients, line 3, column family_name: "Zqx"', ["Zqx"]),
        ("postcode ZZ99 1QX refused", ["ZZ99", "1QX"]),
        ("E'Zqx\\'s note' not allowed", ["Zqx"]),
    ],
)
def test_values_never_survive(raw, secrets):
    result = sanitize_error_text(raw)
    for secret in secrets:
        assert secret not in result


def test_length_is_capped_and_mrkdwn_controls_neutralised():
    result = sanitize_error_text("a <b> & c " * 100, max_chars=50)
    assert len(result) <= 50
    assert "<" not in result and ">" not in result and "&" not in result


def test_never_raises_on_odd_input():
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no")

    assert sanitize_error_text(Unprintable()) == ""
    assert sanitize_error_text(ValueError("x")) == "x"
