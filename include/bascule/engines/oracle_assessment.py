"""Oracle SQL of the preparation months, as text: pre-flight checks for GoldenGate, workload capture and replay.

No Oracle database runs here: this module is tested as text (tests/unit/preparation).
Binds are named (``:s0``) because oracledb binds no lists. Views are the DBA_ and
V$ views of Oracle 19c; the migration user needs SELECT_CATALOG_ROLE, and the
workload packages need EXECUTE on DBMS_WORKLOAD_CAPTURE / DBMS_WORKLOAD_REPLAY /
DBMS_SQLPA (Real Application Testing licence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bascule.engines.base import Query

# Types GoldenGate's integrated Extract cannot capture, or captures only as ID KEY
# (Oracle GoldenGate 19c/21c "Supported Oracle Data Types"). DBA_GOLDENGATE_SUPPORT_MODE
# is the authority per table; this list catches columns before the view is consulted.
GOLDENGATE_UNSUPPORTED_TYPES: tuple[str, ...] = (
    "BFILE", "ANYDATA", "ANYDATASET", "ANYTYPE", "URITYPE", "DBURITYPE", "XDBURITYPE", "HTTPURITYPE",
    "ORDIMAGE", "ORDAUDIO", "ORDVIDEO", "ORDDOC", "ORDDICOM", "SDO_TOPO_GEOMETRY", "SDO_GEORASTER",
)


def _in_list(prefix: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    if not values:
        raise ValueError(f"{prefix}: at least one value is needed")
    binds = {f"{prefix}{i}": v.upper() for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in binds), binds


def server_facts() -> Query:
    """(version, instance, database role, log mode, force logging, platform). v$instance.version exists
    on 12.2 and 18c sources too (version_full is 18c's)."""
    return (
        "SELECT i.version, i.instance_name, d.database_role, d.log_mode, d.force_logging, d.platform_name"
        " FROM v$instance i CROSS JOIN v$database d",
        {},
    )


def supplemental_logging() -> Query:
    """Database-level supplemental logging: GoldenGate needs at least MIN (and PK/UI or per-table groups)."""
    return (
        "SELECT supplemental_log_data_min, supplemental_log_data_pk, supplemental_log_data_ui,"
        " supplemental_log_data_all, force_logging FROM v$database",
        {},
    )


def tables_without_log_group(schemas: Sequence[str]) -> Query:
    """Tables in scope with no supplemental log group (ADD TRANDATA / SCHEMATRANDATA not run)."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT t.owner, t.table_name FROM dba_tables t"
        f" WHERE t.owner IN ({in_list}) AND t.temporary = 'N' AND t.nested = 'NO'"
        " AND NOT EXISTS (SELECT 1 FROM dba_log_groups g WHERE g.owner = t.owner AND g.table_name = t.table_name)"
        " ORDER BY t.owner, t.table_name",
        binds,
    )


def tables_without_key(schemas: Sequence[str]) -> Query:
    """Tables with neither a primary key nor a unique constraint: GoldenGate falls back to all columns."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT t.owner, t.table_name FROM dba_tables t"
        f" WHERE t.owner IN ({in_list}) AND t.temporary = 'N'"
        " AND NOT EXISTS (SELECT 1 FROM dba_constraints c WHERE c.owner = t.owner"
        " AND c.table_name = t.table_name AND c.constraint_type IN ('P', 'U') AND c.status = 'ENABLED')"
        " ORDER BY t.owner, t.table_name",
        binds,
    )


def goldengate_support_mode(schemas: Sequence[str]) -> Query:
    """Oracle's own verdict per table: FULL, ID KEY (fetches from the source) or NONE (not replicated)."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT owner, object_name, support_mode, explanation FROM dba_goldengate_support_mode"
        f" WHERE owner IN ({in_list}) AND support_mode <> 'FULL' ORDER BY owner, object_name",
        binds,
    )


def unsupported_columns(schemas: Sequence[str]) -> Query:
    """Columns whose type GoldenGate cannot carry."""
    in_list, binds = _in_list("s", schemas)
    types, type_binds = _in_list("t", GOLDENGATE_UNSUPPORTED_TYPES)
    return (
        "SELECT owner, table_name, column_name, data_type FROM dba_tab_columns"
        f" WHERE owner IN ({in_list}) AND data_type IN ({types}) ORDER BY owner, table_name, column_id",
        {**binds, **type_binds},
    )


def lob_sizes(schemas: Sequence[str]) -> Query:
    """(owner, table, column, securefile, bytes) of every LOB segment in scope, largest first."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT l.owner, l.table_name, l.column_name, l.securefile, NVL(SUM(s.bytes), 0) AS bytes"
        " FROM dba_lobs l LEFT JOIN dba_segments s ON s.owner = l.owner AND s.segment_name = l.segment_name"
        f" WHERE l.owner IN ({in_list})"
        " GROUP BY l.owner, l.table_name, l.column_name, l.securefile ORDER BY bytes DESC",
        binds,
    )


