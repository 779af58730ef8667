"""Cutover SQL for PostgreSQL: restore point, freeze/unfreeze, sequences, constraints.

Text only (a dialect never opens a connection); :mod:`bascule.hooks.cutover` runs
it. Identifiers are quoted here; values travel as bind parameters. No statement
selects a row value: grants, role attributes, positions, counts and catalog names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bascule.engines.base import Query
from bascule.engines.cutover_base import (
    META_SCHEMA,
    PUBLIC,
    CutoverDialect,
    FreezeRecord,
    Grant,
    KeySet,
    Statement,
    catalog_name,
    check_name,
    grants_from_json,
    grants_to_json,
)
from bascule.engines.postgres import PostgresEngine

# Rights that let the application change data. Sequence UPDATE allows nextval()
# and setval() just as USAGE allows nextval(): both go.
TABLE_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
SEQUENCE_WRITE_PRIVILEGES = ("USAGE", "UPDATE")
# Column rights that change data (a table-level REVOKE also drops them: they are recorded apart).
COLUMN_WRITE_PRIVILEGES = ("INSERT", "UPDATE")
PROBE_TABLE = f"{META_SCHEMA}.write_probe"

# The roles that may keep writing (the plan's allowed writers, and the session's own user) and the
# relations of the scope: shared by the query of what a freeze takes and by its proof.
_ALLOWED_AND_SCOPE = """
    allowed AS (
        SELECT oid FROM pg_roles WHERE rolname = ANY(%(allowed)s) OR rolname = current_user
    ), rel AS (
        SELECT c.oid, c.relkind, c.relowner, c.relacl, n.nspname, c.relname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'f', 'S')
    )"""
# A write right of an ACL entry of a relation of the scope (sequence rights for sequences).
_WRITE_ENTRY = """((rel.relkind = 'S' AND a.privilege_type = ANY(%(seq_privs)s))
                    OR (rel.relkind <> 'S' AND a.privilege_type = ANY(%(table_privs)s)))"""
# A default-ACL entry that will give a write right on a future table or sequence.
_DEFAULT_WRITE_ENTRY = """d.defaclobjtype IN ('r', 'S')
               AND (d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM pg_namespace
                                                                    WHERE nspname = ANY(%(schemas)s)))
               AND ((d.defaclobjtype = 'S' AND a.privilege_type = ANY(%(seq_privs)s))
                    OR (d.defaclobjtype = 'r' AND a.privilege_type = ANY(%(table_privs)s)))"""


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

    def _scope_binds(self, role: str, schemas: Sequence[str], allowed: Sequence[str]) -> dict[str, Any]:
        return {"schemas": list(schemas), "role": check_name(role, field="application role"),
                "allowed": [catalog_name(a, field="allowed writer") for a in allowed],
                "seq_privs": list(SEQUENCE_WRITE_PRIVILEGES), "table_privs": list(TABLE_WRITE_PRIVILEGES),
                "column_privs": list(COLUMN_WRITE_PRIVILEGES)}

    def write_grants_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        # Every relation of the schemas, partitions and views included: a partition or an
        # auto-updatable view is a side door around a revoke on the parent. Column rights apart: a
        # table-level REVOKE drops them too, and unfreeze must give them back. Memberships are taken
        # only where the role granted keeps its rights (allowed, superuser, owner, pg_write_all_data);
        # every other role loses its own grants instead. An owner's rights on its own objects and a
        # superuser's are never taken (the proof names them when they are not allowed).
        return (
            f"""
            WITH {_ALLOWED_AND_SCOPE}, taken AS (
                SELECT CASE WHEN rel.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
                       rel.nspname AS schema, rel.relname AS name, a.privilege_type AS privilege,
                       a.is_grantable AS grantable, '' AS col, a.grantee
                  FROM rel CROSS JOIN LATERAL aclexplode(rel.relacl) a
                 WHERE a.grantee <> rel.relowner AND {_WRITE_ENTRY}
                UNION ALL
                SELECT 'column', rel.nspname, rel.relname, a.privilege_type, a.is_grantable, att.attname::text,
                       a.grantee
                  FROM rel
                  JOIN pg_attribute att ON att.attrelid = rel.oid AND att.attnum > 0 AND NOT att.attisdropped
                                       AND att.attacl IS NOT NULL
                 CROSS JOIN LATERAL aclexplode(att.attacl) a
                 WHERE rel.relkind <> 'S' AND a.grantee <> rel.relowner
                   AND a.privilege_type = ANY(%(column_privs)s)
                UNION ALL
                SELECT CASE d.defaclobjtype WHEN 'S' THEN 'default_sequence' ELSE 'default_table' END,
                       coalesce(dn.nspname::text, ''), pg_get_userbyid(d.defaclrole)::text, a.privilege_type,
                       a.is_grantable, '', a.grantee
                  FROM pg_default_acl d
                  LEFT JOIN pg_namespace dn ON dn.oid = d.defaclnamespace
                 CROSS JOIN LATERAL aclexplode(d.defaclacl) a
                 WHERE a.grantee <> d.defaclrole AND {_DEFAULT_WRITE_ENTRY}
                UNION ALL
                SELECT 'membership', '', g.rolname::text, 'MEMBER', m.admin_option, '', m.member
                  FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                 WHERE g.rolsuper OR g.rolname = 'pg_write_all_data'
                    OR g.oid IN (SELECT relowner FROM rel) OR g.oid IN (SELECT oid FROM allowed)
            )
            SELECT t.kind, t.schema, t.name, t.privilege, t.grantable, t.col,
                   CASE WHEN t.grantee = 0 THEN '{PUBLIC}' WHEN r.rolname = %(role)s THEN ''
                        ELSE r.rolname::text END
              FROM taken t LEFT JOIN pg_roles r ON r.oid = t.grantee
             WHERE t.grantee = 0 OR (NOT r.rolsuper AND t.grantee NOT IN (SELECT oid FROM allowed))
             ORDER BY 1, 2, 3, 4, 6, 7
            """,
            self._scope_binds(role, schemas, allowed),
        )

    def freeze_findings_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        # One statement, run once the sessions are gone: who can still write, and how.
        # pg_has_role(..., 'MEMBER') is true for a member that does not inherit (it may SET ROLE) and for
        # every role a superuser names; CASE keeps PUBLIC's grantee 0 away from it.
        return (
            f"""
            WITH {_ALLOWED_AND_SCOPE}, held AS (
                SELECT oid AS holder, 'superuser' AS way FROM pg_roles WHERE rolsuper
                UNION SELECT relowner, 'owner' FROM rel
                UNION SELECT a.grantee, 'grant' FROM rel CROSS JOIN LATERAL aclexplode(rel.relacl) a
                       WHERE {_WRITE_ENTRY}
                UNION SELECT a.grantee, 'column grant'
                        FROM rel
                        JOIN pg_attribute att ON att.attrelid = rel.oid AND att.attnum > 0
                                             AND NOT att.attisdropped AND att.attacl IS NOT NULL
                       CROSS JOIN LATERAL aclexplode(att.attacl) a
                       WHERE a.privilege_type = ANY(%(column_privs)s)
                UNION SELECT oid, 'member of pg_write_all_data' FROM pg_roles WHERE rolname = 'pg_write_all_data'
            ), writer AS (
                SELECT r.oid, r.rolname, r.rolsuper, h.holder, h.way
                  FROM pg_roles r
                  JOIN held h ON CASE WHEN h.holder = 0 THEN true ELSE pg_has_role(r.oid, h.holder, 'MEMBER') END
                 WHERE (r.rolcanlogin OR r.rolname = %(role)s) AND r.oid NOT IN (SELECT oid FROM allowed)
            )
            SELECT 'writer', rolname::text,
                   CASE WHEN bool_or(rolsuper) THEN 'superuser'
                        ELSE string_agg(DISTINCT CASE WHEN holder = 0 THEN way || ' to PUBLIC'
                                                      WHEN holder = oid THEN way
                                                      ELSE way || ' of ' || pg_get_userbyid(holder) END, ', ')
                   END
              FROM writer GROUP BY rolname
            UNION ALL
            SELECT 'security definer', p.oid::regprocedure::text, 'owned by ' || pg_get_userbyid(p.proowner)
              FROM pg_proc p
             WHERE p.prosecdef
               AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
               AND EXISTS (SELECT 1 FROM held h WHERE CASE WHEN h.holder = 0 THEN true
                                                          ELSE pg_has_role(p.proowner, h.holder, 'MEMBER') END)
               AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                            WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner
                              AND (a.grantee = 0 OR a.grantee NOT IN (SELECT oid FROM allowed)))
            UNION ALL
            SELECT 'default privileges', pg_get_userbyid(d.defaclrole)::text,
                   string_agg(DISTINCT a.privilege_type || ' to '
                              || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, ', ')
              FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
             WHERE a.grantee <> d.defaclrole AND {_DEFAULT_WRITE_ENTRY}
               AND (a.grantee = 0 OR a.grantee NOT IN (SELECT oid FROM allowed UNION
                                                       SELECT oid FROM pg_roles WHERE rolsuper))
             GROUP BY d.defaclrole
            UNION ALL
            SELECT 'prepared transactions', count(*)::text, string_agg(DISTINCT owner::text, ', ')
              FROM pg_prepared_xacts WHERE database = current_database() HAVING count(*) > 0
            """,
            self._scope_binds(role, schemas, allowed),
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
        kind = {"table": "TABLE", "sequence": "SEQUENCE", "column": "TABLE"}.get(grant.kind)
        privs = {"table": TABLE_WRITE_PRIVILEGES, "column": COLUMN_WRITE_PRIVILEGES}.get(
            grant.kind, SEQUENCE_WRITE_PRIVILEGES)
        if kind is None or grant.privilege not in privs:
            raise ValueError(f"grant on {grant.schema}.{grant.name}: {grant.kind} privilege "
                             f"{grant.privilege!r} is not a write right bascule manages")
        column = f" ({self.quote_ident(grant.column)})" if grant.kind == "column" else ""
        return f"{grant.privilege}{column} ON {kind} {self.qualified(grant.schema, grant.name)}"

    def _grantee(self, role: str, grant: Grant) -> str:
        holder = grant.holder(check_name(role, field="application role"))
        return "PUBLIC" if holder.upper() == PUBLIC else self.quote_ident(catalog_name(holder, field="grantee"))

    def _default(self, grant: Grant) -> tuple[str, str]:
        """(``FOR ROLE .. [IN SCHEMA ..]``, ``<privilege> ON TABLES|SEQUENCES``) of a default privilege."""
        on = {"default_table": ("TABLES", TABLE_WRITE_PRIVILEGES),
              "default_sequence": ("SEQUENCES", SEQUENCE_WRITE_PRIVILEGES)}[grant.kind]
        if grant.privilege not in on[1]:
            raise ValueError(f"default privilege {grant.privilege!r} on {on[0].lower()} is not a write right")
        where = f" IN SCHEMA {self.quote_ident(check_name(grant.schema, field='schema'))}" if grant.schema else ""
        return (f"FOR ROLE {self.quote_ident(catalog_name(grant.name, field='role'))}{where}",
                f"{grant.privilege} ON {on[0]}")

    def revoke_sql(self, role: str, grant: Grant) -> str:
        grantee = self._grantee(role, grant)
        if grant.kind == "membership":
            return f"REVOKE {self.quote_ident(catalog_name(grant.name, field='role'))} FROM {grantee}"
        if grant.kind.startswith("default_"):
            owner, what = self._default(grant)
            return f"ALTER DEFAULT PRIVILEGES {owner} REVOKE {what} FROM {grantee}"
        return f"REVOKE {self._object(grant)} FROM {grantee}"

    def grant_sql(self, role: str, grant: Grant) -> str:
        grantee = self._grantee(role, grant)
        if grant.kind == "membership":
            option = " WITH ADMIN OPTION" if grant.grantable else ""
            return f"GRANT {self.quote_ident(catalog_name(grant.name, field='role'))} TO {grantee}{option}"
        option = " WITH GRANT OPTION" if grant.grantable else ""
        if grant.kind.startswith("default_"):
            owner, what = self._default(grant)
            return f"ALTER DEFAULT PRIVILEGES {owner} GRANT {what} TO {grantee}{option}"
        return f"GRANT {self._object(grant)} TO {grantee}{option}"

    def lock_role_sql(self, role: str) -> str:
        return f"ALTER ROLE {self.quote_ident(check_name(role, field='application role'))} NOLOGIN CONNECTION LIMIT 0"

    def restore_role_sql(self, role: str, *, can_login: bool, conn_limit: int | None = None) -> str:
        if conn_limit is None:
            raise ValueError(f"restoring role {role!r}: PostgreSQL needs the connection limit to give back")
        login = "LOGIN" if can_login else "NOLOGIN"
        return (f"ALTER ROLE {self.quote_ident(check_name(role, field='application role'))} {login} "
                f"CONNECTION LIMIT {int(conn_limit)}")

    def record_freeze_sql(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                          conn_limit: int | None = None, services: Sequence[str] = (),
                          started: datetime | None = None) -> Query:
        # PostgreSQL has no services to record: the application's way in is the role's login.
        if conn_limit is None:
            raise ValueError(f"freeze of {role!r}: PostgreSQL records the role's connection limit")
        return (
            f"""INSERT INTO {META_SCHEMA}.freeze_state (role_name, grants, can_login, conn_limit, frozen_at)
                VALUES (%(role)s, %(grants)s::jsonb, %(can_login)s, %(conn_limit)s, %(started)s::timestamptz)
                RETURNING freeze_id""",
            {"role": role, "grants": grants_to_json(grants), "can_login": can_login, "conn_limit": conn_limit,
             "started": started},
        )

    def update_freeze_grants_sql(self, freeze_id: int, grants: Sequence[Grant]) -> Query:
        return (f"UPDATE {META_SCHEMA}.freeze_state SET grants = %(g)s::jsonb WHERE freeze_id = %(id)s",
                {"g": grants_to_json(grants), "id": int(freeze_id)})

    def before_revoke_sql(self, services: Sequence[str]) -> list[Statement]:
        # Revoking and NOLOGIN close every door PostgreSQL has.
        return []

    def after_restore_sql(self, services: Sequence[str]) -> list[Statement]:
        return []

    def _sessions_where(self, role: str, writers: Sequence[str], allowed: Sequence[str],
                        everyone: bool) -> Query:
        """The sessions a freeze ends: logins that are ``role`` or members of a writer (a member may have
        SET ROLE to it: PostgreSQL shows no other backend's current_user), never allowed ones."""
        role = check_name(role, field="application role")
        if not writers and not everyone:
            return "usename = %(role)s AND pid <> pg_backend_pid()", {"role": role}
        return (
            """pid <> pg_backend_pid() AND usesysid IS NOT NULL AND usename <> session_user
               AND NOT usename = ANY(%(allowed)s)
               AND (%(everyone)s OR EXISTS (SELECT 1 FROM pg_roles w
                                             WHERE w.rolname = ANY(%(writers)s)
                                               AND pg_has_role(usesysid, w.oid, 'MEMBER')))""",
            {"role": role, "writers": sorted({role, *(catalog_name(w, field="writer") for w in writers)}),
             "allowed": [catalog_name(a, field="allowed writer") for a in allowed], "everyone": bool(everyone)},
        )

    def terminate_sessions_sql(self, role: str, writers: Sequence[str] = (), allowed: Sequence[str] = (),
                               everyone: bool = False) -> Query:
        # Idle-in-transaction sessions included: their open transaction could
        # still commit after the freeze position was taken.
        where, binds = self._sessions_where(role, writers, allowed, everyone)
        return (f"""SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
                 FROM pg_stat_activity
                WHERE {where}""", binds)

    def sessions_sql(self, role: str, writers: Sequence[str] = (), allowed: Sequence[str] = (),
                     everyone: bool = False) -> Query:
        where, binds = self._sessions_where(role, writers, allowed, everyone)
        return f"SELECT pid FROM pg_stat_activity WHERE {where}", binds

    def end_sessions_sql(self, role: str, sessions: Sequence[tuple[Any, ...]], writers: Sequence[str] = (),
                         allowed: Sequence[str] = (), everyone: bool = False) -> list[Statement]:
        # One statement ends them all, those that appeared since they were listed included.
        return [self.terminate_sessions_sql(role, writers, allowed, everyone)] if sessions else []

    def ending_failure_tolerated(self, exc: BaseException) -> bool:
        # pg_terminate_backend() answers false for a backend already gone, it raises for none. One
        # statement ends them all, so an error is rolled back and the recount decides: a session
        # that survives fails the freeze, naming this error's class.
        return self.is_driver_error(exc)

    def mark_frozen_sql(self, freeze_id: int, started: datetime | None = None) -> Query:
        # Taken once, after the sessions are gone and the proof holds: every write the application
        # ever committed lies before this position. A retry keeps the first one. frozen_at was
        # recorded with the freeze (the worker's clock before the REVOKE); ``started`` stands in for a
        # record made without it, the database's clock only for a caller that gives neither.
        return (
            f"""UPDATE {META_SCHEMA}.freeze_state
                   SET frozen_at = coalesce(frozen_at, %(started)s::timestamptz, clock_timestamp()),
                       frozen_position = coalesce(frozen_position, pg_current_wal_lsn())
                 WHERE freeze_id = %(freeze_id)s
             RETURNING frozen_at, frozen_position::text""",
            {"freeze_id": int(freeze_id), "started": started},
        )

    def release_freeze_sql(self, freeze_id: int) -> Query:
        return (f"UPDATE {META_SCHEMA}.freeze_state SET released_at = clock_timestamp() "
                "WHERE freeze_id = %(freeze_id)s AND released_at IS NULL", {"freeze_id": int(freeze_id)})

    # ---------------------------------------------------- reopening, proven
    def probe_prepare_sql(self, role: str) -> list[Statement]:
        # bascule's own table, outside the scope (never published, never compared): the application
        # may insert there and nothing else; it cannot read it, nor anything else of bascule_meta.
        who = self.quote_ident(check_name(role, field="application role"))
        return [
            f"""CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (
                    run_id      text        NOT NULL,
                    side        text        NOT NULL,
                    written_by  name        NOT NULL DEFAULT current_user,
                    written_at  timestamptz NOT NULL DEFAULT clock_timestamp())""",
            f"GRANT USAGE ON SCHEMA {META_SCHEMA} TO {who}",
            f"GRANT INSERT ON {PROBE_TABLE} TO {who}",
        ]

    def probe_write_sql(self, run_id: str, side: str) -> Query:
        return (f"INSERT INTO {PROBE_TABLE} (run_id, side) VALUES (%(run_id)s, %(side)s)",
                {"run_id": str(run_id)[:250], "side": str(side)})

    def lend_rights_sql(self, role: str, grants: Sequence[Grant]) -> list[Statement] | None:
        # GRANT is transactional here: rolled back, nobody else ever saw it (no table lock is taken).
        who = check_name(role, field="application role")
        lent = [self.grant_sql(who, g) for g in sorted(grants)
                if not g.grantee and g.kind in ("table", "sequence", "column", "membership")]
        return [*lent, f"SET LOCAL ROLE {self.quote_ident(who)}"]

    # ------------------------------------------------------------ identity
    def database_identity_sql(self) -> Query:
        # The cluster's identifier (initdb's, copied by a physical replica or a restore) and the
        # database's oid in it: equal on both connections only for one database.
        return ("""SELECT (SELECT system_identifier FROM pg_control_system())::text,
                          (SELECT oid FROM pg_database WHERE datname = current_database())::text""", {})

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
                         ref_table: str, ref_columns: Sequence[str], *, among: Sequence[KeySet] = ()) -> Query:
        """Rows of ``table`` whose foreign key finds no parent (``columns`` quoted, as
        :meth:`foreign_keys_sql` returns them): rows the apply worker
        inserted with triggers (RI checks included) switched off. A count, never a value."""
        if len(columns) != len(ref_columns) or not columns:
            raise ValueError(f"foreign key of {schema}.{table}: column lists differ in length")
        child = self.qualified(schema, table)
        parent = self.qualified(ref_schema, ref_table)
        not_null = " AND ".join(f"c.{col} IS NOT NULL" for col in columns)
        join = " AND ".join(f"p.{rc} = c.{col}" for col, rc in zip(columns, ref_columns, strict=True))
        orphan = f"{not_null} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})"
        if not among:
            return f"SELECT count(*) FROM {child} c WHERE {orphan}", {}
        # One branch per key set, each a semi-join on its unnested binds (cast to the columns' types) that the
        # child's indexes serve; an OR of them would filter a scan of the whole child. UNION on ctid: a row in
        # two sets counts once.
        params: dict[str, Any] = {}
        branches = []
        for i, keyset in enumerate(among):
            cols = ", ".join(f"c.{col}" for col, _ in keyset.columns)
            arrays = []
            for j, (_, typ) in enumerate(keyset.columns):
                params[f"s{i}_{j}"] = [k[j] for k in keyset.keys]
                arrays.append(f"%(s{i}_{j})s::text[]::{typ}[]")
            branches.append(f"SELECT c.ctid FROM {child} c WHERE ({cols}) IN (SELECT * FROM unnest("
                            f"{', '.join(arrays)})) AND {orphan}")
        return f"SELECT count(*) FROM ({' UNION '.join(branches)}) u", params

    def validate_constraint_sql(self, schema: str, table: str, constraint: str) -> str:
        return (f"ALTER TABLE {self.qualified(schema, table)} VALIDATE CONSTRAINT "
                f"{self.quote_ident(constraint)}")
