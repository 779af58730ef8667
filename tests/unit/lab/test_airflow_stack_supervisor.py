"""The lab's supervisor ends what a dead component left running before it starts it again (ADR 0053)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bascule_lab.airflow_stack import AirflowStack, end_session, session_members

pytestmark = pytest.mark.unit

# A main process that forks a child which survives it, and a grandchild that leaves for a process group
# of its own (as a task process does, setpgid), each sleeping until killed; it prints their pids.
FORKER = """
import os, sys, time
child = os.fork()
if child == 0:
    grandchild = os.fork()
    if grandchild == 0:
        os.setpgid(0, 0)
        time.sleep(120)
        os._exit(0)
    print(os.getpid(), grandchild, flush=True)
    time.sleep(120)
    os._exit(0)
time.sleep(120)
"""


def _leader_with_orphans() -> tuple[subprocess.Popen[bytes], list[int]]:
    leader = subprocess.Popen([sys.executable, "-c", FORKER], stdout=subprocess.PIPE, start_new_session=True)
    assert leader.stdout is not None
    orphans = [int(pid) for pid in leader.stdout.readline().split()]
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=10)
    return leader, orphans


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_the_dead_leaders_session_is_ended_orphans_and_own_process_groups_included() -> None:
    leader, orphans = _leader_with_orphans()
    try:
        assert all(_running(pid) for pid in orphans)
        assert sorted(session_members(leader.pid)) == sorted(orphans)
        assert sorted(end_session(leader.pid)) == sorted(orphans)
        assert not any(_running(pid) for pid in orphans)
        assert session_members(leader.pid) == []
    finally:
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_start_component_ends_the_leftovers_before_it_starts_again(tmp_path: Path, monkeypatch) -> None:
    stack = AirflowStack(home=tmp_path, env={}, users={}, echo=lambda line: None)
    leader, orphans = _leader_with_orphans()
    stack.procs["scheduler"] = leader
    started: list[str] = []
    seen_alive: list[bool] = []

    def spawn(component: str, env: object = None) -> None:
        seen_alive.append(any(_running(pid) for pid in orphans))
        started.append(component)
        stack.procs[component] = subprocess.Popen(["sleep", "30"], start_new_session=True)

    monkeypatch.setattr(stack, "_spawn", spawn)
    try:
        assert sorted(stack.start_component("scheduler")) == sorted(orphans)
        assert started == ["scheduler"] and seen_alive == [False]
        # A running component is left alone.
        assert stack.start_component("scheduler") == [] and started == ["scheduler"]
    finally:
        for proc in stack.procs.values():
            proc.kill()
            proc.wait(timeout=5)
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and any(_running(pid) for pid in orphans):
        time.sleep(0.05)
