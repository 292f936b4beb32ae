"""Money: exact conversion to minor units with ISO 4217 exponents, and exact splitting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.domain.money import MoneyError, exponent, format_money, to_major, to_minor
from plugin.domain.rounding import div_round, split_proportionally, tax_of_gross, tax_within_tolerance


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("30.00", "EUR", 3000),
        (19.99, "EUR", 1999),
        (0.1, "EUR", 10),
        ("1500", "JPY", 1500),
        (1500.0, "JPY", 1500),
        ("1.234", "KWD", 1234),
        (Decimal("2.5"), "sek", 250),
        (7, "USD", 700),
        ("-4.95", "EUR", -495),
    ],
)
def test_to_minor_is_exact(value: str | float | Decimal, currency: str, minor: int) -> None:
    assert to_minor(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"), [("1.5", "JPY"), ("0.001", "EUR"), (0.125, "EUR"), ("1.2345", "KWD")]
)
def test_finer_than_the_currency_is_an_error(value: str | float, currency: str) -> None:
    with pytest.raises(MoneyError, match="more decimal places"):
        to_minor(value, currency)


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", True, "1e999999", Decimal("-9e999999")])
def test_not_an_amount(value: object) -> None:
    with pytest.raises(MoneyError):
        to_minor(value, "EUR")  # type: ignore[arg-type]


def test_exponents_and_formatting() -> None:
    assert (exponent("JPY"), exponent("EUR"), exponent("KWD")) == (0, 2, 3)
    with pytest.raises(MoneyError):
        exponent("EURO")
    assert format_money(3000, "EUR") == "€30.00"
    assert format_money(-1234567, "JPY") == "-¥1,234,567"
    assert format_money(1234, "KWD") == "1.234 KWD"
    assert to_major(1999, "EUR") == Decimal("19.99")


@given(st.integers(-(10**9), 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20).filter(any))
def test_split_proportionally_sums_exactly(total: int, weights: list[int]) -> None:
    parts = split_proportionally(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - total * weight / sum(weights)) < 1


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**6))
def test_div_round_is_half_away_from_zero(numerator: int, denominator: int) -> None:
    expected = Decimal(numerator) / Decimal(denominator)
    assert abs(Decimal(div_round(numerator, denominator)) - expected) <= Decimal("0.5")


@given(st.integers(-(10**8), 10**8), st.sampled_from([0, 600, 770, 1200, 2500, 10000]))
def test_tax_of_gross_meets_klarnas_tolerance(gross: int, rate: int) -> None:
    assert tax_within_tolerance(gross, tax_of_gross(gross, rate), rate)
    assert not tax_within_tolerance(gross, tax_of_gross(gross, rate) + 2, rate)
