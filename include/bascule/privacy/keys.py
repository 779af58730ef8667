"""Rendering row keys for reports: as they are, or as a keyed hash when the key identifies a person.

A plain hash of an MRN can be reversed by hashing every possible MRN; an HMAC
with a secret held in an Airflow connection cannot, and still lets two reports
(or a DBA holding the secret) match the same row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

HASH_PREFIX = "hmac-sha256:"


def json_key_value(value: Any) -> Any:
    """A key value as JSON: numbers stay numbers, times become ISO 8601 text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class KeyHasher:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("HMAC secret must be at least 16 bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "KeyHasher(secret=***)"

    def hash(self, table: str, key: Sequence[Any]) -> str:
        # The table is part of the message: the same patient_id in two tables gives two hashes.
        message = json.dumps([table, [json_key_value(v) for v in key]], separators=(",", ":"), default=str)
        return HASH_PREFIX + hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()


def identifying_key(table: str, key_columns: Iterable[str], identifying: Iterable[str]) -> bool:
    """True when any key column of ``schema.table`` is listed in ``plan.validation.identifying_keys``."""
    listed = {c.lower() for c in identifying}
    return any(f"{table}.{c}".lower() in listed for c in key_columns)


class KeyRenderer:
    """Keys of one table as they go into a report."""

    def __init__(self, table: str, key_columns: Sequence[str], *, hashed: bool,
                 hasher: KeyHasher | None) -> None:
        if hashed and hasher is None:
            raise ValueError(f"{table}: key ({', '.join(key_columns)}) is identifying but no HMAC secret is set")
        self.table = table
        self.hashed = hashed
        self.hasher = hasher
        self.single = len(key_columns) == 1

    def render(self, key: Sequence[Any]) -> Any:
        if self.hashed:
            assert self.hasher is not None
            return self.hasher.hash(self.table, key)
        values = [json_key_value(v) for v in key]
        return values[0] if self.single else values
