"""Money in integer minor units inside the fake; floats only at the GraphQL edge.

Saleor stores Decimals quantized to the currency's precision and serialises
``Money.amount`` as a JSON float (``30.0``). ``minor / 10**exp`` is the double nearest to
the decimal, so its ``repr`` is the short decimal Saleor prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "amount",
    "exponent",
    "money",
    "net_from_gross",
    "split_proportionally",
    "taxed_money",
    "to_decimal",
    "to_minor",
]

# ISO 4217 exponents that are not 2 (the rest of the table does not matter for a fake).
_EXPONENTS = {
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "PYG": 0, "UGX": 0, "XAF": 0, "XOF": 0,
    "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3,
}  # fmt: skip


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_decimal(value: object) -> Decimal:
    """A decimal from an int, float, str or Decimal (floats via ``str`` so 0.1 stays 0.1)."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    return result


def to_minor(value: object, currency: str) -> int:
    """Major-unit amount -> minor units, rounded half up like Saleor's ``quantize_price``."""
    scaled = to_decimal(value).scaleb(exponent(currency))
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def amount(minor: int, currency: str) -> float:
    exp = exponent(currency)
    return float(minor) if exp == 0 else minor / 10**exp


def money(minor: int, currency: str) -> dict[str, Any]:
    return {
        "__typename": "Money",
        "currency": currency,
        "amount": amount(minor, currency),
        "fractionalAmount": minor,
        "fractionDigits": exponent(currency),
    }


def taxed_money(gross: int, net: int, currency: str) -> dict[str, Any]:
    """``TaxedMoney``; Saleor's ``tax`` is ``gross - net``."""
    return {
        "__typename": "TaxedMoney",
        "currency": currency,
        "gross": money(gross, currency),
        "net": money(net, currency),
        "tax": money(gross - net, currency),
    }


def net_from_gross(gross: int, rate: Decimal) -> int:
    """Prices entered with tax (flat rates): ``net = gross / (1 + rate)``, half up."""
    return int((Decimal(gross) / (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def split_proportionally(total: int, weights: Sequence[int]) -> list[int]:
    """Saleor's order-discount propagation: each part ``total*w/Σw`` rounded, the last the rest."""
    weight_sum = sum(weights)
    if not weights:
        return []
    if weight_sum == 0:
        return [0] * (len(weights) - 1) + [total]
    parts = [
        int((Decimal(total) * weight / weight_sum).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        for weight in weights[:-1]
    ]
    return [*parts, total - sum(parts)]
