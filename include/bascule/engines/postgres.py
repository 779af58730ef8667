"""PostgreSQL dialect: the SQL bascule runs on PostgreSQL, tested live on the lab."""

from __future__ import annotations

from bascule.engines.base import Dialect, Query

# relreplident letters, spelt out for people reading an inventory.
REPLICA_IDENTITY = {"d": "default", "n": "nothing", "f": "full", "i": "index"}


class PostgresDialect(Dialect):
    name = "postgres"

    def quote_ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def server_version_sql(self) -> Query:
        return "SELECT split_part(current_setting('server_version'), ' ', 1)", {}

    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        # Partitions are folded into their root: replication publishes through the
        # root (publish_via_partition_root) and validation compares the root.
        return (
            """
            SELECT n.nspname,
                   c.relname,
                   c.relkind = 'p' AS partitioned,
                   (SELECT count(*) FROM pg_partition_tree(c.oid) pt WHERE pt.isleaf AND pt.relid <> c.oid)
                       AS partitions,
                   CASE WHEN c.relkind = 'p'
                        THEN (SELECT coalesce(sum(pg_total_relation_size(pt.relid)), 0)
                                FROM pg_partition_tree(c.oid) pt)
                        ELSE pg_total_relation_size(c.oid) END::bigint AS total_bytes,
                   (SELECT string_agg(a.attname, ',' ORDER BY k.ord)
                      FROM pg_index i
                      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = c.oid AND i.indisprimary) AS primary_key,
                   c.relreplident::text AS replica_identity
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND NOT c.relispartition
               AND n.nspname = ANY(%(schemas)s)
             ORDER BY 1, 2
            """,
            {"schemas": list(schemas)},
        )

    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        return (
            """
            SELECT schemaname, sequencename, last_value, increment_by
              FROM pg_sequences
             WHERE schemaname = ANY(%(schemas)s)
             ORDER BY 1, 2
            """,
            {"schemas": list(schemas)},
        )
