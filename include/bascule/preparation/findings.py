"""Findings of the preparation stages: PASS, WARNING or BLOCKER, each naming its object and a fix."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bascule.privacy.sanitize import SafeMessage


class Severity(enum.StrEnum):
    PASS = "PASS"
    WARNING = "WARNING"
    BLOCKER = "BLOCKER"


_ORDER = {Severity.BLOCKER: 0, Severity.WARNING: 1, Severity.PASS: 2}


@dataclass(frozen=True)
class Finding:
    """One checked fact. ``object`` is a name (``schema.table``, a setting, a side), never a row value."""

    check: str
    object: str
    severity: Severity
    message: str
    fix: str | None = None
    side: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        if self.severity is not Severity.PASS and not self.fix:
            raise ValueError(f"finding {self.check} on {self.object}: a {self.severity} needs a fix hint")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(**{k: data.get(k) for k in ("check", "object", "severity", "message", "fix", "side")})


class GateBlocked(RuntimeError, SafeMessage):
    """A stage found BLOCKERs: its gate must not open. The message lists each one with its fix."""


@dataclass(frozen=True)
class FindingSet:
    stage: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    facts: Mapping[str, Any] = field(default_factory=dict)

    def of(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity is severity]

    @property
    def blockers(self) -> list[Finding]:
        return self.of(Severity.BLOCKER)

    @property
    def warnings(self) -> list[Finding]:
        return self.of(Severity.WARNING)

    @property
    def verdict(self) -> Severity:
        if self.blockers:
            return Severity.BLOCKER
        return Severity.WARNING if self.warnings else Severity.PASS

    def counts(self) -> dict[str, int]:
        return {s.value: len(self.of(s)) for s in Severity}

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (_ORDER[f.severity], f.check, f.object))

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "verdict": self.verdict.value, "counts": self.counts(),
                "findings": [f.to_json() for f in self.sorted()], "facts": dict(self.facts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FindingSet:
        return cls(stage=data["stage"], findings=tuple(Finding.from_json(f) for f in data.get("findings", [])),
                   facts=dict(data.get("facts") or {}))

    def blocked_message(self) -> str:
        lines = [f"{self.stage}: {len(self.blockers)} BLOCKER(s) stop the gate:"]
        lines += [f"- {f.check} on {f.object}: {f.message} Fix: {f.fix}" for f in self.blockers]
        return "\n".join(lines)

    def raise_if_blocked(self) -> None:
        if self.blockers:
            raise GateBlocked(self.blocked_message())

    def markdown(self, *, limit: int = 60) -> str:
        c = self.counts()
        lines = [f"**{self.stage}: {self.verdict.value}** ({c['BLOCKER']} blocker, {c['WARNING']} warning, "
                 f"{c['PASS']} pass)", "", "| severity | check | object | finding | fix |", "|---|---|---|---|---|"]
        shown = [f for f in self.sorted() if f.severity is not Severity.PASS][:limit]
        for f in shown:
            lines.append(f"| {f.severity.value} | {f.check} | `{f.object}` | {_cell(f.message)} | {_cell(f.fix)} |")
        if not shown:
            lines.append("| PASS | all | - | nothing to fix | - |")
        return "\n".join(lines)


def _cell(text: str | None) -> str:
    return (text or "-").replace("|", "\\|").replace("\n", " ")


def merge(stage: str, parts: Iterable[Sequence[Finding]], facts: Mapping[str, Any] | None = None) -> FindingSet:
    return FindingSet(stage=stage, findings=tuple(f for part in parts for f in part), facts=dict(facts or {}))
