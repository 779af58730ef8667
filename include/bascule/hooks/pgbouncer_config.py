"""PgBouncer's ``[databases]`` include file: rendered and parsed as text.

Kept apart from the hook so that the lab (which writes the first version of the
file) and the hook (which rewrites it at a switch) share one format without the
lab importing Airflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST = re.compile(r"[A-Za-z0-9_.:\-/]+")
_ENTRY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class PgBouncerConfigError(ValueError):
    """The databases file or an entry for it is malformed; the message names the entry."""


@dataclass(frozen=True)
class DatabaseTarget:
    """Where one PgBouncer database entry sends its clients."""

    host: str
    port: int
    dbname: str

    def __post_init__(self) -> None:
        if not _HOST.fullmatch(self.host):
            raise PgBouncerConfigError(f"host must be a host name, address or socket dir (got {self.host!r})")
        if not 0 < int(self.port) < 65536:
            raise PgBouncerConfigError(f"port must be 1..65535 (got {self.port!r})")
        if not _NAME.fullmatch(self.dbname):
            raise PgBouncerConfigError(f"dbname must be a plain identifier (got {self.dbname!r})")

    def render(self) -> str:
        return f"host={self.host} port={int(self.port)} dbname={self.dbname}"

    @classmethod
    def parse(cls, name: str, value: str) -> DatabaseTarget:
        pairs = dict(p.split("=", 1) for p in value.split() if "=" in p)
        try:
            return cls(host=pairs["host"], port=int(pairs["port"]), dbname=pairs.get("dbname", name))
        except (KeyError, ValueError) as exc:
            raise PgBouncerConfigError(f"database entry {name!r} needs host= and port= ({exc})") from None


HEADER = "; Managed by bascule: the application's endpoint. Rewritten atomically at a switch.\n"


def render_databases(entries: Mapping[str, DatabaseTarget], *, keep: str = "") -> str:
    """The whole include file: ``keep`` holds foreign entry lines preserved verbatim."""
    for name in entries:
        if not _NAME.fullmatch(name):
            raise PgBouncerConfigError(f"database name must be a plain identifier (got {name!r})")
    lines = [HEADER, "[databases]\n", keep]
    lines += [f"{name} = {target.render()}\n" for name, target in entries.items()]
    return "".join(lines)


def parse_databases(text: str) -> dict[str, str]:
    """Entry name -> raw value, for the ``[databases]`` section only."""
    out: dict[str, str] = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().lower()
            continue
        m = _ENTRY.match(line)
        if section == "databases" and m:
            out[m.group(1)] = m.group(2)
    return out


def rewrite_databases(path: Path, entries: Mapping[str, DatabaseTarget]) -> bool:
    """Point ``entries`` at their targets, keep every other entry; atomic. True if the file changed."""
    old = path.read_text() if path.exists() else ""
    current = parse_databases(old)
    foreign = "".join(f"{name} = {value}\n" for name, value in current.items() if name not in entries)
    new = render_databases(entries, keep=foreign)
    if new == old:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new)
    tmp.chmod(0o644)
    if path.exists():
        # PgBouncer may run as another user (the lab's unprivileged one): the new
        # file keeps the old one's owner so it stays readable to it.
        st = path.stat()
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except PermissionError:
            pass
    os.replace(tmp, path)
    return True
