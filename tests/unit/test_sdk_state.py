"""The SDK's sans-I/O core (optivex.client.state, errors, model): requests, outcomes, state from events."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optivex.client import (
    CancelReason,
    ExchangeUnavailable,
    Fill,
    Instrument,
    NotLoggedIn,
    OrderCancelled,
    OrderRejected,
    Position,
    RequestRejected,
    RiskLimitBreached,
    Side,
    TimeInForce,
    UnknownInstrument,
)
from optivex.client import state as core
from optivex.client.errors import rejection
from optivex.proto import admin_pb2, common_pb2, info_pb2
from optivex.proto import execution_pb2 as ex


def depth(
    symbol: str, bids: list[tuple[float, int]], asks: list[tuple[float, int]], ts: int = 1
) -> info_pb2.OnPriceDepthBook:
    return info_pb2.OnPriceDepthBook(
        instrument_symbol=symbol,
        timestamp=ts,
        bids=[info_pb2.PriceLevel(price=p, quantity=q) for p, q in bids],
        asks=[info_pb2.PriceLevel(price=p, quantity=q) for p, q in asks],
    )


def on_trade(symbol: str, trade_id: int, price: float = 10.0, quantity: int = 1) -> info_pb2.OnTrade:
    return info_pb2.OnTrade(
        trade_id=trade_id,
        instrument_symbol=symbol,
        timestamp=trade_id,
        price=price,
        quantity=quantity,
        aggressor_side=common_pb2.SELL,
    )


@pytest.mark.parametrize(
    ("message", "order", "kind", "limit"),
    [
        (
            "risk limit max_outstanding_amount breached: 950.0000 resting + 100.0000 new > 1000.0000"
            " (instrument ABC)",
            True,
            RiskLimitBreached,
            "max_outstanding_amount",
        ),
        (
            "risk limit message_rate_rolling_limit breached: 3 requests in the last 1 s",
            True,
            RiskLimitBreached,
            "message_rate_rolling_limit",
        ),
        ("unknown instrument 'XYZ'", True, UnknownInstrument, None),
        ("unknown instrument 'XYZ'", False, UnknownInstrument, None),
        ("not logged in: send LoginRequest first", False, NotLoggedIn, None),
        ("order book unavailable; the request was not carried out", True, ExchangeUnavailable, None),
        (
            "order book did not answer within 2 s; the request may or may not have been carried out",
            True,
            ExchangeUnavailable,
            None,
        ),
        ("price 10.01 is not a multiple of the tick size 0.05", True, OrderRejected, None),
        ("instrument ABC already exists", False, RequestRejected, None),
    ],
)
def test_rejections_are_typed_by_the_exchanges_message(
    message: str, order: bool, kind: type[RequestRejected], limit: str | None
) -> None:
    error = rejection(message, "insert BUY 1 ABC @ 10.0", order)
    assert type(error) is kind and error.message == message
    assert str(error) == f"insert BUY 1 ABC @ 10.0: {message}"
    if limit is not None:
        assert isinstance(error, RiskLimitBreached) and error.limit == limit
    assert isinstance(error, OrderRejected) == (order and kind in (OrderRejected, RiskLimitBreached))


def test_requests_round_prices_as_the_exchange_does() -> None:
    request = core.insert_request("ABC", Side.SELL, 10.00005, 3, TimeInForce.FILL_OR_KILL)
    assert (request.price, request.side, request.time_in_force) == (
        10.0,
        common_pb2.SELL,
        common_pb2.FILL_OR_KILL,
    )
    assert core.insert_request("ABC", Side.BUY, 0.1 + 0.2, 1).price == 0.3
    with pytest.raises(ValueError):
        core.insert_request("ABC", Side.BUY, math.nan, 1)
    assert core.amend_request("ABC", 7, 2).price == 0.0  # unchanged
    assert core.describe_insert(request) == "insert SELL 3 ABC @ 10.0 FILL_OR_KILL"


def test_a_call_gives_its_result_or_raises_its_typed_error() -> None:
    call = core.insert_call("ABC", Side.BUY, 10.0, 5)
    result = call.outcome(
        ex.InsertOrderResponse(
            order_id=4, timestamp=9, trade_ids=[1, 2], traded_quantity=3, resting_quantity=2
        )
    )
    assert (result.order_id, result.trade_ids, result.traded_quantity, result.resting_quantity) == (
        4,
        (1, 2),
        3,
        2,
    )
    with pytest.raises(RiskLimitBreached) as breached:
        call.outcome(
            ex.InsertOrderResponse(
                error_message="risk limit max_outstanding_quantity breached: 5 + 1 new > 5 (user)"
            )
        )
    assert breached.value.limit == "max_outstanding_quantity"
    assert core.cancel_all_call().outcome(ex.CancelAllOrdersResponse(cancelled_order_ids=[3, 5])) == [3, 5]
    page, after = core.list_instruments_call().outcome(admin_pb2.ListInstrumentsResponse(more=True))
    assert (page, after) == ([], 0)


def test_books_come_from_info_and_only_for_subscribed_symbols() -> None:
    market = core.MarketState()
    assert market.apply(depth("ABC", [(10.0, 5)], [])) is None
    market.add_subscription("ABC", 0)
    book = market.apply(depth("ABC", [(10.0, 5), (9.5, 1)], [(10.5, 2)], ts=7))
    assert book == market.book("ABC")
    assert book is not None and [(lv.price_units, lv.quantity) for lv in book.bids] == [
        (100000, 5),
        (95000, 1),
    ]
    assert book.mid_units == 102500 and book.best_ask is not None and book.best_ask.price == 10.5
    replaced = market.apply(depth("ABC", [], [(10.5, 2)], ts=8))
    assert replaced is not None and market.book("ABC") == replaced and replaced.mid is None
    instrument = market.apply(
        info_pb2.OnInstrument(instrument=common_pb2.Instrument(symbol="DEF"), tick_size=0.05, order_book_id=2)
    )
    assert instrument is not None and market.instruments["DEF"].tick_units == 500
    requests = market.resubscribe_requests()
    assert [(r.instrument_symbol, r.subscription_type) for r in requests] == [
        ("ABC", info_pb2.PRICE_DEPTH_BOOK)
    ]
    assert market.book("ABC") is None and market.instruments == {}


def test_trades_are_buffered_until_polled_and_bounded() -> None:
    market = core.MarketState(max_buffered=3)
    market.add_subscription("ABC", 0)
    for trade_id in range(1, 6):
        market.apply(on_trade("ABC", trade_id))
    assert [t.trade_id for t in market.poll_trades("ABC")] == [3, 4, 5] and market.dropped == 2
    assert market.poll_trades("ABC") == [] and market.poll_trades("XYZ") == []


@given(
    st.integers(0, 30),
    st.sets(st.integers(1, 60)),
    st.sets(st.integers(1, 60)),
)
def test_a_reconnections_gap_is_filled_once(before: int, live: set[int], tape: set[int]) -> None:
    """Trades 1..before were seen; after the reconnection some come live, the tape answer holds others:
    every trade after `before` is delivered exactly once."""
    market = core.MarketState()
    market.add_subscription("ABC", 0)
    for trade_id in range(1, before + 1):
        market.apply(on_trade("ABC", trade_id))
    market.poll_trades("ABC")
    market.resubscribe_requests()
    for trade_id in sorted(live):
        market.apply(on_trade("ABC", trade_id + before))
    response = info_pb2.TradesResponse(
        trades=[on_trade("ABC", i) for i in sorted(tape | set(range(1, before + 1)))]
    )
    market.backfill("ABC", response)
    delivered = [t.trade_id for t in market.poll_trades("ABC")]
    expected = {i + before for i in live} | {i for i in tape if i > before}
    assert sorted(delivered) == sorted(expected) and len(delivered) == len(set(delivered))
    assert market.backfill("ABC", response) == []  # only once


def test_execution_reports_become_fills_and_reports() -> None:
    account = core.AccountState()
    fill = account.apply(
        ex.OnFill(
            order_id=3,
            trade_id=1,
            instrument_symbol="ABC",
            side=common_pb2.SELL,
            price=10.25,
            quantity=2,
            remaining_quantity=1,
            aggressor=True,
            timestamp=5,
        )
    )
    assert fill == Fill(3, 1, "ABC", Side.SELL, 102500, 2, 1, True, 5) and fill.price == 10.25
    cancelled = account.apply(
        ex.OnOrderCancelled(
            order_id=3, instrument_symbol="ABC", cancelled_quantity=1, reason=common_pb2.CANCEL_MASS
        )
    )
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason == CancelReason.MASS
    assert account.apply(ex.InsertOrderResponse()) is None
    assert account.poll_fills() == [fill] and account.poll_reports() == [fill, cancelled]
    assert account.poll_fills() == [] and account.poll_reports() == []


def position(symbol: str, quantity: int, cash: str, last: str) -> Position:
    return Position(symbol, quantity, int(Decimal(cash) * 10000), 0, 0, 0, 0, int(Decimal(last) * 10000))


def test_pnl_is_position_times_valuation_plus_cash_in_exact_units() -> None:
    positions = [position("ABC", 3, "-0.3", "0.1"), position("DEF", -7, "70.7", "10.1")]
    assert core.pnl_units(positions) == 0  # 3 x 0.1 - 0.3 and -7 x 10.1 + 70.7, exactly
    assert core.pnl_units(positions, {"ABC": 2000}) == 3 * 2000 - 3000
    valuations = core.valuations_units({"DEF": 10.2, "ABC": 0.1})
    assert valuations == {"DEF": 102000, "ABC": 1000}
    assert core.pnl_units(positions, valuations) == -7000
    with pytest.raises(ValueError):
        core.valuations_units({"ABC": math.inf})
    assert positions[1].value_units() == 0 and positions[1].cash == 70.7


def test_prices_go_on_the_instruments_tick() -> None:
    instrument = Instrument("ABC", tick_units=500, order_book_id=1, created_timestamp=0)
    assert [instrument.to_tick(10.02), instrument.to_tick(10.03), instrument.to_tick(10.025)] == [
        10.0,
        10.05,
        10.0,
    ]
    assert (instrument.to_tick(10.01, Side.BUY), instrument.to_tick(10.01, Side.SELL)) == (10.0, 10.05)
    assert instrument.to_tick(10.05, Side.SELL) == instrument.to_tick(10.05, Side.BUY) == 10.05
    with pytest.raises(ValueError):
        instrument.to_tick(math.nan)


def test_addresses_default_to_optivex_ups_and_come_from_a_deployment_file() -> None:
    from optivex.client import Addresses
    from optivex.deploy.config import default_deployment_path

    assert Addresses.from_config(default_deployment_path()) == Addresses()
    assert Addresses().gateway == ("127.0.0.1", 17103)
