"""Cutover SQL for Oracle (19c): guaranteed restore point, freeze through restricted
session, services and account lock, sequences, constraints and triggers.

Tested as text (no Oracle database runs here). Binds use Oracle's ``:name``
style. The freeze state lives in ``BASCULE_META.FREEZE_STATE`` like PostgreSQL's
``bascule_meta.freeze_state``, so a retried task on either engine finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bascule.engines.base import Query
from bascule.engines.cutover_base import (
    PUBLIC,
    CutoverDialect,
    FreezeRecord,
    Grant,
    Statement,
    catalog_name,
    check_name,
    grants_from_json,
    grants_to_json,
)
from bascule.engines.oracle import OracleEngine

META_SCHEMA = "BASCULE_META"
# Oracle has no TRUNCATE privilege (only the owner or DROP ANY TABLE truncates)
# and sequences carry SELECT (nextval) and ALTER.
ORACLE_TABLE_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE")
ORACLE_SEQUENCE_WRITE_PRIVILEGES = ("SELECT", "ALTER")
ORACLE_COLUMN_WRITE_PRIVILEGES = ("INSERT", "UPDATE")
# System privileges that write any table (TRUNCATE needs DROP ANY TABLE).
ORACLE_ANY_WRITE_PRIVILEGES = ("INSERT ANY TABLE", "UPDATE ANY TABLE", "DELETE ANY TABLE", "DROP ANY TABLE")
PROBE_TABLE = f"{META_SCHEMA}.WRITE_PROBE"
# TIMESTAMP WITH TIME ZONE from an ISO 8601 text bind (the driver binds no aware datetime).
_TSTZ = "TO_TIMESTAMP_TZ(:started, 'YYYY-MM-DD\"T\"HH24:MI:SS.FFTZH:TZM')"


def _upper(name: str, field: str) -> str:
    return check_name(name, field=field).upper()


def _in_list(prefix: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``:p0, :p1`` and their binds: Oracle binds no arrays in a plain IN."""
    if not values:
        raise ValueError(f"{prefix}: at least one value is required")
    binds = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in binds), binds


def _not_allowed(column: str, allowed: Sequence[str]) -> tuple[str, dict[str, str]]:
    """`` AND <column> NOT IN (:allowed0, ..)`` (nothing when no writer is allowed) and its binds."""
    if not allowed:
        return "", {}
    names, binds = _in_list("allowed", [catalog_name(a, field="allowed writer").upper() for a in allowed])
    return f" AND {column} NOT IN ({names})", binds


def _create_if_absent(table: str, ddl: str) -> str:
    """A PL/SQL block that runs ``ddl`` (CREATE TABLE BASCULE_META.<table>) only if the table is absent."""
    return ("DECLARE n NUMBER; BEGIN "
            f"SELECT COUNT(*) INTO n FROM all_tables WHERE owner = '{META_SCHEMA}' AND table_name = '{table}'; "
            "IF n = 0 THEN EXECUTE IMMEDIATE q'[" + ddl + "]'; END IF; END;")


def _started(started: datetime | None) -> str | None:
    return None if started is None else started.isoformat(timespec="microseconds")


