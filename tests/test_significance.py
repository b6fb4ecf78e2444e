"""Mean, spread and interval over seeds, the paired test against the baseline, the binomial interval."""

import math

import pytest
from scipy import stats

from attentivenas.significance import accuracy_interval, holm, paired_p_value, paired_tests, spread


def test_spread_is_the_mean_the_sample_std_and_the_t_interval():
    value = spread([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) / math.sqrt(3)  # std 1
    assert (value.n, value.mean, value.std) == (3, 2.0, 1.0)
    assert value.low == pytest.approx(2 - half) and value.high == pytest.approx(2 + half)
    assert half == pytest.approx(2.484, abs=1e-3)


def test_one_seed_has_no_spread_interval_or_test():
    value = spread([71.5])
    assert value.mean == 71.5 and value.std is value.low is value.high is None
    assert paired_p_value([71.5], [70.0]) is None
    assert paired_tests({"att": [71.5]}, [70.0]) == {}


def test_a_consistent_gain_is_significant_and_a_noisy_one_is_not():
    baseline = [70.0, 72.0, 68.0]
    tests = paired_tests({"better": [75.1, 77.0, 72.9], "noisy": [73.0, 69.5, 68.5]}, baseline)
    assert tests["better"].significant and tests["better"].difference == pytest.approx(5.0)
    assert not tests["noisy"].significant and tests["noisy"].p_value > 0.3
    two_seeds = paired_tests({"better": [75.0, 77.2], "noisy": [73.0, 69.0]}, [70.0, 72.0])
    assert two_seeds["better"].significant and not two_seeds["noisy"].significant


def test_identical_differences_are_decided_without_a_t_statistic():
    assert paired_p_value([2.0, 3.0], [1.0, 2.0]) == 0.0
    assert paired_p_value([1.0, 2.0], [1.0, 2.0]) == 1.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_p_value([1.0, 2.0], [1.0])


def test_holm_adjusts_step_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.6, 0.9]) == [1.0, 1.0]


def test_holm_can_take_a_marginal_difference_back():
    baseline = [70.0, 72.0, 68.0]
    methods = {"a": [72.1, 74.3, 69.6], "b": [75.0, 77.0, 73.0], "c": [70.5, 71.0, 69.0]}
    raw = {name: paired_p_value(values, baseline) for name, values in methods.items()}
    tests = paired_tests(methods, baseline)
    assert raw["a"] < 0.05 and tests["a"].p_adjusted > raw["a"]
    assert tests["b"].significant


def test_wilson_interval_of_a_test_accuracy():
    low, high = accuracy_interval(50.0, 100)
    assert low == pytest.approx(40.38, abs=0.01) and high == pytest.approx(59.62, abs=0.01)
    low, high = accuracy_interval(80.0, 2000)
    assert 78.0 < low < 80.0 < high < 82.0 and high - low == pytest.approx(3.5, abs=0.1)
