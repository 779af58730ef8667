"""The statistics the benches publish (``bench/_runs.py``): every run, medians, detection gaps."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from bascule.paths import REPO_ROOT

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("bench_runs", REPO_ROOT / "bench" / "_runs.py")
runs = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_runs", runs)  # dataclasses look their module up there
_spec.loader.exec_module(runs)


def test_median_of_an_even_count_is_the_mean_of_the_middle_two():
    assert runs.median([3.0, 1.0, 2.0, 10.0]) == 2.5
    assert runs.median([1.2]) == 1.2


def test_nearest_rank_quantile_is_one_of_the_values():
    values = [0.1, 0.5, 0.2, 0.9, 0.3]
    assert runs.quantile(values, 0.0) == 0.1
    assert runs.quantile(values, 1.0) == 0.9
    assert runs.quantile(values, 0.5) == 0.3
    assert runs.quantile(values, 0.95) == 0.9


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_quantile_refuses_a_q_outside_0_1(q):
    with pytest.raises(ValueError, match="q must be within"):
        runs.quantile([1.0], q)


@pytest.mark.parametrize("fn", ["median", "runs_text", "summary"])
def test_no_values_is_an_error_not_a_zero(fn):
    with pytest.raises(ValueError, match="no values"):
        getattr(runs, fn)([])


def test_every_run_is_published_in_run_order_not_only_the_best():
    assert runs.runs_text([1.1234, 1.05, 1.2]) == "1.123/1.05/1.2"
    s = runs.summary([1.3, 1.1, 1.2], digits=2)
    assert s == {"runs": [1.3, 1.1, 1.2], "median": 1.2, "min": 1.1, "max": 1.3, "n": 3}


def test_a_trigger_firing_after_the_row_was_seen_is_a_positive_gap():
    gap = runs.detection_gap(fired_at=10.4, seen_at=10.1, missed_at=10.0995)
    assert gap.seconds == pytest.approx(0.3)
    assert gap.resolution_s == pytest.approx(0.0005)
    assert not gap.negative


def test_a_trigger_firing_before_the_watcher_last_missed_the_row_is_a_negative_gap():
    gap = runs.detection_gap(fired_at=9.9, seen_at=10.1, missed_at=10.0)
    assert gap.negative
    assert gap.seconds == pytest.approx(-0.2)


def test_firing_inside_the_watcher_window_is_within_resolution_not_an_error():
    gap = runs.detection_gap(fired_at=10.05, seen_at=10.1, missed_at=10.0)
    assert not gap.negative
    assert gap.seconds == pytest.approx(-0.05)


def test_a_window_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="missed_at"):
        runs.detection_gap(fired_at=1.0, seen_at=1.0, missed_at=2.0)
