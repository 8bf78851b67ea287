"""The order book component's trader extensions (issue 10), in process: the replay's amend rule, the
reason of a cancelled remainder, and random mixes of extended requests after which a contract-only
connection, an extension_events connection and the feed all rebuild the engine's books."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from optivex.client import AsyncClient
from optivex.engine import BUY, SELL, Exchange
from optivex.feed.events import apply_event, load_event
from optivex.feed.mirror import BookMirror, TradeApplied
from optivex.orderbook.replay import ReplaySnapshots
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

from .test_feed import Owner, feed_for, run, start_order_book, stop_order_book

OWNERS = ("alice", "bob", "carol", "")


def test_an_amend_during_a_replay_hands_out_the_quantity_at_login() -> None:
    exchange = Exchange()
    book = exchange.create_book(1).book_id
    order, _ = exchange.insert(book, BUY, 100, 5, "a", 1)
    replays = ReplaySnapshots(exchange)
    replay = replays.take()
    assert replay is not None and replay.prepare()
    exchange.amend(book, order.order_id, None, 2, 2)
    replays.note_amend(order.order_id, 5)
    replay.next_books(10)
    assert [(o.order_id, remaining) for o, remaining in replay.next_orders(10)] == [(order.order_id, 5)]
    later = replays.take()  # nothing new but the amend: still a new snapshot, with the new quantity
    assert later is not None and later.snapshot is not replay.snapshot and later.prepare()
    later.next_books(10)
    assert [remaining for _, remaining in later.next_orders(10)] == [2]
    replay.close()
    later.close()


async def drain(client: AsyncClient) -> list[Message]:
    """Every event the order book sent `client` before now (a barrier on its connection), read as they
    come (a client that stopped reading its events would stop reading the barrier's response too)."""
    client.send(pb.BarrierRequest())
    events = []
    while not isinstance(message := await client.receive(5), pb.BarrierResponse):
        if not isinstance(message, common_pb2.LoginResponse):
            events.append(message)
    return events


def kinds(events: list[Message]) -> list[tuple[str, int]]:
    """(event name, its reason for a cancel, else 0)."""
    return [(type(e).__name__, getattr(e, "reason", 0)) for e in events]


async def connect(port: int, name: str, extension_events: bool) -> AsyncClient:
    client = await AsyncClient.connect("127.0.0.1", port, "order_book")
    await client.call(common_pb2.LoginRequest(username=name, extension_events=extension_events))
    return client


async def insert(client: AsyncClient, **fields: Any) -> pb.InsertOrderResponse:
    response: pb.InsertOrderResponse = await client.request(
        pb.InsertOrderRequest(**fields), expect=pb.InsertOrderResponse
    )
    return response


def test_an_ioc_with_cancel_incoming_says_which_one_cancelled_it(tmp_path: Path) -> None:
    """IOC and CANCEL_INCOMING together: stopped by an own order -> SELF_TRADE; out of liquidity -> IOC."""

    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        client = await connect(port, "c", False)
        await client.call(pb.CreateOrderBookRequest(tick_size=0.01))
        await insert(client, order_book_id=1, side=SELL, price=10.0, quantity=2, on_behalf_of_username="b")
        await insert(client, order_book_id=1, side=SELL, price=10.0, quantity=2, on_behalf_of_username="a")
        await drain(client)
        common = dict(order_book_id=1, side=BUY, price=10.0, on_behalf_of_username="a")
        both = dict(
            time_in_force=common_pb2.IMMEDIATE_OR_CANCEL, self_trade_prevention=common_pb2.CANCEL_INCOMING
        )
        stopped = await insert(client, quantity=5, **common, **both)
        assert (stopped.traded_quantity, stopped.resting_quantity, stopped.cancelled_quantity) == (2, 0, 3)
        events = await drain(client)
        assert kinds(events) == [("OnOrderInserted", 0), ("OnTrade", 0), ("OnOrderCancelled", 2)]
        await client.call(pb.CancelOrderRequest(order_book_id=1, order_id=2))
        await drain(client)
        dry = await insert(client, quantity=5, **common, **both)
        assert (dry.traded_quantity, dry.cancelled_quantity) == (0, 5)
        assert kinds(await drain(client)) == [("OnOrderInserted", 0), ("OnOrderCancelled", 1)]
        client.close()
        await stop_order_book(component)

    run(scenario)


def resting(mirror: BookMirror) -> list[tuple[int, ...]]:
    return [
        (o.book_id, o.order_id, o.side, o.price, o.remaining, o.timestamp, hash(o.owner))
        for book in mirror.books()
        for o in book.resting_orders()
    ]


def engine_resting(exchange: Exchange) -> list[tuple[int, ...]]:
    return [
        (o.book_id, o.order_id, o.side, o.price, o.remaining, o.timestamp, hash(o.owner))
        for info in exchange.books()
        for o in sorted(
            exchange.book(info.book_id).resting_orders(),
            key=lambda o: (o.side, -o.price if o.side == BUY else o.price, o.order_id),
        )
    ]


def random_request(rng: random.Random, request_id: int, exchange: Exchange) -> Message:
    """One request of a random mix on books 1 and 2 (prices 10.00..10.05); amends and cancels mostly of
    resting orders (as their owner or no one), else of any id up to 2 past the last."""
    kind = rng.random()
    owner = rng.choice(OWNERS)
    book = rng.choice((1, 1, 2))
    price = 10.0 + rng.randrange(6) / 100
    ids = exchange.last_order_id
    target = rng.randint(1, ids + 2)
    orders = exchange.resting_orders()
    if orders and rng.random() < 0.8:
        order = rng.choice(orders)
        book, target, owner = order.book_id, order.order_id, rng.choice((order.owner, order.owner, "bob"))
    if kind < 0.5:
        return pb.InsertOrderRequest(
            request_id=request_id,
            order_book_id=book,
            side=rng.choice((BUY, SELL)),  # type: ignore[arg-type]
            price=price,
            quantity=rng.randint(1, 6),
            on_behalf_of_username=owner,
            time_in_force=rng.choice((0, 0, 1, 2)),  # type: ignore[arg-type]
            self_trade_prevention=rng.choice((0, 0, 1, 2)),  # type: ignore[arg-type]
        )
    if kind < 0.8:
        return pb.AmendOrderRequest(
            request_id=request_id,
            order_book_id=book,
            order_id=target,
            price=rng.choice((0.0, 0.0, price)),
            quantity=rng.randint(1, 6),
            on_behalf_of_username=rng.choice(("", owner)),
            self_trade_prevention=rng.choice((0, 1, 2)),  # type: ignore[arg-type]
        )
    if kind < 0.9:
        return pb.CancelOrderRequest(request_id=request_id, order_book_id=book, order_id=target)
    order_ids = rng.sample(range(1, ids + 3), rng.randint(0, 3))
    return pb.CancelOrdersRequest(
        request_id=request_id,
        on_behalf_of_username=owner or "alice",
        order_book_id=rng.choice((0, book)),
        order_ids=order_ids,
        reason=rng.choice(
            (common_pb2.CANCEL_MASS, common_pb2.CANCEL_DISCONNECT, common_pb2.CANCEL_REQUESTED)
        ),
    )


def test_random_mixes_rebuild_the_books_on_every_kind_of_connection(tmp_path: Path) -> None:
    """After random extended requests, every follower's mirror equals the engine and a fresh login's
    replay: a contract-only connection (contract form of amends), an extension_events one, the feed.
    The mirrors are checked at every consistent point along the way too."""

    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        requester = await AsyncClient.connect("127.0.0.1", port, "order_book")
        await requester.call(pb.CreateOrderBookRequest(tick_size=0.01))
        await requester.call(pb.CreateOrderBookRequest(tick_size=0.01))
        owner = Owner()
        feed = feed_for(port, owner)
        feed.start()
        await owner.reset_event.wait()
        answered: Counter[tuple[str, bool]] = Counter()
        for seed in range(8):
            rng = random.Random(seed)
            contract = await connect(port, "contract", False)
            extended = await connect(port, "extended", True)
            mirrors = {contract: BookMirror(), extended: BookMirror()}
            for client, mirror in mirrors.items():
                for event in await drain(client):
                    load_event(mirror, event)
            seen = {"OnOrderAmended": 0, "replaced": 0, "cancels_remainder": 0}
            for i in range(150):
                request = random_request(rng, i + 1, component.exchange)
                response = await requester.request(request)
                answered[type(response).__name__, not response.error_message] += 1  # type: ignore[attr-defined]
                if isinstance(response, pb.InsertOrderResponse) and not response.error_message:
                    assert isinstance(request, pb.InsertOrderRequest)
                    parts = (response.traded_quantity, response.resting_quantity, response.cancelled_quantity)
                    assert sum(parts) == request.quantity
                for client, mirror in mirrors.items():
                    for event in await drain(client):
                        if isinstance(event, pb.OnOrderAmended):
                            seen["OnOrderAmended"] += 1
                        if isinstance(event, pb.OnOrderInserted):
                            seen["replaced"] += bool(event.replaces_order_id)
                            seen["cancels_remainder"] += event.cancels_remainder
                        change = apply_event(mirror, event)
                        if change is not None and change.consistent:  # what info may publish: never crossed
                            book = mirror.book(change.book_id)
                            assert book is not None
                            bid, ask = book.best_bid(), book.best_ask()
                            assert bid is None or ask is None or bid[0] < ask[0], (seed, i, request)
                    assert mirror.consistent  # every request's events arrived: consistent again
                    assert resting(mirror) == engine_resting(component.exchange), (seed, i, request)
            assert all(seen.values()), seen
            fresh = await connect(port, "fresh", False)
            replayed = BookMirror()
            for event in await drain(fresh):
                load_event(replayed, event)
            await feed.barrier()
            assert resting(replayed) == engine_resting(component.exchange)
            assert resting(feed.mirror) == resting(replayed)
            for mirror in mirrors.values():
                assert resting(mirror) == resting(replayed)
                for book in mirror.books():
                    other = replayed.book(book.book_id)
                    assert other is not None
                    assert (book.levels(BUY), book.levels(SELL)) == (other.levels(BUY), other.levels(SELL))
            for client in (contract, extended, fresh):
                client.close()
        assert all(answered[name, True] and answered[name, False] for name, _ in answered), answered
        component.exchange.check_integrity()
        # The tape (TradesRequest) holds every trade of the inserts, places and amends, as told.
        told = [c for c in owner.changes if isinstance(c, TradeApplied)]
        for book_id in (1, 2):
            tape: list[tuple[int, ...]] = []
            before = 0
            while True:
                page = await requester.call(
                    pb.TradesRequest(order_book_id=book_id, before_trade_id=before), expect=pb.TradesResponse
                )
                tape[:0] = [(t.trade_id, t.buy_order_id, t.sell_order_id, t.quantity) for t in page.trades]
                if not page.more:
                    break
                before = page.trades[0].trade_id
            trades = [
                (t.trade_id, t.buy_order_id, t.sell_order_id, t.quantity)
                for t in told
                if t.book_id == book_id
            ]
            assert tape == trades and len(tape) > 20
        await feed.stop()
        requester.close()
        await stop_order_book(component)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_an_amend_while_a_login_replay_streams_is_seen_once(tmp_path: Path) -> None:
    """A login replay of thousands of orders streams a slice at a time; an amend that kept priority
    meanwhile: the replay still shows the quantity at login, and the OnOrderAmended (or the contract
    form) after it takes it to the new one. Both kinds of connection end with the engine's book."""

    async def scenario() -> None:
        component, port = await start_order_book(tmp_path)
        requester = await AsyncClient.connect("127.0.0.1", port, "order_book")
        await requester.call(pb.CreateOrderBookRequest(tick_size=0.01))
        orders = 5000
        sell = common_pb2.SELL
        await asyncio.gather(
            *(  # the last one is the last of the replay (the worst ask, the newest)
                requester.request(
                    pb.InsertOrderRequest(
                        order_book_id=1,
                        side=sell,
                        price=20.0 + (i // 100) / 100,
                        quantity=5,
                        on_behalf_of_username="a",
                    )
                )
                for i in range(orders)
            )
        )
        followers = []
        for extension_events in (False, True):
            client = await AsyncClient.connect("127.0.0.1", port, "order_book")
            client.send(common_pb2.LoginRequest(username="late", extension_events=extension_events))
            followers.append(client)
        response = await requester.call(
            pb.AmendOrderRequest(order_book_id=1, order_id=orders, quantity=2), expect=pb.AmendOrderResponse
        )
        assert response.priority_kept
        for client in followers:
            mirror = BookMirror()
            events = await drain(client)
            replayed = [e for e in events if isinstance(e, pb.OnOrderInserted) and e.order_id == orders]
            assert [e.quantity for e in replayed][:1] == [5]  # the replay: the quantity at login
            assert len(events) > orders  # the amend came after the replay's last order
            for event in events:
                load_event(mirror, event)
            order = mirror.order(orders)
            assert order is not None and order.remaining == 2
            assert resting(mirror) == engine_resting(component.exchange)
            client.close()
        requester.close()
        await stop_order_book(component)

    asyncio.run(asyncio.wait_for(scenario(), 60))
