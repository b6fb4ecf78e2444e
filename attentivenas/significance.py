"""What several seeds allow a table to claim: mean, spread, a t-based 95% interval, a paired test of each
method against the baseline (Holm's correction over the methods compared), and a binomial interval for
one model's test accuracy.

With one seed there is no spread: the interval and the test are undefined (None), and the report says
that no ranking is possible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class Spread:
    """Mean of n values, their sample standard deviation and the t-based interval of the mean (n >= 2)."""

    n: int
    mean: float
    std: float | None
    low: float | None
    high: float | None


def spread(values: Sequence[float]) -> Spread:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to summarize")
    mean = float(data.mean())
    if data.size < 2:
        return Spread(1, mean, None, None, None)
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(1 - ALPHA / 2, data.size - 1)) * std / math.sqrt(data.size)
    return Spread(int(data.size), mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of a method against the baseline over the same seeds; `p_adjusted` after Holm's
    correction over every method compared on the same quantity."""

    n: int
    difference: float
    p_value: float
    p_adjusted: float

    @property
    def significant(self) -> bool:
        return self.p_adjusted < ALPHA


def paired_p_value(values: Sequence[float], baseline: Sequence[float]) -> float | None:
    """Two-sided p-value of a paired t-test (None with fewer than two pairs). Identical differences
    give 0 (no spread, a non-zero mean) or 1 (all zero)."""
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths, got {a.size} and {b.size}")
    if a.size < 2:
        return None
    differences = a - b
    if np.ptp(differences) == 0:
        return 1.0 if differences[0] == 0 else 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the given tests)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def paired_tests(methods: dict[str, Sequence[float]], baseline: Sequence[float]) -> dict[str, PairedTest]:
    """Each method against the baseline, paired by position (seed); methods with fewer than two pairs
    are left out."""
    p_values = {name: paired_p_value(values, baseline) for name, values in methods.items()}
    tested = [name for name, p in p_values.items() if p is not None]
    adjusted = holm([p_values[name] for name in tested])
    return {name: PairedTest(len(baseline), float(np.mean(np.subtract(methods[name], baseline))), p_values[name],
                             p_adjusted) for name, p_adjusted in zip(tested, adjusted, strict=True)}


def accuracy_interval(top1_percent: float, images: int) -> tuple[float, float]:
    """Wilson 95% interval, in percent, of a top-1 measured on `images` test images."""
    correct = round(top1_percent * images / 100)
    interval = stats.binomtest(correct, images).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return 100 * interval.low, 100 * interval.high
