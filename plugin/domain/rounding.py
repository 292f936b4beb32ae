"""Integer rounding helpers that let parts add up exactly to a whole."""

from __future__ import annotations


def div_round(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into parts proportional to ``weights`` that sum exactly to ``total``.

    Largest-remainder method; ties go to the earlier weight, so the result is deterministic.
    Weights must be non-negative with a positive sum; ``total`` may be negative.
    """
    if not weights:
        raise ValueError("nothing to split over")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("weights sum to zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    short = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        floors[i] += 1
    return [sign * part for part in floors]


def tax_of_gross(gross: int, tax_rate: int) -> int:
    """Tax contained in a tax-inclusive amount; ``tax_rate`` in basis points (2500 = 25 %).

    This is the value Klarna checks ``total_tax_amount`` against (±1).
    """
    return div_round(gross * tax_rate, 10_000 + tax_rate)


def tax_within_tolerance(gross: int, tax: int, tax_rate: int) -> bool:
    """Klarna's rule: tax within ±1 of ``gross - gross*10000/(10000+rate)``."""
    # |tax - gross*rate/(10000+rate)| <= 1, kept in integers.
    return abs(tax * (10_000 + tax_rate) - gross * tax_rate) <= 10_000 + tax_rate
