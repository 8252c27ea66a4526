"""Paired and unpaired statistics written from their definitions with numpy and math (no scipy).

Resampling is clustered by item: the repeats of one item (LongHealth runs each question five times) move
together, because they are not independent evidence. Every function that draws random numbers takes a
``numpy.random.Generator`` so that a report is reproducible from its seed.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

N_RESAMPLES = 2000
"""Bootstrap resamples per confidence interval."""
N_PERMUTATIONS = 10_000
"""Random sign flips when the exact permutation distribution is too large to enumerate."""
EXACT_PERMUTATION_MAX = 16
"""Up to this many non-zero paired differences the sign-flip test enumerates all 2**n sign vectors."""
_CHUNK = 250  # resamples drawn at once: bounds memory at 250 x n_items indices


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def cluster_bootstrap_ci(
    sums: Sequence[float] | FloatArray,
    counts: Sequence[float] | FloatArray,
    rng: np.random.Generator,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
) -> Interval:
    """Percentile CI of ``sum(sums) / sum(counts)`` when whole clusters (items) are resampled.

    ``sums[i]`` is the total of cluster ``i``'s values and ``counts[i]`` how many values it has, so the
    point estimate is the plain mean over all values. With one value per cluster this is the ordinary
    bootstrap of a mean. The interval is clipped to the range of the cluster means, which the ratio can
    never leave, so rounding noise cannot push a constant's interval off that constant.
    """
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = s.size
    if n == 0:
        return Interval(math.nan, math.nan)
    means = s / c
    lo_bound, hi_bound = float(means.min()), float(means.max())
    if n == 1 or lo_bound == hi_bound:
        return Interval(lo_bound, hi_bound)
    stats = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        stats[start:stop] = s[idx].sum(axis=1) / c[idx].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(min(max(float(low), lo_bound), hi_bound), min(max(float(high), lo_bound), hi_bound))


def bootstrap_mean_ci(
    values: Sequence[float] | FloatArray,
    rng: np.random.Generator,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = 0.95,
) -> Interval:
    """Percentile bootstrap CI of the mean of independent values."""
    v = np.asarray(values, dtype=np.float64)
    return cluster_bootstrap_ci(v, np.ones_like(v), rng, n_resamples=n_resamples, level=level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    ``b``: pairs where only the first system is right, ``c``: only the second. Under the null each
    discordant pair goes either way with probability 1/2, so ``min(b, c)`` is Binomial(b + c, 1/2) and
    the two-sided p is twice its lower tail, capped at 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / (1 << n))


def sign_flip_test(
    differences: Sequence[float] | FloatArray,
    rng: np.random.Generator,
    *,
    n_permutations: int = N_PERMUTATIONS,
) -> float:
    """Two-sided paired permutation test of mean difference 0: flip the sign of each paired difference.

    Exact (all 2**n sign vectors) when there are at most ``EXACT_PERMUTATION_MAX`` non-zero differences,
    otherwise Monte Carlo with the add-one estimate ``(1 + hits) / (1 + n_permutations)``.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0.0]
    n = d.size
    if n == 0:
        return 1.0
    observed = abs(float(d.sum()))
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))
    if n <= EXACT_PERMUTATION_MAX:
        codes = np.arange(1 << n, dtype=np.int64)[:, None]
        signs = 1.0 - 2.0 * ((codes >> np.arange(n, dtype=np.int64)) & 1)
        totals = np.abs(signs @ d)
        return float(np.mean(totals >= observed - tolerance))
    hits = 0
    for start in range(0, n_permutations, _CHUNK):
        size = min(_CHUNK, n_permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tolerance))
    return (1 + hits) / (1 + n_permutations)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given); NaN entries stay NaN and do not count.

    Sorted ascending, the i-th (0-based) of m p-values is multiplied by (m - i), capped at 1, and made
    non-decreasing, so ``adjusted < alpha`` is exactly Holm's rejection rule.
    """
    indexed = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    indexed.sort()
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator for one estimate, derived from the report seed and the estimate's labels, so a number
    does not change when other models or tasks are added to the report."""
    return np.random.default_rng([seed, zlib.crc32("\x1f".join(labels).encode())])
