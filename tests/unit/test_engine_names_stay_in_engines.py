"""Outside ``bascule.engines`` no module compares an engine's name: the dialect is where engines differ.

An AST walk over ``include/bascule``: a comparison, ``match`` case or dict key with
an engine's name ("postgres", "oracle") or the plan's ``Engine.POSTGRES``/``ORACLE``
is a branch on the engine. ``plan.py`` may declare its ``Engine`` enum and which
engine each replication method drives. The lab, testing and gates packages (moving
to another package) and the capture and demo scripts are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "bascule"
SKIPPED_DIRS = ("engines", "lab", "testing", "gates")
SKIPPED_FILES = ("notifications/capture.py", "demo_run.py")
NAMES = {"postgres", "oracle", "postgresql"}
MEMBERS = {"POSTGRES", "ORACLE"}


def _is_engine_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.lower() in NAMES
    if isinstance(node, ast.Attribute) and node.attr in MEMBERS:
        return True
    if isinstance(node, ast.Attribute) and node.attr == "value":
        return _is_engine_name(node.value)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_engine_name(e) for e in node.elts)
    return False


def engine_branches(source: str, filename: str = "<text>") -> list[int]:
    """Line numbers of engine-name comparisons, match cases and dict keys in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Compare) and any(_is_engine_name(n) for n in [node.left, *node.comparators]):
            lines.append(node.lineno)
        elif isinstance(node, ast.MatchValue) and _is_engine_name(node.value):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and any(k is not None and _is_engine_name(k) for k in node.keys):
            lines.append(node.lineno)
    return sorted(lines)


def _modules() -> list[Path]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.split("/")[0] in SKIPPED_DIRS or rel in SKIPPED_FILES:
            continue
        out.append(path)
    return out


def test_the_walk_finds_each_kind_of_engine_branch() -> None:
    source = ("if engine == 'postgres': pass\n"
              "if plan.source.engine is Engine.ORACLE: pass\n"
              "x = {'oracle': 1}\n"
              "match engine:\n    case 'postgres':\n        pass\n"
              "if a.engine.value != 'Oracle': pass\n"
              "if source.engine != target.engine: pass\n"  # two sides compared: not a name
              "conn_type = 'postgres'\n")  # a name, not a branch
    assert engine_branches(source) == [1, 2, 3, 5, 7]


def test_no_module_outside_engines_compares_an_engine_name() -> None:
    found = {}
    for path in _modules():
        lines = engine_branches(path.read_text(), filename=str(path))
        if lines:
            found[path.relative_to(PACKAGE).as_posix()] = lines
    assert found == {}, f"engine branches outside bascule.engines (ask the dialect instead): {found}"


def test_the_walk_covers_the_hooks_and_the_plan() -> None:
    walked = {p.relative_to(PACKAGE).as_posix() for p in _modules()}
    assert {"hooks/cutover.py", "hooks/database.py", "plan.py", "cutover/smoke.py"} <= walked
    assert not [p for p in walked if p.startswith("engines/")]
