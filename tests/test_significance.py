"""The significance figures of splits against values computed independently here: exact
closed forms in rational arithmetic, a chi-square table and a numerically integrated normal tail."""

from __future__ import annotations

import math
import time
from fractions import Fraction

import pytest

from flowline.stats.significance import lift, probability_to_beat, rate, z_test_p_value


def _beta(a: int, b: int) -> Fraction:
    """B(a, b) for whole a, b: (a-1)! (b-1)! / (a+b-1)!, exactly."""
    return Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))


def exact_probability_to_beat(conv_a: int, n_a: int, conv_b: int, n_b: int) -> Fraction:
    """P(p_b > p_a) for p_a ~ Beta(1+conv_a, 1+n_a-conv_a), p_b likewise: the closed form for whole
    parameters (a sum over the successes of b; Evan Miller, "Formulas for Bayesian A/B testing")."""
    alpha_a, beta_a = 1 + conv_a, 1 + n_a - conv_a
    alpha_b, beta_b = 1 + conv_b, 1 + n_b - conv_b
    return sum(
        (
            _beta(alpha_a + i, beta_a + beta_b)
            / ((beta_b + i) * _beta(1 + i, beta_b) * _beta(alpha_a, beta_a))
            for i in range(alpha_b)
        ),
        Fraction(0),
    )


def _normal_tail_by_simpson(z: float) -> float:
    """P(|Z| >= z) = 1 - 2 ∫_0^z φ(t) dt, the integral by Simpson's rule (no erf)."""
    steps = 20_000
    h = z / steps
    phi = [math.exp(-((i * h) ** 2) / 2) / math.sqrt(2 * math.pi) for i in range(steps + 1)]
    inner = h / 3 * (phi[0] + phi[-1] + 4 * sum(phi[1:-1:2]) + 2 * sum(phi[2:-1:2]))
    return 1 - 2 * inner


def _chi_square(conv_a: int, n_a: int, conv_b: int, n_b: int) -> float:
    """Pearson's chi-square of the 2x2 table (no continuity correction): equals z² of the pooled test."""
    table = [[conv_a, n_a - conv_a], [conv_b, n_b - conv_b]]
    total = n_a + n_b
    columns = [conv_a + conv_b, total - conv_a - conv_b]
    chi = 0.0
    for row, people in zip(table, (n_a, n_b), strict=True):
        for observed, column in zip(row, columns, strict=True):
            expected = people * column / total
            chi += (observed - expected) ** 2 / expected
    return chi


@pytest.mark.parametrize(
    ("conv_a", "n_a", "conv_b", "n_b"),
    [(0, 0, 1, 1), (1, 3, 2, 3), (3, 10, 5, 10), (5, 10, 3, 10), (12, 40, 20, 45), (30, 100, 30, 100)],
)
def test_probability_to_beat_matches_the_exact_closed_form(
    conv_a: int, n_a: int, conv_b: int, n_b: int
) -> None:
    exact = exact_probability_to_beat(conv_a, n_a, conv_b, n_b)
    assert probability_to_beat(conv_a, n_a, conv_b, n_b) == pytest.approx(float(exact), abs=1e-6)


def test_probability_to_beat_known_values() -> None:
    # Beta(1,1) against Beta(2,1): ∫ 2x · x dx = 2/3.
    assert probability_to_beat(0, 0, 1, 1) == pytest.approx(2 / 3, abs=1e-7)
    # The same counts on both sides: a coin toss.
    assert probability_to_beat(40, 200, 40, 200) == pytest.approx(0.5, abs=1e-7)
    # Symmetry: P(b > a) + P(a > b) = 1 (ties have no mass).
    forward, backward = probability_to_beat(20, 100, 27, 100), probability_to_beat(27, 100, 20, 100)
    assert forward + backward == pytest.approx(1, abs=1e-7)
    assert forward == pytest.approx(float(exact_probability_to_beat(20, 100, 27, 100)), abs=1e-6)


def test_probability_to_beat_with_large_counts_is_fast_and_sane() -> None:
    started = time.perf_counter()
    # 10.0 % against 10.5 % on 100,000 people each: z ≈ 3.7, so nearly sure.
    sure = probability_to_beat(10_000, 100_000, 10_500, 100_000)
    assert time.perf_counter() - started < 0.5
    # The normal approximation of two peaked Beta posteriors: Φ(Δ / sqrt(var_a + var_b)).
    var = sum(a * b / ((a + b) ** 2 * (a + b + 1)) for a, b in ((10_001, 90_001), (10_501, 89_501)))
    approximate = 0.5 * math.erfc(-(10_501 / 100_002 - 10_001 / 100_002) / math.sqrt(var) / math.sqrt(2))
    assert sure == pytest.approx(approximate, abs=1e-4)
    assert sure > 0.999


@pytest.mark.parametrize(
    ("conv_a", "n_a", "conv_b", "n_b"),
    [(200, 1000, 250, 1000), (30, 120, 18, 130), (5, 50, 6, 50), (1, 7, 6, 9)],
)
def test_z_test_matches_chi_square_with_an_integrated_normal_tail(
    conv_a: int, n_a: int, conv_b: int, n_b: int
) -> None:
    expected = _normal_tail_by_simpson(math.sqrt(_chi_square(conv_a, n_a, conv_b, n_b)))
    p_value = z_test_p_value(conv_a, n_a, conv_b, n_b)
    assert p_value == pytest.approx(expected, rel=1e-7, abs=1e-12)
    assert p_value == z_test_p_value(conv_b, n_b, conv_a, n_a)  # two-sided


def test_z_test_textbook_value() -> None:
    # 20 % of 1,000 against 25 % of 1,000: pooled 22.5 %, SE = sqrt(.225 · .775 · 2/1000) = 0.018675,
    # z = 0.05 / 0.018675 = 2.6774, two-sided p = 0.00742.
    assert z_test_p_value(200, 1000, 250, 1000) == pytest.approx(0.00742, abs=5e-5)


def test_undefined_figures_are_none_and_bad_counts_refused() -> None:
    assert z_test_p_value(0, 0, 3, 10) is None
    assert z_test_p_value(0, 10, 0, 12) is None  # nobody converted: no variance
    assert z_test_p_value(10, 10, 12, 12) is None
    assert rate(0, 0) is None and rate(1, 4) == 0.25
    assert lift(0.3, 0.2) == pytest.approx(0.5) and lift(0.3, 0.0) is None and lift(None, 0.2) is None
    with pytest.raises(ValueError):
        z_test_p_value(5, 4, 1, 2)
    with pytest.raises(ValueError):
        probability_to_beat(-1, 4, 1, 2)
