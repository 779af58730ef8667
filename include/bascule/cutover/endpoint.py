"""Where the application connects, and how the cutover moves it (ADR 0031).

An :class:`EndpointSwitch` answers one question (``current()``: source or
target?) and performs four idempotent moves: ``pause()``, ``point_to(side)``,
``resume()``, each returning whether it changed anything, so a retried task is
safe and its log says what it did.

- :class:`PgBouncerEndpoint` (lab, and any site fronted by PgBouncer): a real
  switch a connected client follows. The sides' addresses come from the plan's
  application connections (``source.app_conn_id``, ``target.app_conn_id``).
- :class:`CommandEndpoint` (production: DNS, a connection alias, an Oracle
  service): a site-provided command run as ``<command> current`` (prints
  ``source`` or ``target``), ``<command> pause``, ``<command> resume`` and
  ``<command> point-to <side>``. It must be idempotent itself; bascule also
  skips ``point-to`` when ``current`` already answers the wanted side.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar


class Side(enum.StrEnum):
    SOURCE = "source"
    TARGET = "target"

    @classmethod
    def parse(cls, value: object, *, field: str = "side") -> Side:
        try:
            return cls(str(getattr(value, "value", value)).strip())
        except ValueError:
            raise EndpointError(f"{field} must be 'source' or 'target' (got {value!r})") from None


class EndpointError(RuntimeError):
    """The endpoint could not be read or moved; the message says which and why."""


@dataclass(frozen=True)
class EndpointState:
    side: Side
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        return {"side": self.side.value, "paused": self.paused}


class EndpointSwitch(abc.ABC):
    """The application's endpoint. Every method is idempotent."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def current(self) -> Side: ...

    @abc.abstractmethod
    def is_paused(self) -> bool: ...

    @abc.abstractmethod
    def pause(self) -> bool:
        """Hold new application work (queries wait, or are refused); True if it was not held before."""

    @abc.abstractmethod
    def resume(self) -> bool: ...

    @abc.abstractmethod
    def point_to(self, side: Side | str) -> bool:
        """Send the application to ``side``; True if it pointed elsewhere before."""

    def state(self) -> EndpointState:
        return EndpointState(side=self.current(), paused=self.is_paused())


class PgBouncerEndpoint(EndpointSwitch):
    """A PgBouncer database entry, repointed through its include file and RELOAD.

    ``followers`` are further entries (e.g. ``clinic_smoke``) moved with the
    application's entry at every switch but never paused.
    """

    kind = "pgbouncer"

    def __init__(self, *, pgbouncer_conn_id: str, database: str, source_conn_id: str, target_conn_id: str,
                 followers: Sequence[str] = (), command_timeout_s: float = 60.0) -> None:
        for name, value in (("pgbouncer_conn_id", pgbouncer_conn_id), ("database", database),
                            ("source_conn_id", source_conn_id), ("target_conn_id", target_conn_id)):
            if not value:
                raise EndpointError(f"PgBouncerEndpoint: {name} is required")
        self.pgbouncer_conn_id = pgbouncer_conn_id
        self.database = database
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.followers = tuple(followers)
        self.command_timeout_s = command_timeout_s

    @cached_property
    def hook(self) -> Any:
        from bascule.hooks.pgbouncer import PgBouncerHook

        return PgBouncerHook(pgbouncer_conn_id=self.pgbouncer_conn_id, command_timeout_s=self.command_timeout_s)

    @cached_property
    def targets(self) -> Mapping[Side, Any]:
        from airflow.sdk import BaseHook

        from bascule.hooks.pgbouncer_config import DatabaseTarget

        out = {}
        for side, conn_id in ((Side.SOURCE, self.source_conn_id), (Side.TARGET, self.target_conn_id)):
            c = BaseHook.get_connection(conn_id)
            if not c.host or not c.port or not c.schema:
                raise EndpointError(f"connection {conn_id!r} ({side.value}) needs host, port and schema (dbname)")
            out[side] = DatabaseTarget(host=c.host, port=int(c.port), dbname=c.schema)
        if out[Side.SOURCE] == out[Side.TARGET]:
            raise EndpointError(f"connections {self.source_conn_id!r} and {self.target_conn_id!r} name the same "
                                "database: a switch between them would be a no-op")
        return out

    def current(self) -> Side:
        entry = self.hook.entry(self.database)
        for side, target in self.targets.items():
            if entry.target == target:
                return side
        raise EndpointError(f"PgBouncer entry {self.database!r} points at neither the source nor the target "
                            f"(it points at {entry.target.render() if entry.target else 'nothing'})")

    def is_paused(self) -> bool:
        return bool(self.hook.entry(self.database).paused)

    def pause(self) -> bool:
        return bool(self.hook.pause(self.database))

    def resume(self) -> bool:
        return bool(self.hook.resume(self.database))

    def point_to(self, side: Side | str) -> bool:
        side = Side.parse(side)
        target = self.targets[side]
        changed = self.hook.repoint({name: target for name in (self.database, *self.followers)})
        if self.current() is not side:
            raise EndpointError(f"PgBouncer entry {self.database!r} did not move to the {side.value}")
        return bool(changed)


