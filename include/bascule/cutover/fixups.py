"""Fix-ups that replication does not carry, run on the target during the freeze.

- **Sequences.** PostgreSQL logical replication copies rows, not sequence
  state: the target's identity sequences still stand where the schema-only
  copy left them, and the application's first insert after go-live would
  collide with a replicated key. Each target sequence is set past the source's
  value plus a margin; never moved backwards, so running it twice is harmless.
- **Constraints and triggers.** The apply worker runs with
  ``session_replication_role = replica``: ordinary triggers, foreign-key checks
  included, did not fire for replicated rows. The check lists constraints not
  validated, triggers that would not fire for the application, and counts
  child rows whose parent is missing; NOT VALID constraints can be validated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bascule.engines.base import TableChanges
from bascule.hooks.cutover import CatalogFinding, CutoverDatabaseHook
from bascule.privacy.sanitize import SafeMessage


class FixupError(RuntimeError, SafeMessage):
    """A fix-up cannot be applied safely; the message names the object."""


@dataclass(frozen=True)
class SequenceMargin:
    """How far past the source a target sequence is set: the larger of ``absolute``
    and ``fraction`` of the source's value (default 1000 or 1%)."""

    absolute: int = 1000
    fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.absolute < 0:
            raise FixupError(f"sequence margin absolute must be >= 0 (got {self.absolute})")
        if not (0 <= self.fraction < 1):
            raise FixupError(f"sequence margin fraction must be in [0, 1) (got {self.fraction})")

    def target_value(self, source_value: int) -> int:
        return source_value + max(self.absolute, math.ceil(abs(source_value) * self.fraction))


@dataclass(frozen=True)
class SequenceAdvance:
    schema: str
    name: str
    source_value: int | None
    wanted: int | None
    moved: bool

    def as_dict(self) -> dict[str, Any]:
        return {"sequence": f"{self.schema}.{self.name}", "source_value": self.source_value,
                "wanted": self.wanted, "moved": self.moved}


def plan_sequence_advances(source: Sequence[Any], target: Sequence[Any], margin: SequenceMargin
                           ) -> list[tuple[str, str, int | None, int | None]]:
    """(schema, name, source_value, wanted) for every source sequence; pure, for tests and reports.

    A sequence missing on the target, or a descending one, is an error: the
    first would be a schema drift, the second needs a rule bascule does not guess.
    """
    on_target = {(t.schema.lower(), t.name.lower()) for t in target}
    out = []
    for s in source:
        if (s.schema.lower(), s.name.lower()) not in on_target:
            raise FixupError(f"sequence {s.schema}.{s.name} exists on the source but not on the target")
        if s.increment_by < 0:
            raise FixupError(f"sequence {s.schema}.{s.name} descends (increment {s.increment_by}): "
                             "advance it by hand")
        wanted = None if s.last_value is None else margin.target_value(int(s.last_value))
        out.append((s.schema, s.name, s.last_value, wanted))
    return out


def advance_sequences(*, source: CutoverDatabaseHook, target: CutoverDatabaseHook, schemas: Sequence[str],
                      margin: SequenceMargin | None = None) -> list[SequenceAdvance]:
    """Set each target sequence past its source twin (plus margin); never backwards; idempotent."""
    margin = margin or SequenceMargin()
    planned = plan_sequence_advances(source.sequence_values(schemas), target.sequence_values(schemas), margin)
    out = []
    for schema, name, source_value, wanted in planned:
        # A source sequence never used (last_value NULL) leaves the target's alone.
        moved = wanted is not None and target.advance_sequence(schema, name, wanted)
        out.append(SequenceAdvance(schema, name, source_value, wanted, bool(moved)))
    return out


@dataclass(frozen=True)
class ConstraintReport:
    not_validated: tuple[CatalogFinding, ...]
    silent_triggers: tuple[CatalogFinding, ...]
    orphans: tuple[CatalogFinding, ...]
    validated_now: tuple[str, ...] = field(default_factory=tuple)
    # How each foreign key's orphans were counted: whole, or among the rows changed since (ADR 0061).
    orphan_scope: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not (self.not_validated or self.silent_triggers or self.orphans)

    def as_dict(self) -> dict[str, Any]:
        def names(items: tuple[CatalogFinding, ...]) -> list[dict[str, Any]]:
            return [{"object": f"{f.schema}.{f.table}.{f.name}", "kind": f.kind, **f.detail} for f in items]

        return {"ok": self.ok, "not_validated": names(self.not_validated),
                "silent_triggers": names(self.silent_triggers), "orphans": names(self.orphans),
                "validated_now": list(self.validated_now), "orphan_scope": list(self.orphan_scope)}


def check_constraints(target: CutoverDatabaseHook, *, schemas: Sequence[str], validate: bool = True,
                      changed: Mapping[str, TableChanges] | None = None) -> ConstraintReport:
    """What on the target would not hold for the application; optionally VALIDATE the NOT VALID ones.

    Validating is idempotent (a valid constraint is skipped by the catalog query).
    A validation that fails raises the database's error: that is a finding for
    the gate, not something to paper over. With ``changed`` (what a change tracker
    saw since a full check passed, ADR 0061), orphans are counted only among the
    rows a change can have orphaned; replication applies rows with foreign-key
    checks off, so a constraint validated before is no proof for rows applied since.
    """
    validated = []
    if validate:
        for f in target.invalid_constraints(schemas):
            if f.kind in ("f", "c", "F", "C"):
                target.validate_constraint(f.schema, f.table, f.name)
                validated.append(f"{f.schema}.{f.table}.{f.name}")
    # Empty where the engine's replication applies with foreign keys enforced (GoldenGate).
    scope: list[dict[str, Any]] = []
    if changed is None:
        orphans: list[CatalogFinding] = target.foreign_key_orphans(schemas)
    else:
        orphans, scope = target.foreign_key_orphans_changed(schemas, changed)
    return ConstraintReport(
        orphan_scope=tuple(scope),
        not_validated=tuple(target.invalid_constraints(schemas)),
        silent_triggers=tuple(target.disabled_triggers(schemas)),
        orphans=tuple(orphans),
        validated_now=tuple(validated),
    )