class OracleCutoverDialect(OracleEngine, CutoverDialect):
    def cutover_session_sql(self) -> list[str]:
        # DDL waits for no row lock here; KILL SESSION ... IMMEDIATE ends whoever holds one.
        return []

    # ------------------------------------------------------- restore point
    def restore_point_name(self, name: str) -> str:
        return _upper(name, "restore point name")

    def restore_point_prepare_sql(self) -> list[str]:
        # Oracle lists its restore points itself (v$restore_point): nothing to record.
        return []

    def restore_point_lock_sql(self) -> list[str]:
        # CREATE RESTORE POINT is refused for a name already used (ORA-38778): no lock needed.
        return []

    def restore_point_made_sql(self, name: str, created: Sequence[tuple[Any, ...]]) -> Query:
        return self.restore_point_lookup_sql(name)

    def create_restore_point_sql(self, name: str) -> Query:
        # DDL takes no binds; the name is checked as an identifier instead.
        return f"CREATE RESTORE POINT {_upper(name, 'restore point name')} GUARANTEE FLASHBACK DATABASE", {}

    def restore_point_lookup_sql(self, name: str) -> Query:
        return ("SELECT TO_CHAR(scn), time, guarantee_flashback_database FROM v$restore_point WHERE name = :name",
                {"name": _upper(name, "restore point name")})

    def current_position_sql(self) -> Query:
        return "SELECT TO_CHAR(current_scn), SYSTIMESTAMP FROM v$database", {}

    # -------------------------------------------------------------- freeze
    def ensure_meta_sql(self) -> list[str]:
        # Oracle has no IF NOT EXISTS before 23ai: the catalogue is asked first, and no error is
        # swallowed (two freezes racing: the loser's ORA-00955 fails its try, the retry finds the table).
        table = f"""CREATE TABLE {META_SCHEMA}.FREEZE_STATE (
                freeze_id        NUMBER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                role_name        VARCHAR2(128) NOT NULL,
                grants           CLOB          NOT NULL CHECK (grants IS JSON),
                can_login        NUMBER(1)     NOT NULL,
                services         VARCHAR2(4000),
                started_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
                frozen_at        TIMESTAMP WITH TIME ZONE,
                frozen_position  VARCHAR2(40),
                released_at      TIMESTAMP WITH TIME ZONE)"""
        return [_create_if_absent("FREEZE_STATE", table)]

    def active_freeze_sql(self, role: str) -> Query:
        return (
            f"""SELECT freeze_id, grants, can_login, services, frozen_at, frozen_position
                  FROM {META_SCHEMA}.FREEZE_STATE WHERE role_name = :role AND released_at IS NULL""",
            {"role": _upper(role, "application role")},
        )

    def freeze_lock_sql(self) -> list[str]:
        # Every REVOKE commits (DDL): a table lock would not outlast the first one.
        return []

    def freeze_record(self, row: Sequence[Any]) -> FreezeRecord:
        freeze_id, grants, can_login, services, frozen_at, position = row[:6]
        return FreezeRecord(freeze_id=int(freeze_id), grants=tuple(grants_from_json(self.lob_text(grants))),
                            can_login=bool(can_login), conn_limit=None,
                            services=tuple(s for s in str(services or "").split(",") if s),
                            frozen_at=frozen_at, position=None if position is None else str(position))

    def record_freeze_sql(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                          conn_limit: int | None = None, services: Sequence[str] = (),
                          started: datetime | None = None) -> Query:
        # Oracle users have no connection limit of their own (profiles do): only the lock is recorded.
        binds = {"role": _upper(role, "application role"), "grants": grants_to_json(grants),
                 "can_login": 1 if can_login else 0, "services": ",".join(services)}
        if started is None:
            return (f"""INSERT INTO {META_SCHEMA}.FREEZE_STATE (role_name, grants, can_login, services)
                VALUES (:role, :grants, :can_login, :services)""", binds)
        return (
            f"""INSERT INTO {META_SCHEMA}.FREEZE_STATE (role_name, grants, can_login, services, frozen_at)
                VALUES (:role, :grants, :can_login, :services, {_TSTZ})""",
            {**binds, "started": _started(started)},
        )

    def record_freeze_statements(self, role: str, grants: Sequence[Grant], *, can_login: bool,
                                 conn_limit: int | None = None, services: Sequence[str] = (),
                                 started: datetime | None = None) -> list[Query]:
        # RETURNING ... INTO needs an out bind: the freeze just recorded is read back instead.
        return [self.record_freeze_sql(role, grants, can_login=can_login, services=services, started=started),
                self.active_freeze_sql(role)]

    def update_freeze_grants_sql(self, freeze_id: int, grants: Sequence[Grant]) -> Query:
        return (f"UPDATE {META_SCHEMA}.FREEZE_STATE SET grants = :grants WHERE freeze_id = :freeze_id",
                {"grants": grants_to_json(grants), "freeze_id": int(freeze_id)})

    def role_attributes_sql(self, role: str) -> Query:
        # A user whose account is locked (by hand, or expired and locked) cannot log in.
        return ("SELECT CASE WHEN account_status LIKE '%LOCKED%' THEN 0 ELSE 1 END, NULL FROM dba_users "
                "WHERE username = :role", {"role": _upper(role, "application role")})

    def write_grants_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        # Object grants and column grants (dba_col_privs) of every grantee but the owner and the
        # allowed writers; the role's own come back with a NULL grantee ('' is NULL here).
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        tab_allowed, allowed_binds = _not_allowed("p.grantee", allowed)
        col_allowed, _ = _not_allowed("c.grantee", allowed)
        return (
            f"""SELECT CASE WHEN o.object_type = 'SEQUENCE' THEN 'sequence' ELSE 'table' END,
                       p.owner, p.table_name, p.privilege, CASE p.grantable WHEN 'YES' THEN 1 ELSE 0 END,
                       NULL, CASE WHEN p.grantee = :role THEN NULL ELSE p.grantee END
                  FROM dba_tab_privs p
                  JOIN dba_objects o ON o.owner = p.owner AND o.object_name = p.table_name
                                    AND o.object_type IN ('TABLE', 'VIEW', 'SEQUENCE')
                 WHERE p.owner IN ({owners}) AND p.grantee <> p.owner{tab_allowed}
                   AND ((o.object_type = 'SEQUENCE' AND p.privilege IN ('SELECT', 'ALTER'))
                        OR (o.object_type <> 'SEQUENCE' AND p.privilege IN ('INSERT', 'UPDATE', 'DELETE')))
                UNION ALL
                SELECT 'column', c.owner, c.table_name, c.privilege, CASE c.grantable WHEN 'YES' THEN 1 ELSE 0 END,
                       c.column_name, CASE WHEN c.grantee = :role THEN NULL ELSE c.grantee END
                  FROM dba_col_privs c
                 WHERE c.owner IN ({owners}) AND c.grantee <> c.owner{col_allowed}
                   AND c.privilege IN ('INSERT', 'UPDATE')
                 ORDER BY 1, 2, 3, 4""",
            {"role": _upper(role, "application role"), **binds, **allowed_binds},
        )

    def freeze_findings_sql(self, role: str, schemas: Sequence[str], allowed: Sequence[str] = ()) -> Query:
        # Who can still write, once the sessions are gone: users (never Oracle's own) holding a write
        # right on the scope's objects or columns, directly, through roles (of roles) or PUBLIC; a
        # system privilege writing any table; the scope's owners; definer-rights code of the scope's
        # owners that someone else may execute (it writes as its owner); pending distributed
        # transactions (dba_2pc_pending), which a coordinator may still commit. Runs on the source too,
        # which may be 12.2 or 18c: LISTAGG over a DISTINCT inline view (LISTAGG(DISTINCT) is 19c's).
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        user_allowed, allowed_binds = _not_allowed("u.username", allowed)
        exec_allowed, _ = _not_allowed("x.grantee", allowed)
        any_privs = ", ".join(f"'{p}'" for p in ORACLE_ANY_WRITE_PRIVILEGES)
        return (
            f"""WITH held AS (
                    SELECT p.grantee, 'grant' way FROM dba_tab_privs p
                      JOIN dba_objects o ON o.owner = p.owner AND o.object_name = p.table_name
                                        AND o.object_type IN ('TABLE', 'VIEW', 'SEQUENCE')
                     WHERE p.owner IN ({owners})
                       AND ((o.object_type = 'SEQUENCE' AND p.privilege IN ('SELECT', 'ALTER'))
                            OR (o.object_type <> 'SEQUENCE' AND p.privilege IN ('INSERT', 'UPDATE', 'DELETE')))
                    UNION SELECT c.grantee, 'column grant' FROM dba_col_privs c
                     WHERE c.owner IN ({owners}) AND c.privilege IN ('INSERT', 'UPDATE')
                    UNION SELECT s.grantee, 'system privilege' FROM dba_sys_privs s
                     WHERE s.privilege IN ({any_privs})
                ), reach AS (
                    SELECT h.grantee holder, h.way, h.grantee who FROM held h
                    UNION ALL
                    SELECT h.grantee, h.way, r.grantee FROM held h
                      JOIN (SELECT CONNECT_BY_ROOT granted_role root, grantee FROM dba_role_privs
                            CONNECT BY NOCYCLE PRIOR grantee = granted_role) r ON r.root = h.grantee
                )
                SELECT 'writer', w.username, LISTAGG(w.how, ', ') WITHIN GROUP (ORDER BY w.how)
                  FROM (SELECT DISTINCT u.username,
                               CASE WHEN x.holder = 'PUBLIC' THEN x.way || ' to PUBLIC'
                                    WHEN x.holder = u.username THEN x.way
                                    ELSE x.way || ' of ' || x.holder END how
                          FROM dba_users u
                          JOIN reach x ON x.who = u.username OR x.holder = 'PUBLIC'
                         WHERE u.oracle_maintained = 'N' AND u.username <> SYS_CONTEXT('USERENV', 'SESSION_USER')
                           AND u.username NOT IN ({owners}){user_allowed}) w
                 GROUP BY w.username
                UNION ALL
                SELECT 'writer', u.username, 'owner' FROM dba_users u
                 WHERE u.username IN ({owners}){user_allowed}
                UNION ALL
                SELECT 'definer rights', x.owner || '.' || x.table_name, 'executable by ' || x.grantee
                  FROM dba_tab_privs x
                  JOIN dba_procedures d ON d.owner = x.owner AND d.object_name = x.table_name
                                       AND d.procedure_name IS NULL AND d.authid = 'DEFINER'
                 WHERE x.owner IN ({owners}) AND x.privilege = 'EXECUTE'{exec_allowed}
                UNION ALL
                SELECT 'prepared transactions', TO_CHAR(COUNT(*)), NULL FROM dba_2pc_pending HAVING COUNT(*) > 0""",
            {**binds, **allowed_binds},
        )

    def _object(self, grant: Grant, *, column: bool = False) -> str:
        allowed = {"table": ORACLE_TABLE_WRITE_PRIVILEGES, "sequence": ORACLE_SEQUENCE_WRITE_PRIVILEGES,
                   "column": ORACLE_COLUMN_WRITE_PRIVILEGES}.get(grant.kind, ())
        if grant.privilege not in allowed:
            raise ValueError(f"grant on {grant.schema}.{grant.name}: {grant.kind} privilege "
                             f"{grant.privilege!r} is not a write right bascule manages")
        cols = f" ({self.quote_ident(grant.column)})" if column else ""
        return f"{grant.privilege}{cols} ON {self.qualified(grant.schema, grant.name)}"

    def _grantee(self, role: str, grant: Grant) -> str:
        holder = grant.holder(_upper(role, "application role"))
        # A catalog name comes back as stored (upper case unless created quoted): quoted as it is.
        return "PUBLIC" if holder.upper() == PUBLIC else self.quote_ident(catalog_name(holder, field="grantee"))

    def revoke_sql(self, role: str, grant: Grant) -> str:
        # Oracle revokes column rights only with the table's: REVOKE INSERT ON t takes both, and
        # unfreeze gives each back as recorded.
        return f"REVOKE {self._object(grant)} FROM {self._grantee(role, grant)}"

    def grant_sql(self, role: str, grant: Grant) -> str:
        option = " WITH GRANT OPTION" if grant.grantable else ""
        return (f"GRANT {self._object(grant, column=grant.kind == 'column')} TO {self._grantee(role, grant)}"
                f"{option}")

    def lock_role_sql(self, role: str) -> str:
        return f"ALTER USER {self.quote_ident(_upper(role, 'application role'))} ACCOUNT LOCK"

    def restore_role_sql(self, role: str, *, can_login: bool, conn_limit: int | None = None) -> str:
        verb = "UNLOCK" if can_login else "LOCK"
        return f"ALTER USER {self.quote_ident(_upper(role, 'application role'))} ACCOUNT {verb}"

    def enable_restricted_session_sql(self) -> str:
        # New sessions then need RESTRICTED SESSION: bascule's admin has it, the application does not.
        return "ALTER SYSTEM ENABLE RESTRICTED SESSION"

    def disable_restricted_session_sql(self) -> str:
        return "ALTER SYSTEM DISABLE RESTRICTED SESSION"

    def stop_service_sql(self, service: str) -> Query:
        # Stops the listener registration on every instance (RAC: NULL instance = all).
        return ("BEGIN DBMS_SERVICE.STOP_SERVICE(service_name => :service, instance_name => NULL); END;",
                {"service": check_name(service, field="service name")})

    def start_service_sql(self, service: str) -> Query:
        return ("BEGIN DBMS_SERVICE.START_SERVICE(service_name => :service, instance_name => NULL); END;",
                {"service": check_name(service, field="service name")})

    def before_revoke_sql(self, services: Sequence[str]) -> list[Statement]:
        # No new session but bascule's (it holds RESTRICTED SESSION), and the application's
        # services unregistered from the listeners, before the grants go.
        return [self.enable_restricted_session_sql(), *(self.stop_service_sql(s) for s in services)]

    def after_restore_sql(self, services: Sequence[str]) -> list[Statement]:
        return [*(self.start_service_sql(s) for s in services), self.disable_restricted_session_sql()]

    def sessions_sql(self, role: str, writers: Sequence[str] = (), allowed: Sequence[str] = (),
                     everyone: bool = False) -> Query:
        # Oracle has no SET ROLE to a user: a writer's sessions are its own (proxy logins too, whose
        # username is the proxied user's). Roles among ``writers`` reach the users granted them.
        user = _upper(role, "application role")
        if not everyone and {catalog_name(w, field="writer").upper() for w in writers} <= {user}:
            return ("SELECT sid, serial#, inst_id FROM gv$session WHERE username = :role AND type = 'USER'",
                    {"role": user})
        names, binds = _in_list("writer", sorted({user, *(catalog_name(w, field="writer").upper() for w in writers)}))
        not_allowed, allowed_binds = _not_allowed("username", allowed)
        if everyone:
            binds = {}  # oracledb refuses a bind the text does not name (DPY-4008)
        who = ("1 = 1" if everyone else
               f"""(username IN ({names}) OR username IN (
                       SELECT grantee FROM dba_role_privs
                        START WITH granted_role IN ({names}) CONNECT BY NOCYCLE PRIOR grantee = granted_role))""")
        return (f"""SELECT sid, serial#, inst_id FROM gv$session
                     WHERE type = 'USER' AND username <> SYS_CONTEXT('USERENV', 'SESSION_USER')
                       AND {who}{not_allowed}""", {**binds, **allowed_binds})

    def kill_session_sql(self, sid: int, serial: int, inst_id: int) -> str:
        # 19c's kill_session_clause: 'integer1, integer2 [, @integer3]' names the instance on RAC (the
        # @inst form is documented for KILL SESSION, not for DISCONNECT SESSION). IMMEDIATE rolls back
        # the open transaction, frees its locks and returns at once.
        return f"ALTER SYSTEM KILL SESSION '{int(sid)},{int(serial)},@{int(inst_id)}' IMMEDIATE"

    def end_sessions_sql(self, role: str, sessions: Sequence[tuple[Any, ...]], writers: Sequence[str] = (),
                         allowed: Sequence[str] = (), everyone: bool = False) -> list[Statement]:
        # One per session; one already gone fails with ORA-00030 and the recount shows it ended.
        return [self.kill_session_sql(sid, serial, inst) for sid, serial, inst in sessions]

    def ending_failure_tolerated(self, exc: BaseException) -> bool:
        # ORA-00030: "User session ID does not exist": it ended before its turn. Anything else (no
        # ALTER SYSTEM privilege, ORA-00031 and the like) fails the freeze, named.
        return self.is_driver_error(exc) and self.error_code(exc) == "ORA-00030"

    def remaining_write_rights_sql(self, role: str, schemas: Sequence[str]) -> Query:
        # Direct grants, grants to PUBLIC, and grants to any role the user holds (roles of roles too).
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        return (
            f"""SELECT p.owner, p.table_name, p.privilege
                  FROM dba_tab_privs p
                  JOIN dba_objects o ON o.owner = p.owner AND o.object_name = p.table_name
                                    AND o.object_type IN ('TABLE', 'VIEW', 'SEQUENCE')
                 WHERE p.owner IN ({owners})
                   AND (p.grantee IN ('PUBLIC', :role)
                        OR p.grantee IN (SELECT granted_role FROM dba_role_privs
                                          START WITH grantee = :role CONNECT BY PRIOR granted_role = grantee))
                   AND ((o.object_type = 'SEQUENCE' AND p.privilege IN ('SELECT', 'ALTER'))
                        OR (o.object_type <> 'SEQUENCE' AND p.privilege IN ('INSERT', 'UPDATE', 'DELETE')))
                 ORDER BY 1, 2, 3""",
            {"role": _upper(role, "application role"), **binds},
        )

    def mark_frozen_sql(self, freeze_id: int, started: datetime | None = None) -> Query:
        # frozen_at was recorded with the freeze (the worker's clock before the first REVOKE);
        # ``started`` stands in for a record made without it, SYSTIMESTAMP only when neither is known.
        at, binds = (f"COALESCE(frozen_at, {_TSTZ}, SYSTIMESTAMP)", {"started": _started(started)}) \
            if started is not None else ("NVL(frozen_at, SYSTIMESTAMP)", {})
        return (
            f"""UPDATE {META_SCHEMA}.FREEZE_STATE
                   SET frozen_at = {at},
                       frozen_position = NVL(frozen_position, (SELECT TO_CHAR(current_scn) FROM v$database))
                 WHERE freeze_id = :freeze_id""",
            {"freeze_id": int(freeze_id), **binds},
        )

    def mark_frozen_statements(self, freeze_id: int, started: datetime | None = None) -> list[Query]:
        # UPDATE ... RETURNING INTO needs out binds: the frozen time and SCN are read back.
        return [self.mark_frozen_sql(freeze_id, started),
                (f"SELECT frozen_at, frozen_position FROM {META_SCHEMA}.FREEZE_STATE WHERE freeze_id = :freeze_id",
                 {"freeze_id": int(freeze_id)})]

    def release_freeze_sql(self, freeze_id: int) -> Query:
        return (f"UPDATE {META_SCHEMA}.FREEZE_STATE SET released_at = SYSTIMESTAMP "
                "WHERE freeze_id = :freeze_id AND released_at IS NULL", {"freeze_id": int(freeze_id)})

    # ---------------------------------------------------- reopening, proven
    def probe_prepare_sql(self, role: str) -> list[Statement]:
        table = f"""CREATE TABLE {PROBE_TABLE} (
                run_id      VARCHAR2(250) NOT NULL,
                side        VARCHAR2(16)  NOT NULL,
                written_by  VARCHAR2(128) DEFAULT SYS_CONTEXT('USERENV', 'SESSION_USER') NOT NULL,
                written_at  TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL)"""
        return [
            _create_if_absent("WRITE_PROBE", table),
            f"GRANT INSERT ON {PROBE_TABLE} TO {self.quote_ident(_upper(role, 'application role'))}",
        ]

    def probe_write_sql(self, run_id: str, side: str) -> Query:
        return (f"INSERT INTO {PROBE_TABLE} (run_id, side) VALUES (:run_id, :side)",
                {"run_id": str(run_id)[:250], "side": str(side)})

    # lend_rights_sql: None (the base's): a GRANT commits, it cannot be lent inside a rolled-back transaction.

    # ------------------------------------------------------------ identity
    def database_identity_sql(self) -> Query:
        # DBID (kept by a clone made with RMAN DUPLICATE unless NID changes it) and the pluggable
        # database's GUID (unique per PDB, also across clones); '-' outside a container database.
        return ("""SELECT TO_CHAR(d.dbid),
                          NVL((SELECT RAWTOHEX(c.guid) FROM v$containers c
                                WHERE c.con_id = TO_NUMBER(SYS_CONTEXT('USERENV', 'CON_ID'))), '-')
                     FROM v$database d""", {})

    # ----------------------------------------------------------- sequences
    def sequence_values_sql(self, schemas: Sequence[str]) -> Query:
        # LAST_NUMBER is the next value written to disk: with a cache it runs
        # ahead of the values handed out, which errs on the safe side here.
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        return (f"""SELECT sequence_owner, sequence_name, last_number, increment_by FROM dba_sequences
                     WHERE sequence_owner IN ({owners}) ORDER BY 1, 2""", binds)

    def sequence_last_value_sql(self, schema: str, name: str) -> Query | None:
        # ALTER SEQUENCE cannot compare: the hook reads LAST_NUMBER first (the upper bound handed out).
        return ("SELECT last_number FROM dba_sequences WHERE sequence_owner = :owner AND sequence_name = :name",
                {"owner": _upper(schema, "schema"), "name": _upper(name, "sequence")})

    def advance_sequence_sql(self, schema: str, name: str, value: int) -> Query:
        # 18c+: RESTART START WITH. The caller compares first: never backwards.
        return f"ALTER SEQUENCE {self.qualified(schema, name)} RESTART START WITH {int(value)}", {}

    # --------------------------------------------------------- constraints
    def invalid_constraints_sql(self, schemas: Sequence[str]) -> Query:
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        return (f"""SELECT owner, table_name, constraint_name, constraint_type FROM dba_constraints
                     WHERE owner IN ({owners}) AND constraint_type IN ('C', 'F', 'P', 'U')
                       AND (status = 'DISABLED' OR validated = 'NOT VALIDATED')
                     ORDER BY 1, 2, 3""", binds)

    def disabled_triggers_sql(self, schemas: Sequence[str]) -> Query:
        # GoldenGate's Replicat suppresses triggers (DBOPTIONS SUPPRESSTRIGGERS);
        # a trigger DISABLED on the target would stay silent for the application too.
        owners, binds = _in_list("owner", [_upper(s, "schema") for s in schemas])
        return (f"""SELECT table_owner, table_name, trigger_name, LOWER(status) FROM dba_triggers
                     WHERE owner IN ({owners}) AND status = 'DISABLED' ORDER BY 1, 2, 3""", binds)

    def validate_constraint_sql(self, schema: str, table: str, constraint: str) -> str:
        return (f"ALTER TABLE {self.qualified(schema, table)} MODIFY CONSTRAINT {self.quote_ident(constraint)} "
                "ENABLE VALIDATE")

