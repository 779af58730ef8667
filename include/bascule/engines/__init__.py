"""Engine dialects: the SQL that differs between PostgreSQL and Oracle."""

from __future__ import annotations

from bascule.engines.base import Dialect


def dialect_for(engine: str) -> Dialect:
    from bascule.engines.oracle import OracleDialect
    from bascule.engines.postgres import PostgresDialect

    dialects: dict[str, type[Dialect]] = {"postgres": PostgresDialect, "oracle": OracleDialect}
    try:
        return dialects[str(getattr(engine, "value", engine))]()
    except KeyError:
        raise ValueError(f"engine must be one of {', '.join(dialects)} (got {engine!r})") from None
