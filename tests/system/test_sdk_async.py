"""The SDK's asyncio flavour (optivex.client.AsyncExchange) against a real deployment of every component.

Which behaviour each test covers:

- one call connects and logs in to info, the gateway and admin; create, insert, cancel; the SDK's book
  equals info's own after each change: `test_connect_create_insert_cancel_and_the_book_is_infos`;
- a trade by polling and by callback, fills, execution reports, positions and PnL, amend and cancel
  all: `test_a_trade_by_polling_and_callback`;
- typed errors: an unknown symbol, a risk limit naming its field, an order refused, a refused login:
  `test_typed_errors`;
- info restarted: the loss and the restoration are reported, the book is rebuilt from the fresh
  snapshot, the trades made meanwhile delivered once: `test_info_restart_rebuilds_the_books`;
- the gateway restarted: ConnectionLost meanwhile, fills reported again after it:
  `test_gateway_restart_resubscribes_the_execution_reports`;
- IOC, FOK, self-trade prevention and an amend that moves the price, with their execution reports by
  callback: `test_time_in_force_self_trade_prevention_and_reports`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from optivex.client import (
    AsyncExchange,
    CancelReason,
    ConnectionEvent,
    ConnectionLost,
    ExecutionReport,
    Fill,
    LoginRefused,
    OrderCancelled,
    OrderRejected,
    PriceBook,
    RiskLimitBreached,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    UnknownInstrument,
)
from optivex.deploy import Deployment, start_suite

from .helpers import TIMEOUT
from .test_sdk import START_TIMEOUT, addresses, infos_book


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 60))


@pytest.fixture
def everything(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    deployment = start_suite(None, tmp_path / "deployment", start_timeout=START_TIMEOUT)
    request.node.__dict__.setdefault("_deployments", []).append(deployment)
    yield deployment
    deployment.stop()


async def connect(deployment: Deployment, user: str) -> AsyncExchange:
    return await AsyncExchange.connect(user, addresses=addresses(deployment), timeout=TIMEOUT)


async def same_book(sdk: AsyncExchange, deployment: Deployment, symbol: str) -> PriceBook:
    """The SDK's book becomes info's (a fresh subscription's snapshot, taken in a thread)."""
    expected = await asyncio.to_thread(infos_book, deployment, symbol)
    book = await sdk.wait_for(lambda: sdk.last_price_book(symbol) == expected and expected, TIMEOUT)
    assert book == expected, (sdk.last_price_book(symbol), expected)
    return expected


def test_connect_create_insert_cancel_and_the_book_is_infos(everything: Deployment) -> None:
    async def scenario() -> None:
        async with AsyncExchange("alice", addresses=addresses(everything), timeout=TIMEOUT) as alice:
            assert alice.connected
            created = await alice.create_instrument("ABC", 0.05)
            assert (await alice.instruments())["ABC"] == created
            books: list[PriceBook] = []
            alice.on_book = books.append
            snapshot = await alice.subscribe("ABC")
            assert (snapshot.bids, snapshot.asks) == ((), ())
            bid = await alice.insert_order("ABC", Side.BUY, 10.05, 7)
            assert bid.resting_quantity == 7
            book = await same_book(alice, everything, "ABC")
            assert book.best_bid is not None and (book.best_bid.price, book.best_bid.quantity) == (10.05, 7)
            await alice.cancel_order("ABC", bid.order_id)
            book = await same_book(alice, everything, "ABC")
            assert book.bids == () and books[0] == snapshot and books[-1] == book
        assert alice.closed and not alice.connected

    run(scenario())


def test_a_trade_by_polling_and_callback(everything: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = await connect(everything, "alice"), await connect(everything, "bob")
        await alice.create_instrument("ABC", 0.01)
        trades: list[Trade] = []
        fills: list[Fill] = []
        alice.on_trade = trades.append
        alice.on_fill = fills.append
        await alice.subscribe("ABC")
        resting = await alice.insert_order("ABC", Side.BUY, 10.0, 5)
        taken = await bob.insert_order("ABC", Side.SELL, 9.5, 2)
        polled = await alice.wait_for(lambda: alice.poll_new_trades("ABC"), TIMEOUT)
        assert polled is not None and [(t.trade_id, t.price, t.quantity) for t in polled] == [
            (taken.trade_ids[0], 10.0, 2)
        ]
        assert trades == polled
        my_fills = await alice.wait_for(alice.poll_new_fills, TIMEOUT)
        assert my_fills is not None and [
            (f.order_id, f.quantity, f.remaining_quantity) for f in my_fills
        ] == [(resting.order_id, 2, 3)]
        assert fills == my_fills
        position = (await alice.positions())["ABC"]
        assert (position.position, position.cash) == (2, -20.0)
        assert await alice.cash() == -20.0
        assert (await alice.pnl(), await alice.pnl({"ABC": 11.0})) == (0.0, 2.0)
        amended = await alice.amend_order("ABC", resting.order_id, 1)
        assert amended.priority_kept and amended.order_id == resting.order_id
        assert [(o.order_id, o.remaining_quantity) for o in await alice.open_orders("ABC")] == [
            (resting.order_id, 1)
        ]
        assert await alice.cancel_all_orders() == [resting.order_id]
        await alice.close()
        await bob.close()

    run(scenario())


def test_typed_errors(everything: Deployment) -> None:
    async def scenario() -> None:
        alice = await connect(everything, "alice")
        await alice.create_instrument("ABC", 0.05)
        with pytest.raises(UnknownInstrument) as unknown:
            await alice.insert_order("XYZ", Side.BUY, 1.0, 1)
        assert unknown.value.message == "unknown instrument 'XYZ'"
        with pytest.raises(UnknownInstrument):
            await alice.subscribe("XYZ")
        with pytest.raises(OrderRejected) as refused:
            await alice.insert_order("ABC", Side.BUY, 10.01, 1)
        assert not isinstance(refused.value, RiskLimitBreached)
        await alice.set_instrument_risk_limits("ABC", max_outstanding_amount=100.0)
        with pytest.raises(RiskLimitBreached) as breached:
            await alice.insert_order("ABC", Side.BUY, 10.0, 11)
        assert breached.value.limit == "max_outstanding_amount"
        assert "risk limit max_outstanding_amount breached" in str(breached.value)
        with pytest.raises(LoginRefused):
            await AsyncExchange.connect("alice", "wrong", addresses=addresses(everything), timeout=TIMEOUT)
        await alice.close()
        with pytest.raises(ConnectionLost):
            await alice.insert_order("ABC", Side.BUY, 10.0, 1)

    run(scenario())


def test_info_restart_rebuilds_the_books(everything: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = await connect(everything, "alice"), await connect(everything, "bob")
        await alice.create_instrument("ABC", 0.01)
        events: list[ConnectionEvent] = []
        alice.on_connection = events.append
        await alice.subscribe("ABC")
        await alice.insert_order("ABC", Side.BUY, 10.0, 5)
        await same_book(alice, everything, "ABC")
        await asyncio.to_thread(everything.stop_component, "info")
        assert await alice.wait_for(lambda: "info" in alice.lost_connections(), TIMEOUT)
        assert alice.last_price_book("ABC") is None
        with pytest.raises(ConnectionLost):
            await alice.subscribe("ABC")
        trade = await bob.insert_order("ABC", Side.SELL, 10.0, 2)
        await asyncio.to_thread(everything.start_component, "info")
        assert await alice.wait_for(lambda: alice.connected, 10.0)
        assert [(e.component, e.kind) for e in events] == [("info", "lost"), ("info", "restored")]
        book = await same_book(alice, everything, "ABC")
        assert [(lv.price, lv.quantity) for lv in book.bids] == [(10.0, 3)]
        assert [t.trade_id for t in alice.poll_new_trades("ABC")] == list(trade.trade_ids)
        taken = await bob.insert_order("ABC", Side.SELL, 10.0, 1)
        polled = await alice.wait_for(lambda: alice.poll_new_trades("ABC"), TIMEOUT)
        assert polled is not None and [t.trade_id for t in polled] == list(taken.trade_ids)
        await alice.close()
        await bob.close()

    run(scenario())


def test_gateway_restart_resubscribes_the_execution_reports(everything: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = await connect(everything, "alice"), await connect(everything, "bob")
        await alice.create_instrument("ABC", 0.01)
        events: list[ConnectionEvent] = []
        alice.on_connection = events.append
        bid = await alice.insert_order("ABC", Side.BUY, 10.0, 5)
        await asyncio.to_thread(everything.stop_component, "gateway")
        assert await alice.wait_for(lambda: "gateway" in alice.lost_connections(), TIMEOUT)
        with pytest.raises(ConnectionLost) as lost:
            await alice.insert_order("ABC", Side.BUY, 10.0, 1)
        assert lost.value.component == "gateway"
        await asyncio.to_thread(everything.start_component, "gateway")
        assert await alice.wait_for(lambda: alice.connected, 10.0)
        assert await bob.wait_for(lambda: bob.connected, 10.0)
        assert [(e.component, e.kind) for e in alice.poll_connection_events()] == [
            ("gateway", "lost"),
            ("gateway", "restored"),
        ]
        assert events[-1].kind == "restored"
        taken = await bob.insert_order("ABC", Side.SELL, 10.0, 2)
        fills = await alice.wait_for(alice.poll_new_fills, TIMEOUT)
        assert fills is not None and [(f.order_id, f.trade_id) for f in fills] == [
            (bid.order_id, taken.trade_ids[0])
        ]
        await alice.close()
        await bob.close()

    run(scenario())


def test_time_in_force_self_trade_prevention_and_reports(everything: Deployment) -> None:
    async def scenario() -> None:
        alice, bob = await connect(everything, "alice"), await connect(everything, "bob")
        await alice.create_instrument("ABC", 0.01)
        reports: list[ExecutionReport] = []
        alice.on_report = reports.append
        await bob.insert_order("ABC", Side.SELL, 10.0, 3)
        ioc = await alice.insert_order("ABC", Side.BUY, 10.0, 5, TimeInForce.IMMEDIATE_OR_CANCEL)
        assert (ioc.traded_quantity, ioc.cancelled_quantity, ioc.resting_quantity) == (3, 2, 0)
        with pytest.raises(OrderRejected):
            await alice.insert_order("ABC", Side.BUY, 10.0, 1, TimeInForce.FILL_OR_KILL)
        assert await alice.wait_for(lambda: len(reports) >= 2, TIMEOUT)
        assert [type(r) for r in reports] == [Fill, OrderCancelled]
        await alice.set_self_trade_prevention(SelfTradePrevention.CANCEL_RESTING)
        resting = await alice.insert_order("ABC", Side.SELL, 11.0, 2)
        crossing = await alice.insert_order("ABC", Side.BUY, 11.0, 1)
        assert (crossing.traded_quantity, crossing.resting_quantity) == (0, 1)
        cancelled = await alice.wait_for(
            lambda: [r for r in reports if isinstance(r, OrderCancelled) and r.order_id == resting.order_id],
            TIMEOUT,
        )
        assert cancelled is not None and cancelled[0].reason == CancelReason.SELF_TRADE
        moved = await alice.amend_order("ABC", crossing.order_id, 3, price=10.5)
        assert not moved.priority_kept and [o.order_id for o in await alice.open_orders()] == [moved.order_id]
        await alice.close()
        await bob.close()

    run(scenario())
