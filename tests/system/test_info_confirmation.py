"""Section 4's confirmation rule for info, and section 5's "the snapshot reflects every change already told".

Which rule each test covers:

- once a client holds a successful CreateInstrumentResponse, info knows the symbol (never "unknown
  instrument"), 200 times across 4 parallel clients: `test_create_then_subscribe_at_once_in_parallel`;
- a login right after a confirmed creation is announced that instrument with the login (before the
  answer to the next request on that connection), once: `test_a_login_right_after_a_creation_is_announced_it`;
- the snapshot reflects every order-book change a client had been told of (an InsertOrderResponse or a
  CancelOrderResponse received) when the subscribe arrived, a few dozen times:
  `test_the_snapshot_reflects_every_change_already_told`.
"""

from __future__ import annotations

from typing import cast

from optivex.proto import admin_pb2, common_pb2, info_pb2

from .helpers import (
    BUY,
    PRICE_DEPTH_BOOK,
    SELL,
    TOP_OF_BOOK,
    Exchange,
    SyncClient,
    cancel,
    create_then_at_once,
    insert,
    until_barrier,
)

CLIENTS = 4
CREATIONS = 200
"""Instruments created, and at once subscribed to, across the parallel clients."""
SNAPSHOT_ROUNDS = 36
"""Changes, each followed at once by a subscribe whose snapshot must show it."""


def test_create_then_subscribe_at_once_in_parallel(info: Exchange) -> None:
    pairs = [(info.admin(user), info.info(user)) for user in ("admin", "alice", "bob", "carol")[:CLIENTS]]
    for _, market in pairs:
        until_barrier(market)
    created: list[str] = []

    def subscribe_at_once(market: SyncClient, symbol: str, n: int) -> str:
        created.append(symbol)
        kind = TOP_OF_BOOK if n % 2 else PRICE_DEPTH_BOOK
        answer = market.request(
            info_pb2.OrderBookSubscribeRequest(instrument_symbol=symbol, subscription_type=kind),
            expect=info_pb2.OrderBookSubscribeResponse,
        )
        return answer.error_message

    failures = create_then_at_once(pairs, CREATIONS, subscribe_at_once)
    assert failures == []
    assert len(created) == CREATIONS
    # Each info client got the snapshot of each of its subscriptions (an empty book), and one
    # OnInstrument per instrument: read until it has them all, then nothing more.
    for index, (_, market) in enumerate(pairs):
        announced: list[str] = []
        snapshots: list[str] = []
        while len(announced) < CREATIONS or len(snapshots) < CREATIONS // CLIENTS:
            message = market.receive()
            if isinstance(message, info_pb2.OnInstrument):
                announced.append(message.instrument.symbol)
            elif isinstance(message, info_pb2.OnTopOfBook):
                assert not message.HasField("best_bid") and not message.HasField("best_ask"), message
                snapshots.append(message.instrument_symbol)
            else:
                assert isinstance(message, info_pb2.OnPriceDepthBook), message
                assert (len(message.bids), len(message.asks)) == (0, 0), message
                snapshots.append(message.instrument_symbol)
        assert sorted(announced) == sorted(created)
        assert snapshots == [f"C{index}_{n}" for n in range(CREATIONS // CLIENTS)]
        assert until_barrier(market) == []


def test_a_login_right_after_a_creation_is_announced_it(info: Exchange) -> None:
    admin = info.admin()
    for n in range(20):
        symbol = f"L{n}"
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
            ),
            check=True,
            expect=admin_pb2.CreateInstrumentResponse,
        )
        market = info.info()
        # "one OnInstrument per existing instrument" after the login: the confirmed one included
        burst = until_barrier(market)
        assert all(isinstance(m, info_pb2.OnInstrument) for m in burst), burst
        announced = {m.instrument.symbol: m for m in cast(list[info_pb2.OnInstrument], burst)}
        assert len(announced) == len(burst), "an instrument announced twice"
        assert sorted(announced) == sorted(f"L{i}" for i in range(n + 1)), f"round {n}: {sorted(announced)}"
        assert announced[symbol].order_book_id == response.order_book_id
        assert announced[symbol].created_timestamp == response.created_timestamp
        market.close()


def test_the_snapshot_reflects_every_change_already_told(info: Exchange) -> None:
    admin_book = info.create_instrument("ABC", 0.01)
    trader = info.order_book()
    # Logged in and idle beforehand: each round's subscribe is sent the moment the change is told.
    markets = [info.info() for _ in range(SNAPSHOT_ROUNDS)]
    for market in markets:
        market.receive_as(info_pb2.OnInstrument)
        assert until_barrier(market) == []
    bids: dict[int, tuple[float, int]] = {}  # order_id -> (price, quantity) of the resting bids
    for n, market in enumerate(markets):
        if n % 3 == 2 and bids:  # cancel the best bid
            best = max(bids, key=lambda order: (bids[order][0], -order))
            assert cancel(trader, admin_book, best).error_message == ""
            del bids[best]
        elif n % 5 == 4 and bids:  # a sell that takes the whole best level
            best_price = max(price for price, _ in bids.values())
            at_best = sum(q for price, q in bids.values() if price == best_price)
            assert insert(trader, admin_book, SELL, best_price, at_best).traded_quantity == at_best
            bids = {order: level for order, level in bids.items() if level[0] != best_price}
        else:  # a new best bid
            price = round(10.0 + 0.01 * n, 2)
            response = insert(trader, admin_book, BUY, price, n + 1)
            assert response.error_message == ""
            bids[response.order_id] = (price, n + 1)
        levels: dict[float, int] = {}
        for price, quantity in bids.values():
            levels[price] = levels.get(price, 0) + quantity
        expected = sorted(levels.items(), reverse=True)
        kind = TOP_OF_BOOK if n % 2 else PRICE_DEPTH_BOOK
        market.send(
            info_pb2.OrderBookSubscribeRequest(
                request_id=n + 1,
                instrument_symbol="ABC",
                subscription_type=kind,
            )
        )
        response_message = market.receive_as(info_pb2.OrderBookSubscribeResponse)
        assert (response_message.request_id, response_message.error_message) == (n + 1, "")
        if kind == TOP_OF_BOOK:
            snapshot = market.receive_as(info_pb2.OnTopOfBook)
            bid = (
                (snapshot.best_bid.price, snapshot.best_bid.quantity)
                if snapshot.HasField("best_bid")
                else None
            )
            assert (bid, snapshot.HasField("best_ask")) == (expected[0] if expected else None, False), n
        else:
            depth = market.receive_as(info_pb2.OnPriceDepthBook)
            assert ([(b.price, b.quantity) for b in depth.bids], list(depth.asks)) == (expected, []), n
        market.close()
