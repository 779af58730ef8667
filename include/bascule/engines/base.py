"""What every engine dialect answers, as SQL text and bind parameters.

A dialect never opens a connection: hooks run its SQL. That keeps the Oracle
dialect testable as text here, where no Oracle database runs.
"""

from __future__ import annotations

import abc
from typing import Any

Query = tuple[str, dict[str, Any]]


class Dialect(abc.ABC):
    name: str

    @abc.abstractmethod
    def quote_ident(self, name: str) -> str: ...

    def qualified(self, schema: str, table: str) -> str:
        return f"{self.quote_ident(schema)}.{self.quote_ident(table)}"

    @abc.abstractmethod
    def server_version_sql(self) -> Query: ...

    @abc.abstractmethod
    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        """Rows of (schema, table, partitioned, partitions, total_bytes, primary_key csv, replica_identity)."""

    @abc.abstractmethod
    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        """Rows of (schema, sequence, last_value, increment_by)."""

    def count_rows_sql(self, schema: str, table: str) -> Query:
        return f"SELECT count(*) FROM {self.qualified(schema, table)}", {}