def schema_bytes(schemas: Sequence[str]) -> Query:
    in_list, binds = _in_list("s", schemas)
    return f"SELECT NVL(SUM(bytes), 0) FROM dba_segments WHERE owner IN ({in_list})", binds


def free_bytes_by_tablespace() -> Query:
    """(tablespace, free bytes, bytes it may still grow to by autoextend)."""
    return (
        "SELECT f.tablespace_name, f.free_bytes, NVL(d.growable_bytes, 0) FROM"
        " (SELECT tablespace_name, SUM(bytes) AS free_bytes FROM dba_free_space GROUP BY tablespace_name) f"
        " LEFT JOIN (SELECT tablespace_name, SUM(GREATEST(maxbytes - bytes, 0)) AS growable_bytes"
        " FROM dba_data_files WHERE autoextensible = 'YES' GROUP BY tablespace_name) d"
        " ON d.tablespace_name = f.tablespace_name ORDER BY f.tablespace_name",
        {},
    )


def charset() -> Query:
    """Character sets and sort settings to compare between source and target."""
    return (
        "SELECT parameter, value FROM nls_database_parameters WHERE parameter IN"
        " ('NLS_CHARACTERSET', 'NLS_NCHAR_CHARACTERSET', 'NLS_SORT', 'NLS_COMP', 'NLS_LENGTH_SEMANTICS')"
        " ORDER BY parameter",
        {},
    )


def special_objects(schemas: Sequence[str]) -> Query:
    """NOLOGGING tables (redo-less loads are invisible to Extract), materialised views, partitioned tables."""
    in_list, binds = _in_list("s", schemas)
    return (
        f"SELECT owner, table_name, 'nologging' FROM dba_tables WHERE owner IN ({in_list}) AND logging = 'NO'"
        f" UNION ALL SELECT owner, mview_name, 'mview' FROM dba_mviews WHERE owner IN ({in_list})"
        f" UNION ALL SELECT owner, table_name, 'partitioned:' || partitioning_type || ':' || NVL(interval, '-')"
        f" FROM dba_part_tables WHERE owner IN ({in_list}) ORDER BY 1, 2",
        binds,
    )


def partition_high_values(schemas: Sequence[str]) -> Query:
    """High value of each RANGE partition (text): the last one tells when new partitions are due."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT table_owner, table_name, partition_name, partition_position, high_value"
        f" FROM dba_tab_partitions WHERE table_owner IN ({in_list})"
        " ORDER BY table_owner, table_name, partition_position",
        binds,
    )


def goldengate_privileges(user: str) -> Query:
    return (
        "SELECT username, privilege_type, grant_select_privileges FROM dba_goldengate_privileges"
        " WHERE username = :username",
        {"username": user.upper()},
    )


def long_columns(schemas: Sequence[str]) -> Query:
    """LONG and LONG RAW columns: no SQL expression reads them (ORA-00997), so no hash compares them,
    and GoldenGate captures them with restrictions. Convert them to CLOB/BLOB before the move."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT owner, table_name, column_name, data_type FROM dba_tab_columns"
        f" WHERE owner IN ({in_list}) AND data_type IN ('LONG', 'LONG RAW') ORDER BY owner, table_name, column_id",
        binds,
    )


