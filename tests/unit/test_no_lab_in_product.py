"""The product never imports the lab.

Every module under ``include/bascule/`` and ``dags/`` is parsed with ``ast``; any import of
``bascule_lab`` (or of a lab module's old path inside ``bascule``) fails the test, naming the
file and the line. The one exception: ``include/bascule/cli.py`` may import ``bascule_lab``
inside a function body, so that its lab and demo commands load the lab only when they run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from bascule.paths import DAGS_DIR, REPO_ROOT

pytestmark = pytest.mark.unit

PRODUCT_DIRS = (REPO_ROOT / "include" / "bascule", DAGS_DIR)
LAZY_ALLOWED = REPO_ROOT / "include" / "bascule" / "cli.py"
LAB = "bascule_lab"
# Where the lab's modules lived before they left the product: an import of one is a lab import too.
OLD_LAB_PATHS = ("bascule.lab", "bascule.testing", "bascule.gates", "bascule.demo_run",
                 "bascule.notifications.capture", "bascule.airflow_env")
IMPORT_FUNCTIONS = ("import_module", "__import__")


def _is_lab(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in (LAB, *OLD_LAB_PATHS))


def _imported(node: ast.AST) -> list[str]:
    """The modules an import statement (or an ``importlib.import_module("...")`` call) names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        # `from bascule import lab` names bascule.lab as much as `import bascule.lab` does.
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in IMPORT_FUNCTIONS:
            return [node.args[0].value]
    return []


def lab_imports(source: str, *, lazy_allowed: bool) -> Iterator[tuple[int, str]]:
    """(line, module) of each lab import in ``source``; with ``lazy_allowed``, those in a function body pass."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[int, str]]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            for module in _imported(child):
                if _is_lab(module) and not (lazy_allowed and in_function and module.startswith(LAB)):
                    yield child.lineno, module
                    break
            yield from walk(child, inside)

    yield from walk(ast.parse(source), False)


def product_modules() -> list[Path]:
    return sorted(path for base in PRODUCT_DIRS for path in base.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_module_of_the_product_imports_the_lab() -> None:
    modules = product_modules()
    assert len(modules) > 50, f"only {len(modules)} modules found under {PRODUCT_DIRS}"
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line}: imports {module}"
        for path in modules
        for line, module in lab_imports(path.read_text(), lazy_allowed=path == LAZY_ALLOWED)
    ]
    assert not found, "the product imports the lab (only the CLI's lab commands may, inside a function):\n" \
        + "\n".join(found)


def test_the_cli_imports_the_lab_lazily_and_the_check_sees_it() -> None:
    source = LAZY_ALLOWED.read_text()
    assert list(lab_imports(source, lazy_allowed=True)) == []
    assert list(lab_imports(source, lazy_allowed=False)), "the CLI's lab commands no longer import bascule_lab?"


@pytest.mark.parametrize("source, lazy_allowed, expected", [
    ("import bascule_lab\n", False, [(1, "bascule_lab")]),
    ("x = 1\nfrom bascule_lab.clusters import Lab\n", True, [(2, "bascule_lab.clusters")]),
    ("from bascule_lab import simulator\n", False, [(1, "bascule_lab")]),
    ("from bascule import lab\n", False, [(1, "bascule.lab")]),
    ("from bascule.gates.auto import answer_gates\n", False, [(1, "bascule.gates.auto")]),
    ("import importlib\nm = importlib.import_module('bascule_lab.seed')\n", False, [(2, "bascule_lab.seed")]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bascule_lab.clusters import Lab\n", True,
     [(3, "bascule_lab.clusters")]),
    ("class C:\n    from bascule_lab import seed\n", True, [(2, "bascule_lab")]),
    ("def f():\n    from bascule_lab import seed\n", False, [(2, "bascule_lab")]),
    ("def f():\n    from bascule_lab import seed\n", True, []),
    ("def f():\n    def g():\n        import bascule_lab.remote\n", True, []),
    ("def f():\n    from bascule.lab import seed\n", True, [(2, "bascule.lab")]),
    ("from bascule.operators.gates import GateOperator\nimport bascule_labels\n", False, []),
])
def test_the_check_names_each_lab_import_and_its_line(source: str, lazy_allowed: bool,
                                                      expected: list[tuple[int, str]]) -> None:
    assert list(lab_imports(source, lazy_allowed=lazy_allowed)) == expected
