"""Money as integer minor units, with ISO 4217 exponents.

Amounts never pass through float arithmetic: platform values (strings, Decimals, or floats
as some JSON payloads carry them) are converted through ``Decimal`` of their shortest
repr, and a value finer than the currency allows is an error rather than a silent rounding.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents that differ from the default of 2.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

_SYMBOLS: dict[str, str] = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def exponent(currency: str) -> int:
    """Number of decimal places of ``currency`` (ISO 4217)."""
    code = currency.upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return _EXPONENTS.get(code, 2)


def to_minor(value: str | int | float | Decimal, currency: str) -> int:
    """Convert a major-unit amount ("12.50", 12.5, Decimal) to integer minor units.

    Raises MoneyError when the value is not a finite number or has more decimal places
    than ``currency`` allows (e.g. "1.5" JPY or "0.001" EUR).
    """
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        # repr() of a float is its shortest round-tripping form: 19.99 -> "19.99".
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not number.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    places = exponent(currency)
    try:
        scaled = number.scaleb(places)
    except ArithmeticError as exc:  # decimal.Overflow: "1e999999" is finite, its cents are not
        raise MoneyError(f"{value!r} {currency.upper()} is too large an amount") from exc
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{value!r} {currency.upper()} has more decimal places than the currency's {places}")
    return int(scaled)


def to_major(amount: int, currency: str) -> Decimal:
    """Integer minor units back to an exact Decimal in major units."""
    return Decimal(amount).scaleb(-exponent(currency))


def format_money(amount: int, currency: str) -> str:
    """Human-readable amount, e.g. ``format_money(3000, "EUR") == "€30.00"``."""
    code = currency.upper()
    places = exponent(code)
    text = f"{to_major(abs(amount), code):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"
