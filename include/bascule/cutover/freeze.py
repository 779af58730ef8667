"""Restore point, freeze and unfreeze of one side, as the cutover runbook uses them (ADR 0030, 0037).

A freeze is three locks and a proof, in this order:

1. **revoke** the write rights on every relation of the scope's schemas of the
   application role and of every other role the plan does not allow to write
   (table, sequence and column grants, PUBLIC's, default privileges, memberships
   in roles that keep their rights) and **forbid the application's login**
   (NOLOGIN, CONNECTION LIMIT 0), with what was taken recorded durably on the
   frozen database; the downtime starts right before, on the worker's UTC clock;
2. **end the sessions** of the application role and of every login that is a
   member of a writer (it may have SET ROLE to it), idle-in-transaction ones
   included (a transaction opened before the revoke could still commit after it);
3. **prove it**: nothing but the allowed writers can write any more, no
   definer-rights code of a writer runs for anyone else, no prepared transaction
   is open; else the freeze fails and the night rolls back;
4. **pause the endpoint**, so the application's clients wait (or time out) in
   the pooler instead of hammering a database that refuses them.

The order matters: PAUSE waits for open transactions, so the sessions must be
gone first. ``default_transaction_read_only`` is not used: any session can SET
it back. The frozen position (LSN/SCN) is taken after step 3: every write the
application had acknowledged lies before it.

A side **closed** until GO LIVE (the target, from T-minus on) is frozen the same
way without the login lock and without the endpoint: reads and smoke tests go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bascule.cutover.endpoint import EndpointSwitch
from bascule.hooks.cutover import CutoverDatabaseHook, FreezeState, RestorePoint, UnfreezeResult
from bascule.today import utc_now


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


def close_writes(db: CutoverDatabaseHook, *, role: str, schemas: Sequence[str]) -> FreezeState:
    """Close ``db``'s side to every writer but the allowed ones, reads left open; idempotent. :func:`unfreeze`
    opens it (at GO LIVE for the target)."""
    return db.close_writes(role=role, schemas=schemas)


def unfreeze(db: CutoverDatabaseHook, *, role: str, endpoint: EndpointSwitch | None = None,
             resume: bool = True, services: Sequence[str] = ()) -> UnfreezeResult:
    """Give back exactly what the freeze took, then (optionally) resume the endpoint; idempotent."""
    result = db.unfreeze(role=role, services=services)
    if endpoint is not None and resume:
        endpoint.resume()
    return result


@dataclass(frozen=True)
class ReopenProof:
    """When writes were proven open again: the end of the downtime (ADR 0038)."""

    at: datetime  # the worker's UTC clock right after the probe's commit returned (or the reopening's end)
    event: str  # what bounds the downtime there, in words for the report
    probed_through: str | None  # the connection the probe went through; None when there was none

    def as_dict(self) -> dict[str, Any]:
        return {"downtime_end": self.at.isoformat(), "end_event": self.event, "probed_through": self.probed_through}


def prove_reopened(probe: CutoverDatabaseHook | None, *, run_id: str, side: str, role: str, through: str,
                   database: str | None = None) -> ReopenProof:
    """The last act of reopening: commit bascule's probe write as the application through ``probe``'s
    connection (the endpoint's application connection). Without one, the end is taken when the
    reopening returned, and the event says so."""
    if probe is None:
        return ReopenProof(at=utc_now(), event=f"writes reopened on the {side} (no application connection "
                                               "to probe: the end is when the reopening returned)",
                           probed_through=None)
    at = probe.probe_write(run_id=run_id, side=side, database=database)
    return ReopenProof(at=at, event=f"probe write committed as {role} through {through} on the {side}",
                       probed_through=probe.db_conn_id)
