"""Known answers for the report's statistics (stats written from their definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.report.stats import (
    bootstrap_mean_ci,
    cluster_bootstrap_ci,
    holm_adjust,
    mcnemar_exact,
    seeded_rng,
    sign_flip_test,
)


def test_mcnemar_exact_on_a_hand_made_table() -> None:
    # 2x2 table: both right 30, only A right b=8, only B right c=2, both wrong 10.
    # Discordant n = 10; P(X <= 2 | Bin(10, 1/2)) = (C(10,0) + C(10,1) + C(10,2)) / 2^10
    # = (1 + 10 + 45) / 1024 = 56 / 1024; two-sided p = 2 * 56 / 1024 = 0.109375.
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375, abs=1e-15)
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375, abs=1e-15)
    # b=0, c=6: 2 * C(6,0) / 2^6 = 2 / 64 = 0.03125.
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125, abs=1e-15)
    # Balanced and empty tables give 1 (capped).
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_large_counts_do_not_overflow() -> None:
    p = mcnemar_exact(600, 400)
    assert 0.0 < p < 1e-9


def test_bootstrap_ci_of_a_constant_is_that_constant() -> None:
    ci = bootstrap_mean_ci([73.3] * 50, seeded_rng(0, "x"))
    assert (ci.low, ci.high) == (73.3, 73.3)
    # Clustered: three items with different repeat counts, every value 12.5.
    ci = cluster_bootstrap_ci([25.0, 12.5, 62.5], [2, 1, 5], seeded_rng(1, "y"))
    assert (ci.low, ci.high) == (12.5, 12.5)


def test_bootstrap_ci_covers_the_mean_and_is_reproducible() -> None:
    values = np.random.default_rng(7).normal(50.0, 10.0, size=200)
    first = bootstrap_mean_ci(values, seeded_rng(3, "a"))
    again = bootstrap_mean_ci(values, seeded_rng(3, "a"))
    assert first == again
    assert first.low < values.mean() < first.high
    # The CI of a mean of 200 draws with sd 10 is about +-1.4 wide on each side.
    assert 0.8 < (first.high - first.low) / 2 < 2.0


def test_sign_flip_exact_on_a_small_sample() -> None:
    # d = [1, 2, 3]: of the 8 sign vectors only (+,+,+) and (-,-,-) reach |sum| >= 6, so p = 2/8.
    assert sign_flip_test([1.0, 2.0, 3.0], seeded_rng(0)) == pytest.approx(0.25)
    assert sign_flip_test([0.0, 0.0], seeded_rng(0)) == 1.0
    # 20 equal positive differences: Monte Carlo, p near 2 / 2^20, bounded below by 1/(1+10000).
    p = sign_flip_test([1.0] * 20, seeded_rng(0))
    assert p == pytest.approx(1 / 10_001)


def test_holm_on_known_p_values() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone).
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN (comparison without data) is not counted in m and stays NaN; values are capped at 1.
    adjusted = holm_adjust([0.5, math.nan, 0.6])
    assert adjusted[0] == pytest.approx(1.0) and adjusted[2] == pytest.approx(1.0)
    assert math.isnan(adjusted[1])
