"""Data validation: pushdown range-hash comparison, incremental re-checks, reports, GX suites."""
