"""What the lab's clusters (:mod:`bascule_lab.clusters`) and its PgBouncer (:mod:`bascule_lab.pgbouncer`)
both need: names, the lab's state file, its error, and small process and port helpers.

Kept apart so that the PgBouncer manager does not import the clusters module that
starts it: ``clusters`` imports ``pgbouncer``, both import this module, and this
module imports neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

CLUSTERS: tuple[str, ...] = ("legacy", "new", "control")
SOURCE, TARGET, CONTROL = CLUSTERS
APP_DB = "clinic"
LAB_USER = "bascule"
ROLES = ("bascule_admin", "clinic_app", "bascule_repl")

Echo = Callable[[str], None]


class LabError(RuntimeError):
    """A lab operation failed; the message says what and how to fix it."""


@dataclasses.dataclass
class LabState:
    ports: dict[str, int]
    passwords: dict[str, str]
    hmac_key: str
    seed: dict[str, Any] | None = None
    # The workers' key that signs gate decisions (connection bascule_decision_key), made once per lab.
    decision_key: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))

    @classmethod
    def new(cls) -> LabState:
        used: set[int] = set()
        ports: dict[str, int] = {}
        for name in CLUSTERS:
            port = free_port()
            while port in used:
                port = free_port()
            used.add(port)
            ports[name] = port
        passwords = {role: secrets.token_urlsafe(18) for role in (*ROLES, "airflow_meta")}
        return cls(ports=ports, passwords=passwords, hmac_key=secrets.token_hex(32))


class LabLike(Protocol):
    """What the lab's PgBouncer needs of the lab; :class:`bascule_lab.clusters.Lab` is one."""

    root: Path
    echo: Echo

    def state(self) -> LabState: ...


def live_pid(pidfile: Path) -> int | None:
    """The pid a server wrote in its pid file (first field), if that process is still alive."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, owned by the lab's unprivileged user
        pass
    return pid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_gone(pid: int, timeout: float = 15) -> None:
    """Wait for a process to exit; SIGKILL it after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def as_root() -> bool:
    """As root, the lab's servers run as the unprivileged :data:`LAB_USER` (PostgreSQL refuses root)."""
    return os.geteuid() == 0


def run_as_lab_user(argv: list[str], *, check: bool = True,
                    timeout: float = 120) -> subprocess.CompletedProcess[str]:
    if as_root():
        argv = ["runuser", "-u", LAB_USER, "--", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def write_private(path: Path, text: str, *, mode: int = 0o600, lab_user: bool = False) -> None:
    """Write ``text`` to ``path`` atomically, the file created with its final ``mode``: a secret is never
    readable by another local account, not even between the write and a chmod."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    if lab_user:
        chown_to_lab_user(tmp)
    tmp.replace(path)


def chown_to_lab_user(path: Path) -> None:
    if as_root():
        shutil.chown(path, user=LAB_USER, group=LAB_USER)
