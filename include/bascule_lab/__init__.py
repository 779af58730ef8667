"""The built-in lab, outside the product: clusters, PgBouncer, the synthetic hospital, the clinic
simulator, an Airflow stack, the automatic gate answerer, a fake Slack and test doubles.

``bascule`` never imports this package (``tests/unit/test_no_lab_in_product.py``); the lab
imports ``bascule``. The CLI's lab commands import it lazily, and the simulator's ledger
reaches a run's report through the ``bascule.report_sections`` entry point.
"""
