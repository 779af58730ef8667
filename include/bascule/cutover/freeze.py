"""Restore point, freeze and unfreeze of one side, as the cutover runbook uses them (ADR 0030).

A freeze is three locks, in this order:

1. **revoke** the application role's write rights on every relation of the
   scope's schemas and **forbid its login** (NOLOGIN, CONNECTION LIMIT 0), with
   the taken grants recorded durably on the frozen database;
2. **end its sessions**, idle-in-transaction ones included (a transaction opened
   before the revoke could still commit after it);
3. **pause the endpoint**, so the application's clients wait (or time out) in
   the pooler instead of hammering a database that refuses them.

The order matters: PAUSE waits for open transactions, so the sessions must be
gone first. ``default_transaction_read_only`` is not used: any session can SET
it back. The frozen position (LSN/SCN) and time come from the database, after
step 2: every write the application had acknowledged lies before them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bascule.cutover.endpoint import EndpointSwitch
from bascule.hooks.cutover import CutoverDatabaseHook, FreezeState, RestorePoint, UnfreezeResult


@dataclass(frozen=True)
class FreezeResult:
    state: FreezeState
    endpoint_paused_now: bool  # False when there is no endpoint or it was already paused

    def as_dict(self) -> dict[str, Any]:
        return {**self.state.as_dict(), "endpoint_paused_now": self.endpoint_paused_now}


def restore_point(db: CutoverDatabaseHook, name: str) -> RestorePoint:
    """A named point to return to (PITR / flashback); a retry returns the same one."""
    return db.create_restore_point(name)


def freeze(db: CutoverDatabaseHook, *, role: str, schemas: Sequence[str], endpoint: EndpointSwitch | None = None,
           services: Sequence[str] = ()) -> FreezeResult:
    """Stop the application writing on ``db``'s side; idempotent (a retry returns the first freeze's time)."""
    state = db.freeze(role=role, schemas=schemas, services=services)
    paused = endpoint.pause() if endpoint is not None else False
    return FreezeResult(state=state, endpoint_paused_now=paused)


def unfreeze(db: CutoverDatabaseHook, *, role: str, endpoint: EndpointSwitch | None = None,
             resume: bool = True, services: Sequence[str] = ()) -> UnfreezeResult:
    """Give back exactly what the freeze took, then (optionally) resume the endpoint; idempotent."""
    result = db.unfreeze(role=role, services=services)
    if endpoint is not None and resume:
        endpoint.resume()
    return result
