"""What makes an instrument valid: one rule set for admin and the order book.

Text fields are bounded so that every message carrying an instrument (events,
replays) fits in a frame whatever the request that created it.
"""

from __future__ import annotations

import math

from optivex.engine import valid_symbol
from optivex.units import tick_to_units

MAX_DESCRIPTION = 1024
MAX_CURRENCY = 16
MAX_USERNAME = 256
"""Longest on_behalf_of_username the order book accepts (it travels in every OnOrderInserted)."""


def instrument_error(symbol: str, description: str, currency: str, multiplier: float) -> str:
    """Why these instrument fields are invalid, or "" when they are valid."""
    if not valid_symbol(symbol):
        return f"invalid instrument symbol {symbol[:40]!r}: 1 to 32 characters of A-Z a-z 0-9 . _ - expected"
    if len(description) > MAX_DESCRIPTION:
        return f"instrument description longer than {MAX_DESCRIPTION} characters"
    if len(currency) > MAX_CURRENCY:
        return f"instrument currency longer than {MAX_CURRENCY} characters"
    if not math.isfinite(multiplier) or multiplier < 0:
        return f"invalid multiplier {multiplier!r}: it must be >= 0"
    return ""


def tick_size_error(tick_size: float) -> str:
    """Why a tick size is invalid (section 2: > 0, at most 4 decimals, never rounded), or ""."""
    if tick_to_units(tick_size) is None:
        return f"invalid tick_size {tick_size!r}: it must be > 0 with at most 4 decimals"
    return ""
