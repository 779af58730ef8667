"""The factories, the facts each engine's dialects share, and the rule that engines import no other layer."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from bascule.engines import cutover_dialect_for, dialect_for
from bascule.engines.base import ConnectOptions, Dialect, EngineDialect
from bascule.engines.cutover_base import CutoverDialect
from bascule.plan import Engine

pytestmark = pytest.mark.unit

ENGINES_DIR = Path(__file__).resolve().parents[3] / "include" / "bascule" / "engines"


@pytest.mark.parametrize("engine", ["postgres", "oracle", Engine.POSTGRES, Engine.ORACLE])
def test_factories_pick_the_engines_classes(engine: str) -> None:
    inventory, cutover = dialect_for(engine), cutover_dialect_for(engine)
    assert isinstance(inventory, Dialect) and isinstance(cutover, CutoverDialect)
    assert inventory.name == cutover.name == str(getattr(engine, "value", engine))


@pytest.mark.parametrize("factory", [dialect_for, cutover_dialect_for])
def test_factories_refuse_an_unknown_engine(factory: Callable[[str], EngineDialect]) -> None:
    with pytest.raises(ValueError, match="engine must be one of postgres, oracle .*'mysql'"):
        factory("mysql")


@pytest.mark.parametrize("engine", ["postgres", "oracle"])
def test_the_dialects_of_one_engine_share_its_facts(engine: str) -> None:
    inventory, cutover = dialect_for(engine), cutover_dialect_for(engine)
    for fact in ("provider_hook", "provider_conn_arg", "driver_modules", "sqlalchemy_scheme", "gx_data_source",
                 "supports_logical_decoding", "runs_preparation_live"):
        assert getattr(inventory, fact) == getattr(cutover, fact), fact
    assert inventory.quote_ident("Mixed") == cutover.quote_ident("Mixed")
    assert inventory.param("k") == cutover.param("k")
    # Named by import path: the engines package never imports Airflow.
    assert inventory.provider_hook.startswith("airflow.providers.")


def test_engine_facts() -> None:
    pg, ora = dialect_for("postgres"), dialect_for("oracle")
    assert (pg.provider_hook.rsplit(".", 1)[1], pg.provider_conn_arg) == ("PostgresHook", "postgres_conn_id")
    assert (ora.provider_hook.rsplit(".", 1)[1], ora.provider_conn_arg) == ("OracleHook", "oracle_conn_id")
    assert pg.supports_logical_decoding and not ora.supports_logical_decoding
    assert pg.sqlalchemy_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    assert pg.sqlalchemy_url("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert ora.sqlalchemy_url("oracle+oracledb://u:p@h:1521/S") == "oracle+oracledb://u:p@h:1521/S"
    assert pg.server_name_sql()[0] == "SELECT current_setting('cluster_name')"
    assert ora.ping_sql() == ("SELECT 1 FROM dual", {})


def test_connect_parameters_spell_the_options_for_each_driver() -> None:
    options = ConnectOptions(through_pooler=True, application_name="bascule-smoke", connect_timeout_s=10)
    assert dialect_for("postgres").connect_parameters(options) == {
        "application_name": "bascule-smoke", "connect_timeout": 10, "prepare_threshold": None}
    assert dialect_for("oracle").connect_parameters(options) == {"module": "bascule-smoke"}
    assert dialect_for("postgres").connect_parameters(ConnectOptions(autocommit=True)) == {}
    assert dialect_for("postgres").provider_hook_kwargs(database="clinic_smoke") == {"database": "clinic_smoke"}
    assert dialect_for("oracle").provider_hook_kwargs(database="clinic_smoke") == {}


def test_driver_errors_and_their_value_free_names() -> None:
    class OraDetail:
        full_code = "ORA-01031"

    class DatabaseError(Exception):
        pass

    DatabaseError.__module__ = "oracledb.exceptions"
    ora, pg = dialect_for("oracle"), dialect_for("postgres")
    exc = DatabaseError(OraDetail())
    assert ora.is_driver_error(exc) and not pg.is_driver_error(exc)
    assert ora.error_code(exc) == "ORA-01031"
    assert not ora.is_driver_error(ValueError("x"))

    import psycopg

    refused = psycopg.errors.InsufficientPrivilege("permission denied for table observations")
    assert pg.is_driver_error(refused) and pg.error_code(refused) == "InsufficientPrivilege"


def test_lob_text_reads_a_locator_on_oracle_only() -> None:
    class Lob:
        def read(self) -> str:
            return "[]"

    assert dialect_for("oracle").lob_text(Lob()) == "[]"
    lob = Lob()
    assert dialect_for("postgres").lob_text(lob) is lob


def test_every_concrete_dialect_answers_every_declared_method() -> None:
    for factory in (dialect_for, cutover_dialect_for):
        for engine in ("postgres", "oracle"):
            dialect = factory(engine)
            assert isinstance(dialect, EngineDialect)
            assert not getattr(type(dialect), "__abstractmethods__", frozenset())


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_engines_import_only_the_standard_library_psycopg_sql_and_each_other() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted(ENGINES_DIR.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            allowed = top in stdlib or name.startswith("bascule.engines") or name == "psycopg"
            assert allowed, f"{path.name} imports {name}"
        # psycopg: its sql module only.
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "psycopg":
                assert [a.name for a in node.names] == ["sql"], path.name


def test_the_two_cutover_dialects_do_not_import_each_other() -> None:
    assert not [n for n in _imports(ENGINES_DIR / "postgres_cutover.py") if "oracle" in n]
    assert not [n for n in _imports(ENGINES_DIR / "oracle_cutover.py") if "postgres" in n]
