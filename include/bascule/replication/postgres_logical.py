"""PostgreSQL native logical replication, either direction (legacy -> new, or new -> legacy after go-live).

Configured by connection ids and names only; every operation is idempotent and
checks the catalogue before acting. State and lag come from the catalogue and
from heartbeat markers (see ``heartbeat.py``), never from ``pg_stat_replication``'s
``write_lag``/``replay_lag``, which stay near zero during a large transaction.

Broken means "cannot make progress on its own". Definitive causes (subscription
missing or disabled, slot or publication gone, slot lost its WAL) are reported at
the first reading. Causes that PostgreSQL heals by itself (the apply worker
restarts ``wal_retrieve_retry_interval`` after an error, 5 s by default) are
reported only once they persist for ``broken_grace_s``, or when the worker keeps
failing (two new apply errors since this object's first reading).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg

from bascule.engines import postgres_replication as q
from bascule.hooks.replication import PostgresLogicalReplicationHook
from bascule.privacy.sanitize import SafeText, sanitize_error_text
from bascule.replication.base import LagReading, Replication, ReplicationBroken, ReplicationState
from bascule.replication.heartbeat import (
    MarkerLog,
    beat,
    ensure_heartbeat,
    lsn_to_int,
    newest_applied_heartbeat,
)

DEFAULT_BROKEN_GRACE_S = 10.0


@dataclass(frozen=True)
class Finding:
    """One prerequisite check. ``ok`` False with severity ``error`` blocks replication."""

    check: str
    subject: str
    ok: bool
    severity: str
    message: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PostgresLogicalReplication(Replication):
    """A publication on the publisher and a subscription on the subscriber, named by the plan."""

    method = "postgres-logical"

    def __init__(
        self,
        *,
        publisher_conn_id: str,
        subscriber_conn_id: str,
        replication_conn_id: str,
        publication: str,
        subscription: str,
        schemas: Sequence[str],
        include_tables: Sequence[str] = (),
        exclude_tables: Sequence[str] = (),
        direction: str = "forward",
        write_markers: bool = True,
        expect_running: bool = True,
        broken_grace_s: float = DEFAULT_BROKEN_GRACE_S,
    ) -> None:
        if direction not in ("forward", "reverse"):
            raise ValueError(f"direction must be 'forward' or 'reverse' (got {direction!r})")
        self.publisher_conn_id = publisher_conn_id
        self.subscriber_conn_id = subscriber_conn_id
        self.replication_conn_id = replication_conn_id
        self.publication = publication
        self.subscription = subscription
        self.schemas = tuple(schemas)
        self.include_tables = tuple(include_tables)
        self.exclude_tables = tuple(exclude_tables)
        self.direction = direction
        self.write_markers = write_markers
        self.expect_running = expect_running
        self.broken_grace_s = float(broken_grace_s)
        self.markers = MarkerLog()
        self._worker_missing_since: float | None = None
        self._error_baseline: int | None = None

    def to_config(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "publisher_conn_id": self.publisher_conn_id, "subscriber_conn_id": self.subscriber_conn_id,
            "replication_conn_id": self.replication_conn_id, "publication": self.publication,
            "subscription": self.subscription, "schemas": list(self.schemas),
            "include_tables": list(self.include_tables), "exclude_tables": list(self.exclude_tables),
            "direction": self.direction, "broken_grace_s": self.broken_grace_s,
        }

    @cached_property
    def hook(self) -> PostgresLogicalReplicationHook:
        return PostgresLogicalReplicationHook(
            publisher_conn_id=self.publisher_conn_id, subscriber_conn_id=self.subscriber_conn_id,
            replication_conn_id=self.replication_conn_id,
        )

    def close(self) -> None:
        self.hook.close()

    @property
    def heartbeat_writer(self) -> str:
        # One heartbeat row per direction: both rows may exist on both sides once the
        # flow has been reversed, and each direction must read only its own.
        return self.direction

    # -- scope -------------------------------------------------------------------------

    def _in_scope(self, schema: str, table: str) -> bool:
        from bascule.plan import Scope

        scope = Scope(schemas=self.schemas, include_tables=self.include_tables,
                      exclude_tables=self.exclude_tables)
        return scope.contains(schema, table)

    def scope_tables(self, *, side: str = "publisher") -> list[str]:
        """Top-level tables in scope (partition roots, not partitions), as ``schema.table``."""
        return [f"{s}.{t}" for s, t, *_ in self.hook.records(side, q.tables_in_schemas(self.schemas))
                if self._in_scope(s, t)]

    def published_tables(self) -> list[str]:
        return [*self.scope_tables(), q.heartbeat_qualified()]

    # -- prerequisites -------------------------------------------------------------------

    def check_prerequisites(self) -> list[Finding]:
        """Everything replication needs, each with a fix hint naming the table or setting."""
        out: list[Finding] = []
        pub = dict(self.hook.records("publisher", q.settings()))
        sub = dict(self.hook.records("subscriber", q.settings()))

        def add(check: str, subject: str, ok: bool, message: str, fix: str | None = None,
                severity: str = "error") -> None:
            out.append(Finding(check, subject, ok, severity if not ok else "info", message, None if ok else fix))

        add("wal_level", "publisher.wal_level", pub.get("wal_level") == "logical",
            f"publisher wal_level is {pub.get('wal_level')}",
            "ALTER SYSTEM SET wal_level = logical; then restart the publisher")
        slots_used, senders_used = self.hook.records("publisher", q.slot_usage())[0]
        has_slot = bool(self.hook.records("publisher", q.slot_facts(self.subscription)))
        free_slots = int(pub.get("max_replication_slots", 0)) - int(slots_used)
        add("replication_slots", "publisher.max_replication_slots", has_slot or free_slots >= 1,
            f"{free_slots} free replication slot(s) on the publisher",
            "raise max_replication_slots on the publisher (restart needed)")
        free_senders = int(pub.get("max_wal_senders", 0)) - int(senders_used)
        add("wal_senders", "publisher.max_wal_senders", has_slot or free_senders >= 1,
            f"{free_senders} free walsender(s) on the publisher",
            "raise max_wal_senders on the publisher (restart needed)")
        workers = int(sub.get("max_logical_replication_workers", 0))
        (running,) = self.hook.records("subscriber", q.worker_usage())[0]
        # One apply worker plus up to max_sync_workers_per_subscription table-sync workers.
        needed = 1 + int(sub.get("max_sync_workers_per_subscription", 2))
        add("logical_workers", "subscriber.max_logical_replication_workers", workers - int(running) >= 1,
            f"{workers - int(running)} free logical replication worker(s) on the subscriber (wants {needed})",
            "raise max_logical_replication_workers and max_worker_processes on the subscriber (restart)")

        for schema, table, _kind, persistence, has_pk, replident, has_ri_index in self.hook.records(
                "publisher", q.tables_in_schemas(self.schemas)):
            if not self._in_scope(schema, table):
                continue
            name = f"{schema}.{table}"
            identity_ok = replident == "f" or (replident == "d" and has_pk) or (replident == "i" and has_ri_index)
            add("replica_identity", name, identity_ok,
                f"{name}: replica identity {replident}, primary key {'yes' if has_pk else 'no'}",
                f"ALTER TABLE {name} ADD PRIMARY KEY (...), or ALTER TABLE {name} REPLICA IDENTITY FULL")
            if persistence == "u":
                add("unlogged", name, False, f"{name} is UNLOGGED: logical replication skips it",
                    f"ALTER TABLE {name} SET LOGGED, or copy it during the cutover", severity="warning")
        for schema, table in self.hook.records("publisher", q.leaf_partitions_without_identity(self.schemas)):
            name = f"{schema}.{table}"
            add("replica_identity", name, False, f"partition {name} has no primary key or replica identity",
                f"ALTER TABLE {name} REPLICA IDENTITY FULL, or add the key on the partitioned root")

        role = self.hook.replication_login()
        facts = self.hook.records("publisher", q.role_facts(role))
        if not facts:
            add("replication_role", role, False, f"role {role} does not exist on the publisher",
                f"CREATE ROLE {role} LOGIN REPLICATION")
        else:
            superuser, replication, login = facts[0]
            add("replication_role", role, bool(superuser or replication) and bool(login),
                f"role {role}: replication={replication}, login={login}",
                f"ALTER ROLE {role} LOGIN REPLICATION")
            tables = self.scope_tables()
            no_select = [t for (t,) in self.hook.records("publisher", q.tables_without_select(role, tables))]
            add("select_privilege", role, not no_select,
                f"role {role} lacks SELECT on {len(no_select)} table(s): {', '.join(no_select[:10])}",
                f"GRANT SELECT ON {', '.join(no_select[:10]) or '<tables>'} TO {role}")
            missing = [t for (t,) in self.hook.records("subscriber", q.missing_tables(tables))]
            add("target_tables", "subscriber", not missing,
                f"{len(missing)} table(s) missing on the subscriber: {', '.join(missing[:10])}",
                "create them on the subscriber first (release migration, or SyncSchemaChangesOperator)")
        admin = self.hook.records("subscriber", q.current_user_is_superuser())
        add("subscriber_privilege", "subscriber", bool(admin and admin[0][0]),
            "the subscriber's connection role must be a superuser to CREATE SUBSCRIPTION on PostgreSQL 15",
            "ALTER ROLE <subscriber login> SUPERUSER (PostgreSQL 16+: GRANT pg_create_subscription)")
        for kind, name in self.hook.records("publisher", q.objects_replication_skips(self.schemas)):
            add("not_replicated", name if kind != "large_objects" else f"{name} large objects", False,
                f"{kind.replace('_', ' ')}: {name} is not carried by logical replication",
                "copy or rebuild it on the target during the cutover", severity="warning")
        return out

    # -- lifecycle (each idempotent) ----------------------------------------------------------

    def ensure_heartbeat(self) -> None:
        ensure_heartbeat(self.hook, replication_role=self.hook.replication_login())

    def create_publication(self, tables: Sequence[str] | None = None) -> list[str]:
        """Publish ``tables`` (default: the scope) plus the heartbeat, partitions through their root."""
        self.ensure_heartbeat()
        wanted = sorted({*(tables if tables is not None else self.scope_tables()), q.heartbeat_qualified()})
        columns = self.common_columns(wanted)
        exists = self.hook.records("publisher", q.publication_exists(self.publication))
        if not exists:
            self.hook.execute("publisher", q.create_publication(self.publication, wanted, columns))
            return wanted
        if not exists[0][0]:
            self.hook.execute("publisher", q.set_publication_via_root(self.publication))
        have = [t for (t,) in self.hook.records("publisher", q.publication_tables(self.publication))]
        if sorted(have) != wanted or columns:
            self.hook.execute("publisher", q.set_publication_tables(self.publication, wanted, columns))
        return wanted

    def common_columns(self, tables: Sequence[str]) -> dict[str, list[str]]:
        """Column lists for tables whose publisher has columns the subscriber lacks.

        Logical replication matches columns by name and fails on a column the
        subscriber does not have: the case of reverse replication from a new
        release's schema back to the old one. Tables the subscriber does not have
        at all are left to the subscription's own error.
        """
        pub: dict[str, list[str]] = {}
        for table, column in self.hook.records("publisher", q.columns_of_tables(self.schemas)):
            pub.setdefault(table, []).append(column)
        sub: dict[str, set[str]] = {}
        for table, column in self.hook.records("subscriber", q.columns_of_tables(self.schemas)):
            sub.setdefault(table, set()).add(column)
        lists: dict[str, list[str]] = {}
        for table in tables:
            if table not in pub or table not in sub:
                continue
            common = [c for c in pub[table] if c in sub[table]]
            if len(common) < len(pub[table]):
                lists[table] = common
        return lists

    def subscription_facts(self) -> tuple | None:
        """(enabled, slot, publications, worker pid, ...) of the subscription, None when it does not exist."""
        return self._subscription()

    def _subscription(self) -> tuple | None:
        rows = self.hook.records("subscriber", q.subscription_facts(self.subscription))
        return rows[0] if rows else None

    def create_subscription(self, *, copy_data: bool = True, enabled: bool = True) -> None:
        """Create the subscription (its slot has the subscription's name); enable/disable to match."""
        facts = self._subscription()
        if facts is not None:
            if bool(facts[0]) != enabled:
                self.enable() if enabled else self.disable()
            return
        slot = self.hook.records("publisher", q.slot_facts(self.subscription))
        create_slot = True
        if slot:
            if slot[0][0]:
                raise ReplicationBroken(f"replication slot {self.subscription} exists on the publisher and is "
                                        "in use by another subscriber")
            if copy_data:
                # A leftover of an interrupted attempt: its position predates the copy we are about to take.
                self.hook.records("publisher", q.drop_slot(self.subscription))
            else:
                create_slot = False
        self.hook.execute("subscriber", q.create_subscription(
            self.subscription, self.hook.subscription_conninfo(), self.publication,
            copy_data=copy_data, enabled=enabled, create_slot=create_slot))

    def disable(self) -> None:
        """Stop applying; the slot stays and keeps the changes for ``enable()``."""
        facts = self._subscription()
        if facts is not None and facts[0]:
            self.hook.execute("subscriber", q.alter_subscription(self.subscription, "DISABLE"))

    def enable(self) -> None:
        facts = self._subscription()
        if facts is None:
            raise ReplicationBroken(SafeText(f"subscription {self.subscription} does not exist on the subscriber"))
        if not facts[0]:
            self.hook.execute("subscriber", q.alter_subscription(self.subscription, "ENABLE"))

    def refresh(self, *, copy_data: bool = True) -> None:
        """Pick up tables added to the publication (new tables get their initial copy)."""
        facts = self._subscription()
        if facts is None:
            raise ReplicationBroken(SafeText(f"subscription {self.subscription} does not exist on the subscriber"))
        if not facts[0]:
            raise ReplicationBroken(SafeText(f"subscription {self.subscription} is disabled: enable it before a refresh"))
        stmt = q.alter_subscription(self.subscription, "REFRESH PUBLICATION")
        if not copy_data:
            stmt = psycopg.sql.SQL("{} WITH (copy_data = false)").format(stmt)
        self.hook.execute("subscriber", stmt)

    def drop(self) -> None:
        """Drop subscription, slot and publication, whatever is left of them."""
        facts = self._subscription()
        if facts is not None:
            try:
                self.hook.execute("subscriber", q.drop_subscription(self.subscription))
            except psycopg.Error:
                # The slot or the publisher is gone: detach the subscription from it, then drop.
                self.hook.execute("subscriber", q.alter_subscription(self.subscription, "DISABLE"))
                self.hook.execute("subscriber", q.alter_subscription(self.subscription, "SET (slot_name = NONE)"))
                self.hook.execute("subscriber", q.drop_subscription(self.subscription))
        deadline = time.monotonic() + 15
        while True:
            slot = self.hook.records("publisher", q.slot_facts(self.subscription))
            if not slot:
                break
            if not slot[0][0]:
                try:
                    self.hook.records("publisher", q.drop_slot(self.subscription))
                    break
                except psycopg.errors.ObjectInUse:
                    pass
            if time.monotonic() > deadline:
                raise ReplicationBroken(SafeText(f"replication slot {self.subscription} stays active on the publisher"))
            time.sleep(0.2)
        self.hook.execute("publisher", q.drop_publication(self.publication))

    # -- progress and readings -------------------------------------------------------------

    def sync_progress(self) -> list[dict[str, Any]]:
        """Initial sync per table: state letter spelt out, rows copied so far while copying."""
        return [{"table": t, "state": q.SYNC_STATES.get(s, s), "rows_copied": None if n is None else int(n)}
                for t, s, n in self.hook.records("subscriber", q.subscription_sync_states(self.subscription))]

    def _definitive_causes(self, facts: tuple | None, pos: tuple) -> list[str]:
        causes = []
        if facts is None:
            return [f"subscription {self.subscription} does not exist on the subscriber"]
        slot = facts[1] or self.subscription
        _now, _cur, slot_exists, _active, _confirmed, _pid, _replay, wal_status, pub_exists = pos
        if not slot_exists:
            causes.append(f"replication slot {slot} does not exist on the publisher")
        elif wal_status == "lost":
            causes.append(f"replication slot {slot} has lost WAL it needs (wal_status lost)")
        if not pub_exists:
            causes.append(f"publication {self.publication} does not exist on the publisher")
        return causes

    def reading(self) -> LagReading:
        observed_at = datetime.now(UTC)
        try:
            return self._reading(observed_at)
        except psycopg.Error as exc:
            cause = f"cannot read replication state: {sanitize_error_text(exc, max_chars=160)}"
            return self._transient(observed_at, cause, {"error_type": type(exc).__name__})

    def _transient(self, observed_at: datetime, cause: str, details: dict[str, Any]) -> LagReading:
        # Connection trouble or a restarting worker: only broken once it outlasts the grace.
        now = time.monotonic()
        if self._worker_missing_since is None:
            self._worker_missing_since = now
        waited = now - self._worker_missing_since
        state = ReplicationState.BROKEN if waited >= self.broken_grace_s else ReplicationState.STOPPED
        return LagReading(state=state, observed_at=observed_at, cause=SafeText(f"{cause} (for {waited:.0f} s)"),
                          details={**details, "transient_for_s": round(waited, 3)})

    def _reading(self, observed_at: datetime) -> LagReading:
        facts = self._subscription()
        slot = (facts[1] if facts else None) or self.subscription
        pos = self.hook.records("publisher", q.publisher_position(slot, self.publication))[0]
        pub_now, cur_lsn, _slot_exists, slot_active, confirmed, ws_pid, replay, wal_status, _ = pos
        details: dict[str, Any] = {
            "direction": self.direction, "publication": self.publication, "subscription": self.subscription,
            "slot": slot, "slot_active": slot_active, "walsender_pid": ws_pid, "wal_status": wal_status,
            "confirmed_flush_lsn": confirmed,
        }
        causes = self._definitive_causes(facts, pos)
        if causes:
            return LagReading(state=ReplicationState.BROKEN, observed_at=observed_at, source_position=cur_lsn,
                              cause=SafeText("; ".join(causes)), details=details)
        assert facts is not None
        enabled, _slotname, _pubs, worker_pid, _latest_end, apply_errors, sync_errors = facts
        details.update({"apply_worker_pid": worker_pid, "apply_error_count": int(apply_errors),
                        "sync_error_count": int(sync_errors)})
        if not enabled:
            state = ReplicationState.BROKEN if self.expect_running else ReplicationState.STOPPED
            return LagReading(state=state, observed_at=observed_at, source_position=cur_lsn,
                              applied_position=confirmed, cause=SafeText(f"subscription {self.subscription} is disabled"),
                              details=details)
        if self._error_baseline is None:
            self._error_baseline = int(apply_errors) + int(sync_errors)
        new_errors = int(apply_errors) + int(sync_errors) - self._error_baseline
        if new_errors >= 2:
            return LagReading(state=ReplicationState.BROKEN, observed_at=observed_at, source_position=cur_lsn,
                              applied_position=confirmed,
                              cause=SafeText(f"apply worker of {self.subscription} keeps failing: {new_errors} "
                                             "errors (see the subscriber log)"), details=details)

        applied = replay if ws_pid is not None and replay is not None else confirmed
        cur_i, applied_i = lsn_to_int(cur_lsn) or 0, lsn_to_int(applied)
        lag_bytes = None if applied_i is None else max(0, cur_i - applied_i)

        if worker_pid is None or ws_pid is None:
            what = "apply worker not running" if worker_pid is None else "no walsender serves the slot"
            reading = self._transient(observed_at, f"{what} for subscription {self.subscription}", details)
            if reading.state is ReplicationState.BROKEN:
                return reading
            transient_cause = reading.cause
        else:
            self._worker_missing_since = None
            transient_cause = None

        sync = self.sync_progress()
        not_ready = [t for t in sync if t["state"] != "ready"]
        details["tables"] = len(sync)
        details["tables_ready"] = len(sync) - len(not_ready)
        if not_ready:
            details["initial_sync"] = not_ready[:50]

        lag_seconds, bound = self._lag_seconds(pub_now, cur_i, applied_i)
        details["lag_bound"] = bound
        if self.write_markers:
            # Written after the position read: the next reading judges it.
            self.markers.add(beat(self.hook, self.heartbeat_writer))

        if not_ready:
            state = ReplicationState.INITIAL_SYNC
        elif transient_cause:
            state = ReplicationState.STOPPED
        else:
            state = ReplicationState.STREAMING
        return LagReading(state=state, observed_at=observed_at, lag_seconds=lag_seconds, lag_bytes=lag_bytes,
                          source_position=cur_lsn, applied_position=applied, cause=transient_cause,
                          details=details)

    def _lag_seconds(self, pub_now: datetime, cur: int, applied: int | None) -> tuple[float | None, str]:
        if applied is not None and applied >= cur:
            return 0.0, "exact"
        if applied is not None:
            marker = self.markers.newest_applied(applied)
            if marker is not None:
                return round(max(0.0, (pub_now - marker.beat_at).total_seconds()), 3), "marker"
        beat_at = newest_applied_heartbeat(self.hook, self.heartbeat_writer)
        if beat_at is None:
            return None, "none"
        return round(max(0.0, (pub_now - beat_at).total_seconds()), 3), "heartbeat_table"

    def source_position(self) -> str | None:
        ((lsn,),) = self.hook.records("publisher", q.current_wal_lsn())
        return str(lsn)

    def applied_through(self, position: str) -> bool:
        target = lsn_to_int(position)
        if target is None:
            raise ValueError("applied_through: position is empty")
        facts = self._subscription()
        slot = (facts[1] if facts else None) or self.subscription
        pos = self.hook.records("publisher", q.publisher_position(slot, self.publication))[0]
        causes = self._definitive_causes(facts, pos)
        if causes:
            raise ReplicationBroken(SafeText("; ".join(causes)))
        replay, confirmed, ws_pid = pos[6], pos[4], pos[5]
        applied = lsn_to_int(replay if ws_pid is not None and replay is not None else confirmed)
        if applied is None or applied < target:
            return False
        # The subscriber's reported position is not proof: while it applies one large transaction it reports
        # what it has received, not what it has committed (bench/lag_detection.py measured the drain ending
        # about 1 s before a 100,000-row transaction was visible). Proof is a heartbeat written after the
        # position and visible on the subscriber: a logical subscriber commits in the publisher's commit
        # order, so every transaction committed before that heartbeat is there too (ADR 0069).
        if self._heartbeat_applied_through(target):
            return True
        beat(self.hook, self.heartbeat_writer)
        time.sleep(self.PROOF_WAIT_S)  # a heartbeat applies in milliseconds: look again before the next poll
        return self._heartbeat_applied_through(target)

    # How long applied_through waits for its own heartbeat before answering "not yet".
    PROOF_WAIT_S = 0.05

    def _heartbeat_applied_through(self, target: int) -> bool:
        rows = self.hook.records("subscriber", q.newest_heartbeat(self.heartbeat_writer))
        beat_lsn = lsn_to_int(rows[0][1]) if rows and rows[0][1] is not None else None
        return beat_lsn is not None and beat_lsn >= target
