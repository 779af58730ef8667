"""SQL text for GoldenGate heartbeat views and Oracle SCN positions.

``ADD HEARTBEATTABLE`` creates the seed, heartbeat and history tables
(``GG_HEARTBEAT_SEED``, ``GG_HEARTBEAT``, ``GG_HEARTBEAT_HISTORY``) and the views
``GG_LAG`` and ``GG_LAG_HISTORY`` in the GoldenGate admin schema of each
database. Values always travel as bind variables; the only text we splice in is
the owning schema, an Oracle identifier that cannot be bound, checked against
:func:`heartbeat_owner` first.

See ``tests/fixtures/goldengate/SOURCES.md`` for what is documented and what is not.
"""

from __future__ import annotations

import re

# Unquoted Oracle identifier: a letter, then letters, digits, _ $ #, at most 128 bytes.
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_$#]{0,127}$")

# Position on the source: the SCN it will have reached once frozen.
CURRENT_SCN = "SELECT current_scn FROM v$database"

# The source's own clock for an SCN, in UTC, because heartbeat timestamps are
# compared in UTC. SCN_TO_TIMESTAMP answers in the server's OS time zone, which
# SYSTIMESTAMP carries; it is only accurate to a few seconds, so callers add a margin.
SCN_TO_UTC = (
    "SELECT SYS_EXTRACT_UTC(FROM_TZ(SCN_TO_TIMESTAMP(:scn), TO_CHAR(SYSTIMESTAMP, 'TZR'))) FROM dual"
)

GG_LAG_COLUMNS = (
    "local_database",
    "current_local_ts",
    "remote_database",
    "incoming_path",
    "incoming_lag",
    "incoming_heartbeat_age",
    "outgoing_path",
    "outgoing_lag",
    "outgoing_heartbeat_age",
)

GG_LAG_HISTORY_COLUMNS = (
    "local_database",
    "heartbeat_received_ts",
    "remote_database",
    "incoming_path",
    "incoming_lag",
    "outgoing_path",
    "outgoing_lag",
)


def heartbeat_owner(owner: str | None) -> str:
    """``owner.`` prefix for the heartbeat objects, or ``""`` to use the session's schema."""
    if owner is None or owner == "":
        return ""
    if not _IDENTIFIER.match(owner):
        raise ValueError("heartbeat schema must be a plain Oracle identifier")
    return f"{owner.upper()}."


def gg_lag_sql(owner: str | None = None) -> str:
    """Current lag per path from ``GG_LAG``, optionally for one remote (source) database."""
    return (
        f"SELECT {', '.join(GG_LAG_COLUMNS)} FROM {heartbeat_owner(owner)}GG_LAG"
        " WHERE (:remote_database IS NULL OR remote_database = :remote_database)"
        " ORDER BY incoming_path"
    )


def gg_lag_history_sql(owner: str | None = None) -> str:
    """Heartbeats received since ``:since`` from ``GG_LAG_HISTORY``, oldest first."""
    return (
        f"SELECT {', '.join(GG_LAG_HISTORY_COLUMNS)} FROM {heartbeat_owner(owner)}GG_LAG_HISTORY"
        " WHERE heartbeat_received_ts >= :since"
        " AND (:remote_database IS NULL OR remote_database = :remote_database)"
        " ORDER BY heartbeat_received_ts"
    )


def applied_heartbeat_watermark_sql(owner: str | None = None) -> str:
    """Newest source-side heartbeat time the target has applied, per incoming path.

    ``incoming_heartbeat_ts`` is stamped on the source when the heartbeat is
    generated, so comparing it with a source time needs no cross-host clock.
    """
    return (
        f"SELECT MAX(incoming_heartbeat_ts) FROM {heartbeat_owner(owner)}GG_HEARTBEAT_HISTORY"
        " WHERE (:incoming_path IS NULL OR incoming_path = :incoming_path)"
    )
