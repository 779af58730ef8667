"""Report sections contributed by other packages through entry points (bascule.runbook.contributions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from bascule.runbook import contributions
from bascule.runbook.contributions import ENTRY_POINT_GROUP, RunFacts, contributed_sections

pytestmark = pytest.mark.unit

FACTS = RunFacts(plan_name="lab", dag_id="cutover", run_id="lab__1", frozen_at="2026-11-27T22:00:00+00:00")


@dataclass
class FakeEntryPoint:
    name: str
    target: Any

    def load(self) -> Any:
        return self.target


def _boom(facts: RunFacts) -> None:
    raise RuntimeError("patient Dupont")  # a text that must never reach the report


def test_sections_by_name_failures_by_class_only_and_silence_left_out(monkeypatch):
    eps = [FakeEntryPoint("writes", lambda f: {"acked": 3, "run": f.run_id}), FakeEntryPoint("broken", _boom),
           FakeEntryPoint("quiet", lambda f: None)]
    monkeypatch.setattr(contributions, "entry_points", lambda group: eps if group == ENTRY_POINT_GROUP else [])
    sections = contributed_sections(FACTS)
    assert sections == {"writes": {"acked": 3, "run": "lab__1"}, "broken": {"error": "RuntimeError"}}
    assert "Dupont" not in json.dumps(sections)


def test_the_lab_simulator_is_an_installed_contributor_and_silent_outside_the_lab(monkeypatch, tmp_path):
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert "writes" in names, "pyproject.toml declares the lab simulator's contributor (make setup installs it)"
    monkeypatch.delenv("BASCULE_LAB_SIMULATOR_DIR", raising=False)
    assert "writes" not in contributed_sections(FACTS)
