"""Confidence intervals for benchmark figures, in plain Python and numpy (no SciPy dependency).

Student-t intervals for a mean and Welch's interval for a difference of means: what every table of
``rlnas bench`` and ``benchmarks/`` reports, so that a difference is called only where its interval
excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["diff_ci", "mean_ci", "t_quantile"]


def t_quantile(level: float, df: float) -> float:
    """Two-sided Student-t critical value: P(|T| <= t) = ``level`` with ``df`` degrees of freedom."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df!r}")
    lo, hi = math.floor(df), math.ceil(df)
    if lo == hi:
        return _t_quantile_int(level, lo)
    w = (1 / df - 1 / hi) / (1 / lo - 1 / hi)  # interpolate in 1/df, as with a printed t table
    return w * _t_quantile_int(level, lo) + (1 - w) * _t_quantile_int(level, hi)


def _t_quantile_int(level: float, df: int) -> float:
    df = min(df, 10_000)  # beyond this the quantile equals the normal one to 4 decimals
    lo, hi = 0.0, math.pi / 2  # bisect on theta = atan(t / sqrt(df)): a bounded, monotone variable
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_central(mid, df) < level else (lo, mid)
    return math.sqrt(df) * math.tan((lo + hi) / 2)


def _t_central(theta: float, df: int) -> float:
    """A(t | df) = P(|T| <= t) with t = sqrt(df) tan(theta) (Abramowitz & Stegun 26.7.3, 26.7.4)."""
    c2, s, c = math.cos(theta) ** 2, math.sin(theta), math.cos(theta)
    total, term = 1.0, 1.0
    if df % 2:
        for k in range(1, (df - 3) // 2 + 1):
            term *= 2 * k / (2 * k + 1) * c2
            total += term
        return 2 / math.pi * (theta + (s * c * total if df > 1 else 0.0))
    for k in range(1, (df - 2) // 2 + 1):
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return s * total


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its Student-t confidence interval: (mean, low, high); the bounds are nan for one value."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or not x.size:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {x.shape}")
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan, math.nan
    half = t_quantile(level, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, m - half, m + half


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and Welch's interval (unequal variances): (difference, low, high)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 1 or b.size < 1:
        raise ValueError("diff_ci needs at least one value on each side")
    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = t_quantile(level, max(df, 1.0)) * se
    return d, d - half, d + half
