"""Build the plan's replication method, in either direction, from the plan or from a JSON-able config.

Triggers run in the triggerer and are rebuilt from serialised kwargs, so the
config (``replication_config``) is plain data: method name plus constructor
arguments, connection ids only, never a secret.
"""

from __future__ import annotations

import enum
from typing import Any

from bascule.replication.base import Replication


class Direction(enum.StrEnum):
    FORWARD = "forward"  # source -> target, during preparation
    REVERSE = "reverse"  # target -> source, after go-live (the way back)


def _reverse_replication_conn_id(plan: Any) -> str:
    # The plan names one replication connection, the source's. By convention the
    # target's is the same id with the source's connection id swapped for the
    # target's (lab: bascule_legacy_repl -> bascule_new_repl).
    forward = plan.replication.postgres_logical.replication_conn_id
    if plan.source.conn_id in forward:
        return forward.replace(plan.source.conn_id, plan.target.conn_id, 1)
    raise ValueError(
        f"replication.postgres_logical.replication_conn_id: cannot derive the reverse connection from "
        f"{forward!r}; pass reverse_replication_conn_id"
    )


def runs_reverse(plan: Any) -> bool:
    """Whether bascule runs the reverse flow (target -> source) itself: PostgreSQL logical replication only."""
    return plan.replication.method.value == "postgres-logical"


def goldengate_reverse(plan: Any) -> bool:
    """Whether bascule starts GoldenGate's reverse path (the plan names its extract and replicat, ADR 0055)."""
    gg = plan.replication.goldengate
    return plan.replication.method.value == "goldengate" and gg is not None and gg.reverse_extract is not None


def drain_config(plan: Any, direction: str = "forward") -> dict[str, Any]:
    """A drain sensor's replication config, safe to build at DAG parse time for any plan.

    Where bascule runs no reverse flow, the fallback's first check fails the run
    before its drain is reached; the DAG must still parse.
    """
    if Direction(direction) is Direction.REVERSE and not runs_reverse(plan):
        return {"method": "none"}
    return replication_config(plan, direction)


def replication_config(plan: Any, direction: str = "forward", *,
                       reverse_replication_conn_id: str | None = None) -> dict[str, Any]:
    """The plan's replication, as data a trigger can carry."""
    try:
        direction = Direction(direction)
    except ValueError:
        raise ValueError(f"direction must be 'forward' or 'reverse' (got {direction!r})") from None
    method = plan.replication.method.value
    if method == "none":
        return {"method": "none"}
    if method == "goldengate":
        gg = plan.replication.goldengate
        if gg is None:
            raise ValueError("replication.goldengate: required when method is goldengate")
        if direction is Direction.REVERSE:
            if gg.reverse_extract is None or gg.reverse_replicat is None:
                raise ValueError("replication.goldengate: the plan names no reverse_extract/reverse_replicat; "
                                 "reverse GoldenGate replication is then configured outside bascule")
            # The same GoldenGate deployment, the other way: the new database is the source now.
            return {
                "method": "goldengate", "goldengate_conn_id": gg.conn_id, "extract": gg.reverse_extract,
                "replicat": gg.reverse_replicat, "heartbeat_connection": gg.heartbeat_connection,
                "source_oracle_conn_id": plan.target.conn_id, "target_oracle_conn_id": plan.source.conn_id,
                "heartbeat_schema": gg.heartbeat_owner,
            }
        return {
            "method": "goldengate", "goldengate_conn_id": gg.conn_id, "extract": gg.extract,
            "replicat": gg.replicat, "heartbeat_connection": gg.heartbeat_connection,
            "source_oracle_conn_id": plan.source.conn_id, "target_oracle_conn_id": plan.target.conn_id,
            "heartbeat_schema": gg.heartbeat_owner,
        }
    pl = plan.replication.postgres_logical
    if pl is None:
        raise ValueError("replication.postgres_logical: required when method is postgres-logical")
    scope = {"schemas": list(plan.scope.schemas), "include_tables": list(plan.scope.include_tables),
             "exclude_tables": list(plan.scope.exclude_tables)}
    if direction is Direction.FORWARD:
        return {"method": "postgres-logical", "publisher_conn_id": plan.source.conn_id,
                "subscriber_conn_id": plan.target.conn_id, "replication_conn_id": pl.replication_conn_id,
                "publication": pl.publication, "subscription": pl.subscription, "direction": "forward", **scope}
    return {"method": "postgres-logical", "publisher_conn_id": plan.target.conn_id,
            "subscriber_conn_id": plan.source.conn_id,
            "replication_conn_id": reverse_replication_conn_id or _reverse_replication_conn_id(plan),
            "publication": f"{pl.publication}_reverse", "subscription": f"{pl.subscription}_reverse",
            "direction": "reverse", **scope}


def replication_from_config(config: dict[str, Any], **overrides: Any) -> Replication:
    kwargs = {**config, **overrides}
    method = kwargs.pop("method", None)
    if method == "postgres-logical":
        from bascule.replication.postgres_logical import PostgresLogicalReplication

        return PostgresLogicalReplication(**kwargs)
    if method == "goldengate":
        from bascule.replication.goldengate import GoldenGateReplication

        return GoldenGateReplication(**kwargs)
    if method == "none":
        from bascule.replication.none import NoReplication

        return NoReplication()
    raise ValueError(f"replication method must be postgres-logical, goldengate or none (got {method!r})")


def replication_from_plan(plan: Any, direction: str = "forward", **overrides: Any) -> Replication:
    """The plan's replication method as a ``Replication``; ``direction`` is forward or reverse."""
    return replication_from_config(replication_config(plan, direction), **overrides)
