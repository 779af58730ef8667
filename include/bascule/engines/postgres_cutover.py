"""Cutover SQL for PostgreSQL: restore point, freeze/unfreeze, sequences, constraints.

Text only (a dialect never opens a connection); :mod:`bascule.hooks.cutover` runs
it. Identifiers are quoted here; values travel as bind parameters. No statement
selects a row value: grants, role attributes, positions, counts and catalog names.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Query = tuple[str, dict[str, Any]]

META_SCHEMA = "bascule_meta"
# Rights that let the application change data. Sequence UPDATE allows nextval()
# and setval() just as USAGE allows nextval(): both go.
TABLE_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
SEQUENCE_WRITE_PRIVILEGES = ("USAGE", "UPDATE")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def check_name(value: str, *, field: str) -> str:
    """A plain identifier (role, schema, restore point): anything else is refused, not quoted around."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{field} must be a plain identifier of at most 63 characters (got {value!r})")
    return value


@dataclass(frozen=True, order=True)
class Grant:
    """One privilege of the application role on one object, as recorded by a freeze."""

    kind: str  # "table" or "sequence"
    schema: str
    name: str
    privilege: str
    grantable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def grants_to_json(grants: Sequence[Grant]) -> str:
    return json.dumps([g.as_dict() for g in sorted(grants)])


def grants_from_json(value: str | list[dict[str, Any]]) -> list[Grant]:
    data = json.loads(value) if isinstance(value, str) else value
    return sorted(Grant(**item) for item in data)


class CutoverDialect(abc.ABC):
    """The cutover questions every engine answers with SQL text."""

    name: str

    @abc.abstractmethod
    def quote_ident(self, name: str) -> str: ...

    def qualified(self, schema: str, name: str) -> str:
        return f"{self.quote_ident(schema)}.{self.quote_ident(name)}"

    # restore point
    @abc.abstractmethod
    def create_restore_point_sql(self, name: str) -> Query: ...

    # freeze
    @abc.abstractmethod
    def ensure_meta_sql(self) -> list[str]: ...

    @abc.abstractmethod
    def active_freeze_sql(self, role: str) -> Query:
        """Row (freeze_id, grants json, can_login, conn_limit, frozen_at, frozen_position) or none."""

    @abc.abstractmethod
    def write_grants_sql(self, role: str, schemas: Sequence[str]) -> Query:
        """Rows (kind, schema, name, privilege, grantable) of the role's direct write rights."""

    @abc.abstractmethod
    def revoke_sql(self, role: str, grant: Grant) -> str: ...

    @abc.abstractmethod
    def grant_sql(self, role: str, grant: Grant) -> str: ...

    @abc.abstractmethod
    def sequence_values_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, sequence, last_value or None, increment_by)."""

    @abc.abstractmethod
    def advance_sequence_sql(self, schema: str, name: str, value: int) -> Query: ...

    @abc.abstractmethod
    def invalid_constraints_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, table, constraint, type) of constraints not enabled or not validated."""

    @abc.abstractmethod
    def disabled_triggers_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, table, trigger, state) of user triggers that would not fire for the application."""

    @abc.abstractmethod
    def validate_constraint_sql(self, schema: str, table: str, constraint: str) -> str: ...


class PostgresCutoverDialect(CutoverDialect):
    name = "postgres"

    def quote_ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    # ------------------------------------------------------- restore point
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

    def active_freeze_sql(self, role: str) -> Query:
        return (
            f"""SELECT freeze_id, grants::text, can_login, conn_limit, frozen_at, frozen_position::text
                  FROM {META_SCHEMA}.freeze_state
                 WHERE role_name = %(role)s AND released_at IS NULL""",
            {"role": check_name(role, field="application role")},
        )

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

    def restore_role_sql(self, role: str, *, can_login: bool, conn_limit: int) -> str:
        login = "LOGIN" if can_login else "NOLOGIN"
        return (f"ALTER ROLE {self.quote_ident(check_name(role, field='application role'))} {login} "
                f"CONNECTION LIMIT {int(conn_limit)}")

    def record_freeze_sql(self, role: str, grants: Sequence[Grant], *, can_login: bool, conn_limit: int) -> Query:
        return (
            f"""INSERT INTO {META_SCHEMA}.freeze_state (role_name, grants, can_login, conn_limit)
                VALUES (%(role)s, %(grants)s::jsonb, %(can_login)s, %(conn_limit)s) RETURNING freeze_id""",
            {"role": role, "grants": grants_to_json(grants), "can_login": can_login, "conn_limit": conn_limit},
        )

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
        return ("SELECT count(*) FROM pg_stat_activity WHERE usename = %(role)s AND pid <> pg_backend_pid()",
                {"role": check_name(role, field="application role")})

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

    def foreign_keys_sql(self, schemas: Sequence[str]) -> Query:
        """Rows (schema, table, constraint, columns csv, ref schema, ref table, ref columns csv)."""
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


def cutover_dialect_for(engine: str) -> CutoverDialect:
    from bascule.engines.oracle_cutover import OracleCutoverDialect

    dialects: dict[str, type[CutoverDialect]] = {"postgres": PostgresCutoverDialect,
                                                 "oracle": OracleCutoverDialect}
    try:
        return dialects[str(getattr(engine, "value", engine))]()
    except KeyError:
        raise ValueError(f"engine must be one of {', '.join(dialects)} (got {engine!r})") from None
