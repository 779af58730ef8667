"""PostgreSQL SQL of the preparation months: pre-flight assessment, schema catalogue, storage.

SQL text and bind parameters only; the hook (``hooks/assessment.py``) runs it. No
query selects a row value: only catalogue facts, sizes, counts and statistics.
Every function that takes ``schemas`` binds it as one array parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from psycopg import sql

from bascule.engines.base import Query

# The key range of each partition archived off the target, recorded there by the
# storage stage and read by the comparison (which leaves those ranges out).
ARCHIVED_TABLE = "bascule_meta.archived_partitions"
# The clinic application's transactions as pgbench scripts (the performance replay).
PGBENCH_SCRIPTS_DIR = Path(__file__).with_name("pgbench")

# --------------------------------------------------------------------------- assessment


def server_facts() -> Query:
    """One row: version text, version_num, current_user, is superuser, can replicate, database."""
    return (
        """
        SELECT split_part(current_setting('server_version'), ' ', 1),
               current_setting('server_version_num')::int,
               current_user, r.rolsuper, r.rolreplication, current_database()
          FROM pg_roles r WHERE r.rolname = current_user
        """,
        {},
    )


def replication_settings() -> Query:
    """Rows of (name, setting) that logical replication depends on, on either side."""
    return (
        """
        SELECT name, setting FROM pg_settings
         WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders',
                        'max_logical_replication_workers', 'max_worker_processes',
                        'max_sync_workers_per_subscription', 'server_encoding')
         ORDER BY name
        """,
        {},
    )


def role_can_select(role: str, schemas: Sequence[str]) -> Query:
    """Rows of (schema, table) in scope that ``role`` cannot SELECT (the initial copy needs it)."""
    return (
        """
        SELECT n.nspname, c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %(role)s)
           AND NOT has_table_privilege(%(role)s, c.oid, 'SELECT')
         ORDER BY 1, 2
        """,
        {"role": role, "schemas": list(schemas)},
    )


def role_facts(role: str) -> Query:
    """One row (exists, can login, replication, superuser) for a named role; no row if it does not exist."""
    return (
        "SELECT true, rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = %(role)s",
        {"role": role},
    )


def schema_create_privilege(schemas: Sequence[str]) -> Query:
    """Rows of (schema, exists, current_user may CREATE in it)."""
    return (
        """
        SELECT s.name, n.oid IS NOT NULL,
               coalesce(has_schema_privilege(n.oid, 'CREATE'), false)
          FROM unnest(%(schemas)s::text[]) AS s(name)
          LEFT JOIN pg_namespace n ON n.nspname = s.name
         ORDER BY 1
        """,
        {"schemas": list(schemas)},
    )


def tables_identity(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, relkind, has primary key, replica identity code, is partition).

    Replica identity ``i`` counts only if its index still exists; partitions are
    listed too because each leaf needs its own identity for UPDATE/DELETE to apply.
    """
    return (
        """
        SELECT n.nspname, c.relname, c.relkind::text,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
               CASE WHEN c.relreplident = 'i'
                         AND NOT EXISTS (SELECT 1 FROM pg_index i
                                          WHERE i.indrelid = c.oid AND i.indisreplident)
                    THEN 'd' ELSE c.relreplident::text END,
               c.relispartition
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def columns_with_types(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, column, formatted type, type kind, type schema, generated, type category).

    ``type kind`` is pg_type.typtype: b base, c composite, d domain, e enum, r range, m multirange.
    Partitions are left out: they share their root's columns.
    """
    return (
        """
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               t.typtype::text, tn.nspname, a.attgenerated::text, t.typcategory::text
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid
          JOIN pg_namespace tn ON tn.oid = t.typnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY 1, 2, a.attnum
        """,
        {"schemas": list(schemas)},
    )


def user_types(type_schemas: Sequence[str]) -> Query:
    """Rows of (schema, type name, typtype) of the named schemas (enums, domains, composites...)."""
    return (
        """
        SELECT n.nspname, t.typname, t.typtype::text
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = ANY(%(schemas)s)
         ORDER BY 1, 2
        """,
        {"schemas": list(type_schemas)},
    )


def table_sizes(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, relkind, heap bytes, toast bytes, index bytes, total bytes, est. rows).

    Partitioned tables are folded into their root: leaves are summed, and only roots
    and plain tables are listed.
    """
    return (
        """
        WITH roots AS (
            SELECT c.oid, n.nspname, c.relname, c.relkind
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
        ), leaves AS (
            SELECT r.oid AS root, coalesce(pt.relid, r.oid) AS leaf
              FROM roots r LEFT JOIN LATERAL pg_partition_tree(r.oid) pt ON r.relkind = 'p' AND pt.isleaf
        )
        SELECT r.nspname, r.relname, r.relkind::text,
               coalesce(sum(pg_relation_size(l.leaf)), 0)::bigint,
               coalesce(sum(CASE WHEN lc.reltoastrelid <> 0
                                 THEN pg_total_relation_size(lc.reltoastrelid) ELSE 0 END), 0)::bigint,
               coalesce(sum(pg_indexes_size(l.leaf)), 0)::bigint,
               coalesce(sum(pg_total_relation_size(l.leaf)), 0)::bigint,
               coalesce(sum(greatest(lc.reltuples, 0)), 0)::bigint
          FROM roots r JOIN leaves l ON l.root = r.oid JOIN pg_class lc ON lc.oid = l.leaf
         GROUP BY r.nspname, r.relname, r.relkind
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def scope_bytes(schemas: Sequence[str]) -> Query:
    """One row: bytes of every relation (heap, TOAST, indexes) in the schemas, and of the database."""
    return (
        """
        SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint, pg_database_size(current_database())
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'm')
        """,
        {"schemas": list(schemas)},
    )


def large_objects() -> Query:
    """One row: number of large objects and their total bytes (pg_largeobject needs superuser to size)."""
    return (
        """
        SELECT (SELECT count(*) FROM pg_largeobject_metadata),
               CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                    THEN pg_total_relation_size('pg_catalog.pg_largeobject') END
        """,
        {},
    )


def special_relations(schemas: Sequence[str]) -> Query:
    """Rows of (schema, name, kind) for what logical replication skips or treats specially.

    kind: ``unlogged`` (never decoded), ``matview`` (never published), ``partitioned``
    (published through its root or its leaves), ``sequence`` (values not replicated),
    ``foreign`` (data lives elsewhere).
    """
    return (
        """
        SELECT n.nspname, c.relname,
               CASE WHEN c.relpersistence = 'u' AND c.relkind IN ('r', 'p') THEN 'unlogged'
                    WHEN c.relkind = 'm' THEN 'matview'
                    WHEN c.relkind = 'p' THEN 'partitioned'
                    WHEN c.relkind = 'S' THEN 'sequence'
                    WHEN c.relkind = 'f' THEN 'foreign' END
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
           AND (c.relpersistence = 'u' AND c.relkind IN ('r', 'p') OR c.relkind IN ('m', 'p', 'S', 'f'))
           AND NOT c.relispartition
         ORDER BY 3, 1, 2
        """,
        {"schemas": list(schemas)},
    )


def range_partition_bounds(schemas: Sequence[str]) -> Query:
    """Rows of (schema, root, partition key, key type, partition, bound expression, is default).

    Only single-column RANGE partitioning: the only kind whose "next partition" has a date.
    """
    return (
        """
        SELECT n.nspname, r.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               p.relname, pg_get_expr(p.relpartbound, p.oid), pg_get_expr(p.relpartbound, p.oid) = 'DEFAULT'
          FROM pg_partitioned_table pt
          JOIN pg_class r ON r.oid = pt.partrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
          JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = pt.partattrs[0]
          JOIN pg_inherits i ON i.inhparent = r.oid
          JOIN pg_class p ON p.oid = i.inhrelid
         WHERE n.nspname = ANY(%(schemas)s) AND pt.partstrat = 'r' AND pt.partnatts = 1
         ORDER BY 1, 2, 5
        """,
        {"schemas": list(schemas)},
    )


def database_locale() -> Query:
    """One row: encoding name, LC_COLLATE, LC_CTYPE, locale provider, ICU locale of the current database."""
    return (
        """
        SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
               d.datlocprovider::text, d.daticulocale
          FROM pg_database d WHERE d.datname = current_database()
        """,
        {},
    )


def column_collations(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, column, collation name) for columns with a non-default collation."""
    return (
        """
        SELECT n.nspname, c.relname, a.attname, co.collname
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_collation co ON co.oid = a.attcollation
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND a.attnum > 0 AND NOT a.attisdropped AND co.collname <> 'default'
         ORDER BY 1, 2, 3
        """,
        {"schemas": list(schemas)},
    )


def data_directory() -> Query:
    """One row: the data directory (superuser or pg_read_all_settings only)."""
    return "SELECT current_setting('data_directory')", {}


def create_df_scratch() -> str:
    return "CREATE TEMP TABLE IF NOT EXISTS bascule_df (line text)"


def copy_df_output(path: str) -> sql.Composed:
    """``df`` of the data directory through COPY FROM PROGRAM (superuser or pg_execute_server_program).

    The path is the server's own data_directory, passed as a quoted literal inside
    a shell single-quoted argument; a path with a quote in it is refused by the caller.
    """
    if "'" in path:
        raise ValueError("data_directory contains a quote; refusing to build a shell command with it")
    return sql.SQL("COPY bascule_df FROM PROGRAM {}").format(sql.Literal(f"df -Pk '{path}' | tail -n 1"))


def truncate_df_scratch() -> str:
    return "TRUNCATE bascule_df"


def read_df_scratch() -> str:
    return "SELECT line FROM bascule_df"


# --------------------------------------------------------------------------- schema catalogue


def catalogue_tables(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, relkind, partition bound or null): tables, partitions included."""
    return (
        """
        SELECT n.nspname, c.relname, c.relkind::text,
               CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f')
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def catalogue_columns(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, column, type, not null, default expression, collation)."""
    return (
        """
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid),
               CASE WHEN a.attcollation <> t.typcollation THEN co.collname END
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          JOIN pg_type t ON t.oid = a.atttypid
          LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
          LEFT JOIN pg_collation co ON co.oid = a.attcollation
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'f') AND NOT c.relispartition
         ORDER BY 1, 2, a.attnum
        """,
        {"schemas": list(schemas)},
    )


def catalogue_constraints(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, constraint, type letter, definition) on root tables."""
    return (
        """
        SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid)
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND NOT c.relispartition
         ORDER BY 1, 2, 3
        """,
        {"schemas": list(schemas)},
    )


def catalogue_indexes(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, index, definition) on root tables (partition indexes follow their parent)."""
    return (
        """
        SELECT n.nspname, c.relname, ic.relname, pg_get_indexdef(i.indexrelid)
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indrelid
          JOIN pg_class ic ON ic.oid = i.indexrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND NOT c.relispartition
         ORDER BY 1, 2, 3
        """,
        {"schemas": list(schemas)},
    )


def catalogue_sequences(schemas: Sequence[str]) -> Query:
    """Rows of (schema, sequence, data type, increment, min, max, cycle, owned by table.column or null)."""
    return (
        """
        SELECT s.schemaname, s.sequencename, s.data_type::text, s.increment_by, s.min_value, s.max_value,
               s.cycle,
               (SELECT tc.relname || '.' || a.attname
                  FROM pg_depend dp
                  JOIN pg_class tc ON tc.oid = dp.refobjid
                  JOIN pg_attribute a ON a.attrelid = dp.refobjid AND a.attnum = dp.refobjsubid
                 WHERE dp.classid = 'pg_class'::regclass
                   AND dp.objid = format('%%I.%%I', s.schemaname, s.sequencename)::regclass
                   AND dp.deptype IN ('a', 'i') LIMIT 1)
          FROM pg_sequences s
         WHERE s.schemaname = ANY(%(schemas)s)
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def catalogue_views(schemas: Sequence[str]) -> Query:
    """Rows of (schema, view, kind 'v' or 'm', definition)."""
    return (
        """
        SELECT n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid, true)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def catalogue_functions(schemas: Sequence[str]) -> Query:
    """Rows of (schema, signature, result type, md5 of the body): the body's text is compared by hash."""
    return (
        """
        SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_function_result(p.oid), md5(coalesce(p.prosrc, ''))
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%(schemas)s)
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


# --------------------------------------------------------------------------- storage


def index_usage(schemas: Sequence[str]) -> Query:
    """Rows describing each index on root tables, partitioned indexes folded over their leaves.

    (schema, table, index, bytes, scans since stats reset, unique, primary, backs a constraint,
    key columns as attnums text (``1 2``), opclasses text, expression text, predicate text,
    is valid, columns of a foreign key it covers as its leading columns or null)
    """
    return (
        """
        WITH idx AS (
            SELECT i.indexrelid, i.indrelid, n.nspname, c.relname AS tbl, ic.relname AS idx, i.indisunique,
                   i.indisprimary, i.indisvalid, i.indkey::text AS keys, i.indclass::text AS opclasses,
                   pg_get_expr(i.indexprs, i.indrelid) AS exprs, pg_get_expr(i.indpred, i.indrelid) AS pred,
                   i.indnkeyatts, i.indkey
              FROM pg_index i
              JOIN pg_class c ON c.oid = i.indrelid
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND NOT c.relispartition
        ), leaves AS (
            SELECT x.indexrelid AS root, coalesce(pt.relid, x.indexrelid) AS leaf
              FROM idx x LEFT JOIN LATERAL pg_partition_tree(x.indexrelid) pt ON pt.isleaf
        )
        SELECT x.nspname, x.tbl, x.idx,
               (SELECT coalesce(sum(pg_relation_size(l.leaf)), 0) FROM leaves l WHERE l.root = x.indexrelid)::bigint,
               (SELECT coalesce(sum(s.idx_scan), 0) FROM leaves l
                  JOIN pg_stat_all_indexes s ON s.indexrelid = l.leaf WHERE l.root = x.indexrelid)::bigint,
               x.indisunique, x.indisprimary,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid
                        AND k.contype IN ('p', 'u', 'x')),
               x.keys, x.opclasses, x.exprs, x.pred, x.indisvalid,
               (SELECT string_agg(k.conname, ',') FROM pg_constraint k
                 WHERE k.conrelid = x.indrelid AND k.contype = 'f'
                   AND (x.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
                   AND (x.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey)
          FROM idx x
         ORDER BY 1, 2, 3
        """,
        {"schemas": list(schemas)},
    )


def stats_age() -> Query:
    """One row: when this database's statistics were last reset (null: never) and the server's start."""
    return (
        "SELECT stats_reset, pg_postmaster_start_time() FROM pg_stat_database WHERE datname = current_database()",
        {},
    )


def table_bloat_estimate(schemas: Sequence[str]) -> Query:
    """Rows of (schema, table, heap bytes, expected bytes, live tuples, dead tuples) per leaf table.

    The expected size is the statistical estimate (the method of check_postgres and
    ioguix's bloat queries, simplified): tuples x (header + item pointer + average
    row width from pg_stats), divided by fillfactor, rounded to pages. It needs the
    table to have been analysed; unanalysed tables return no expected size.
    """
    return (
        """
        WITH t AS (
            SELECT c.oid, n.nspname, c.relname, pg_relation_size(c.oid) AS bytes, c.reltuples,
                   coalesce((SELECT (regexp_match(o, 'fillfactor=(\\d+)'))[1]::int
                               FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%%'), 100) AS ff,
                   current_setting('block_size')::int AS bs
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = 'r'
        ), w AS (
            SELECT t.oid, sum(s.avg_width) AS width, count(s.attname) AS ncols
              FROM t JOIN pg_stats s ON s.schemaname = t.nspname AND s.tablename = t.relname
               AND NOT s.inherited
             GROUP BY t.oid
        )
        SELECT t.nspname, t.relname, t.bytes,
               CASE WHEN w.width IS NULL OR t.reltuples < 0 THEN NULL
                    ELSE (ceil(t.reltuples * (24 + 4 + w.width)
                               / (t.bs * t.ff / 100.0 - 24)) * t.bs)::bigint END,
               coalesce(st.n_live_tup, 0), coalesce(st.n_dead_tup, 0)
          FROM t LEFT JOIN w ON w.oid = t.oid
          LEFT JOIN pg_stat_all_tables st ON st.relid = t.oid
         ORDER BY 1, 2
        """,
        {"schemas": list(schemas)},
    )


def old_range_partitions(schemas: Sequence[str]) -> Query:
    """Rows of (schema, root, partition, bound expression, bytes, est. rows) of RANGE-partitioned roots."""
    return (
        """
        SELECT n.nspname, r.relname, p.relname, pg_get_expr(p.relpartbound, p.oid),
               pg_total_relation_size(p.oid), greatest(p.reltuples, 0)::bigint
          FROM pg_partitioned_table pt
          JOIN pg_class r ON r.oid = pt.partrelid
          JOIN pg_namespace n ON n.oid = r.relnamespace
          JOIN pg_inherits i ON i.inhparent = r.oid
          JOIN pg_class p ON p.oid = i.inhrelid
         WHERE n.nspname = ANY(%(schemas)s) AND pt.partstrat = 'r' AND pt.partnatts = 1
           AND p.relkind = 'r'
         ORDER BY 1, 2, 3
        """,
        {"schemas": list(schemas)},
    )


def relation_checksum(schema: str, table: str) -> tuple[sql.Composed, dict[str, object]]:
    """One row (count, checksum) of a table: order-independent, and computed by the same SQL on both copies."""
    return (
        sql.SQL("SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)::numeric FROM {}.{} AS t").format(
            sql.Identifier(schema), sql.Identifier(table)),
        {},
    )


def drop_index(schema: str, index: str) -> sql.Composed:
    return sql.SQL("DROP INDEX IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(index))


def detach_partition(schema: str, root: str, partition: str) -> sql.Composed:
    return sql.SQL("ALTER TABLE {}.{} DETACH PARTITION {}.{}").format(
        sql.Identifier(schema), sql.Identifier(root), sql.Identifier(schema), sql.Identifier(partition))


def drop_table(schema: str, table: str) -> sql.Composed:
    return sql.SQL("DROP TABLE IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def create_archive_table_like(archive_schema: str, table: str, columns_ddl: str) -> sql.Composed:
    return sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} (" + columns_ddl + ")").format(
        sql.Identifier(archive_schema), sql.Identifier(table))


def relation(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def relation_exists(qualified: str) -> Query:
    """One row (bool): whether the relation ``schema.name`` exists."""
    return "SELECT to_regclass(%(o)s) IS NOT NULL", {"o": qualified}


def create_schema(schema: str) -> sql.Composed:
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def copy_out_binary(table: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(table)


def copy_in_binary(table: sql.Composable) -> sql.Composed:
    return sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(table)


def index_bytes_on_partitions(partitions: Sequence[str]) -> Query:
    """Rows (partitioned index, bytes of its pieces on ``partitions``): an index dropped on an archived
    partition's parent would otherwise be counted twice in the savings."""
    return (
        """
        SELECT pn.nspname || '.' || pic.relname, sum(pg_relation_size(ci.oid))::bigint
          FROM unnest(%(parts)s::text[]) AS p(name)
          JOIN pg_index i ON i.indrelid = to_regclass(p.name)
          JOIN pg_class ci ON ci.oid = i.indexrelid
          JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
          JOIN pg_class pic ON pic.oid = inh.inhparent
          JOIN pg_namespace pn ON pn.oid = pic.relnamespace
         GROUP BY 1
        """,
        {"parts": sorted(partitions)},
    )


def partition_bound(partition: str) -> Query:
    """Zero or one row (key column, key type, [from, to] as pg_get_expr prints them, key columns, strategy)
    of a partition: the one range bound of a single-column RANGE partition."""
    return (
        r"""
        SELECT a.attname::text, format_type(a.atttypid, a.atttypmod),
               (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                             '^FOR VALUES FROM \((.*)\) TO \((.*)\)$'))[1:2],
               pt.partnatts, pt.partstrat::text
          FROM pg_class c
          JOIN pg_inherits i ON i.inhrelid = c.oid
          JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
          JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
         WHERE c.oid = to_regclass(%(o)s)
        """,
        {"o": partition},
    )


def create_archived_ranges() -> list[str]:
    return [
        "CREATE SCHEMA IF NOT EXISTS bascule_meta",
        f"CREATE TABLE IF NOT EXISTS {ARCHIVED_TABLE} (object text PRIMARY KEY, root text NOT NULL,"
        " key_column text NOT NULL, key_type text NOT NULL, range_from text, range_to text,"
        " archived_to text NOT NULL, rows bigint NOT NULL, checksum numeric NOT NULL,"
        " verified_at timestamptz NOT NULL DEFAULT now())",
    ]


def record_archived_range(*, partition: str, root: str | None, key_column: str, key_type: str,
                          range_from: str | None, range_to: str | None, archived_to: str, rows: int,
                          checksum: object) -> Query:
    return (
        f"INSERT INTO {ARCHIVED_TABLE} (object, root, key_column, key_type, range_from, range_to, archived_to,"
        " rows, checksum) VALUES (%(o)s, %(r)s, %(k)s, %(kt)s, %(f)s, %(t)s, %(a)s, %(n)s, %(c)s)"
        " ON CONFLICT (object) DO UPDATE SET root = EXCLUDED.root, key_column = EXCLUDED.key_column,"
        " key_type = EXCLUDED.key_type, range_from = EXCLUDED.range_from, range_to = EXCLUDED.range_to,"
        " archived_to = EXCLUDED.archived_to, rows = EXCLUDED.rows, checksum = EXCLUDED.checksum,"
        " verified_at = now()",
        {"o": partition, "r": root, "k": key_column, "kt": key_type, "f": range_from, "t": range_to,
         "a": archived_to, "n": rows, "c": checksum},
    )


# The archive database's manifest: what went where, with its verified count and checksum.

def create_archive_manifest() -> str:
    return ("CREATE TABLE IF NOT EXISTS archive_manifest (object text PRIMARY KEY, root text NOT NULL,"
            " archived_to text NOT NULL, rows bigint NOT NULL, checksum numeric NOT NULL,"
            " archived_at timestamptz NOT NULL DEFAULT now())")


def archive_manifest() -> Query:
    return "SELECT object, root, archived_to, rows, checksum, archived_at FROM archive_manifest ORDER BY 1", {}


def archived_rows(partition: str) -> Query:
    return "SELECT rows FROM archive_manifest WHERE object = %(o)s", {"o": partition}


def record_archive(*, partition: str, root: str | None, archived_to: str, rows: int, checksum: object) -> Query:
    return (
        "INSERT INTO archive_manifest (object, root, archived_to, rows, checksum) VALUES "
        "(%(o)s, %(r)s, %(t)s, %(n)s, %(c)s) ON CONFLICT (object) DO UPDATE SET rows = EXCLUDED.rows, "
        "checksum = EXCLUDED.checksum, archived_at = now()",
        {"o": partition, "r": root, "t": archived_to, "n": rows, "c": checksum},
    )


def table_columns_ddl(schema: str, table: str) -> Query:
    """Rows of (column, type) in order, to recreate a table's shape in the archive."""
    return (
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
          FROM pg_attribute a
         WHERE a.attrelid = format('%%I.%%I', %(schema)s::text, %(table)s::text)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum
        """,
        {"schema": schema, "table": table},
    )


# --------------------------------------------------------------------------- clones


def cluster_identity() -> Query:
    """One row: the cluster's system identifier (set by initdb, kept by every physical copy of it)."""
    return "SELECT system_identifier::text FROM pg_control_system()", {}


def database_exists(name: str) -> Query:
    return "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": name}


def create_database_from_template(name: str, template: str) -> sql.Composed:
    return sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))


def create_empty_database(name: str) -> sql.Composed:
    return sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))


def create_database_owned_by(name: str, owner: str) -> sql.Composed:
    return sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))


def drop_database(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def sequence_past_max(schema: str, sequence: str, table: str, column: str) -> sql.Composed:
    """Move an owned sequence past its column's max (a clone loaded by replication has it at 1)."""
    return sql.SQL("SELECT setval({}, greatest((SELECT max({}) FROM {}.{}), 1))").format(
        sql.Literal(f"{schema}.{sequence}"), sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table))


def analyze() -> str:
    return "ANALYZE"


def workload_ranges() -> Query:
    """One row: id ranges of the clinic workload's random keys (patients, encounters, staff, hospitals)."""
    return (
        """
        SELECT (SELECT min(patient_id) FROM clinic.patients), (SELECT max(patient_id) FROM clinic.patients),
               (SELECT min(encounter_id) FROM clinic.encounters), (SELECT max(encounter_id) FROM clinic.encounters),
               (SELECT min(staff_id) FROM clinic.staff), (SELECT max(staff_id) FROM clinic.staff),
               (SELECT min(hospital_id) FROM clinic.hospitals), (SELECT max(hospital_id) FROM clinic.hospitals)
        """,
        {},
    )
