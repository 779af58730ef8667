"""Engine dialects: the SQL and the facts that differ between PostgreSQL and Oracle.

The factories below are the one place an engine's name picks its classes; every
other module asks the dialect (``bascule.engines.base``, ``bascule.engines.cutover_base``).
"""

from __future__ import annotations

from typing import TypeVar

from bascule.engines.base import Dialect
from bascule.engines.cutover_base import CutoverDialect

_D = TypeVar("_D")


def _pick(engine: object, dialects: dict[str, type[_D]]) -> _D:
    try:
        return dialects[str(getattr(engine, "value", engine))]()
    except KeyError:
        raise ValueError(f"engine must be one of {', '.join(dialects)} (got {engine!r})") from None


def dialect_for(engine: str) -> Dialect:
    """Inventory and validation SQL of ``engine`` (a name or the plan's ``Engine``)."""
    from bascule.engines.oracle import OracleDialect
    from bascule.engines.postgres import PostgresDialect

    return _pick(engine, {"postgres": PostgresDialect, "oracle": OracleDialect})


def cutover_dialect_for(engine: str) -> CutoverDialect:
    """Cutover SQL of ``engine``: restore point, freeze, unfreeze, sequences, constraints."""
    from bascule.engines.oracle_cutover import OracleCutoverDialect
    from bascule.engines.postgres_cutover import PostgresCutoverDialect

    return _pick(engine, {"postgres": PostgresCutoverDialect, "oracle": OracleCutoverDialect})


def derives_grants(engine: str) -> bool:
    """Whether ``bascule plan grants`` derives the migration user's privileges for ``engine`` from its
    statements (Oracle: ``bascule.engines.oracle_grants``; PostgreSQL's are in docs/production.md)."""
    return str(getattr(engine, "value", engine)) == "oracle"
