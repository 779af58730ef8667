"""SQL text for PostgreSQL native logical replication (publication, subscription, lag, DDL catalogue).

A dialect never opens a connection: every function returns ``(sql, params)`` or a
composed ``psycopg.sql`` statement for the hook to run. Identifiers are always
composed with ``sql.Identifier`` so a plan's names cannot inject SQL. No query
here selects a row value of an application table: only catalogue facts, counts,
LSNs and bascule's own heartbeat rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

Query = tuple[str, dict[str, Any]]

META_SCHEMA = "bascule_meta"
HEARTBEAT_TABLE = "heartbeat"
HISTORY_TABLE = "replication_history"
FLOW_EVENTS_TABLE = "replication_flow_events"

# pg_subscription_rel.srsubstate letters, spelt out.
SYNC_STATES = {"i": "init", "d": "data_copy", "f": "finished_copy", "s": "synchronized", "r": "ready"}


def table_ident(qualified: str) -> sql.Composed:
    schema, name = qualified.split(".", 1)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def heartbeat_qualified() -> str:
    return f"{META_SCHEMA}.{HEARTBEAT_TABLE}"


# ----------------------------------------------------------------------- heartbeat and history


def create_meta_schema() -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(META_SCHEMA))


def create_heartbeat_table() -> sql.Composed:
    # One row per writer: each writer upserts its own row, so concurrent writers never
    # contend; the newest beat over all rows is what has reached the subscriber.
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.{} ("
        " writer text PRIMARY KEY,"
        " beat_at timestamptz NOT NULL,"
        " beat_lsn pg_lsn NOT NULL,"
        " beats bigint NOT NULL DEFAULT 1)"
    ).format(sql.Identifier(META_SCHEMA), sql.Identifier(HEARTBEAT_TABLE))


def grant_heartbeat_read(role: str) -> list[sql.Composed]:
    # The subscription's initial copy reads the heartbeat as the replication role.
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(META_SCHEMA), sql.Identifier(role)),
        sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
            sql.Identifier(META_SCHEMA), sql.Identifier(HEARTBEAT_TABLE), sql.Identifier(role)),
    ]


def write_heartbeat(writer: str) -> Query:
    return (
        f"""
        INSERT INTO {META_SCHEMA}.{HEARTBEAT_TABLE} AS h (writer, beat_at, beat_lsn)
        VALUES (%(writer)s, clock_timestamp(), pg_current_wal_lsn())
        ON CONFLICT (writer) DO UPDATE
           SET beat_at = excluded.beat_at, beat_lsn = excluded.beat_lsn, beats = h.beats + 1
        RETURNING beat_at
        """,
        {"writer": writer},
    )


def wal_insert_lsn() -> Query:
    # Read after the heartbeat's commit: at or past its commit record.
    return "SELECT pg_current_wal_insert_lsn()::text", {}


def newest_heartbeat(writer: str) -> Query:
    return (
        f"SELECT beat_at, beat_lsn::text FROM {META_SCHEMA}.{HEARTBEAT_TABLE} WHERE writer = %(writer)s",
        {"writer": writer},
    )


def heartbeat_table_exists() -> Query:
    return (
        "SELECT to_regclass(%(name)s) IS NOT NULL",
        {"name": f"{META_SCHEMA}.{HEARTBEAT_TABLE}"},
    )


def history_table_exists() -> Query:
    return "SELECT to_regclass(%(t)s) IS NOT NULL", {"t": f"{META_SCHEMA}.{HISTORY_TABLE}"}


def create_history_table() -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.{} ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " observed_at timestamptz NOT NULL,"
        " method text NOT NULL,"
        " direction text NOT NULL,"
        " state text NOT NULL,"
        " lag_seconds double precision,"
        " lag_bytes bigint,"
        " source_position text,"
        " applied_position text,"
        " eta_seconds double precision,"
        " cause text,"
        " dag_run_id text)"
    ).format(sql.Identifier(META_SCHEMA), sql.Identifier(HISTORY_TABLE))


def insert_history() -> str:
    return (
        f"INSERT INTO {META_SCHEMA}.{HISTORY_TABLE} (observed_at, method, direction, state, lag_seconds,"
        " lag_bytes, source_position, applied_position, eta_seconds, cause, dag_run_id)"
        " VALUES (%(observed_at)s, %(method)s, %(direction)s, %(state)s, %(lag_seconds)s, %(lag_bytes)s,"
        " %(source_position)s, %(applied_position)s, %(eta_seconds)s, %(cause)s, %(dag_run_id)s)"
    )


def recent_history(method: str, direction: str, limit: int) -> Query:
    return (
        f"""
        SELECT observed_at, lag_seconds FROM {META_SCHEMA}.{HISTORY_TABLE}
         WHERE lag_seconds IS NOT NULL AND method = %(method)s AND direction = %(direction)s
         ORDER BY observed_at DESC LIMIT {int(limit)}
        """,
        {"method": method, "direction": direction},
    )


def create_flow_events_table() -> sql.Composed:
    # What bascule did to a flow on purpose (started, stopped, retired), by which run: the monitors read
    # it so that a flow the night retired is never reported broken (ADR 0057).
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.{} ("
        " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " at timestamptz NOT NULL DEFAULT clock_timestamp(),"
        " method text NOT NULL,"
        " direction text NOT NULL,"
        " event text NOT NULL,"
        " dag_id text,"
        " run_id text)"
    ).format(sql.Identifier(META_SCHEMA), sql.Identifier(FLOW_EVENTS_TABLE))


def insert_flow_event() -> str:
    return (
        f"INSERT INTO {META_SCHEMA}.{FLOW_EVENTS_TABLE} (method, direction, event, dag_id, run_id)"
        " VALUES (%(method)s, %(direction)s, %(event)s, %(dag_id)s, %(run_id)s)"
    )


def last_flow_event(method: str, direction: str) -> Query:
    return (
        f"""
        SELECT event, dag_id, run_id, at FROM {META_SCHEMA}.{FLOW_EVENTS_TABLE}
         WHERE method = %(method)s AND direction = %(direction)s
         ORDER BY at DESC, id DESC LIMIT 1
        """,
        {"method": method, "direction": direction},
    )


def flow_events_table_exists() -> Query:
    return "SELECT to_regclass(%(t)s) IS NOT NULL", {"t": f"{META_SCHEMA}.{FLOW_EVENTS_TABLE}"}


# ----------------------------------------------------------------------- prerequisites


def settings() -> Query:
    return (
        """
        SELECT name, setting FROM pg_settings
         WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', 'max_worker_processes',
                        'max_logical_replication_workers', 'max_sync_workers_per_subscription',
                        'server_version_num')
        """,
        {},
    )


def slot_usage() -> Query:
    return (
        """
        SELECT (SELECT count(*) FROM pg_replication_slots),
               (SELECT count(*) FROM pg_stat_replication)
        """,
        {},
    )


def worker_usage() -> Query:
    return "SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL", {}


def tables_in_schemas(schemas: Sequence[str]) -> Query:
    """Top-level tables (plain and partition roots) with persistence, key and identity facts."""
    return (
        """
        SELECT n.nspname, c.relname, c.relkind, c.relpersistence,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
               c.relreplident::text,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS has_ri_index
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%(schemas)s)
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def leaf_partitions_without_identity(schemas: Sequence[str]) -> Query:
    # UPDATE/DELETE on a partition are decoded against the *leaf*; a leaf with no key
    # stops the walsender even when the root publishes.
    return (
        """
        SELECT n.nspname, c.relname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND c.relispartition AND n.nspname = ANY(%(schemas)s)
           AND c.relreplident <> 'f'
           AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid
                            AND (i.indisprimary AND c.relreplident = 'd' OR i.indisreplident))
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def current_user_is_superuser() -> Query:
    return "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", {}


def role_facts(role: str) -> Query:
    return (
        "SELECT rolsuper, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %(role)s",
        {"role": role},
    )


def tables_without_select(role: str, tables: Sequence[str]) -> Query:
    return (
        """
        SELECT t FROM unnest(%(tables)s::text[]) AS t
         WHERE to_regclass(t) IS NULL OR NOT has_table_privilege(%(role)s, to_regclass(t), 'SELECT')
        """,
        {"role": role, "tables": list(tables)},
    )


def missing_tables(tables: Sequence[str]) -> Query:
    return "SELECT t FROM unnest(%(tables)s::text[]) AS t WHERE to_regclass(t) IS NULL", {"tables": list(tables)}


def objects_replication_skips(schemas: Sequence[str]) -> Query:
    """Unlogged tables, materialised views, and the count of large objects in the database."""
    return (
        """
        SELECT CASE WHEN c.relkind = 'm' THEN 'materialized_view' ELSE 'unlogged_table' END,
               n.nspname || '.' || c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
           AND (c.relkind = 'm' OR (c.relkind IN ('r', 'p') AND c.relpersistence = 'u'))
        UNION ALL
        SELECT 'large_objects', count(*)::text FROM pg_largeobject_metadata HAVING count(*) > 0
        ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


# ----------------------------------------------------------------------- publication


def publication_exists(publication: str) -> Query:
    return "SELECT pubviaroot FROM pg_publication WHERE pubname = %(p)s", {"p": publication}


def publication_tables(publication: str) -> Query:
    # pg_publication_rel lists what was named; with publish_via_partition_root the
    # roots are what the subscriber sees.
    return (
        """
        SELECT n.nspname || '.' || c.relname
          FROM pg_publication p
          JOIN pg_publication_rel pr ON pr.prpubid = p.oid
          JOIN pg_class c ON c.oid = pr.prrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE p.pubname = %(p)s
         ORDER BY 1
        """,
        {"p": publication},
    )


def _published(tables: Sequence[str], columns: Mapping[str, Sequence[str]] | None) -> sql.Composable:
    # A column list publishes only the columns both sides have: after go-live the
    # new release's extra columns must not break reverse replication to the old schema.
    items = []
    for t in tables:
        cols = (columns or {}).get(t)
        if cols:
            items.append(sql.SQL("{} ({})").format(
                table_ident(t), sql.SQL(", ").join(sql.Identifier(c) for c in cols)))
        else:
            items.append(table_ident(t))
    return sql.SQL(", ").join(items)


def create_publication(publication: str, tables: Sequence[str],
                       columns: Mapping[str, Sequence[str]] | None = None) -> sql.Composed:
    return sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)").format(
        sql.Identifier(publication), _published(tables, columns))


