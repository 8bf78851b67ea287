"""The feed (optivex.feed) against a real order book process: replay, live events, barrier, restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, cast

from optivex.app.config import Address
from optivex.client import AsyncClient
from optivex.engine import BUY, SELL
from optivex.feed.follower import Feed
from optivex.feed.mirror import BookMirror, Change, OrderCancelled, OrderInserted, TradeApplied
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import TIMEOUT, Exchange

LOG = logging.getLogger("test_feed")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10 * TIMEOUT))


class Owner:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.resets: list[BookMirror] = []
        self.lost = 0
        self.reset = asyncio.Event()

    def on_reset(self, mirror: BookMirror) -> None:
        self.resets.append(mirror)
        self.reset.set()

    def on_lost(self) -> None:
        self.lost += 1


def follow(exchange: Exchange, owner: Owner) -> Feed:
    host, port = exchange.deployment.address("order_book")
    feed = Feed(
        "order_book",
        Address(host, port),
        LOG,
        username="test-feed",
        on_change=owner.changes.append,
        on_reset=owner.on_reset,
        on_lost=owner.on_lost,
    )
    feed.start()
    return feed


async def insert(
    client: AsyncClient, book: int, side: int, price: float, quantity: int, user: str
) -> ob.InsertOrderResponse:
    return await client.call(
        ob.InsertOrderRequest(
            order_book_id=book,
            side=cast(common_pb2.Side, side),
            price=price,
            quantity=quantity,
            on_behalf_of_username=user,
        ),
        expect=ob.InsertOrderResponse,
    )


def state(mirror: BookMirror) -> list[Any]:
    return [
        (
            b.book_id,
            b.symbol,
            b.tick,
            b.levels(BUY),
            b.levels(SELL),
            [(o.order_id, o.side, o.price, o.remaining, o.owner) for o in b.resting_orders()],
        )
        for b in mirror.books()
    ]


def test_feed_follows_replay_and_live_events_and_a_fresh_login_agrees(exchange: Exchange) -> None:
    async def scenario() -> None:
        host, port = exchange.deployment.address("order_book")
        client = await AsyncClient.connect(host, port, "order_book")
        await client.call(ob.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, 1, BUY, 10.0, 5, "alice")
        await insert(client, 1, SELL, 10.5, 3, "bob")
        owner = Owner()
        feed = follow(exchange, owner)
        await owner.reset.wait()
        assert owner.changes == [] and feed.up
        # Live: a sweep, a rest, a cancel.
        sweep = await insert(client, 1, BUY, 10.5, 4, "carol")
        rest = await insert(client, 1, SELL, 11.0, 2, "alice")
        await client.call(ob.CancelOrderRequest(order_book_id=1, order_id=rest.order_id))
        await feed.barrier()
        assert [type(c) for c in owner.changes] == [
            OrderInserted,
            TradeApplied,
            OrderInserted,
            OrderCancelled,
        ]
        trade = owner.changes[1]
        assert isinstance(trade, TradeApplied)
        assert (trade.trade_id, trade.buy_owner, trade.sell_owner, trade.consistent) == (
            sweep.trade_ids[0],
            "carol",
            "bob",
            True,
        )
        book = feed.mirror.book(1)
        assert book is not None and book.consistent
        assert book.levels(BUY) == [(105_000, 1), (100_000, 5)] and book.levels(SELL) == []
        # A second feed logging in now rebuilds the same state from its replay.
        other_owner = Owner()
        other = follow(exchange, other_owner)
        await other_owner.reset.wait()
        assert state(other.mirror) == state(feed.mirror)
        await other.stop()
        await feed.stop()
        client.close()

    run(scenario())


def test_barrier_after_a_confirmed_create_knows_the_symbol(exchange: Exchange) -> None:
    async def scenario() -> None:
        owner = Owner()
        feed = follow(exchange, owner)
        await owner.reset.wait()
        host, port = exchange.deployment.address("admin")
        admin = await AsyncClient.connect(host, port, "admin")
        await admin.login("admin", "admin")
        created = await admin.call(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol="XYZ", currency="EUR"), tick_size=0.05
            ),
            expect=admin_pb2.CreateInstrumentResponse,
        )
        # Section 4: once confirmed, a barrier on the feed is enough for the symbol to be known.
        await feed.barrier()
        book = feed.mirror.book_by_symbol("XYZ")
        assert book is not None and book.book_id == created.order_book_id and book.tick == 500
        assert book.timestamp == created.created_timestamp
        assert book.instrument is not None and book.instrument.currency == "EUR"
        admin.close()
        await feed.stop()

    run(scenario())


def test_feed_rebuilds_from_a_fresh_replay_after_the_order_book_restarts(exchange: Exchange) -> None:
    async def scenario() -> None:
        host, port = exchange.deployment.address("order_book")
        client = await AsyncClient.connect(host, port, "order_book")
        await client.call(ob.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, 1, BUY, 10.0, 5, "alice")
        client.close()
        owner = Owner()
        feed = follow(exchange, owner)
        await owner.reset.wait()
        owner.reset.clear()
        first = feed.mirror
        assert len(first) == 1
        deployment = exchange.deployment
        await asyncio.to_thread(deployment.stop_component, "order_book")
        await asyncio.to_thread(deployment.start_component, "order_book")
        await owner.reset.wait()
        assert owner.lost == 1 and len(owner.resets) == 2
        assert feed.mirror is owner.resets[1] and feed.mirror is not first
        assert state(feed.mirror) == []  # a new day: nothing yet
        client = await AsyncClient.connect(host, port, "order_book")
        await client.call(ob.CreateOrderBookRequest(tick_size=0.5))
        await feed.barrier()
        assert [(b.book_id, b.tick) for b in feed.mirror.books()] == [(1, 5_000)]
        client.close()
        await feed.stop()

    run(scenario())
