"""Building blocks of the cutover night: endpoint switch, restore point and freeze,
fix-ups, smoke tests and the downtime clock.

Modules are imported on demand: the lab's PgBouncer manager (``bascule_lab.pgbouncer``)
uses the PgBouncer config helpers without paying for an Airflow import.
"""
