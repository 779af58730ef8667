"""Inventory of the source and the target: tables, sizes, keys, replica identity, sequences."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from bascule.hooks.database import MigrationDatabaseHook
from bascule.inventory import SideInventory, render_inventory


class InventoryOperator(BaseOperator):
    """Record one side's inventory and push it to XCom as JSON."""

    template_fields: Sequence[str] = ("db_conn_id",)
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        db_conn_id: str,
        engine: str,
        side: str,
        schemas: Sequence[str],
        include_tables: Sequence[str] = (),
        exclude_tables: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.db_conn_id = db_conn_id
        self.engine = engine
        self.side = side
        self.schemas = list(schemas)
        self.include_tables = list(include_tables)
        self.exclude_tables = list(exclude_tables)

    @cached_property
    def hook(self) -> MigrationDatabaseHook:
        return MigrationDatabaseHook(db_conn_id=self.db_conn_id, engine=self.engine)

    def execute(self, context: Any) -> dict[str, Any]:
        from bascule.plan import Scope

        scope = Scope(schemas=tuple(self.schemas), include_tables=tuple(self.include_tables),
                      exclude_tables=tuple(self.exclude_tables))
        inv = self.hook.inventory(side=self.side, schemas=self.schemas, keep=scope.contains)
        self.log.info("%s: %d tables, %d rows, %d sequences", self.side, len(inv.tables), inv.total_rows,
                      len(inv.sequences))
        missing_pk = [t.qualified for t in inv.tables if not t.primary_key]
        if missing_pk:
            self.log.warning("%s: tables without a primary key: %s", self.side, ", ".join(missing_pk))
        return inv.to_json()


def inventory_report(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """Print both sides as one readable table; return the JSON for XCom."""
    src, tgt = SideInventory.from_json(source), SideInventory.from_json(target)
    print(render_inventory(src, tgt), flush=True)
    return {"source": source, "target": target}
