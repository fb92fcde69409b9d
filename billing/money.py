"""Money: ``Decimal`` amounts in a currency's minor units, and the one rounding rule.

Rounding rule (the only one billing uses): every line item's amount is
``quantity x unit price`` computed exactly, then rounded **half-even** to the
currency's minor units; tax is computed on the sum of the rounded net items and
rounded the same way. Totals are sums of rounded amounts, so a record always
adds up to the cent (or yen, or fils) it shows.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 minor units of the currencies a tariff may be in.
MINOR_UNITS: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
    "CZK": 2, "HUF": 2, "RON": 2, "CAD": 2, "AUD": 2, "NZD": 2, "CNY": 2, "INR": 2,
    "JPY": 0, "KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3,
}  # fmt: skip


class UnknownCurrency(ValueError):
    """A currency code billing has no minor-unit entry for."""


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        known = ", ".join(sorted(MINOR_UNITS))
        raise UnknownCurrency(f"unknown currency {currency!r}; known: {known}") from None


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-even to ``currency``'s minor units (the one rounding rule)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """An exact ``Decimal`` for a meter value; floats go through their shortest repr.

    ``Decimal(0.1)`` would carry the binary error of the float; ``repr`` gives
    the number the charger actually sent (meter values arrive as JSON numbers).
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)).normalize()  # 3000.0 -> 3000, as the meter meant it
    return Decimal(value)


def decimal_text(value: Decimal) -> str:
    """``value`` as plain digits for JSON and CSV ("0.000", never "0E-3")."""
    return format(value, "f")
