"""Every bench ends its output with its figures line, whatever it does after (README, ``bench/_last_line.py``)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from bascule.paths import REPO_ROOT

pytestmark = pytest.mark.unit

BENCH = REPO_ROOT / "bench"
BENCHES = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))
FIGURES = re.compile(r'print\(f"[a-z_0-9]+=\{.*?file=last\)', re.DOTALL)


@pytest.mark.parametrize("bench", BENCHES, ids=[p.stem for p in BENCHES])
def test_each_bench_prints_its_figures_through_the_last_line_buffer(bench):
    text = bench.read_text()
    assert "with figures_last() as last:" in text, f"{bench.name} does not hold its figures line to the end"
    assert len(FIGURES.findall(text)) == 1, f"{bench.name} must print exactly one figures line, to `last`"


def test_the_figures_line_comes_after_whatever_the_bench_prints_on_its_way_out(tmp_path):
    script = tmp_path / "fake_bench.py"
    script.write_text(textwrap.dedent("""
        import sys
        from _last_line import figures_last

        with figures_last() as last:
            try:
                print("bench: working")
                print(f"before_mb={1.0} after_mb={0.7}", file=last)
            finally:
                print("lab: control  stopped")
                print("lab: legacy   stopped", file=sys.stderr)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(BENCH)})
    assert out.stdout.splitlines() == ["bench: working", "lab: control  stopped", "before_mb=1.0 after_mb=0.7"]
