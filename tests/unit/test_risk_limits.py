"""Validation of risk limits (section 7): negative values and rolling limits without a window are errors."""

from __future__ import annotations

import math

import pytest

from optivex.risk import (
    InstrumentLimits,
    RiskEngine,
    Rolling,
    UserLimits,
    instrument_limits_error,
    user_limits_error,
)

RATE = "message_rate_rolling_limit: "


@pytest.mark.parametrize(
    "limits",
    [
        UserLimits(),
        UserLimits(0, Rolling(0, 0.0)),
        UserLimits(10**15, Rolling(5, 1.0)),
        UserLimits(0, Rolling(0, 7.0)),
    ],
)
def test_valid_user_limits(limits: UserLimits) -> None:
    assert user_limits_error(limits) is None


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (UserLimits(-1), "max_outstanding_quantity must not be negative"),
        (UserLimits(0, Rolling(-1, 1.0)), "message_rate_rolling_limit: limit must not be negative"),
        (
            UserLimits(0, Rolling(1, 0.0)),
            RATE + "window_in_seconds must be > 0 when limit > 0",
        ),
        (
            UserLimits(0, Rolling(0, -1.0)),
            RATE + "window_in_seconds must not be negative",
        ),
        (
            UserLimits(0, Rolling(3, -2.0)),
            RATE + "window_in_seconds must not be negative",
        ),
        (UserLimits(0, Rolling(3, math.nan)), RATE + "window_in_seconds must be finite"),
    ],
)
def test_invalid_user_limits_name_the_field(limits: UserLimits, error: str) -> None:
    assert user_limits_error(limits) == error


@pytest.mark.parametrize(
    "limits",
    [
        InstrumentLimits(),
        InstrumentLimits(0, 0, Rolling(0, 0.0), Rolling(0, 0.0)),
        InstrumentLimits(5, 10_000, Rolling(5, 1.0), Rolling(50_000, 2.0)),
    ],
)
def test_valid_instrument_limits(limits: InstrumentLimits) -> None:
    assert instrument_limits_error(limits) is None


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (InstrumentLimits(-1), "max_outstanding_quantity must not be negative"),
        (InstrumentLimits(0, -1), "max_outstanding_amount must not be negative"),
        (
            InstrumentLimits(0, 0, Rolling(-5, 1.0)),
            "order_quantity_rolling_limit: limit must not be negative",
        ),
        (
            InstrumentLimits(0, 0, Rolling(5, 0.0)),
            "order_quantity_rolling_limit: window_in_seconds must be > 0 when limit > 0",
        ),
        (
            InstrumentLimits(0, 0, None, Rolling(5, 0.0)),
            "order_amount_rolling_limit: window_in_seconds must be > 0 when limit > 0",
        ),
        (
            InstrumentLimits(0, 0, None, Rolling(-1, 3.0)),
            "order_amount_rolling_limit: limit must not be negative",
        ),
        (
            InstrumentLimits(0, 0, Rolling(0, -3.0)),
            "order_quantity_rolling_limit: window_in_seconds must not be negative",
        ),
    ],
)
def test_invalid_instrument_limits_name_the_field(limits: InstrumentLimits, error: str) -> None:
    assert instrument_limits_error(limits) == error


def test_engine_refuses_invalid_limits_and_keeps_the_previous_ones() -> None:
    engine = RiskEngine()
    engine.set_user_limits("u", UserLimits(10))
    with pytest.raises(ValueError, match="max_outstanding_quantity must not be negative"):
        engine.set_user_limits("u", UserLimits(-1))
    assert engine.user_limits("u") == UserLimits(10)
    engine.set_instrument_limits("u", "ABC", InstrumentLimits(5))
    with pytest.raises(ValueError, match="order_amount_rolling_limit"):
        engine.set_instrument_limits("u", "ABC", InstrumentLimits(0, 0, None, Rolling(1, 0.0)))
    assert engine.instrument_limits("u") == {"ABC": InstrumentLimits(5)}


def test_get_returns_what_was_set_zero_valued_instruments_included() -> None:
    engine = RiskEngine()
    assert engine.user_limits("u") is None
    assert engine.instrument_limits("u") == {}
    engine.set_user_limits("u", UserLimits(0, Rolling(3, 1.0)))
    engine.set_instrument_limits("u", "ABC", InstrumentLimits())
    engine.set_instrument_limits("u", "XYZ", InstrumentLimits(7))
    assert engine.user_limits("u") == UserLimits(0, Rolling(3, 1.0))
    assert engine.instrument_limits("u") == {"ABC": InstrumentLimits(), "XYZ": InstrumentLimits(7)}
    assert engine.user_limits("other") is None
    assert engine.instrument_limits("other") == {}
    # Get hands out a copy: changing it changes nothing.
    engine.instrument_limits("u").clear()
    assert len(engine.instrument_limits("u")) == 2