def set_publication_tables(publication: str, tables: Sequence[str],
                           columns: Mapping[str, Sequence[str]] | None = None) -> sql.Composed:
    return sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(
        sql.Identifier(publication), _published(tables, columns))


def columns_of_tables(schemas: Sequence[str]) -> Query:
    """(schema.table, column) of live, non-generated columns of top-level tables, in column order."""
    return (
        """
        SELECT n.nspname || '.' || c.relname, a.attname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%(schemas)s)
           AND a.attgenerated = ''
         ORDER BY 1, a.attnum
        """,
        {"schemas": list(schemas)},
    )


def set_publication_via_root(publication: str) -> sql.Composed:
    return sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)").format(
        sql.Identifier(publication))


def drop_publication(publication: str) -> sql.Composed:
    return sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication))


# ----------------------------------------------------------------------- subscription


def subscription_facts(subscription: str) -> Query:
    # Never select subconninfo: it holds the replication password.
    return (
        """
        SELECT s.subenabled, s.subslotname, array_to_string(s.subpublications, ','),
               (SELECT w.pid FROM pg_stat_subscription w WHERE w.subid = s.oid AND w.relid IS NULL LIMIT 1),
               (SELECT w.latest_end_lsn::text FROM pg_stat_subscription w
                 WHERE w.subid = s.oid AND w.relid IS NULL LIMIT 1),
               coalesce((SELECT st.apply_error_count FROM pg_stat_subscription_stats st
                          WHERE st.subid = s.oid), 0),
               coalesce((SELECT st.sync_error_count FROM pg_stat_subscription_stats st
                          WHERE st.subid = s.oid), 0)
          FROM pg_subscription s
          JOIN pg_database d ON d.oid = s.subdbid AND d.datname = current_database()
         WHERE s.subname = %(s)s
        """,
        {"s": subscription},
    )


