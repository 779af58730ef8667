"""Oracle preparation SQL, as text."""

from __future__ import annotations

import pytest

from bascule.engines import oracle_assessment as ora

pytestmark = pytest.mark.unit


def test_checks_bind_schemas_in_upper_case():
    sql, binds = ora.tables_without_key(["clinic", "ward"])
    assert "dba_constraints" in sql and "constraint_type IN ('P', 'U')" in sql
    assert "t.owner IN (:s0, :s1)" in sql and binds == {"s0": "CLINIC", "s1": "WARD"}
    sql, _ = ora.supplemental_logging()
    assert "supplemental_log_data_min" in sql and "v$database" in sql
    sql, binds = ora.unsupported_columns(["clinic"])
    assert "dba_tab_columns" in sql and "BFILE" in binds.values() and ":t0" in sql
    assert "dba_log_groups" in ora.tables_without_log_group(["clinic"])[0]
    assert "dba_goldengate_support_mode" in ora.goldengate_support_mode(["clinic"])[0]
    assert "dba_segments" in ora.lob_sizes(["clinic"])[0] and "dba_lobs" in ora.lob_sizes(["clinic"])[0]
    assert "NLS_CHARACTERSET" in ora.charset()[0] and "nls_database_parameters" in ora.charset()[0]
    assert "logging = 'NO'" in ora.special_objects(["clinic"])[0]
    assert "high_value" in ora.partition_high_values(["clinic"])[0]
    with pytest.raises(ValueError, match="at least one value"):
        ora.tables_without_key([])


def test_real_application_testing_calls():
    sql, binds = ora.start_capture("night1", "rat_dir", 3600)
    assert sql.startswith("BEGIN DBMS_WORKLOAD_CAPTURE.START_CAPTURE(name => :name, dir => :dir")
    assert binds == {"name": "night1", "dir": "RAT_DIR", "duration": 3600}
    steps = ora.prepare_replay("night1", "rat_dir")
    assert [s[0].split("(")[0] for s in steps] == ["BEGIN DBMS_WORKLOAD_REPLAY.PROCESS_CAPTURE",
                                                  "BEGIN DBMS_WORKLOAD_REPLAY.INITIALIZE_REPLAY",
                                                  "BEGIN DBMS_WORKLOAD_REPLAY.PREPARE_REPLAY"]
    assert "DBMS_WORKLOAD_REPLAY.START_REPLAY" in ora.start_replay()[0]
    spa = ora.sqlpa_compare("spa1", "clinic_sts")
    assert "DBMS_SQLPA.CREATE_ANALYSIS_TASK" in spa[0][0] and "'COMPARE PERFORMANCE'" in spa[3][0]
    assert "REPORT_ANALYSIS_TASK" in spa[-1][0] and all(s[0].count("(") == s[0].count(")") for s in spa)
