from __future__ import annotations

import psycopg
import pytest

from bascule.privacy.sanitize import WITHHELD, SafeMessage, SafeText, know_objects, sanitize_error_text

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _known() -> None:
    know_objects(["clinic.patients", "patients_pkey", "mrn"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('duplicate key value violates unique constraint "patients_pkey"\n'
         "DETAIL:  Key (mrn)=(MRNCANARY0001) already exists.", "patients_pkey mrn"),
        ('invalid input syntax for type double precision: "dupont"', WITHHELD),
        ("invalid input syntax for type double precision: dupont", WITHHELD),
        ("ORA-20001: patient jean dupont", "[ORA-20001]"),
        ('relation "clinic"."patients" does not exist', "clinic.patients"),
        ("psycopg.errors.UniqueViolation: duplicate key (SQLSTATE 23505)", "UniqueViolation [SQLSTATE 23505]"),
        ("ERROR:  22P02: invalid input syntax for type integer: \"abc\"", "[SQLSTATE 22P02]"),
        ("", ""),
        (None, ""),
    ],
)
def test_keeps_only_class_code_and_known_names(raw, expected):
    assert sanitize_error_text(raw) == expected


def test_an_exception_gives_its_class_sqlstate_and_wrapped_classes():
    exc = psycopg.errors.lookup("23505")('duplicate key value violates unique constraint "patients_pkey"\n'
                                         "DETAIL:  Key (mrn)=(Zqxfenwick) already exists.")
    assert sanitize_error_text(exc) == "UniqueViolation [SQLSTATE 23505] patients_pkey mrn"
    try:
        try:
            raise exc
        except psycopg.Error as inner:
            raise RuntimeError("Zqxfenwick") from inner
    except RuntimeError as outer:
        assert sanitize_error_text(outer) == "RuntimeError/UniqueViolation [SQLSTATE 23505] patients_pkey mrn"


def test_bascules_own_texts_pass_as_written():
    class Own(RuntimeError, SafeMessage):
        pass

    assert sanitize_error_text(Own("freeze of 'clinic_app' on bascule_legacy is not proven")) == (
        "Own: freeze of 'clinic_app' on bascule_legacy is not proven")
    assert sanitize_error_text(SafeText("subscription bascule_sub is disabled")) == (
        "subscription bascule_sub is disabled")


def test_length_is_capped():
    know_objects([f"table_{i}" for i in range(100)])
    assert len(sanitize_error_text(" ".join(f"table_{i}" for i in range(100)), max_chars=30)) <= 30


def test_never_raises_on_odd_input():
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no")

    assert sanitize_error_text(Unprintable()) == ""
    assert sanitize_error_text(ValueError("Zqxfenwick")) == "ValueError"
