"""The cutover runbook assembled: step actions, evidence for gates, the downtime clock glue, the report."""
