"""Feed and Link against an in-process order book (the real component on an ephemeral port)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from optivex.app.config import Address, ComponentConfig
from optivex.app.dependents import Busy, Link, NoAnswer, Unavailable
from optivex.client import AsyncClient
from optivex.engine import BUY, SELL
from optivex.feed.follower import Feed
from optivex.feed.mirror import BookMirror, Change, OrderInserted, TradeApplied
from optivex.orderbook.component import OrderBookComponent
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

LOG = logging.getLogger("test_feed")
CREATE = pb.CreateOrderBookRequest(tick_size=0.01)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


async def start_order_book(tmp_path: Path, port: int = 0) -> tuple[OrderBookComponent, int]:
    config = ComponentConfig(
        log_level=logging.INFO,
        log_directory=tmp_path,
        listen_on=Address("127.0.0.1", port),
        data_file_path=tmp_path / "users.json",
        auth_required=False,
        busy_poll_microseconds=0,
    )
    component = OrderBookComponent(config, {}, LOG)
    server = await component.serve()
    return component, int(server.sockets[0].getsockname()[1])


async def stop_order_book(component: OrderBookComponent) -> None:
    component.close_all()
    component.abort_all()
    server = component._server
    assert server is not None
    await server.wait_closed()


class Owner:
    """Records what a feed tells its owner."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.resets: list[BookMirror] = []
        self.lost = 0
        self.reset_event = asyncio.Event()

    def on_change(self, change: Change) -> None:
        self.changes.append(change)

    def on_reset(self, mirror: BookMirror) -> None:
        self.resets.append(mirror)
        self.reset_event.set()

    def on_lost(self) -> None:
        self.lost += 1


def feed_for(port: int, owner: Owner, **link: Any) -> Feed:
    return Feed(
        "order_book",
        Address("127.0.0.1", port),
        LOG,
        username="test",
        on_change=owner.on_change,
        on_reset=owner.on_reset,
        on_lost=owner.on_lost,
        **link,
    )


async def ob_client(port: int) -> AsyncClient:
    return await AsyncClient.connect("127.0.0.1", port, "order_book")


async def insert(
    client: AsyncClient, book: int, side: int, price: float, qty: int, user: str
) -> pb.InsertOrderResponse:
    response = await client.call(
        pb.InsertOrderRequest(
            order_book_id=book,
            side=cast(common_pb2.Side, side),
            price=price,
            quantity=qty,
            on_behalf_of_username=user,
        ),
        expect=pb.InsertOrderResponse,
    )
    return response


def test_replay_then_live_events_then_barrier(tmp_path: Path) -> None:
    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        client = await ob_client(port)
        await client.call(pb.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, 1, BUY, 10.0, 5, "alice")
        await insert(client, 1, SELL, 10.5, 3, "bob")
        owner = Owner()
        feed = feed_for(port, owner)
        feed.start()
        await owner.reset_event.wait()
        mirror = owner.resets[0]
        assert mirror is feed.mirror and feed.up and owner.changes == []
        book = mirror.book(1)
        assert book is not None
        assert book.levels(BUY) == [(100_000, 5)] and book.levels(SELL) == [(105_000, 3)]
        assert [o.owner for o in book.resting_orders()] == ["alice", "bob"]
        # Live: an insert that sweeps the ask, seen in order once the barrier is through.
        response = await insert(client, 1, BUY, 10.5, 4, "carol")
        await feed.barrier()
        kinds = [type(c) for c in owner.changes]
        assert kinds == [OrderInserted, TradeApplied]
        assert owner.changes[-1].consistent
        assert owner.changes[1].trade_id == response.trade_ids[0]  # type: ignore[union-attr]
        assert book.levels(BUY) == [(105_000, 1), (100_000, 5)] and book.levels(SELL) == []
        exchange_book = component.exchange.book(1)
        assert book.levels(BUY) == exchange_book.levels(BUY)
        await feed.stop()
        client.close()
        await stop_order_book(component)

    run(scenario)


def test_reconnects_with_a_fresh_replay_after_the_order_book_restarts(tmp_path: Path) -> None:
    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        client = await ob_client(port)
        await client.call(pb.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, 1, BUY, 10.0, 5, "alice")
        owner = Owner()
        feed = feed_for(port, owner)
        feed.start()
        await owner.reset_event.wait()
        owner.reset_event.clear()
        first = feed.mirror
        assert len(first) == 1
        client.close()
        await stop_order_book(component)
        # A new day on the same port: one book, no orders.
        component, _ = await start_order_book(tmp_path, port)
        client = await ob_client(port)
        await client.call(pb.CreateOrderBookRequest(tick_size=0.5))
        await owner.reset_event.wait()
        assert owner.lost == 1 and len(owner.resets) == 2
        second = feed.mirror
        assert second is owner.resets[1] and second is not first
        assert len(second) == 0 and [b.tick for b in second.books()] in ([5_000], [])
        await feed.barrier()
        assert [b.tick for b in second.books()] == [5_000]
        assert feed.connections == 2
        await feed.stop()
        client.close()
        await stop_order_book(component)

    run(scenario)


async def silent_server() -> tuple[asyncio.Server, int]:
    """Accepts connections and never answers anything."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def test_unavailable_when_nobody_listens(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port = await silent_server()
        server.close()
        await server.wait_closed()
        link = Link("order_book", Address("127.0.0.1", port), "order_book", LOG, link_wait=0.05)
        link.start()
        with pytest.raises(Unavailable, match=r"^order book unavailable; the request was not carried out$"):
            await link.request(CREATE, pb.CreateOrderBookResponse)
        await link.stop()

    run(scenario)


def test_deadline_frees_the_request_and_its_slot(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port = await silent_server()
        link = Link(
            "order_book", Address("127.0.0.1", port), "order_book", LOG, deadline=0.1, max_in_flight=1
        )
        link.start()
        with pytest.raises(NoAnswer, match=r"did not answer within 0\.1 s; the request may or may not"):
            await link.request(CREATE, pb.CreateOrderBookResponse)
        client = link.client
        assert client is not None and client._waiting == {}
        # One slot: a second request waits for it while the first is outstanding, then gives up.
        first = asyncio.ensure_future(link.request(CREATE, pb.CreateOrderBookResponse))
        await asyncio.sleep(0)
        with pytest.raises(Busy, match="the request was not carried out"):
            await link.request(CREATE, pb.CreateOrderBookResponse)
        with pytest.raises(NoAnswer):
            await first
        assert client._waiting == {}
        await link.stop()
        server.close()

    run(scenario)


def test_link_lost_with_a_request_in_flight(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port = await silent_server()
        link = Link("order_book", Address("127.0.0.1", port), "order_book", LOG)
        link.start()
        client = await link.wait_up()
        pending = asyncio.ensure_future(link.request(CREATE, pb.CreateOrderBookResponse))
        await asyncio.sleep(0)
        client.connection.abort()
        with pytest.raises(NoAnswer, match="connection lost before it answered"):
            await pending
        await link.stop()
        server.close()

    run(scenario)
