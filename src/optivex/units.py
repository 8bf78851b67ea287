"""Exact prices: doubles on the wire, integers of 0.0001 ("units") inside.

Section 2 of the contract: every price is rounded to the nearest 0.0001, ties
to even, on the shortest decimal form of the double. Inside the exchange a
price is an int of units, so nothing is ever accumulated in floats; it turns
back into a double once, when a message is encoded.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal

UNITS_PER_ONE = 10_000
_QUANTUM = Decimal("0.0001")
_WIDE = Context(prec=330)
"""Digits enough for any finite double to 4 decimals (at most 309 before the point): exact."""
# Past 2**53 units a price no longer survives the trip through a double.
MAX_UNITS = 2**53 - 1
INT32_MAX = 2**31 - 1
_FAST_LIMIT = float(2**37)
"""Below 2**37 units (a price of about 13.7 million) ``price * 10000.0`` is within 0.00002 of 10,000
times the price's shortest decimal (half an ulp of the price, times 10,000, plus half an ulp of the
product), so a product more than 0.0001 from a tie rounds as the decimal does. Above it a true tie
can land inside that margin (67117829.05195 * 10000.0 = 671178290519.4999...): the exact path."""


def price_to_units(price: float) -> int | None:
    """Round a wire price to units (ties to even on its shortest repr); None if not finite or too large."""
    scaled = price * 10000.0
    if -_FAST_LIMIT < scaled < _FAST_LIMIT:  # false for nan and inf too
        nearest = round(scaled)
        if abs(scaled - nearest) < 0.4999:
            # Far from a tie: the binary product rounds as the decimal does.
            return nearest
    return _price_to_units_exact(price)


def _price_to_units_exact(price: float) -> int | None:
    units = _units(price)
    return units if units is not None and abs(units) <= MAX_UNITS else None


def _units(value: float) -> int | None:
    """``value`` rounded to units on its shortest repr, ties to even, at any size; None if not finite."""
    if not math.isfinite(value):
        return None
    rounded = Decimal(repr(value)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN, context=_WIDE)
    return int(rounded.scaleb(4, context=_WIDE))


def tick_to_units(tick_size: float) -> int | None:
    """Exact units of a tick size; None unless it is > 0 with at most 4 decimals."""
    if not math.isfinite(tick_size) or tick_size <= 0:
        return None
    exact = Decimal(repr(tick_size))
    units = exact * UNITS_PER_ONE
    if units != units.to_integral_value() or units > MAX_UNITS:
        return None
    return int(units)


def units_to_price(units: int) -> float:
    """The double nearest to units / 10000, of any size: Python divides two ints correctly rounded
    (``units / 10000.0`` would round twice once units pass 2**53)."""
    return units / UNITS_PER_ONE


def format_units(units: int) -> str:
    """Human form of a price in units, e.g. 123456 -> '12.3456'."""
    return repr(units_to_price(units))


def amount_to_units(value: float) -> int | None:
    """Units of a wire amount (a risk limit), rounded like a price, of any size (amounts are compared
    as exact ints, never stored in a double's 53 bits); None if negative, NaN or inf."""
    if not value >= 0.0:  # false for nan too
        return None
    if value < _FAST_LIMIT / UNITS_PER_ONE:
        return price_to_units(value)
    return _units(value)


def format_amount(units: int) -> str:
    """An amount in units with exactly 4 decimals, e.g. 9500000 -> '950.0000' (exact for any size)."""
    whole, fraction = divmod(abs(units), UNITS_PER_ONE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:04d}"
