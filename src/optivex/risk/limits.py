"""Risk limit values (contract section 7) and their validation.

A limit of 0 (or an absent rolling limit) does not apply. The gateway converts the
protobuf messages into these with optivex.units (an amount as a double becomes
``amount_to_units``; an ``order_amount_rolling_limit.limit`` becomes ``limit * 10_000``).
Validation errors name the proto field, e.g. "max_outstanding_quantity must not be negative".
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Rolling(NamedTuple):
    """At most ``limit`` (in units of what it counts) within any ``window`` seconds; limit 0: none."""

    limit: int
    window: float


class UserLimits(NamedTuple):
    """A user's limits over all its instruments (UserRiskLimits)."""

    max_outstanding_quantity: int = 0
    message_rate: Rolling | None = None


class InstrumentLimits(NamedTuple):
    """A user's limits in one instrument (InstrumentRiskLimits); amounts in price_units * quantity."""

    max_outstanding_quantity: int = 0
    max_outstanding_amount: int = 0
    order_quantity: Rolling | None = None
    order_amount: Rolling | None = None


def _rolling_error(field: str, rolling: Rolling | None) -> str | None:
    if rolling is None:
        return None
    if rolling.limit < 0:
        return f"{field}: limit must not be negative"
    if not math.isfinite(rolling.window):
        return f"{field}: window_in_seconds must be finite"
    if rolling.window < 0:
        return f"{field}: window_in_seconds must not be negative"
    if rolling.limit > 0 and rolling.window <= 0:
        return f"{field}: window_in_seconds must be > 0 when limit > 0"
    return None


def user_limits_error(limits: UserLimits) -> str | None:
    """Why ``limits`` cannot be set (naming the proto field), or None when they are valid."""
    if limits.max_outstanding_quantity < 0:
        return "max_outstanding_quantity must not be negative"
    return _rolling_error("message_rate_rolling_limit", limits.message_rate)


def instrument_limits_error(limits: InstrumentLimits) -> str | None:
    """Why ``limits`` cannot be set (naming the proto field), or None when they are valid."""
    if limits.max_outstanding_quantity < 0:
        return "max_outstanding_quantity must not be negative"
    if limits.max_outstanding_amount < 0:
        return "max_outstanding_amount must not be negative"
    return _rolling_error("order_quantity_rolling_limit", limits.order_quantity) or _rolling_error(
        "order_amount_rolling_limit", limits.order_amount
    )
