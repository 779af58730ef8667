"""Source and target are two databases: compared by what the databases say they are, not by conn_id.

Two connection ids can name one database (an alias, a copy of a connection, a case
difference that Airflow's lookup ignores), and a night run from a database to itself
would freeze the application and "migrate" nothing. T-minus asks each side for its
identity (PostgreSQL: ``system_identifier`` and the database's oid; Oracle: DBID and
the PDB's GUID) and refuses the night when they are equal (ADR 0038).
"""

from __future__ import annotations

from typing import Any

from bascule.hooks.cutover import CutoverDatabaseHook


class SameDatabaseError(RuntimeError):
    """Source and target reach the same database; the message names both connections."""


def check_two_databases(source: CutoverDatabaseHook, target: CutoverDatabaseHook) -> dict[str, Any]:
    """Both identities (as a small JSON-able dict) when they differ; :class:`SameDatabaseError` when not."""
    ours, theirs = source.database_identity(), target.database_identity()
    if ours == theirs:
        raise SameDatabaseError(
            f"source ({source.db_conn_id}) and target ({target.db_conn_id}) are the same database "
            f"(system {ours.system}, database {ours.database}): the night is refused")
    return {"source": ours.as_dict(), "target": theirs.as_dict()}


def check_not_production(rehearsal_source: CutoverDatabaseHook, production_source: CutoverDatabaseHook) -> None:
    """A rehearsal's source must not be production's source, whatever the connections are called."""
    if rehearsal_source.database_identity() == production_source.database_identity():
        raise SameDatabaseError(
            f"the rehearsal's source ({rehearsal_source.db_conn_id}) is production's source "
            f"({production_source.db_conn_id}): a rehearsal never freezes production; the rehearsal is refused")