class CommandEndpoint(EndpointSwitch):
    """A site-provided command: DNS record, connection alias, Oracle service relocation."""

    kind = "command"

    def __init__(self, *, command: Sequence[str], cwd: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        if isinstance(command, str) or not command or not all(isinstance(a, str) and a for a in command):
            raise EndpointError("CommandEndpoint: command must be a non-empty list of arguments "
                                "(e.g. ['/opt/site/switch-dns.sh', '--zone', 'clinic'])")
        self.command = list(command)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._paused: bool | None = None

    @cached_property
    def hook(self) -> Any:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        return SubprocessHook()

    def _run(self, *args: str) -> str:
        argv = [*self.command, *args]
        result = self.hook.run_command(command=argv, env=self.env, cwd=self.cwd)
        if result.exit_code != 0:
            raise EndpointError(f"endpoint command `{' '.join(argv)}` exited {result.exit_code}: {result.output}")
        return str(result.output or "").strip()

    def current(self) -> Side:
        return Side.parse(self._run("current"), field=f"output of `{' '.join(self.command)} current`")

    def is_paused(self) -> bool:
        # A DNS record or a service has no "paused" to read back: the command says
        # so through `is-paused` if it can (exit 0 + 'true'/'false').
        answer = self._run("is-paused").lower()
        if answer not in ("true", "false"):
            raise EndpointError(f"`{' '.join(self.command)} is-paused` must print true or false (got {answer!r})")
        return answer == "true"

    def pause(self) -> bool:
        if self.is_paused():
            return False
        self._run("pause")
        return True

    def resume(self) -> bool:
        if not self.is_paused():
            return False
        self._run("resume")
        return True

    def point_to(self, side: Side | str) -> bool:
        side = Side.parse(side)
        if self.current() is side:
            return False
        self._run("point-to", side.value)
        now = self.current()
        if now is not side:
            raise EndpointError(f"endpoint command ran but `current` answers {now.value}, not {side.value}")
        return True


def endpoint_from_config(config: Mapping[str, Any]) -> EndpointSwitch:
    """Build an endpoint from a plan-like mapping: ``{kind: pgbouncer|command, ...}``."""
    kinds: dict[str, type[EndpointSwitch]] = {"pgbouncer": PgBouncerEndpoint, "command": CommandEndpoint}
    kind = config.get("kind")
    if kind not in kinds:
        raise EndpointError(f"endpoint.kind must be one of {', '.join(kinds)} (got {kind!r})")
    kwargs = {k: v for k, v in config.items() if k != "kind"}
    try:
        return kinds[kind](**kwargs)  # type: ignore[arg-type]
    except TypeError as exc:
        raise EndpointError(f"endpoint ({kind}): {exc}") from None
