"""Cutover SQL for PostgreSQL: restore point, freeze/unfreeze, sequences, constraints.

Text only (a dialect never opens a connection); :mod:`bascule.hooks.cutover` runs
it. Identifiers are quoted here; values travel as bind parameters. No statement
selects a row value: grants, role attributes, positions, counts and catalog names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bascule.engines.base import Query
from bascule.engines.cutover_base import (
    META_SCHEMA,
    CutoverDialect,
    FreezeRecord,
    Grant,
    Statement,
    check_name,
    grants_from_json,
    grants_to_json,
)
from bascule.engines.postgres import PostgresEngine

# Rights that let the application change data. Sequence UPDATE allows nextval()
# and setval() just as USAGE allows nextval(): both go.
TABLE_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
SEQUENCE_WRITE_PRIVILEGES = ("USAGE", "UPDATE")


class PostgresCutoverDialect(PostgresEngine, CutoverDialect):
    def cutover_session_sql(self) -> list[str]:
        # The freeze must not be held up by, nor hold up, the application.
        return ["SET lock_timeout = '10s'"]

    # ------------------------------------------------------- restore point
    def restore_point_prepare_sql(self) -> list[str]:
        # The restore point's LSN is recorded in bascule_meta: a retry finds it there.
        return self.ensure_meta_sql()

    def restore_point_lock_sql(self) -> list[str]:
        return [f"LOCK TABLE {META_SCHEMA}.restore_points IN SHARE ROW EXCLUSIVE MODE"]

    def restore_point_made_sql(self, name: str, created: Sequence[tuple[Any, ...]]) -> Query:
        return self.record_restore_point_sql(name, str(created[0][0]))

    def create_restore_point_sql(self, name: str) -> Query:
        check_name(name, field="restore point name")
        return "SELECT pg_create_restore_point(%(name)s)::text", {"name": name}

    def restore_point_lookup_sql(self, name: str) -> Query:
        return (f"SELECT position, created_at FROM {META_SCHEMA}.restore_points WHERE name = %(name)s",
                {"name": check_name(name, field="restore point name")})

    def record_restore_point_sql(self, name: str, position: str) -> Query:
        return (f"INSERT INTO {META_SCHEMA}.restore_points (name, position) VALUES (%(name)s, %(position)s) "
                "RETURNING position, created_at", {"name": name, "position": position})

    # -------------------------------------------------------------- freeze
    def ensure_meta_sql(self) -> list[str]:
        return [
            f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}",
            f"REVOKE ALL ON SCHEMA {META_SCHEMA} FROM PUBLIC",
            f"""CREATE TABLE IF NOT EXISTS {META_SCHEMA}.freeze_state (
                    freeze_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    role_name        name        NOT NULL,
                    grants           jsonb       NOT NULL,
                    can_login        boolean     NOT NULL,
                    conn_limit       integer     NOT NULL,
                    started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
                    frozen_at        timestamptz,
                    frozen_position  pg_lsn,
                    released_at      timestamptz)""",
            # At most one open freeze per role: a retried freeze finds it instead of
            # recording the already-revoked state as "the grants to restore".
            f"""CREATE UNIQUE INDEX IF NOT EXISTS freeze_state_open_idx
                    ON {META_SCHEMA}.freeze_state (role_name) WHERE released_at IS NULL""",
            f"""CREATE TABLE IF NOT EXISTS {META_SCHEMA}.restore_points (
                    name        text        PRIMARY KEY,
                    position    pg_lsn      NOT NULL,
                    created_at  timestamptz NOT NULL DEFAULT clock_timestamp())""",
        ]

    def freeze_lock_sql(self) -> list[str]:
        return [f"LOCK TABLE {META_SCHEMA}.freeze_state IN SHARE ROW EXCLUSIVE MODE"]

    def active_freeze_sql(self, role: str) -> Query:
        return (
            f"""SELECT freeze_id, grants::text, can_login, conn_limit, frozen_at, frozen_position::text
                  FROM {META_SCHEMA}.freeze_state
                 WHERE role_name = %(role)s AND released_at IS NULL""",
            {"role": check_name(role, field="application role")},
        )

    def freeze_record(self, row: Sequence[Any]) -> FreezeRecord:
        freeze_id, grants, can_login, conn_limit, frozen_at, position = row[:6]
        return FreezeRecord(freeze_id=int(freeze_id), grants=tuple(grants_from_json(grants)),
                            can_login=bool(can_login), conn_limit=int(conn_limit), services=(),
                            frozen_at=frozen_at, position=None if position is None else str(position))

    def role_attributes_sql(self, role: str) -> Query:
        return ("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %(role)s",
                {"role": check_name(role, field="application role")})

    def write_grants_sql(self, role: str, schemas: Sequence[str]) -> Query:
        # Every relation of the schemas, partitions and views included: a partition
        # or an auto-updatable view is a side door around a revoke on the parent.
        return (
            """
            SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
                   n.nspname, c.relname, a.privilege_type, a.is_grantable
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL aclexplode(c.relacl) a
             WHERE n.nspname = ANY(%(schemas)s)
               AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
               AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
               AND ((c.relkind = 'S' AND a.privilege_type = ANY(%(seq_privs)s))
                    OR (c.relkind <> 'S' AND a.privilege_type = ANY(%(table_privs)s)))
             ORDER BY 1, 2, 3, 4
            """,
            {"schemas": list(schemas), "role": check_name(role, field="application role"),
             "seq_privs": list(SEQUENCE_WRITE_PRIVILEGES), "table_privs": list(TABLE_WRITE_PRIVILEGES)},
        )

    def remaining_write_rights_sql(self, role: str, schemas: Sequence[str]) -> Query:
        """Rows (schema, name, privilege) the role can still use, direct, inherited or through PUBLIC."""
        return (
            """
            SELECT n.nspname, c.relname, p.priv
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(CASE WHEN c.relkind = 'S' THEN %(seq_privs)s::text[]
                                             ELSE %(table_privs)s::text[] END) AS p(priv)
             WHERE n.nspname = ANY(%(schemas)s)
               AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
               AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(%(role)s, c.oid, p.priv)
                        ELSE has_table_privilege(%(role)s, c.oid, p.priv) END
             ORDER BY 1, 2, 3
            """,
            {"schemas": list(schemas), "role": check_name(role, field="application role"),
             "seq_privs": list(SEQUENCE_WRITE_PRIVILEGES), "table_privs": list(TABLE_WRITE_PRIVILEGES)},
        )

    def _object(self, grant: Grant) -> str:
        check_name(grant.schema, field="schema")
        kind = {"table": "TABLE", "sequence": "SEQUENCE"}.get(grant.kind)
        privs = TABLE_WRITE_PRIVILEGES if grant.kind == "table" else SEQUENCE_WRITE_PRIVILEGES
        if kind is None or grant.privilege not in privs:
            raise ValueError(f"grant on {grant.schema}.{grant.name}: {grant.kind} privilege "
                             f"{grant.privilege!r} is not a write right bascule manages")
        return f"{grant.privilege} ON {kind} {self.qualified(grant.schema, grant.name)}"

    def revoke_sql(self, role: str, grant: Grant) -> str:
        return f"REVOKE {self._object(grant)} FROM {self.quote_ident(check_name(role, field='application role'))}"

    def grant_sql(self, role: str, grant: Grant) -> str:
        option = " WITH GRANT OPTION" if grant.grantable else ""
        return (f"GRANT {self._object(grant)} TO {self.quote_ident(check_name(role, field='application role'))}"
                f"{option}")

    def lock_role_sql(self, role: str) -> str:
        return f"ALTER ROLE {self.quote_ident(check_name(role, field='application role'))} NOLOGIN CONNECTION LIMIT 0"

    def restore_role_sql(self, role: str, *, can_login: bool, conn_limit: int | None = None) -> str:
        if conn_limit is None:
            raise ValueError(f"restoring role {role!r}: PostgreSQL needs the connection limit to give back")
        login = "LOGIN" if can_login else "NOLOGIN"
        return (f"ALTER ROLE {self.quote_ident(check_name(role, field='application role'))} {login} "
                f"CONNECTION LIMIT {int(conn_limit)}")

    def record_freeze_sql(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                          conn_limit: int | None = None, services: Sequence[str] = ()) -> Query:
        # PostgreSQL has no services to record: the application's way in is the role's login.
        if conn_limit is None:
            raise ValueError(f"freeze of {role!r}: PostgreSQL records the role's connection limit")
        return (
            f"""INSERT INTO {META_SCHEMA}.freeze_state (role_name, grants, can_login, conn_limit)
                VALUES (%(role)s, %(grants)s::jsonb, %(can_login)s, %(conn_limit)s) RETURNING freeze_id""",
            {"role": role, "grants": grants_to_json(grants), "can_login": can_login, "conn_limit": conn_limit},
        )

    def update_freeze_grants_sql(self, freeze_id: int, grants: Sequence[Grant]) -> Query:
        return (f"UPDATE {META_SCHEMA}.freeze_state SET grants = %(g)s::jsonb WHERE freeze_id = %(id)s",
                {"g": grants_to_json(grants), "id": int(freeze_id)})

    def before_revoke_sql(self, services: Sequence[str]) -> list[Statement]:
        # Revoking and NOLOGIN close every door PostgreSQL has.
        return []

    def after_restore_sql(self, services: Sequence[str]) -> list[Statement]:
        return []

    def terminate_sessions_sql(self, role: str) -> Query:
        # Idle-in-transaction sessions included: their open transaction could
        # still commit after the freeze position was taken.
        return (
            """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
                 FROM pg_stat_activity
                WHERE usename = %(role)s AND pid <> pg_backend_pid()""",
            {"role": check_name(role, field="application role")},
        )

    def sessions_sql(self, role: str) -> Query:
        return ("SELECT pid FROM pg_stat_activity WHERE usename = %(role)s AND pid <> pg_backend_pid()",
                {"role": check_name(role, field="application role")})

    def end_sessions_sql(self, role: str, sessions: Sequence[tuple[Any, ...]]) -> list[Statement]:
        # One statement ends them all, those that appeared since they were listed included.
        return [self.terminate_sessions_sql(role)] if sessions else []

    def mark_frozen_sql(self, freeze_id: int) -> Query:
        # Taken once, after the sessions are gone: every write the application
        # ever committed lies before this position. A retry keeps the first one.
        return (
            f"""UPDATE {META_SCHEMA}.freeze_state
                   SET frozen_at = coalesce(frozen_at, clock_timestamp()),
                       frozen_position = coalesce(frozen_position, pg_current_wal_lsn())
                 WHERE freeze_id = %(freeze_id)s
             RETURNING frozen_at, frozen_position::text""",
            {"freeze_id": int(freeze_id)},
        )

    def release_freeze_sql(self, freeze_id: int) -> Query:
        return (f"UPDATE {META_SCHEMA}.freeze_state SET released_at = clock_timestamp() "
                "WHERE freeze_id = %(freeze_id)s AND released_at IS NULL", {"freeze_id": int(freeze_id)})

    # ----------------------------------------------------------- sequences
    def sequence_values_sql(self, schemas: Sequence[str]) -> Query:
        return (
            """SELECT schemaname, sequencename, last_value, increment_by
                 FROM pg_sequences WHERE schemaname = ANY(%(schemas)s) ORDER BY 1, 2""",
            {"schemas": list(schemas)},
        )

    def sequence_last_value_sql(self, schema: str, name: str) -> Query | None:
        return None  # advance_sequence_sql compares in the same statement

    def advance_sequence_sql(self, schema: str, name: str, value: int) -> Query:
        # Never backwards, decided by the database in the same statement.
        return (
            """SELECT setval(format('%%I.%%I', schemaname, sequencename)::regclass, %(value)s)
                 FROM pg_sequences
                WHERE schemaname = %(schema)s AND sequencename = %(name)s
                  AND (last_value IS NULL OR last_value < %(value)s)""",
            {"schema": schema, "name": name, "value": int(value)},
        )

    # --------------------------------------------------------- constraints
    def invalid_constraints_sql(self, schemas: Sequence[str]) -> Query:
        return (
            """SELECT n.nspname, t.relname, c.conname, c.contype::text
                 FROM pg_constraint c
                 JOIN pg_class t ON t.oid = c.conrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                WHERE n.nspname = ANY(%(schemas)s) AND NOT c.convalidated
                ORDER BY 1, 2, 3""",
            {"schemas": list(schemas)},
        )

    def disabled_triggers_sql(self, schemas: Sequence[str]) -> Query:
        # 'O' fires for the application (session_replication_role = origin);
        # 'D' never fires, 'R' fires only under the apply worker, 'A' always.
        return (
            """SELECT n.nspname, c.relname, t.tgname,
                      CASE t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica_only' END
                 FROM pg_trigger t
                 JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal AND t.tgenabled IN ('D', 'R')
                ORDER BY 1, 2, 3""",
            {"schemas": list(schemas)},
        )

    def foreign_keys_sql(self, schemas: Sequence[str]) -> Query | None:
        # The apply worker runs with session_replication_role = replica: RI checks did not fire.
        return (
            """SELECT n.nspname, t.relname, c.conname,
                      (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.ord)
                         FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                      rn.nspname, rt.relname,
                      (SELECT string_agg(quote_ident(a.attname), ',' ORDER BY k.ord)
                         FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
                 FROM pg_constraint c
                 JOIN pg_class t ON t.oid = c.conrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 JOIN pg_class rt ON rt.oid = c.confrelid
                 JOIN pg_namespace rn ON rn.oid = rt.relnamespace
                WHERE c.contype = 'f' AND n.nspname = ANY(%(schemas)s) AND NOT t.relispartition
                ORDER BY 1, 2, 3""",
            {"schemas": list(schemas)},
        )

    def orphan_count_sql(self, schema: str, table: str, columns: Sequence[str], ref_schema: str,
                         ref_table: str, ref_columns: Sequence[str]) -> Query:
        """Rows of ``table`` whose foreign key finds no parent (``columns`` quoted, as
        :meth:`foreign_keys_sql` returns them): rows the apply worker
        inserted with triggers (RI checks included) switched off. A count, never a value."""
        if len(columns) != len(ref_columns) or not columns:
            raise ValueError(f"foreign key of {schema}.{table}: column lists differ in length")
        child = self.qualified(schema, table)
        parent = self.qualified(ref_schema, ref_table)
        not_null = " AND ".join(f"c.{col} IS NOT NULL" for col in columns)
        join = " AND ".join(f"p.{rc} = c.{col}" for col, rc in zip(columns, ref_columns, strict=True))
        return (f"SELECT count(*) FROM {child} c WHERE {not_null} "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})", {})

    def validate_constraint_sql(self, schema: str, table: str, constraint: str) -> str:
        return (f"ALTER TABLE {self.qualified(schema, table)} VALIDATE CONSTRAINT "
                f"{self.quote_ident(constraint)}")