def subscription_sync_states(subscription: str) -> Query:
    return (
        """
        SELECT n.nspname || '.' || c.relname, r.srsubstate::text,
               (SELECT p.tuples_processed FROM pg_stat_progress_copy p WHERE p.relid = c.oid LIMIT 1)
          FROM pg_subscription s
          JOIN pg_subscription_rel r ON r.srsubid = s.oid
          JOIN pg_class c ON c.oid = r.srrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE s.subname = %(s)s
         ORDER BY 1
        """,
        {"s": subscription},
    )


def create_subscription(subscription: str, conninfo: str, publication: str, *, copy_data: bool,
                        enabled: bool, create_slot: bool) -> sql.Composed:
    # The conninfo carries the password: compose it as a literal, never log the statement.
    return sql.SQL(
        "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = {}, enabled = {},"
        " create_slot = {}, slot_name = {})"
    ).format(
        sql.Identifier(subscription), sql.Literal(conninfo), sql.Identifier(publication),
        sql.SQL("true" if copy_data else "false"), sql.SQL("true" if enabled else "false"),
        sql.SQL("true" if create_slot else "false"), sql.Literal(subscription),
    )


def alter_subscription(subscription: str, action: str) -> sql.Composed:
    allowed = {"ENABLE", "DISABLE", "REFRESH PUBLICATION", "SET (slot_name = NONE)"}
    if action not in allowed:
        raise ValueError(f"alter_subscription: action must be one of {sorted(allowed)} (got {action!r})")
    return sql.SQL("ALTER SUBSCRIPTION {} " + action).format(sql.Identifier(subscription))


