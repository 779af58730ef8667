"""Named bind variables in SQL the team writes (``:name``), found and spelt for a driver.

Plans carry SQL written once for whichever engine answers (smoke tests): its binds
are written ``:name``, Oracle's own spelling, and a dialect respells them for its
driver (psycopg's ``%(name)s``). Only the text outside string literals, quoted
identifiers and comments is looked at, and PostgreSQL's ``::`` casts are not binds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces of ``sql``: "bind" (text is the name), or "text" for everything else."""
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c in ("'", '"'):
            # A quote inside is doubled; an unterminated literal runs to the end.
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif sql.startswith("::", i):
            i += 2
        elif c == ":" and (m := _NAME.match(sql, i + 1)) and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            if start < i:
                yield "text", sql[start:i]
            yield "bind", m.group()
            i = start = m.end()
        else:
            i += 1
    if start < n:
        yield "text", sql[start:]


def bind_names(sql: str) -> list[str]:
    """The ``:name`` binds of ``sql``, in order of first use."""
    seen: dict[str, None] = {}
    for kind, text in _tokens(sql):
        if kind == "bind":
            seen.setdefault(text, None)
    return list(seen)


def render_binds(sql: str, param: Callable[[str], str], *, escape_percent: bool) -> str:
    """``sql`` with each ``:name`` spelt ``param(name)``; unchanged when it binds nothing.

    ``escape_percent`` doubles every other ``%`` (psycopg reads ``%`` as a placeholder
    wherever it stands once parameters are passed, inside string literals too).
    """
    pieces = list(_tokens(sql))
    if not any(kind == "bind" for kind, _ in pieces):
        return sql
    out = []
    for kind, text in pieces:
        if kind == "bind":
            out.append(param(text))
        else:
            out.append(text.replace("%", "%%") if escape_percent else text)
    return "".join(out)
