"""Oracle dialect: the SQL bascule runs on Oracle 19c, tested as text.

Bind variables are named (``:s0``) because oracledb does not bind lists.
"""

from __future__ import annotations

from bascule.engines.base import Dialect, Query


def _in_list(prefix: str, values: list[str]) -> tuple[str, dict[str, str]]:
    binds = {f"{prefix}{i}": v.upper() for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in binds), binds


class OracleDialect(Dialect):
    name = "oracle"

    def quote_ident(self, name: str) -> str:
        # Unquoted Oracle identifiers are stored upper case; quoting preserves them.
        return '"' + name.upper().replace('"', '""') + '"'

    def server_version_sql(self) -> Query:
        return "SELECT version_full FROM product_component_version WHERE product LIKE 'Oracle Database%'", {}

    def inventory_tables_sql(self, schemas: list[str]) -> Query:
        owners, binds = _in_list("s", schemas)
        # Supplemental logging of the primary key plays the part of PostgreSQL's
        # replica identity for GoldenGate.
        return (
            f"""
            SELECT t.owner,
                   t.table_name,
                   CASE t.partitioned WHEN 'YES' THEN 1 ELSE 0 END AS partitioned,
                   (SELECT count(*) FROM all_tab_partitions p
                     WHERE p.table_owner = t.owner AND p.table_name = t.table_name) AS partitions,
                   (SELECT nvl(sum(s.bytes), 0) FROM dba_segments s
                     WHERE s.owner = t.owner
                       AND (s.segment_name = t.table_name
                            OR s.segment_name IN (SELECT i.index_name FROM all_indexes i
                                                   WHERE i.table_owner = t.owner AND i.table_name = t.table_name)
                            OR s.segment_name IN (SELECT l.segment_name FROM all_lobs l
                                                   WHERE l.owner = t.owner AND l.table_name = t.table_name)))
                       AS total_bytes,
                   (SELECT listagg(cc.column_name, ',') WITHIN GROUP (ORDER BY cc.position)
                      FROM all_constraints c
                      JOIN all_cons_columns cc
                        ON cc.owner = c.owner AND cc.constraint_name = c.constraint_name
                     WHERE c.owner = t.owner AND c.table_name = t.table_name AND c.constraint_type = 'P')
                       AS primary_key,
                   CASE WHEN EXISTS (SELECT 1 FROM all_log_groups g
                                      WHERE g.owner = t.owner AND g.table_name = t.table_name
                                        AND g.log_group_type IN ('PRIMARY KEY LOGGING', 'ALL COLUMN LOGGING'))
                        THEN 'supplemental' ELSE 'none' END AS replica_identity
              FROM all_tables t
             WHERE t.owner IN ({owners})
               AND t.nested = 'NO'
               AND t.secondary = 'N'
             ORDER BY 1, 2
            """,
            binds,
        )

    def inventory_sequences_sql(self, schemas: list[str]) -> Query:
        owners, binds = _in_list("s", schemas)
        # last_number is the next value to be cached, not the last one handed
        # out: an upper bound, which is what advancing a sequence needs.
        return (
            f"""
            SELECT sequence_owner, sequence_name, last_number, increment_by
              FROM all_sequences
             WHERE sequence_owner IN ({owners})
             ORDER BY 1, 2
            """,
            binds,
        )
