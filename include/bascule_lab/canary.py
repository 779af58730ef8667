"""Canary patients: five records whose identifying values never occur by chance.

seed.sql inserts exactly these rows (keep the two in step; the seed tests compare
them). Any later output - logs, XCom, reports, notifications - that contains one
of CANARY_STRINGS has leaked patient data, which is what the leak tests grep for.
Their clinical notes deliberately carry no identifying text.
"""

from __future__ import annotations

from datetime import date
from typing import Any

CANARY_PATIENTS: tuple[dict[str, Any], ...] = (
    {
        "mrn": "MRNCANARY0001",
        "nin": "ZZ999901Q",
        "family_name": "Zqxcanaryfenwick",
        "given_name": "Canaryquilla",
        "birth_date": date(1961, 3, 14),
        "sex": "F",
        "address_line": "17 Canarywharf Xylo Lane",
        "postcode": "ZZ99 1QX",
        "phone": "+44 7700 900001",
    },
    {
        "mrn": "MRNCANARY0002",
        "nin": "ZZ999902Q",
        "family_name": "Zqxcanarybrightmoor",
        "given_name": "Canaryoswaldo",
        "birth_date": date(1978, 11, 2),
        "sex": "M",
        "address_line": "42 Quizzlecanary Mews",
        "postcode": "ZZ99 2QX",
        "phone": "+44 7700 900002",
    },
    {
        "mrn": "MRNCANARY0003",
        "nin": "ZZ999903Q",
        "family_name": "Zqxcanaryholloway",
        "given_name": "Canarybelphine",
        "birth_date": date(1990, 6, 30),
        "sex": "X",
        "address_line": "3 Canarybrook Zephyr Court",
        "postcode": "ZZ99 3QX",
        "phone": "+44 7700 900003",
    },
    {
        "mrn": "MRNCANARY0004",
        "nin": "ZZ999904Q",
        "family_name": "Zqxcanarymarchetti",
        "given_name": "Canarytobiah",
        "birth_date": date(2004, 1, 21),
        "sex": "M",
        "address_line": "88 Xylocanary Jubilee Row",
        "postcode": "ZZ99 4QX",
        "phone": "+44 7700 900004",
    },
    {
        "mrn": "MRNCANARY0005",
        "nin": "ZZ999905Q",
        "family_name": "Zqxcanaryvantongeren",
        "given_name": "Canaryeloweth",
        "birth_date": date(1949, 9, 9),
        "sex": "U",
        "address_line": "5 Canaryquay Wyvern Terrace",
        "postcode": "ZZ99 5QX",
        "phone": "+44 7700 900005",
    },
)

# Birth date and sex are not distinctive on their own, so they are not grepped for.
_DISTINCTIVE = ("mrn", "nin", "family_name", "given_name", "address_line", "postcode", "phone")

CANARY_STRINGS: tuple[str, ...] = tuple(str(p[k]) for p in CANARY_PATIENTS for k in _DISTINCTIVE)

CANARY_MRNS: tuple[str, ...] = tuple(str(p["mrn"]) for p in CANARY_PATIENTS)
