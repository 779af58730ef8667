"""Airflow plugin: pre-imports bascule's heavy modules in the processes that fork tasks.

Active only where ``BASCULE_PRELOAD=1`` and plugins load eagerly; see bascule.preload.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bascule import preload

if preload.wanted():
    preload.preload()


class BasculePreloadPlugin(AirflowPlugin):
    name = "bascule_preload"
