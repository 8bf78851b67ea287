"""Feed and Link against an in-process order book (the real component on an ephemeral port)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from optivex.app.component import Component
from optivex.app.config import Address, ComponentConfig, ConfigError
from optivex.app.dependents import Busy, Link, NoAnswer, Requests, Unavailable, create_links
from optivex.client import AsyncClient
from optivex.engine import BUY, SELL
from optivex.feed.follower import Feed, Follows
from optivex.feed.mirror import BookMirror, Change, OrderAmended, OrderCancelled, OrderInserted, TradeApplied
from optivex.orderbook.component import OrderBookComponent
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.wire import FrameDecoder, encode_frame

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
    (server,) = await component.serve()
    return component, int(server.sockets[0].getsockname()[1])


async def stop_order_book(component: OrderBookComponent) -> None:
    component.close_all()
    component.abort_all()
    for server in component._servers:
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


def test_the_feed_gets_the_extension_events(tmp_path: Path) -> None:
    """The feed logs in with extension_events: an amend that kept priority is one OrderAmended (not
    the contract form's cancel and insert); a replace and an IOC carry their fields and reasons."""

    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        client = await ob_client(port)
        await client.call(pb.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, 1, SELL, 10.0, 5, "alice")
        owner = Owner()
        feed = feed_for(port, owner)
        feed.start()
        await owner.reset_event.wait()
        await client.call(pb.AmendOrderRequest(order_book_id=1, order_id=1, quantity=3))
        await client.call(pb.AmendOrderRequest(order_book_id=1, order_id=1, quantity=3, price=10.5))
        await client.call(
            pb.InsertOrderRequest(
                order_book_id=1,
                side=common_pb2.BUY,
                price=10.5,
                quantity=4,
                on_behalf_of_username="bob",
                time_in_force=common_pb2.IMMEDIATE_OR_CANCEL,
            )
        )
        await feed.barrier()
        amended, replaced, replacement, ioc, trade, rest = owner.changes
        assert isinstance(amended, OrderAmended)
        assert (amended.order_id, amended.quantity, amended.previous_quantity) == (1, 3, 5)
        assert isinstance(replaced, OrderCancelled) and replaced.reason == common_pb2.CANCEL_REPLACED
        assert isinstance(replacement, OrderInserted) and replacement.replaces_order_id == 1
        assert isinstance(ioc, OrderInserted) and ioc.cancels_remainder and not ioc.consistent
        assert ioc.time_in_force == common_pb2.IMMEDIATE_OR_CANCEL
        assert isinstance(trade, TradeApplied) and not trade.consistent  # the IOC's rest of 1 still there
        assert isinstance(rest, OrderCancelled) and rest.reason == common_pb2.CANCEL_IMMEDIATE_OR_CANCEL
        assert rest.consistent and rest.quantity == 1 and len(feed.mirror) == 0
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


def test_an_owner_failing_on_reset_and_on_lost_does_not_end_the_feed(tmp_path: Path) -> None:
    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        owner = Owner()
        told = owner.on_reset

        def failing_reset(mirror: BookMirror) -> None:
            told(mirror)
            raise RuntimeError("owner bug on reset")

        def failing_lost() -> None:
            raise RuntimeError("owner bug on lost")

        feed = feed_for(port, owner)
        feed.on_reset, feed.on_lost = failing_reset, failing_lost
        feed.start()
        await owner.reset_event.wait()
        owner.reset_event.clear()
        await stop_order_book(component)
        component, _ = await start_order_book(tmp_path, port)
        await owner.reset_event.wait()  # reconnected after both callbacks failed
        assert feed.connections == 2 and len(owner.resets) == 2
        await feed.barrier()
        await feed.stop()
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
        feed = feed_for(port, Owner(), link_wait=0.05)
        feed.start()
        with pytest.raises(Unavailable):
            await feed.barrier()
        await feed.stop()
        with pytest.raises(Unavailable):  # stopped: at once
            await feed.barrier()

    run(scenario)


def test_a_failing_set_up_is_logged_once_and_leaves_no_unretrieved_future(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        attempts = 0
        four = asyncio.Event()

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 4:
                four.set()
            writer.close()

        unhandled: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, c: unhandled.append(c["message"]))
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        feed = feed_for(int(server.sockets[0].getsockname()[1]), Owner())
        with caplog.at_level(logging.WARNING, logger=LOG.name):
            feed.start()
            await four.wait()
            await feed.stop()
        logged = [r.getMessage() for r in caplog.records if "failed while setting up" in r.getMessage()]
        # Each attempt fails alike ("closed by the server"; a reset would read differently): a line
        # is logged only when the failure is not the previous attempt's.
        assert logged and all(a != b for a, b in itertools.pairwise(logged)), logged
        gc.collect()  # a future whose exception nobody took complains when collected
        assert unhandled == [], unhandled
        server.close()

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


class FakeOrderBook:
    """Answers login and barrier; on its first connection the replay names an unknown book."""

    def __init__(self) -> None:
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        bad = self.connections == 1
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            for msg_type, payload in decoder.feed(data):
                if msg_type == pb.LOGIN_REQUEST:
                    request_id = common_pb2.LoginRequest.FromString(payload).request_id
                    out = encode_frame(
                        pb.LOGIN_RESPONSE, common_pb2.LoginResponse(request_id=request_id).SerializeToString()
                    )
                    book = pb.OnOrderBookCreated(order_book_id=1, tick_size=0.01, timestamp=1)
                    out += encode_frame(pb.ON_ORDER_BOOK_CREATED, book.SerializeToString())
                    order = pb.OnOrderInserted(
                        order_id=1, order_book_id=2 if bad else 1, side=common_pb2.BUY, price=1.0, quantity=3
                    )
                    out += encode_frame(pb.ON_ORDER_INSERTED, order.SerializeToString())
                    writer.write(out)
                elif msg_type == pb.BARRIER_REQUEST:
                    request_id = pb.BarrierRequest.FromString(payload).request_id
                    writer.write(
                        encode_frame(
                            pb.BARRIER_RESPONSE, pb.BarrierResponse(request_id=request_id).SerializeToString()
                        )
                    )
        writer.close()


def test_an_impossible_event_rebuilds_the_mirror_from_a_fresh_replay() -> None:
    async def scenario() -> None:
        fake = FakeOrderBook()
        server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
        owner = Owner()
        feed = feed_for(int(server.sockets[0].getsockname()[1]), owner)
        feed.start()
        await owner.reset_event.wait()
        assert fake.connections == 2 and feed.connections == 1 and owner.lost == 0
        book = feed.mirror.book(1)
        assert book is not None and book.levels(BUY) == [(10_000, 3)]
        await feed.stop()
        server.close()

    run(scenario)


class Follower(Component):
    """A component that follows the order book and hears about it (FeedListener)."""

    name = "follower"
    protocols = ("order_book",)
    dependencies = (Follows("order_book"),)

    def feed_reset(self, mirror: BookMirror) -> None: ...

    def feed_changed(self, change: Change) -> None: ...

    def feed_lost(self) -> None: ...


def test_declared_dependencies_become_links(tmp_path: Path) -> None:
    async def scenario() -> None:
        config = ComponentConfig(
            log_level=logging.INFO,
            log_directory=tmp_path,
            listen_on=Address("127.0.0.1", 0),
            data_file_path=tmp_path / "users.json",
            auth_required=False,
            connect_to={"order_book": Address("127.0.0.1", 9)},
        )
        component = Follower(config, {}, LOG)
        feed = component.links["order_book"]
        assert isinstance(feed, Feed) and not feed.up  # not started: the framework starts it once listening
        assert (feed.on_reset, feed.on_change, feed.on_lost) == (
            component.feed_reset,
            component.feed_changed,
            component.feed_lost,
        )
        assert feed.username == "follower"
        links = create_links(component, (Requests("order_book"),), config, LOG)
        assert type(links["order_book"]) is Link
        with pytest.raises(ValueError, match="order_book"):
            create_links(component, (Requests("order_book"), Follows("order_book")), config, LOG)
        with pytest.raises(ConfigError):
            Follower(replace(config, connect_to={}), {}, LOG)

    run(scenario)


def test_stop_during_a_set_up_closes_its_connection() -> None:
    async def scenario() -> None:
        accepted, ended = asyncio.Event(), asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set()
            while await reader.read(65536):  # login and barrier come, never answered
                pass
            ended.set()
            writer.close()

        server = await asyncio.start_server(hold, "127.0.0.1", 0)
        feed = feed_for(int(server.sockets[0].getsockname()[1]), Owner())
        feed.start()
        await accepted.wait()
        await feed.stop()
        await ended.wait()  # the feed closed the connection it was setting up
        assert not feed.up and feed.connections == 0
        server.close()

    run(scenario)