def object_type_columns(schemas: Sequence[str]) -> Query:
    """Columns of user-defined object, VARRAY or nested-table types, and object tables: what an older
    release's application may hold and GoldenGate captures only partly (DBA_GOLDENGATE_SUPPORT_MODE
    decides per table; this lists them before it is consulted)."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT owner, table_name, column_name, data_type_owner || '.' || data_type FROM dba_tab_columns"
        f" WHERE owner IN ({in_list}) AND data_type_owner IS NOT NULL AND data_type_owner NOT IN ('SYS', 'PUBLIC')"
        f" UNION ALL SELECT owner, table_name, NULL, 'OBJECT TABLE OF ' || table_type_owner || '.' || table_type"
        f" FROM dba_object_tables WHERE owner IN ({in_list}) ORDER BY 1, 2, 3",
        binds,
    )


def byte_semantics_columns(schemas: Sequence[str]) -> Query:
    """Character columns sized in bytes (CHAR_USED = 'B'): moving from a single-byte character set
    (WE8MSWIN1252, WE8ISO8859P1) to AL32UTF8, every non-ASCII character grows to 2 or 3 bytes, so a value
    that fits on the source may not fit the same column on the target (ORA-12899). Compare with
    :func:`charset` on both sides; :func:`charset_overflow_count` counts the rows that would not fit."""
    in_list, binds = _in_list("s", schemas)
    return (
        "SELECT owner, table_name, column_name, data_type, data_length FROM dba_tab_columns"
        f" WHERE owner IN ({in_list}) AND data_type IN ('VARCHAR2', 'CHAR') AND char_used = 'B'"
        " ORDER BY owner, table_name, column_id",
        binds,
    )


def charset_overflow_count(owner: str, table: str, column: str, limit_bytes: int,
                           target_charset: str = "AL32UTF8") -> Query:
    """How many values of one column would exceed ``limit_bytes`` once converted to ``target_charset``:
    a count, never a value. Names are checked identifiers (this runs on the source, per column that
    :func:`byte_semantics_columns` lists)."""
    for label, name in (("owner", owner), ("table", table), ("column", column), ("charset", target_charset)):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_$#]{0,127}", name):
            raise ValueError(f"{label} must be a plain Oracle identifier (got {name!r})")
    return (
        f'SELECT COUNT(*) FROM "{owner.upper()}"."{table.upper()}"'
        f' WHERE LENGTHB(CONVERT("{column.upper()}", \'{target_charset.upper()}\')) > :limit_bytes',
        {"limit_bytes": int(limit_bytes)},
    )


# The pre-flight checks, by function name: those that take the plan's schemas, and all of them.
SCHEMA_QUERIES: tuple[str, ...] = (
    "tables_without_log_group", "tables_without_key", "goldengate_support_mode", "unsupported_columns",
    "lob_sizes", "schema_bytes", "special_objects", "partition_high_values", "long_columns",
    "object_type_columns", "byte_semantics_columns",
)
ASSESSMENT_QUERIES: tuple[str, ...] = (
    "server_facts", "supplemental_logging", "free_bytes_by_tablespace", "charset", *SCHEMA_QUERIES,
)


# --------------------------------------------------------------------------- Real Application Testing


def start_capture(name: str, directory: str, duration_s: int) -> Query:
    """Capture the production workload (DBMS_WORKLOAD_CAPTURE) into a directory object."""
    return (
        "BEGIN DBMS_WORKLOAD_CAPTURE.START_CAPTURE(name => :name, dir => :dir, duration => :duration,"
        " capture_sts => TRUE, sts_cap_interval => 300); END;",
        {"name": name, "dir": directory.upper(), "duration": int(duration_s)},
    )


def finish_capture() -> Query:
    return "BEGIN DBMS_WORKLOAD_CAPTURE.FINISH_CAPTURE(timeout => 30, reason => 'bascule replay'); END;", {}


def prepare_replay(name: str, directory: str) -> list[Query]:
    """Process the capture on the target, then initialise and prepare the replay (wrc clients start next)."""
    return [
        ("BEGIN DBMS_WORKLOAD_REPLAY.PROCESS_CAPTURE(capture_dir => :dir); END;", {"dir": directory.upper()}),
        ("BEGIN DBMS_WORKLOAD_REPLAY.INITIALIZE_REPLAY(replay_name => :name, replay_dir => :dir); END;",
         {"name": name, "dir": directory.upper()}),
        ("BEGIN DBMS_WORKLOAD_REPLAY.PREPARE_REPLAY(synchronization => 'OBJECT_ID',"
         " connect_time_scale => 100, think_time_scale => 100, scale_up_multiplier => :scale); END;",
         {"scale": 1}),
    ]


def start_replay() -> Query:
    return "BEGIN DBMS_WORKLOAD_REPLAY.START_REPLAY(); END;", {}


def replay_report(replay_id_bind: str = "replay_id") -> Query:
    return (f"SELECT DBMS_WORKLOAD_REPLAY.REPORT(replay_id => :{replay_id_bind}, format => 'TEXT') FROM dual",
            {replay_id_bind: None})


def sqlpa_compare(task_name: str, sqlset: str) -> list[Query]:
    """SQL Performance Analyzer: run the captured SQL set before/after and compare (elapsed time)."""
    return [
        ("DECLARE t VARCHAR2(128); BEGIN t := DBMS_SQLPA.CREATE_ANALYSIS_TASK(sqlset_name => :sqlset,"
         " task_name => :task); END;", {"sqlset": sqlset, "task": task_name}),
        ("BEGIN DBMS_SQLPA.EXECUTE_ANALYSIS_TASK(task_name => :task, execution_type => 'TEST EXECUTE',"
         " execution_name => 'source'); END;", {"task": task_name}),
        ("BEGIN DBMS_SQLPA.EXECUTE_ANALYSIS_TASK(task_name => :task, execution_type => 'TEST EXECUTE',"
         " execution_name => 'target'); END;", {"task": task_name}),
        ("BEGIN DBMS_SQLPA.EXECUTE_ANALYSIS_TASK(task_name => :task, execution_type => 'COMPARE PERFORMANCE',"
         " execution_name => 'compare', execution_params => DBMS_ADVISOR.ARGLIST('comparison_metric',"
         " 'elapsed_time', 'execution_name1', 'source', 'execution_name2', 'target')); END;", {"task": task_name}),
        ("SELECT DBMS_SQLPA.REPORT_ANALYSIS_TASK(task_name => :task, type => 'TEXT', level => 'REGRESSED',"
         " section => 'SUMMARY') FROM dual", {"task": task_name}),
    ]
