"""Airflow plugin: the migration view (ADR 0045), a FastAPI app under ``/bascule`` and a navigation entry.

Thin: the app, its reads and its assets live in ``bascule.cockpit``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bascule.cockpit.app import URL_PREFIX, app


class BasculeMigrationViewPlugin(AirflowPlugin):
    name = "bascule_migration_view"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "bascule migration view"}]
    # Relative href: the UI resolves it against its own base path, behind any reverse proxy.
    external_views = [{"name": "Migration", "href": "bascule/", "destination": "nav", "url_route": "migration",
                       "category": "bascule"}]
