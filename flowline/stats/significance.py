"""Is a split's variant better than its baseline? Two answers, both deterministic and pure Python.

- ``z_test_p_value``: the two-sided p-value of the two-proportion z-test (pooled standard error),
  the classic frequentist answer: how surprising the difference is if both convert alike.
- ``probability_to_beat``: the Bayesian probability that the variant's true conversion rate is
  above the baseline's, with uniform priors: posteriors Beta(1 + conversions, 1 + non-conversions),
  integrated numerically on a grid (no sampling, so the same counts always give the same figure).
"""

from __future__ import annotations

import math
from collections.abc import Callable

# Cells of the integration grid; the grid spans the posteriors' mass (±WIDTH standard deviations).
CELLS = 4_000
WIDTH = 20.0


def rate(conversions: int, people: int) -> float | None:
    return conversions / people if people else None


def lift(rate_variant: float | None, rate_baseline: float | None) -> float | None:
    """Relative change of the variant's rate over the baseline's: 0.25 means 25 % more conversions."""
    if rate_variant is None or not rate_baseline:
        return None
    return (rate_variant - rate_baseline) / rate_baseline


def z_test_p_value(conversions_a: int, people_a: int, conversions_b: int, people_b: int) -> float | None:
    """Two-sided p-value of H0 "a and b convert at the same rate"; None when undefined (no people
    on a side, or nobody or everybody converted on both sides)."""
    _check(conversions_a, people_a)
    _check(conversions_b, people_b)
    if not people_a or not people_b:
        return None
    pooled = (conversions_a + conversions_b) / (people_a + people_b)
    variance = pooled * (1 - pooled) * (1 / people_a + 1 / people_b)
    if variance <= 0:
        return None
    z = (conversions_b / people_b - conversions_a / people_a) / math.sqrt(variance)
    # P(|Z| >= |z|) = erfc(|z| / sqrt 2)
    return math.erfc(abs(z) / math.sqrt(2))


def probability_to_beat(
    conversions_baseline: int, people_baseline: int, conversions_variant: int, people_variant: int
) -> float:
    """P(rate of the variant > rate of the baseline) under Beta(1 + conversions, 1 + others) posteriors.

    P = ∫ f_variant(x) F_baseline(x) dx, by the midpoint rule on a grid over the posteriors' mass,
    with F_baseline accumulated on the same grid (error O(h²): well under 1e-6 here)."""
    _check(conversions_baseline, people_baseline)
    _check(conversions_variant, people_variant)
    base = (1 + conversions_baseline, 1 + people_baseline - conversions_baseline)
    variant = (1 + conversions_variant, 1 + people_variant - conversions_variant)
    low, high = _span(base, variant)
    step = (high - low) / CELLS
    density_base, density_variant = _density(*base), _density(*variant)
    below = 0.0  # F_baseline at the left edge of the current cell
    total = 0.0
    mass_variant = 0.0
    for cell in range(CELLS):
        x = low + (cell + 0.5) * step
        mass_base = density_base(x) * step
        mass = density_variant(x) * step
        total += mass * (below + mass_base / 2)
        below += mass_base
        mass_variant += mass
    # Normalised by the masses the grid holds (both are 1 up to the grid's error).
    return min(1.0, max(0.0, total / (below * mass_variant)))


def _check(conversions: int, people: int) -> None:
    if people < 0 or not 0 <= conversions <= people:
        raise ValueError(f"{conversions} conversions among {people} people")


def _span(*posteriors: tuple[int, int]) -> tuple[float, float]:
    """Where the posteriors' mass lies: their means ± WIDTH standard deviations, within [0, 1]."""
    low, high = 1.0, 0.0
    for a, b in posteriors:
        n = a + b
        mean = a / n
        spread = WIDTH * math.sqrt(a * b / (n * n * (n + 1)))
        low, high = min(low, mean - spread), max(high, mean + spread)
    return max(0.0, low), min(1.0, high)


def _density(a: int, b: int) -> Callable[[float], float]:
    """The Beta(a, b) density on 0 < x < 1 (through logarithms: counts may be in the millions)."""
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    def density(x: float) -> float:
        return math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - log_beta)

    return density
