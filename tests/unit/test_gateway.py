"""The gateway's protobuf <-> risk-limit conversions and its cancel decision (no processes)."""

from __future__ import annotations

import math

import pytest

from optivex.feed.mirror import BUY, BookMirror, Instrument
from optivex.gateway.component import (
    cancel_error,
    instrument_limits,
    instrument_limits_message,
    user_limits,
    user_limits_message,
)
from optivex.proto import risk_limits_pb2 as rl
from optivex.risk.limits import InstrumentLimits, Rolling, UserLimits


def test_user_limits_round_trip() -> None:
    unset = rl.UserRiskLimits(max_outstanding_quantity=7)
    assert user_limits(unset) == UserLimits(7, None)
    assert user_limits_message(user_limits(unset)) == unset
    assert not user_limits_message(user_limits(unset)).HasField("message_rate_rolling_limit")
    rate = rl.UserRiskLimits(message_rate_rolling_limit=rl.RollingWindowLimit(limit=5, window_in_seconds=2))
    assert user_limits(rate) == UserLimits(0, Rolling(5, 2.0))
    assert user_limits_message(user_limits(rate)) == rate
    zero = rl.UserRiskLimits(message_rate_rolling_limit=rl.RollingWindowLimit())
    assert user_limits(zero) == UserLimits(0, Rolling(0, 0.0))  # set, though zero: Get shows it
    assert user_limits_message(user_limits(zero)).HasField("message_rate_rolling_limit")


def test_instrument_limits_in_exact_units() -> None:
    message = rl.InstrumentRiskLimits(
        max_outstanding_quantity=3,
        max_outstanding_amount=0.3,
        order_quantity_rolling_limit=rl.RollingWindowLimit(limit=9, window_in_seconds=4),
        order_amount_rolling_limit=rl.RollingWindowLimit(limit=100, window_in_seconds=60),
    )
    limits = instrument_limits(message)
    # 0.3 is 3000 units; a rolling amount limit of 100 (currency) is 1,000,000 units of price x quantity
    assert limits == InstrumentLimits(3, 3000, Rolling(9, 4.0), Rolling(1_000_000, 60.0))
    assert isinstance(limits, InstrumentLimits)
    assert instrument_limits_message(limits) == message
    assert instrument_limits(rl.InstrumentRiskLimits()) == InstrumentLimits()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_outstanding_amount": -0.5}, "max_outstanding_amount"),
        ({"max_outstanding_amount": math.nan}, "max_outstanding_amount"),
        ({"max_outstanding_amount": math.inf}, "max_outstanding_amount"),
        ({"max_outstanding_quantity": -1}, "max_outstanding_quantity"),
        (
            {"order_amount_rolling_limit": rl.RollingWindowLimit(limit=-1, window_in_seconds=1)},
            "order_amount",
        ),
        ({"order_quantity_rolling_limit": rl.RollingWindowLimit(limit=1)}, "order_quantity_rolling_limit"),
    ],
)
def test_invalid_instrument_limits_name_the_field(fields: dict[str, object], field: str) -> None:
    error = instrument_limits(rl.InstrumentRiskLimits(**fields))  # type: ignore[arg-type]
    assert isinstance(error, str) and field in error


def test_cancel_error_from_the_mirror() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 0, Instrument("ABC"))
    other = mirror.apply_book_created(2, 100, 0, Instrument("DEF"))
    mirror.apply_order_inserted(10, 1, BUY, 10_000, 5, "alice", 0)
    abc = mirror.book_by_symbol("ABC")
    def_ = mirror.book(other.book_id)
    assert abc is not None and def_ is not None
    assert cancel_error(mirror, "alice", abc, "ABC", 10) is None
    assert "not an order of yours" in (cancel_error(mirror, "bob", abc, "ABC", 10) or "")
    assert "not an order of 'DEF'" in (cancel_error(mirror, "alice", def_, "DEF", 10) or "")
    assert "not resting" in (cancel_error(mirror, "alice", abc, "ABC", 11) or "")
    mirror.apply_order_cancelled(10, 0)
    assert "not resting" in (cancel_error(mirror, "alice", abc, "ABC", 10) or "")