def drop_subscription(subscription: str) -> sql.Composed:
    return sql.SQL("DROP SUBSCRIPTION IF EXISTS {}").format(sql.Identifier(subscription))


# ----------------------------------------------------------------------- publisher side: slot, positions


def publisher_position(slot: str, publication: str) -> Query:
    """Publisher's clock and WAL end, the slot, the walsender serving it and the publication, in one trip."""
    return (
        """
        SELECT clock_timestamp(), pg_current_wal_lsn()::text,
               s.slot_name IS NOT NULL, s.active, s.confirmed_flush_lsn::text,
               r.pid, r.replay_lsn::text, s.wal_status::text,
               EXISTS (SELECT 1 FROM pg_publication p WHERE p.pubname = %(pub)s)
          FROM (SELECT 1) one
          LEFT JOIN pg_replication_slots s ON s.slot_name = %(slot)s
          LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
        """,
        {"slot": slot, "pub": publication},
    )


def current_wal_lsn() -> Query:
    return "SELECT pg_current_wal_lsn()::text", {}


def lsn_diff(a: str, b: str) -> Query:
    return "SELECT pg_wal_lsn_diff(%(a)s::pg_lsn, %(b)s::pg_lsn)::bigint", {"a": a, "b": b}


def slot_facts(slot: str) -> Query:
    return "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = %(s)s", {"s": slot}


def drop_slot(slot: str) -> Query:
    return "SELECT pg_drop_replication_slot(%(s)s)", {"s": slot}


# ----------------------------------------------------------------------- DDL catalogue (ddl_sync)


