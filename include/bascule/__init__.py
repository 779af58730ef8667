"""bascule: a control plane for near-zero-downtime database migrations, as Airflow DAGs."""

from __future__ import annotations

__version__ = "0.1.0"
