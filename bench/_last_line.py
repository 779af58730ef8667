"""Every bench ends its output with its figures line, whatever it does after.

A bench stops its lab, its Airflow or its servers when it is done, and those print
lines of their own ("lab: control  stopped"). The figures line is written into the
buffer this context manager yields and printed when the block exits, after all of
that, so the bench's last line is always its figures:

    with figures_last() as last:
        lab.up()
        try:
            ...
            print(f"before_mb={b} after_mb={a}", file=last)
        finally:
            lab.down()
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def figures_last() -> Iterator[io.StringIO]:
    held = io.StringIO()
    try:
        yield held
    finally:
        sys.stderr.flush()
        sys.stdout.flush()
        if held.getvalue():
            sys.stdout.write(held.getvalue())
            sys.stdout.flush()