def relations(schemas: Sequence[str]) -> Query:
    """Tables and partitions, with the parent and partition bound of each partition."""
    return (
        """
        SELECT n.nspname, c.relname, c.relkind::text, c.relispartition,
               pn.nspname || '.' || p.relname,
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
          LEFT JOIN pg_class p ON p.oid = i.inhparent
          LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%(schemas)s)
         ORDER BY c.relispartition, 1, 2
        """,
        {"schemas": list(schemas)},
    )


def standalone_indexes(schemas: Sequence[str]) -> Query:
    # Indexes attached to a partitioned parent index are created with the partition;
    # only roots' and plain tables' own indexes (and constraints' indexes) matter.
    return (
        """
        SELECT n.nspname, ic.relname, tc.relname, pg_get_indexdef(ic.oid),
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ic.oid AND k.contype IN ('p', 'u', 'x'))
          FROM pg_index x
          JOIN pg_class ic ON ic.oid = x.indexrelid
          JOIN pg_class tc ON tc.oid = x.indrelid
          JOIN pg_namespace n ON n.oid = ic.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = ic.oid)
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def table_columns(schema: str, table: str) -> Query:
    return (
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity::text,
               pg_get_expr(d.adbin, d.adrelid)
          FROM pg_attribute a
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attrelid = to_regclass(%(t)s) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        {"t": f"{schema}.{table}"},
    )


def table_constraints(schema: str, table: str) -> Query:
    return (
        """
        SELECT conname, contype::text, pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE conrelid = to_regclass(%(t)s) AND contype IN ('p', 'u', 'c', 'f')
         ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'c' THEN 2 ELSE 3 END, conname
        """,
        {"t": f"{schema}.{table}"},
    )


def create_partition(schema: str, name: str, parent: str, bound: str, partkey: str | None) -> sql.Composed:
    # ``bound`` and ``partkey`` come from pg_get_expr/pg_get_partkeydef on the source
    # catalogue: trusted server-generated SQL, not user input.
    stmt = sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} PARTITION OF {} {}").format(
        sql.Identifier(schema), sql.Identifier(name), table_ident(parent), sql.SQL(bound))
    if partkey:
        stmt = sql.SQL("{} PARTITION BY {}").format(stmt, sql.SQL(partkey))
    return stmt


def create_table(schema: str, name: str, columns: Sequence[tuple[str, str, bool, str, str | None]],
                 constraints: Sequence[tuple[str, str, str]], partkey: str | None) -> list[sql.Composed]:
    """CREATE TABLE from catalogue rows; foreign keys come after, as separate statements."""
    cols = []
    for col, typ, notnull, identity, default in columns:
        parts = [sql.Identifier(col), sql.SQL(typ)]
        if identity in ("a", "d"):
            parts.append(sql.SQL("GENERATED ALWAYS AS IDENTITY" if identity == "a"
                                 else "GENERATED BY DEFAULT AS IDENTITY"))
        elif default is not None and "nextval(" not in default:
            # A nextval default names a sequence the target may not have; sequences
            # are the cutover's business, and replicated rows carry their values.
            parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(default)))
        if notnull:
            parts.append(sql.SQL("NOT NULL"))
        cols.append(sql.SQL(" ").join(parts))
    for conname, contype, definition in constraints:
        if contype != "f":
            cols.append(sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(conname), sql.SQL(definition)))
    stmt = sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} ({})").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(cols))
    if partkey:
        stmt = sql.SQL("{} PARTITION BY {}").format(stmt, sql.SQL(partkey))
    out = [stmt]
    for conname, contype, definition in constraints:
        if contype == "f":
            out.append(sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} {}").format(
                sql.Identifier(schema), sql.Identifier(name), sql.Identifier(conname), sql.SQL(definition)))
    return out


def create_index_if_missing(indexdef: str) -> sql.Composed:
    # pg_get_indexdef gives "CREATE [UNIQUE] INDEX name ON ..."; make it rerunnable.
    head, sep, rest = indexdef.partition(" INDEX ")
    if not sep:
        raise ValueError("not an index definition")
    return sql.SQL("{} INDEX IF NOT EXISTS {}").format(sql.SQL(head), sql.SQL(rest))
