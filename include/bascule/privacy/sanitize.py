"""Render an error for logs, XCom, reports and Slack keeping only what is known not to be a row value.

A database error quotes the row it choked on, in every style there is: quoted
(``Key (mrn)=(MRN0001)``), unquoted and lowercase (``invalid input syntax for
type double precision: dupont``), in DETAIL, CONTEXT and HINT lines, inside a
``raise_application_error`` text (``ORA-20001: patient jean dupont``), or cut
in the middle when a caller keeps the tail of a tool's stderr. An earlier
sanitiser tried to recognise values and redact them; each of those styles got
through it. This one does the opposite (ADR 0041): it *keeps only what it
knows* and drops everything else.

What it knows:

1. the exception's class (and the classes it wraps: SQLAlchemy's
   ``IntegrityError`` around psycopg's ``UniqueViolation``), or a class name
   written in the text (``psycopg.errors.UniqueViolation: ...``);
2. the error's code: a SQLSTATE (from the driver's exception, or written as
   ``SQLSTATE 23505``) or an Oracle code (``ORA-00001``, ``DPY-4011``...);
3. object names: those the PostgreSQL protocol carries in the error's
   diagnostic fields (schema, table, column, data type, constraint: never
   values, by the protocol's definition), and any word of the text that is the
   name of an object bascule knows: the plan's schemas, tables, columns and
   roles, and the catalog's tables and columns as the hooks read them
   (:func:`know_objects`).

Everything else, the English prose included, is dropped: the team on the call
gets ``UniqueViolation [SQLSTATE 23505] clinic.patients patients_pkey``, which
says what failed and where; the SQLSTATE's meaning is in the manual.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

DEFAULT_MAX_CHARS = 240
WITHHELD = "details withheld"

_LOCK = threading.Lock()
_KNOWN: dict[str, str] = {}  # lower-case name -> name as the plan or catalog spells it

_ORACLE_CODE = re.compile(r"\b(?:ORA|PLS|TNS|DPY|DPI|SP2|IMP|EXP|KUP|OGG)-\d{3,5}\b")
_SQLSTATE = re.compile(r"\bSQLSTATE\b[\s:=\[(]*([0-9A-Z]{5})\b", re.IGNORECASE)
# PostgreSQL's verbose form: ``ERROR:  23505: duplicate key ...``
_VERBOSE_SQLSTATE = re.compile(r"\b(?:ERROR|FATAL|PANIC):\s+([0-9A-Z]{5}):")
_CLASS = re.compile(
    r"(?<![\w.])(?:[a-z_][a-z0-9_]*\.)*"
    r"([A-Z][A-Za-z0-9]*(?:Error|Exception|Violation|Warning|Timeout|Failure|Failed|Interrupt|Exit))\b"
)
# A driver's class named with its module (a traceback, SQLAlchemy's ``(psycopg.errors.X)``): any class name.
_MODULE_CLASS = re.compile(r"\b(?:psycopg2?\.errors|psycopg|sqlalchemy\.exc|oracledb(?:\.exceptions)?)\.([A-Z][A-Za-z0-9]*)\b")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)*")
_DIAG_FIELDS = ("schema_name", "table_name", "column_name", "datatype_name", "constraint_name")


class SafeMessage:
    """Mixin for bascule's own exceptions whose text is built from identifiers, numbers and text
    this module already sanitised: the sanitiser passes their message as written."""


class SafeText(str):
    """Text bascule composed from identifiers, numbers and already-sanitised parts (a replication
    reading's cause): the sanitiser passes it as written. Never wrap a driver's text in it."""


def know_objects(names: Iterable[object]) -> None:
    """Declare object names (schemas, tables, columns, constraints, roles) the sanitiser may keep.

    The plan declares its own when it is validated; hooks declare what they read from
    the catalog. Qualified names are declared whole and part by part.
    """
    with _LOCK:
        for name in names:
            if not isinstance(name, str) or not name.strip():
                continue
            name = name.strip().strip('"')
            parts = [p.strip('"') for p in name.split(".")]
            for candidate in {name, *parts, ".".join(parts[-2:])}:
                if candidate and _NAME.fullmatch(candidate):
                    _KNOWN.setdefault(candidate.lower(), candidate)


def known_objects() -> frozenset[str]:
    with _LOCK:
        return frozenset(_KNOWN.values())


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and the ones it wraps (``__cause__``, ``__context__``, SQLAlchemy's ``orig``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 8:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        for attr in ("orig", "__cause__", "__context__"):
            inner = getattr(current, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
    return seen


def _codes_of(exc: BaseException) -> list[str]:
    codes: list[str] = []
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and re.fullmatch(r"[0-9A-Z]{5}", value):
            codes.append(f"SQLSTATE {value}")
    for arg in getattr(exc, "args", ())[:1]:
        full_code = getattr(arg, "full_code", None)  # oracledb's _Error
        if isinstance(full_code, str) and _ORACLE_CODE.fullmatch(full_code):
            codes.append(full_code)
    return codes


def _diag_names(exc: BaseException) -> list[str]:
    diag = getattr(exc, "diag", None)
    if diag is None:
        return []
    names = []
    for field in _DIAG_FIELDS:
        try:
            value = getattr(diag, field, None)
        except Exception:
            value = None
        if isinstance(value, str) and _NAME.fullmatch(value):
            names.append(value)
    schema, table = getattr(diag, "schema_name", None), getattr(diag, "table_name", None)
    if isinstance(schema, str) and isinstance(table, str) and table in names and schema in names:
        names = [n for n in names if n not in (schema, table)]
        names.insert(0, f"{schema}.{table}")
    return names


def _codes_in(text: str) -> list[str]:
    codes = [f"SQLSTATE {m.group(1).upper()}" for m in _SQLSTATE.finditer(text)]
    codes += [f"SQLSTATE {m.group(1)}" for m in _VERBOSE_SQLSTATE.finditer(text)]
    codes += [m.group(0) for m in _ORACLE_CODE.finditer(text)]
    return codes


def _known_in(text: str) -> list[str]:
    with _LOCK:
        known = dict(_KNOWN)
    if not known:
        return []
    found: list[str] = []
    # Quoted identifiers lose their quotes: ``"clinic"."patients"`` is clinic.patients.
    for match in _NAME.finditer(text.replace('"."', ".")):
        token = match.group(0)
        if token.lower() in known:
            found.append(known[token.lower()])
            continue
        found += [known[p.lower()] for p in token.split(".") if p.lower() in known]
    return found


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


def sanitize_error_text(text: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """A one-line rendering of ``text`` (an exception, or any text) with only known-safe parts.

    ``ClassName [codes] object names``; ``details withheld`` when nothing known is left; ``""``
    for an empty input. Never raises: a sanitiser that can fail would tempt callers to fall
    back to the raw text.
    """
    try:
        return _sanitize(text, max_chars)
    except Exception:
        return WITHHELD


def _sanitize(text: object, max_chars: int) -> str:
    classes: list[str] = []
    codes: list[str] = []
    names: list[str] = []
    if isinstance(text, SafeMessage | SafeText):
        line = " ".join(str(text).split())
        if isinstance(text, BaseException):
            line = f"{type(text).__name__}: {line}"
        return line if len(line) <= max_chars else line[: max_chars - 1].rstrip() + "…"
    if isinstance(text, BaseException):
        chain = _chain(text)
        classes = [type(e).__name__ for e in chain]
        for exc in chain:
            codes += _codes_of(exc)
            names += _diag_names(exc)
        texts = []
        for exc in chain:
            try:
                texts.append(str(exc))
            except Exception:
                continue
        raw = "\n".join(texts)
    else:
        try:
            raw = "" if text is None else str(text)
        except Exception:
            return ""
        if not raw.strip():
            return ""
    classes += [m.group(1) for m in _MODULE_CLASS.finditer(raw)]
    classes += [m.group(1) for m in _CLASS.finditer(raw)]
    codes += _codes_in(raw)
    names += _known_in(raw)
    classes = [c for c in _dedupe(classes) if c not in ("Exception", "BaseException")] or (
        ["Exception"] if isinstance(text, BaseException) else [])
    parts = []
    if classes:
        parts.append("/".join(classes[:4]))
    if codes:
        parts.append("[" + ", ".join(_dedupe(codes)[:3]) + "]")
    if names:
        parts.append(" ".join(_dedupe(names)[:6]))
    line = " ".join(parts) or WITHHELD
    if len(line) > max_chars:
        line = line[: max_chars - 1].rstrip() + "…"
    return line
