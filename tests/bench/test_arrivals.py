"""Arrival processes: their rate, burstiness and seed."""

from __future__ import annotations

import statistics

import pytest

from sarathi_sdk.bench.arrivals import arrival_times
from sarathi_sdk.errors import ConfigError


def _gaps(times):
    return [b - a for a, b in zip([0.0, *times], times)]


def test_no_rate_means_everything_at_zero():
    assert arrival_times(4, None) == [0.0] * 4
    assert arrival_times(3, float("inf")) == [0.0] * 3


@pytest.mark.parametrize("process", ["poisson", "gamma"])
def test_mean_gap_is_one_over_the_rate(process):
    times = arrival_times(20_000, 4.0, process, burstiness=2.0, seed=1)
    assert times == sorted(times)
    assert statistics.fmean(_gaps(times)) == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize("burstiness", [1.0, 0.5, 3.0])
def test_gamma_gaps_have_the_asked_coefficient_of_variation(burstiness):
    gaps = _gaps(arrival_times(40_000, 2.0, "gamma", burstiness=burstiness, seed=3))
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(burstiness, rel=0.08)


def test_poisson_gaps_have_unit_coefficient_of_variation():
    gaps = _gaps(arrival_times(40_000, 10.0, "poisson", seed=5))
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.05)


def test_same_seed_same_arrivals_other_seed_other_arrivals():
    assert arrival_times(50, 3.0, seed=7) == arrival_times(50, 3.0, seed=7)
    assert arrival_times(50, 3.0, seed=7) != arrival_times(50, 3.0, seed=8)


@pytest.mark.parametrize("kwargs", [{"rate": 0.0}, {"rate": -1.0}, {"rate": 1.0, "process": "uniform"},
                                    {"rate": 1.0, "process": "gamma", "burstiness": 0.0}])
def test_bad_arrival_options_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        arrival_times(5, **kwargs)
