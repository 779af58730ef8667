"""InventoryOperator: one side's tables in scope, pushed as JSON; inventory_report prints both sides."""

from __future__ import annotations

import json

import pytest

from bascule.inventory import SequenceInventory, SideInventory, TableInventory
from bascule.operators.inventory import InventoryOperator, inventory_report

pytestmark = pytest.mark.unit

TABLES = [
    TableInventory("clinic", "patients", 2000, 1_200_000, ("id",), "default"),
    TableInventory("clinic", "encounters", 4000, 3_500_000, ("id",), "default", partitioned=True, partitions=3),
    TableInventory("clinic", "audit_log", 900, 80_000, (), "full"),
    TableInventory("billing", "invoices", 10, 8_000, ("id",), "default"),
]


class FakeInventoryHook:
    """Answers ``inventory`` from a fixed list, keeping only what the operator's filter keeps."""

    def __init__(self):
        self.calls = []

    def inventory(self, *, side, schemas, keep):
        self.calls.append((side, list(schemas)))
        tables = tuple(t for t in TABLES if t.schema in schemas and keep(t.schema, t.name))
        return SideInventory(side=side, conn_id="bascule_legacy", engine="postgres", server_version="15.8",
                             tables=tables, sequences=(SequenceInventory("clinic", "patients_id_seq", 2000, 1),))


def _inventory(**kwargs):
    op = InventoryOperator(task_id="inventory_source", db_conn_id="bascule_legacy", engine="postgres",
                           side="source", **kwargs)
    op.__dict__["hook"] = FakeInventoryHook()  # the cached hook: no database
    return op


def test_the_connection_is_templated():
    assert InventoryOperator.template_fields == ("db_conn_id",)


def test_the_inventory_keeps_the_scope_and_is_plain_json():
    op = _inventory(schemas=["clinic"], exclude_tables=["clinic.audit_log"])
    result = op.execute({})

    assert op.hook.calls == [("source", ["clinic"])]
    assert [t["name"] for t in result["tables"]] == ["patients", "encounters"]
    assert result["total_rows"] == 6000 and result["total_bytes"] == 4_700_000
    assert result["side"] == "source" and result["sequences"][0]["last_value"] == 2000
    assert json.loads(json.dumps(result)) == result  # lists, not tuples: XCom keeps it as is
    assert SideInventory.from_json(result).tables[1].partitions == 3


def test_only_the_included_tables_are_kept():
    result = _inventory(schemas=["clinic", "billing"], include_tables=["clinic.patients", "billing.invoices"]
                        ).execute({})
    assert [f"{t['schema']}.{t['name']}" for t in result["tables"]] == ["clinic.patients", "billing.invoices"]


def test_tables_without_a_primary_key_are_named_in_a_warning(capsys):
    _inventory(schemas=["clinic"]).execute({})
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "primary key" in ln]
    assert "warning" in line and "source: tables without a primary key: clinic.audit_log" in line


def test_the_report_prints_both_sides_and_returns_them(capsys):
    source = _inventory(schemas=["clinic"]).execute({})
    target = {**source, "side": "target", "conn_id": "bascule_new", "tables": source["tables"][:1]}
    assert inventory_report(source, target) == {"source": source, "target": target}
    out = capsys.readouterr().out
    assert "source: bascule_legacy (postgres 15.8)   target: bascule_new (postgres 15.8)" in out
    assert "clinic.encounters (3 partitions)" in out and "NONE" in out  # audit_log has no primary key
    assert "clinic.patients_id_seq" in out
