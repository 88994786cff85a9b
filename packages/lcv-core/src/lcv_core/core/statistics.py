"""Small statistics of fold scores without scipy: the sample standard deviation and Student's t quantile."""

from __future__ import annotations

import math

# Student's t 0.975 quantiles for 1..30 degrees of freedom (scipy.stats.t.ppf), so lcv-core needs no scipy.
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
    2.200985, 2.178813, 2.160369, 2.144787, 2.13145, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
    2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.04523, 2.042272,
)  # fmt: skip


def t975(df: int) -> float:
    """Return Student's t 0.975 quantile for ``df`` degrees of freedom (table, then Cornish-Fisher, error < 2e-6)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def sample_std(values: list[float]) -> float:
    """Return the sample standard deviation (ddof=1); 0 for one value, NaN if a value is NaN or infinite."""
    if len(values) < 2:
        return 0.0
    if not all(math.isfinite(v) for v in values):
        return math.nan  # statistics.stdev raises on NaN instead of propagating it
    # the corrected two-pass sum (Chan, Golub & LeVeque) with correctly rounded sums: within an ulp of
    # statistics.stdev (exact, with Fractions) at 1/20 of its cost, paid for every metric after every epoch
    n = len(values)
    mean = math.fsum(values) / n
    deviations = [v - mean for v in values]
    return math.sqrt(max(0.0, math.fsum(d * d for d in deviations) - math.fsum(deviations) ** 2 / n) / (n - 1))
