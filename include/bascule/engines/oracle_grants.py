"""The privileges an Oracle migration user needs, derived from the statements bascule emits (ADR 0023).

Each statement of :func:`bascule.engines.oracle_catalogue.oracle_statements` is read for what it
touches: dictionary views (``dba_*``, ``v$``/``gv$``), packages (``DBMS_*``), bascule's own tables,
the scope's tables and sequences, and the statements that need a system privilege (``ALTER SYSTEM``,
``ALTER USER``, ``GRANT``/``REVOKE`` of another owner's objects, a guaranteed restore point). A
statement nothing here recognises is an error (:class:`UnclassifiedStatement`): a new statement cannot
silently need a privilege nobody granted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bascule.engines.oracle_catalogue import NIGHT, PREPARATION, Emitted, Names, oracle_statements
from bascule.engines.oracle_cutover import META_SCHEMA

# Granted to PUBLIC by every Oracle release bascule supports: nothing to grant.
_PUBLIC_OBJECTS = {"DUAL", "PRODUCT_COMPONENT_VERSION", "NLS_DATABASE_PARAMETERS", "DBMS_LOB", "DBMS_ADVISOR"}
_PUBLIC_PREFIXES = ("ALL_", "USER_")
# Packages bascule calls that are not PUBLIC's, and the system privilege some of them need besides.
_PACKAGES = {"DBMS_CRYPTO", "DBMS_SERVICE", "DBMS_WORKLOAD_CAPTURE", "DBMS_WORKLOAD_REPLAY", "DBMS_SQLPA"}
_PACKAGE_SYSTEM = {"DBMS_SQLPA": "ADVISOR", "DBMS_WORKLOAD_CAPTURE": "ADMINISTER SQL TUNING SET"}
_HEARTBEAT_OBJECTS = {"GG_LAG", "GG_LAG_HISTORY", "GG_HEARTBEAT_HISTORY"}
_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$#]*)'
_REFERENCE = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE)\s+({_NAME}(?:\.{_NAME})?)", re.I)
_CALL = re.compile(r"\b(DBMS_\w+)\s*\.", re.I)
_CTE = re.compile(rf"\b({_NAME})\s+AS\s*\(", re.I)


class UnclassifiedStatement(ValueError):
    """A statement whose privileges this module cannot tell: classify it here before it ships."""


@dataclass(frozen=True)
class Privilege:
    """One statement for the DBA to run (``{user}`` is the migration user), and why."""

    grant: str
    why: str
    needed_by: tuple[str, ...]
    when: tuple[str, ...]


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name.upper()


def _scope_loop(privilege: str, object_type: str, schemas: Sequence[str], user: str) -> str:
    owners = ", ".join(f"'{s.upper()}'" for s in schemas)
    return (f"BEGIN FOR o IN (SELECT owner, object_name FROM dba_objects WHERE owner IN ({owners}) "
            f"AND object_type = '{object_type}') LOOP EXECUTE IMMEDIATE 'GRANT {privilege} ON \"' || o.owner || "
            f"'\".\"' || o.object_name || '\" TO {user}'; END LOOP; END;")


def _needs(e: Emitted, names: Names, user: str) -> list[tuple[str, str]]:
    """(grant, why) pairs one statement needs; raises UnclassifiedStatement when it cannot tell."""
    text = " ".join(e.sql.split())
    head = text.upper()
    scope = {s.upper() for s in names.schemas}
    out: list[tuple[str, str]] = []
    if head.startswith("ALTER SESSION"):
        return []
    if head.startswith("ALTER SYSTEM KILL SESSION"):
        return [("GRANT ALTER SYSTEM TO {user}", "end the application's sessions (KILL SESSION)")]
    if re.match(r"ALTER SYSTEM (ENABLE|DISABLE) RESTRICTED SESSION$", head):
        return [("GRANT ALTER SYSTEM TO {user}", "restricted session during the freeze"),
                ("GRANT RESTRICTED SESSION TO {user}", "log in while the database is in restricted session")]
    if head.startswith("ALTER USER"):
        return [("GRANT ALTER USER TO {user}", "lock and unlock the application user")]
    if head.startswith("CREATE RESTORE POINT") and "GUARANTEE FLASHBACK DATABASE" in head:
        return [("GRANT SYSBACKUP TO {user}", "a guaranteed restore point needs SYSBACKUP (connect with "
                 "mode sysbkp for that step), or the DBA makes it and the night finds it by name")]
    if m := re.match(rf"(GRANT|REVOKE) .* ON ({_NAME})\.({_NAME})", text, re.I):
        owner = _unquote(m.group(2))
        if owner in scope or owner == META_SCHEMA:
            return [("GRANT GRANT ANY OBJECT PRIVILEGE TO {user}",
                     "take and give back the write rights of the scope (granted by its owners)")]
    if m := re.match(rf"ALTER SEQUENCE ({_NAME})\.", text, re.I):
        if _unquote(m.group(1)) in scope:
            return [(_scope_loop("ALTER", "SEQUENCE", names.schemas, user), "move sequences past the source's")]
    if m := re.match(rf"ALTER TABLE ({_NAME})\.{_NAME} MODIFY CONSTRAINT", text, re.I):
        if _unquote(m.group(1)) in scope:
            return [(_scope_loop("ALTER", "TABLE", names.schemas, user), "validate constraints after the load")]
    if not head.startswith(("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "BEGIN", "DECLARE")):
        raise UnclassifiedStatement(f"{e.source}: {text[:120]}")
    # What sits in literals is not a reference: q'[...]' holds the DDL the DBA runs beforehand
    # (meta_schema_ddl), '...' holds values such as 'UPDATE ANY TABLE'.
    code = re.sub(r"'[^']*'", "''", re.sub(r"q'\[.*?\]'", "''", text, flags=re.S))
    ctes = {_unquote(n) for n in _CTE.findall(code)}
    for verb, ref in _REFERENCE.findall(code):
        parts = [_unquote(p) for p in re.findall(_NAME, ref)]
        owner, obj = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        verb = verb.upper()
        if not owner and (obj in ctes or obj == "N" and verb == "INTO"):
            continue
        if obj in _PUBLIC_OBJECTS or obj.startswith(_PUBLIC_PREFIXES):
            continue
        if not owner and obj.startswith("DBA_"):
            out.append((f"GRANT SELECT ON SYS.{obj} TO {{user}}", "read the data dictionary"))
        elif not owner and (m := re.fullmatch(r"(G?V)\$(\w+)", obj)):
            out.append((f"GRANT SELECT ON SYS.{m.group(1)}_${m.group(2)} TO {{user}}", "read the instance's state"))
        elif obj in _HEARTBEAT_OBJECTS:
            holder = owner or (names.heartbeat_owner or "GGADMIN").upper()
            out.append((f"GRANT SELECT ON {holder}.{obj} TO {{user}}", "GoldenGate heartbeat lag"))
        elif owner == META_SCHEMA:
            privilege = {"FROM": "SELECT", "JOIN": "SELECT", "INTO": "INSERT", "UPDATE": "UPDATE"}[verb]
            out.append((f"GRANT {privilege} ON {META_SCHEMA}.{obj} TO {{user}}", "bascule's freeze record"))
        elif owner in scope:
            out.append((_scope_loop("READ", "TABLE", names.schemas, user), "compare the scope's rows"))
        else:
            raise UnclassifiedStatement(f"{e.source}: reads {ref}, which no rule grants: {text[:120]}")
    for package in sorted({p.upper() for p in _CALL.findall(code)}):
        if package in _PUBLIC_OBJECTS:
            continue
        if package not in _PACKAGES:
            raise UnclassifiedStatement(f"{e.source}: calls {package}, which no rule grants")
        out.append((f"GRANT EXECUTE ON SYS.{package} TO {{user}}", f"calls {package}"))
        if package in _PACKAGE_SYSTEM:
            out.append((f"GRANT {_PACKAGE_SYSTEM[package]} TO {{user}}", f"{package} needs it"))
    return out


def meta_schema_ddl(user: str) -> list[str]:
    """What the DBA runs once so that bascule needs no CREATE ANY TABLE: its schema and tables, made by the
    dialect's own DDL (the night then finds them and creates nothing)."""
    from bascule.engines.oracle_cutover import OracleCutoverDialect

    d = OracleCutoverDialect()
    blocks = d.ensure_meta_sql() + [s for s in d.probe_prepare_sql("APP") if isinstance(s, str)
                                    and s.startswith("DECLARE")]
    ddl = [re.search(r"q'\[(.*)\]'", b, re.S).group(1) for b in blocks]  # type: ignore[union-attr]
    return [f'CREATE USER {META_SCHEMA} IDENTIFIED BY "<random>" ACCOUNT LOCK QUOTA 100M ON USERS',
            *(" ".join(s.split()) for s in ddl)]


def oracle_privileges(names: Names, user: str, *, when: Sequence[str] = (NIGHT, PREPARATION)) -> list[Privilege]:
    """Every privilege the statements for ``names`` need, once each, in a stable order."""
    found: dict[str, tuple[list[str], list[str], set[str]]] = {}
    found["GRANT CREATE SESSION TO {user}"] = (["connect"], ["every step"], {NIGHT, PREPARATION})
    for e in oracle_statements(names):
        if e.when not in when:
            continue
        for grant, why in _needs(e, names, user):
            entry = found.setdefault(grant, ([], [], set()))
            if why not in entry[0]:
                entry[0].append(why)
            if e.source not in entry[1]:
                entry[1].append(e.source)
            entry[2].add(e.when)

    def order(item: tuple[str, tuple[list[str], list[str], set[str]]]) -> tuple[int, str]:
        grant = item[0]
        rank = 0 if " ON " not in grant and not grant.startswith("BEGIN") else (
            2 if grant.startswith("BEGIN") else 1)
        return rank, grant

    return [Privilege(grant.replace("{user}", user), "; ".join(why), tuple(sorted(by)), tuple(sorted(w)))
            for grant, (why, by, w) in sorted(found.items(), key=order)]
