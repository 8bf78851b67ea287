"""The SDK's blocking flavour (optivex.client.Exchange) against a real deployment of every component.

Which behaviour each test covers:

- one call connects and logs in to info, the gateway and admin; create, list (an instrument another
  client created is listed as soon as it was confirmed), insert, cancel; the SDK's book equals
  info's own (a fresh subscription's snapshot) after each change:
  `test_connect_create_insert_cancel_and_the_book_is_infos`;
- a trade is seen by polling and by callback (public trades, private fills, execution reports),
  positions, cash and PnL at the last trade and at given valuations: `test_a_trade_by_polling_and_callback`;
- typed errors carry the exchange's message: an unknown symbol, a risk limit (naming its proto field),
  a price off the tick, another user's order, a taken symbol, a refused login: `test_typed_errors`;
- the trader extensions: IOC, FOK, amend (priority kept or lost), cancel all, open orders, self-trade
  prevention: `test_time_in_force_amend_cancel_all_and_self_trade_prevention`;
- info restarted: the SDK reports the loss and the restoration, its book is rebuilt from the fresh
  snapshot and the trades made meanwhile are delivered once: `test_info_restart_rebuilds_the_books`;
- the gateway restarted: requests raise ConnectionLost meanwhile, and afterwards orders and execution
  reports work again: `test_gateway_restart_resubscribes_the_execution_reports`;
- info and the order book restarted (a new day): a subscription to yesterday's instrument is reported
  failed, a new day's one works: `test_a_subscription_gone_with_the_day_is_reported`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from optivex.client import (
    Addresses,
    CancelReason,
    ConnectionEvent,
    ConnectionLost,
    Exchange,
    Fill,
    LoginRefused,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    PriceBook,
    RequestRejected,
    RiskLimitBreached,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnknownInstrument,
)
from optivex.client.state import book_of
from optivex.deploy import Deployment, start_suite
from optivex.proto import info_pb2

from .helpers import PRICE_DEPTH_BOOK, TIMEOUT, SyncClient, subscribe

START_TIMEOUT = 10.0
"""Seconds a component may take to accept connections, at the start and at a restart."""


def addresses(deployment: Deployment) -> Addresses:
    return Addresses(
        admin=deployment.address("admin"),
        info=deployment.address("info"),
        gateway=deployment.address("execution"),
    )


def infos_book(deployment: Deployment, symbol: str) -> PriceBook:
    """The book as a fresh info subscription shows it (after info's feed barrier: every change so far)."""
    host, port = deployment.address("info")
    with SyncClient(host, port, "info", timeout=TIMEOUT) as client:
        client.login("carol", "carol")
        snapshot = subscribe(client, symbol, PRICE_DEPTH_BOOK)
        assert isinstance(snapshot, info_pb2.OnPriceDepthBook)
        return book_of(snapshot)


def same_book(sdk: Exchange, deployment: Deployment, symbol: str) -> None:
    """The SDK's book becomes info's (waiting for its update to arrive), levels and timestamp alike."""
    expected = infos_book(deployment, symbol)
    assert sdk.wait_for(lambda: sdk.last_price_book(symbol) == expected, TIMEOUT), (
        sdk.last_price_book(symbol),
        expected,
    )


@pytest.fixture
def everything(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """Every component of the deployment, as the conftest's `deploy(None)` but with a start limit that
    a machine shared with other test runs meets (components are restarted here, too)."""
    deployment = start_suite(None, tmp_path / "deployment", start_timeout=START_TIMEOUT)
    request.node.__dict__.setdefault("_deployments", []).append(deployment)
    yield deployment
    deployment.stop()


@pytest.fixture
def connect(everything: Deployment) -> Iterator[Callable[[str], Exchange]]:
    opened: list[Exchange] = []

    def open_one(user: str) -> Exchange:
        sdk = Exchange.connect(user, addresses=addresses(everything), timeout=TIMEOUT)
        opened.append(sdk)
        return sdk

    yield open_one
    for sdk in opened:
        sdk.close()


def test_connect_create_insert_cancel_and_the_book_is_infos(
    everything: Deployment, connect: Callable[[str], Exchange]
) -> None:
    alice = connect("alice")
    assert alice.connected
    created = alice.create_instrument("ABC", 0.05, description="a b c", currency="EUR")
    assert (created.symbol, created.tick_units, created.order_book_id) == ("ABC", 500, 1)
    assert alice.instruments()["ABC"] == created
    assert [i.symbol for i in alice.list_instruments()] == ["ABC"]
    connect("bob").create_instrument("DEF", 0.01)
    assert "DEF" in alice.instruments()  # info's barrier: any confirmed creation is in, at once
    assert [i.symbol for i in alice.list_instruments()] == ["ABC", "DEF"]
    books: list[PriceBook] = []
    alice.on_book = books.append
    snapshot = alice.subscribe("ABC")
    assert (snapshot.bids, snapshot.asks) == ((), ())
    bid = alice.insert_order("ABC", Side.BUY, 10.05, 7)
    assert bid.order_id > 0 and bid.resting_quantity == 7 and bid.trade_ids == ()
    alice.insert_order("ABC", Side.SELL, 10.5, 3)
    same_book(alice, everything, "ABC")
    book = alice.last_price_book("ABC")
    assert book is not None and book.best_bid is not None and book.best_ask is not None
    assert (book.best_bid.price, book.best_bid.quantity, book.best_ask.price) == (10.05, 7, 10.5)
    assert book.mid_units == 102750 and book.mid == 10.275
    alice.cancel_order("ABC", bid.order_id)
    same_book(alice, everything, "ABC")
    book = alice.last_price_book("ABC")
    assert book is not None and book.bids == ()
    assert books[0] == snapshot and books[-1] == book


def test_a_trade_by_polling_and_callback(everything: Deployment, connect: Callable[[str], Exchange]) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.create_instrument("ABC", 0.01)
    trades: list[Trade] = []
    fills: list[Fill] = []
    alice.on_trade = trades.append
    alice.on_fill = fills.append
    alice.subscribe("ABC")
    resting = alice.insert_order("ABC", Side.BUY, 10.0, 5)
    taken = bob.insert_order("ABC", Side.SELL, 9.5, 2)
    assert (taken.traded_quantity, taken.resting_quantity, len(taken.trade_ids)) == (2, 0, 1)
    polled = alice.wait_for(lambda: alice.poll_new_trades("ABC"), TIMEOUT)
    assert polled is not None and [(t.trade_id, t.price, t.quantity, t.aggressor_side) for t in polled] == [
        (taken.trade_ids[0], 10.0, 2, Side.SELL)
    ]
    assert trades == polled
    my_fills = alice.wait_for(alice.poll_new_fills, TIMEOUT)
    assert my_fills is not None and [
        (f.order_id, f.side, f.price_units, f.quantity, f.remaining_quantity) for f in my_fills
    ] == [(resting.order_id, Side.BUY, 100000, 2, 3)]
    assert fills == my_fills and not my_fills[0].aggressor
    assert alice.poll_new_trades("ABC") == [] and alice.poll_new_fills() == []
    position = alice.positions()["ABC"]
    assert (position.position, position.cash_units, position.last_trade_price) == (2, -200000, 10.0)
    assert alice.cash() == -20.0
    assert alice.pnl() == 0.0 and alice.pnl({"ABC": 10.5}) == 1.0
    bobs = bob.positions()["ABC"]
    assert (bobs.position, bobs.cash) == (-2, 20.0) and bob.pnl({"ABC": 10.5}) == -1.0
    assert [(o.order_id, o.remaining_quantity) for o in alice.open_orders()] == [(resting.order_id, 3)]
    bobs_fills = bob.wait_for(bob.poll_new_fills, TIMEOUT)
    assert bobs_fills is not None and [(f.trade_id, f.aggressor) for f in bobs_fills] == [
        (taken.trade_ids[0], True)
    ]


def test_typed_errors(everything: Deployment, connect: Callable[[str], Exchange]) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.create_instrument("ABC", 0.05)
    with pytest.raises(UnknownInstrument) as unknown:
        alice.insert_order("XYZ", Side.BUY, 1.0, 1)
    assert unknown.value.message == "unknown instrument 'XYZ'"
    with pytest.raises(UnknownInstrument):
        alice.subscribe("XYZ")
    assert not alice.market.subscribed("XYZ")
    with pytest.raises(OrderRejected) as off_tick:
        alice.insert_order("ABC", Side.BUY, 10.01, 1)
    assert not isinstance(off_tick.value, RiskLimitBreached) and "tick" in off_tick.value.message
    alice.set_instrument_risk_limits("ABC", max_outstanding_quantity=5)
    alice.insert_order("ABC", Side.BUY, 10.0, 4)
    with pytest.raises(RiskLimitBreached) as breached:
        alice.insert_order("ABC", Side.BUY, 10.0, 2)
    assert breached.value.limit == "max_outstanding_quantity"
    assert breached.value.message.startswith(
        "risk limit max_outstanding_quantity breached: 4 resting + 2 new > 5"
    )
    alice.set_user_risk_limits(message_rate=(1, 60))
    with pytest.raises(RiskLimitBreached) as rate:
        alice.insert_order("ABC", Side.BUY, 10.0, 1)
    assert rate.value.limit == "message_rate_rolling_limit"
    order = bob.insert_order("ABC", Side.BUY, 9.0, 1)
    with pytest.raises(OrderRejected):
        connect("carol").cancel_order("ABC", order.order_id)
    with pytest.raises(RequestRejected) as taken:
        bob.create_instrument("ABC", 0.01)
    assert "ABC" in taken.value.message
    with pytest.raises(LoginRefused):
        Exchange.connect("alice", "wrong", addresses=addresses(everything), timeout=TIMEOUT)


def test_time_in_force_amend_cancel_all_and_self_trade_prevention(
    everything: Deployment, connect: Callable[[str], Exchange]
) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.create_instrument("ABC", 0.01)
    alice.create_instrument("DEF", 0.01)
    ask = bob.insert_order("ABC", Side.SELL, 10.0, 3)
    ioc = alice.insert_order("ABC", Side.BUY, 10.0, 5, TimeInForce.IMMEDIATE_OR_CANCEL)
    assert (ioc.traded_quantity, ioc.resting_quantity, ioc.cancelled_quantity) == (3, 0, 2)
    with pytest.raises(OrderRejected) as fok:
        alice.insert_order("ABC", Side.BUY, 10.0, 1, TimeInForce.FILL_OR_KILL)
    assert fok.value.message
    reports = alice.wait_for(alice.poll_execution_reports, TIMEOUT)
    assert reports is not None and [type(r) for r in reports] == [Fill, OrderCancelled]
    assert isinstance(reports[1], OrderCancelled) and reports[1].reason == CancelReason.IMMEDIATE_OR_CANCEL
    assert bob.wait_for(bob.poll_new_fills, TIMEOUT) is not None and ask.order_id > 0

    bid = alice.insert_order("ABC", Side.BUY, 9.0, 10)
    kept = alice.amend_order("ABC", bid.order_id, 4)
    assert (kept.order_id, kept.priority_kept) == (bid.order_id, True)
    moved = alice.amend_order("ABC", bid.order_id, 4, price=9.5)
    assert moved.order_id != bid.order_id and not moved.priority_kept
    amended: list[OrderAmended] = []

    def amend_reported() -> bool:
        amended.extend(r for r in alice.poll_execution_reports() if isinstance(r, OrderAmended))
        return any(r.order_id == moved.order_id for r in amended)

    assert alice.wait_for(amend_reported, TIMEOUT)
    assert [(r.order_id, r.previous_order_id, r.priority_kept, r.price, r.quantity) for r in amended] == [
        (bid.order_id, bid.order_id, True, 9.0, 4),
        (moved.order_id, bid.order_id, False, 9.5, 4),
    ]
    other = alice.insert_order("DEF", Side.SELL, 20.0, 1)
    assert [(o.symbol, o.order_id) for o in alice.open_orders()] == [
        ("ABC", moved.order_id),
        ("DEF", other.order_id),
    ]
    assert alice.cancel_all_orders("ABC") == [moved.order_id]
    assert alice.cancel_all_orders() == [other.order_id]
    assert alice.open_orders() == []

    alice.set_self_trade_prevention(SelfTradePrevention.CANCEL_INCOMING)
    alice.insert_order("ABC", Side.SELL, 11.0, 2)
    crossing = alice.insert_order("ABC", Side.BUY, 11.0, 2)
    assert (crossing.traded_quantity, crossing.cancelled_quantity) == (0, 2)
    allowed = alice.insert_order(
        "ABC", Side.BUY, 11.0, 1, self_trade_prevention=SelfTradePrevention.CANCEL_RESTING
    )
    assert allowed.traded_quantity == 0 and allowed.resting_quantity == 1


def test_info_restart_rebuilds_the_books(everything: Deployment, connect: Callable[[str], Exchange]) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.create_instrument("ABC", 0.01)
    events: list[ConnectionEvent] = []
    alice.on_connection = events.append
    alice.subscribe("ABC")
    alice.insert_order("ABC", Side.BUY, 10.0, 5)
    same_book(alice, everything, "ABC")
    everything.stop_component("info")
    assert alice.wait_for(lambda: "info" in alice.lost_connections(), TIMEOUT)
    assert alice.last_price_book("ABC") is None  # not followed while info is away
    with pytest.raises(ConnectionLost):
        alice.subscribe("ABC")
    trade = bob.insert_order("ABC", Side.SELL, 10.0, 2)  # while info is away: the gateway still trades
    bob.insert_order("ABC", Side.SELL, 10.5, 4)
    everything.start_component("info")
    assert alice.wait_for(lambda: alice.connected, 10.0)
    assert [(e.component, e.kind) for e in events] == [("info", "lost"), ("info", "restored")]
    assert [(e.component, e.kind) for e in alice.poll_connection_events()] == [
        ("info", "lost"),
        ("info", "restored"),
    ]
    same_book(alice, everything, "ABC")
    book = alice.last_price_book("ABC")
    assert book is not None and [(lv.price, lv.quantity) for lv in book.bids] == [(10.0, 3)]
    assert [(lv.price, lv.quantity) for lv in book.asks] == [(10.5, 4)]
    assert [t.trade_id for t in alice.poll_new_trades("ABC")] == list(trade.trade_ids)
    taken = bob.insert_order("ABC", Side.SELL, 10.0, 1)
    polled = alice.wait_for(lambda: alice.poll_new_trades("ABC"), TIMEOUT)
    assert polled is not None and [t.trade_id for t in polled] == list(taken.trade_ids)


def test_gateway_restart_resubscribes_the_execution_reports(
    everything: Deployment, connect: Callable[[str], Exchange]
) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.create_instrument("ABC", 0.01)
    events: list[ConnectionEvent] = []
    alice.on_connection = events.append
    bid = alice.insert_order("ABC", Side.BUY, 10.0, 5)
    everything.stop_component("gateway")
    assert alice.wait_for(lambda: "gateway" in alice.lost_connections(), TIMEOUT)
    with pytest.raises(ConnectionLost) as lost:
        alice.insert_order("ABC", Side.BUY, 10.0, 1)
    assert lost.value.component == "gateway"
    everything.start_component("gateway")
    assert alice.wait_for(lambda: alice.connected, 10.0)
    assert [(e.component, e.kind) for e in events] == [("gateway", "lost"), ("gateway", "restored")]
    assert [o.order_id for o in alice.open_orders()] == [bid.order_id]
    bob.wait(0.0)  # reads the old connection's end, and reconnects
    assert bob.wait_for(lambda: bob.connected, 10.0)
    taken = bob.insert_order("ABC", Side.SELL, 10.0, 2)
    fills = alice.wait_for(alice.poll_new_fills, TIMEOUT)
    assert fills is not None and [(f.order_id, f.trade_id) for f in fills] == [
        (bid.order_id, taken.trade_ids[0])
    ]


def test_a_subscription_gone_with_the_day_is_reported(
    everything: Deployment, connect: Callable[[str], Exchange]
) -> None:
    """Info and the order book restarted (a new day): the SDK reconnects, and its subscription to an
    instrument of yesterday fails, reported as such; the new day's instrument is subscribed afresh."""
    alice = connect("alice")
    alice.create_instrument("ABC", 0.01)
    alice.subscribe("ABC", depth_limit=1)
    everything.stop_component("info")
    everything.stop_component("order_book")
    everything.start_component("order_book")
    everything.start_component("info")
    assert alice.wait_for(lambda: alice.connected, 10.0)
    events = alice.poll_connection_events()
    assert [(e.component, e.kind) for e in events] == [
        ("info", "lost"),
        ("info", "failed"),
        ("info", "restored"),
    ]
    assert events[1].detail == "subscribe ABC: unknown instrument 'ABC'"
    assert not alice.market.subscribed("ABC") and alice.instruments() == {}
    with pytest.raises(UnknownInstrument):
        alice.last_price_book("ABC")
    alice.create_instrument("ABC", 0.05)
    alice.insert_order("ABC", Side.SELL, 10.05, 2)
    same_book(alice, everything, "ABC")
