"""Initial load and start of replication, with progress per table, through the replication issue's pieces.

The copy itself is PostgreSQL's subscription initial sync (``copy_data=true``),
driven by :class:`bascule.replication.postgres_logical.PostgresLogicalReplication`;
this module only waits for it and reports each table's state and rows copied.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

READY = "ready"


def wait_for_initial_sync(replication: Any, *, timeout_s: float, poll_s: float = 2.0,
                          log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Poll ``sync_progress()`` until every table is ready; log each table whose state changed."""
    deadline = time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    started = time.monotonic()
    while True:
        progress = replication.sync_progress()
        for row in progress:
            label = f"{row['state']}" + (f" ({row['rows_copied']:,} rows)" if row.get("rows_copied") else "")
            if seen.get(row["table"]) != label:
                seen[row["table"]] = label
                log(f"initial load: {row['table']}: {label} at {time.monotonic() - started:.1f} s")
        if progress and all(row["state"] == READY for row in progress):
            return progress
        if time.monotonic() > deadline:
            pending = [r["table"] for r in progress if r["state"] != READY]
            raise TimeoutError(f"initial load not finished after {timeout_s:.0f} s: {', '.join(pending)} pending")
        time.sleep(poll_s)


def start_and_load(config: Mapping[str, Any], *, timeout_s: float, log: Callable[[str], None] = print
                   ) -> list[dict[str, Any]]:
    """Publish, subscribe with the initial copy, and wait for every table (idempotent: both steps check first)."""
    from bascule.replication.factory import replication_from_config

    repl = replication_from_config(dict(config))
    try:
        repl.create_publication()
        repl.create_subscription(copy_data=True, enabled=True)
        return wait_for_initial_sync(repl, timeout_s=timeout_s, log=log)
    finally:
        repl.close()
