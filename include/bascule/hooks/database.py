"""The hook for source and target databases, whatever their engine.

It wraps the providers' own hooks (PostgresHook, OracleHook) for connections
and secrets, and runs the SQL of the engine's dialect. Only identifiers and
counts leave it: no query here selects a row value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from bascule.engines import dialect_for
from bascule.engines.base import Dialect
from bascule.inventory import SequenceInventory, SideInventory, TableInventory


class MigrationDatabaseHook(BaseHook):
    """Source or target database of a migration."""

    conn_name_attr = "db_conn_id"
    hook_name = "bascule migration database"

    def __init__(self, *, db_conn_id: str, engine: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db_conn_id = db_conn_id
        self.engine = str(getattr(engine, "value", engine))

    @cached_property
    def dialect(self) -> Dialect:
        return dialect_for(self.engine)

    @cached_property
    def sql_hook(self) -> Any:
        if self.engine == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            return PostgresHook(postgres_conn_id=self.db_conn_id)
        from airflow.providers.oracle.hooks.oracle import OracleHook

        return OracleHook(oracle_conn_id=self.db_conn_id)

    def records(self, query: tuple[str, dict[str, Any]]) -> list[tuple[Any, ...]]:
        sql, params = query
        return [tuple(r) for r in self.sql_hook.get_records(sql, parameters=params or None)]

    def inventory(
        self, *, side: str, schemas: list[str], keep: Callable[[str, str], bool] | None = None
    ) -> SideInventory:
        """Tables (exact row counts) and sequences of the schemas; ``keep(schema, table)`` narrows the scope."""
        (version,) = self.records(self.dialect.server_version_sql())[0]
        tables = []
        for schema, name, partitioned, partitions, total_bytes, pk, replident in self.records(
            self.dialect.inventory_tables_sql(schemas)
        ):
            if keep is not None and not keep(schema, name):
                continue
            (rows,) = self.records(self.dialect.count_rows_sql(schema, name))[0]
            tables.append(TableInventory(
                schema=schema, name=name, rows=int(rows), total_bytes=int(total_bytes or 0),
                primary_key=tuple(pk.split(",")) if pk else (), replica_identity=_replica_identity(replident),
                partitioned=bool(partitioned), partitions=int(partitions or 0),
            ))
        sequences = tuple(
            SequenceInventory(schema=s, name=n, last_value=None if lv is None else int(lv), increment_by=int(inc))
            for s, n, lv, inc in self.records(self.dialect.inventory_sequences_sql(schemas))
        )
        return SideInventory(side=side, conn_id=self.db_conn_id, engine=self.engine,
                             server_version=str(version), tables=tuple(tables), sequences=sequences)


def _replica_identity(code: str) -> str:
    from bascule.engines.postgres import REPLICA_IDENTITY

    return REPLICA_IDENTITY.get(code, code)
