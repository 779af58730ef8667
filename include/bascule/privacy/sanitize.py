"""Strip anything that could be a row value from free text before it leaves bascule.

Typed events are the primary privacy control: their fields can only hold
identifiers, numbers, enums and timestamps. The one exception is a *cause*
(why a task failed, why replication broke), which usually comes from a
database error, and database errors quote the offending row:

    duplicate key value violates unique constraint "patients_pkey"
    DETAIL:  Key (mrn)=(MRN0001) already exists.

This sanitiser is deliberately paranoid and lossy: a cause that reads
``unique constraint "patients_pkey" ... Key (mrn)=(…)`` is enough for the team
on the call, the full text stays in the task log, which is access-controlled.
It works by layers, each one cheap to reason about:

1. keep the first line only (PostgreSQL puts DETAIL/HINT/CONTEXT/QUERY on the
   following lines, Python tracebacks too), and drop known detail prefixes;
2. redact the value half of ``(col)=(value)`` pairs;
3. redact quoted literals, except a double-quoted identifier that directly
   follows a schema-object word (``constraint "x"``, ``relation "y"``);
4. redact any remaining token that looks like data rather than prose: e-mail
   addresses, anything with three or more digits (MRNs, dates, phone numbers)
   except error codes such as ``ORA-00001`` or a SQLSTATE, and capitalised or
   mixed-case words that are not in a small vocabulary of error prose (a
   surname is capitalised; an English error message is not, past its first word).
"""

from __future__ import annotations

import re

REDACTED = "‹…›"
DEFAULT_MAX_CHARS = 240

_DETAIL_PREFIXES = re.compile(
    r"^\s*(DETAIL|HINT|CONTEXT|WHERE|QUERY|STATEMENT|LINE \d+|Failing row contains|PL/pgSQL)\b",
    re.IGNORECASE,
)
# ``Key (a, b)=(x, y)`` and ``(col)=(value)``; values may nest one level of parentheses.
_KEY_VALUE = re.compile(r"\)=\((?:[^()]|\([^()]*\))*\)?")
_OBJECT_WORDS = (
    "constraint|relation|table|column|index|schema|sequence|type|function|database|"
    "role|slot|publication|subscription|view|trigger|extension|operator|tablespace"
)
# A double-quoted identifier right after an object word survives; all other quotes are redacted.
_KEPT_IDENTIFIER = re.compile(rf"\b(?:{_OBJECT_WORDS})\s+\"[a-z_][a-z0-9_$]*(?:\.[a-z_][a-z0-9_$]*)*\"")
_QUOTED = re.compile(r"""E?'(?:[^'\\]|\\.|'')*'?|"[^"]*"?|`[^`]*`?|‘[^’]*’?|“[^”]*”?""")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CODE = re.compile(r"^(?:ORA|PLS|TNS|SQL|ERR)-\d{3,5}:?$|^SQLSTATE$|^[0-9A-Z]{5}$")
_TOKEN = re.compile(r"[^\s,;:()\[\]{}<>=]+")
_PROSE_CAPITALISED = frozenset(
    """
    ERROR FATAL PANIC WARNING NOTICE LOG Error Fatal Warning Key Failing Connection Could Cannot
    Can Permission Duplicate Invalid Value Values The A An No Not Is Unable Unexpected Timeout
    Timed Lost Replication Lag Slot Query Server Client SSL TCP Oracle PostgreSQL Postgres ORA
    SQLSTATE Deadlock Canceling Cancelling Terminating Database Table Column Relation Constraint
    Network Host Port Operation Broken Connect Read Write Insert Update Delete Select Check Unique
    Foreign Null NULL None True False Too Many Missing Failed Lost Stream Streaming Apply Applying
    Subscription Publication Worker Process Task Try Retry
    """.split()
)
_EXCEPTION_NAME = re.compile(r"^[A-Z][A-Za-z]*(Error|Exception|Violation|Timeout|Warning|Broken)$")


def _is_data_token(token: str) -> bool:
    core = token.strip(".'\"!?")
    if not core or core == REDACTED:
        return False
    if _CODE.match(core):
        return False
    if sum(ch.isdigit() for ch in core) >= 3:
        return True
    if any(ch.isupper() for ch in core):
        # Dotted identifiers such as ``Public.Patients`` are not prose either.
        if core in _PROSE_CAPITALISED or _EXCEPTION_NAME.match(core):
            return False
        return True
    return False


def _redact_tokens(line: str) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        return REDACTED if _is_data_token(token) else token

    return _TOKEN.sub(replace, line)


def _redact_quotes(line: str) -> str:
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    line = _KEPT_IDENTIFIER.sub(keep, line)
    line = _QUOTED.sub(REDACTED, line)
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], line)


def sanitize_error_text(text: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return a one-line, value-free rendering of ``text`` (any object, usually an exception).

    Never raises: anything unexpected collapses to an empty string, because a
    sanitiser that can fail would tempt callers to fall back to the raw text.
    """
    try:
        raw = str(text) if text is not None else ""
    except Exception:
        return ""
    lines = [ln for ln in raw.replace("\r", "\n").split("\n") if ln.strip()]
    lines = [ln for ln in lines if not _DETAIL_PREFIXES.match(ln)]
    if not lines:
        return ""
    line = " ".join(lines[0].split())
    line = _KEY_VALUE.sub(f")=({REDACTED})", line)
    line = _redact_quotes(line)
    line = _EMAIL.sub(REDACTED, line)
    line = _redact_tokens(line)
    line = re.sub(rf"{re.escape(REDACTED)}(?:\s*{re.escape(REDACTED)})+", REDACTED, line).strip()
    # Slack reads these three as control characters in mrkdwn.
    line = line.replace("&", "and").replace("<", "‹").replace(">", "›")
    if len(line) > max_chars:
        line = line[: max_chars - 1].rstrip() + "…"
    return line
