"""Rendering row keys for reports: as they are, or as a keyed hash when the key identifies a person.

A plain hash of an MRN can be reversed by hashing every possible MRN; an HMAC
with a secret held in an Airflow connection cannot, and still lets two reports
(or a DBA holding the secret) match the same row.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
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


def surrogate_key(table: str, key_columns: Iterable[str], surrogate: Iterable[str]) -> bool:
    """True when every key column of ``schema.table`` is listed in ``plan.validation.surrogate_keys``."""
    listed = {c.lower() for c in surrogate}
    columns = list(key_columns)
    return bool(columns) and all(f"{table}.{c}".lower() in listed for c in columns)


def key_is_hashed(table: str, key_columns: Iterable[str], *, surrogate: Iterable[str],
                  identifying: Iterable[str] = ()) -> bool:
    """A key is hashed unless the plan marks all its columns surrogate (and none identifying): the default
    is the safe one, so a key nobody thought about (an MRN in another table's key) never goes out raw."""
    columns = list(key_columns)
    return identifying_key(table, columns, identifying) or not surrogate_key(table, columns, surrogate)


MIN_PRODUCTION_KEY_BYTES = 32


@functools.cache
def _repository_texts() -> tuple[str, ...]:
    """The text of every file of the repository bascule runs from (its checkout or its image); read once."""
    return tuple(_read_repository())


def _read_repository() -> Iterable[str]:
    root = Path(__file__).resolve().parents[3]
    skip = {".git", ".venv", ".airflow", ".lab", "node_modules", "__pycache__", ".ruff_cache", ".pytest_cache"}
    suffixes = {".py", ".yaml", ".yml", ".md", ".json", ".toml", ".cfg", ".ini", ".txt", ".env", ".sh", ".sql",
                ".example", ".conf", ""}
    for path in root.rglob("*"):
        if any(part in skip for part in path.relative_to(root).parts) or not path.is_file():
            continue
        if path.suffix not in suffixes or path.stat().st_size > 2_000_000:
            continue
        try:
            yield path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue


def weak_key_reason(secret: bytes | str, *, texts: Iterable[str] | None = None) -> str | None:
    """Why ``secret`` is unfit to hash a production night's keys, or None.

    At least 32 bytes, and not a key written anywhere in the repository (the lab's, an example's): a known
    key lets anyone hash every possible MRN and read the reports' hashes back.
    """
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < MIN_PRODUCTION_KEY_BYTES:
        return f"is {len(raw)} bytes, a production key needs at least {MIN_PRODUCTION_KEY_BYTES}"
    text = raw.decode(errors="ignore").strip()
    if text and any(text in t for t in (texts if texts is not None else _repository_texts())):
        return "appears in bascule's repository (a lab or example key): anyone can read it"
    return None


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
