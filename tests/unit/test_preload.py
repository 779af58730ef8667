"""bascule.preload: what the scheduler / Celery worker imports before forking tasks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bascule import preload

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("YES", True), ("", False),
                                                  ("0", False), ("no", False)])
def test_wanted_reads_the_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(preload.ENV, value)
    assert preload.wanted() is expected


def test_a_missing_module_is_skipped_and_named(caplog: pytest.LogCaptureFixture) -> None:
    took = preload.preload(("json", "bascule_no_such_module"))
    assert set(took) == {"json"}
    assert "bascule_no_such_module not imported (ModuleNotFoundError)" in caplog.text


def test_every_listed_module_imports() -> None:
    # In a fresh interpreter, so that the modules really are imported here and not found in sys.modules.
    code = ("import sys; from bascule import preload; took = preload.preload(); "
            "missing = set(preload.MODULES) - set(took); print(sorted(missing)); sys.exit(1 if missing else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_the_plugin_preloads_only_when_asked() -> None:
    from bascule.paths import PLUGINS_DIR

    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); "
            "print('great_expectations' in sys.modules)")
    plugin = str(PLUGINS_DIR / "bascule_preload.py")
    env_off = {k: v for k, v in __import__("os").environ.items() if k != preload.ENV}
    off = subprocess.run([sys.executable, "-c", code, plugin], capture_output=True, text=True, timeout=300,
                         env=env_off)
    on = subprocess.run([sys.executable, "-c", code, plugin], capture_output=True, text=True, timeout=300,
                        env={**env_off, preload.ENV: "1"})
    assert off.stdout.strip().splitlines()[-1] == "False", off.stderr[-2000:]
    assert on.stdout.strip().splitlines()[-1] == "True", on.stderr[-2000:]
