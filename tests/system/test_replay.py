"""The login replay streams: a day of many resting orders arrives whole, in order, then live events.

Before the replay streamed, a login to a day of about 260,000 resting orders
was dropped as a slow consumer (the whole replay was queued at once and
counted against maxUnsentBytes, 8 MiB). Here a client logs in to a day of
RESTING orders (more than 8 MiB of replay), and while its replay streams
another client trades against a resting order and cancels another: the
replay shows the state at login, the live events follow it, and a barrier
sent after them is answered last.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import pytest

from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import READ_SIZE, FrameDecoder, encode_frame

from .helpers import BUY, SELL, Exchange, insert

pytestmark = pytest.mark.xdist_group("heavy")
"""Heavy (large days, floods, installs): one at a time on one worker, so the rest stay responsive."""

RESTING = 300_000
WINDOW = 5_000
"""Inserts sent per write while building the day (their responses read before the next window)."""
USERNAME = "desk-07-trader-01"
"""Every order's owner: a realistic length makes the replay about 17 MB (twice maxUnsentBytes)."""
RECV_TIMEOUT = 60.0
"""Seconds allowed for each read: a loaded machine streams 300,000 orders in a few seconds."""


def _frames(sock: socket.socket, decoder: FrameDecoder) -> Iterator[tuple[int, bytes]]:
    while True:
        data = sock.recv(READ_SIZE)
        assert data, "connection closed by the order book"
        yield from decoder.feed(data)


def _build_day(exchange: Exchange, book: int, count: int = RESTING) -> list[tuple[int, int, int, int]]:
    """`count` non-crossing orders (pipelined raw frames); their (order_id, side, price ticks, quantity)."""
    rng = random.Random(5)
    orders: list[tuple[int, int, int, int]] = []
    sock = exchange.raw_socket("order_book")
    sock.settimeout(RECV_TIMEOUT)
    decoder = FrameDecoder()
    received = _frames(sock, decoder)
    for _ in range(count // WINDOW):
        specs = []
        frames = []
        for _ in range(WINDOW):
            side = rng.choice((BUY, SELL))
            ticks = rng.randint(1, 2000) if side == BUY else rng.randint(2001, 4000)
            quantity = rng.randint(1, 100)
            specs.append((side, ticks, quantity))
            request = ob.InsertOrderRequest(
                order_book_id=book,
                side=side,
                price=ticks / 100,
                quantity=quantity,
                on_behalf_of_username=USERNAME,
            )
            frames.append(encode_frame(ob.INSERT_ORDER_REQUEST, request.SerializeToString()))
        sock.sendall(b"".join(frames))
        for side, ticks, quantity in specs:
            msg_type, payload = next(received)
            assert msg_type == ob.INSERT_ORDER_RESPONSE
            response = ob.InsertOrderResponse.FromString(payload)
            assert not response.error_message and response.traded_quantity == 0
            orders.append((response.order_id, int(side), ticks, quantity))
    assert len(orders) == count and orders[-1][0] - orders[0][0] == count - 1
    sock.close()
    return orders


def test_a_login_to_a_day_of_many_resting_orders_gets_the_whole_replay_then_live_events(
    exchange: Exchange,
) -> None:
    book = exchange.create_book(0.01)
    orders = _build_day(exchange, book)
    bids = sorted((o for o in orders if o[1] == BUY), key=lambda o: (-o[2], o[0]))
    asks = sorted((o for o in orders if o[1] == SELL), key=lambda o: (o[2], o[0]))
    expected = {o[0]: o[3] for o in orders}
    best_ask, cancelled = asks[0], bids[len(bids) // 2]

    watcher = exchange.raw_socket("order_book")
    watcher.settimeout(RECV_TIMEOUT)
    decoder = FrameDecoder()
    received = _frames(watcher, decoder)
    login = common_pb2.LoginRequest(request_id=1, username="watcher")
    watcher.sendall(encode_frame(0, login.SerializeToString()))
    msg_type, payload = next(received)
    assert msg_type == 1 and not common_pb2.LoginResponse.FromString(payload).error_message

    # The replay is being streamed: change the book under it.
    actor = exchange.order_book()
    trade = insert(actor, book, BUY, best_ask[2] / 100, 1, "taker")
    assert trade.traded_quantity == 1 and not trade.error_message
    cancel = actor.request(ob.CancelOrderRequest(order_book_id=book, order_id=cancelled[0]), check=True)
    assert isinstance(cancel, ob.CancelOrderResponse)
    watcher.sendall(encode_frame(ob.BARRIER_REQUEST, ob.BarrierRequest(request_id=2).SerializeToString()))

    msg_type, payload = next(received)
    assert msg_type == ob.ON_ORDER_BOOK_CREATED
    assert ob.OnOrderBookCreated.FromString(payload).order_book_id == book
    replayed = []
    for _ in range(RESTING):
        msg_type, payload = next(received)
        assert msg_type == ob.ON_ORDER_INSERTED
        event = ob.OnOrderInserted.FromString(payload)
        assert not event.trade_ids
        assert event.username == USERNAME
        replayed.append((event.order_id, event.side, round(event.price * 100), event.quantity))
    assert [r[0] for r in replayed] == [o[0] for o in bids + asks]  # priority order
    assert all(r[3] == expected[r[0]] for r in replayed)  # remaining at login
    assert replayed[len(bids)] == best_ask  # the order traded after login, as it was at login

    live = [next(received) for _ in range(4)]
    assert [t for t, _ in live] == [
        ob.ON_ORDER_INSERTED,
        ob.ON_TRADE,
        ob.ON_ORDER_CANCELLED,
        ob.BARRIER_RESPONSE,
    ]
    assert ob.OnOrderInserted.FromString(live[0][1]).order_id == trade.order_id
    assert ob.OnTrade.FromString(live[1][1]).sell_order_id == best_ask[0]
    assert ob.OnOrderCancelled.FromString(live[2][1]).order_id == cancelled[0]
    assert ob.BarrierResponse.FromString(live[3][1]).request_id == 2
    assert decoder.buffered == 0
    watcher.close()


CROWD = 250
"""Logins at once that never read (item 8 of issue 7: they froze every other client for up to 9.6 s)."""
CROWD_DAY = 100_000


def test_a_crowd_of_logins_that_never_read_does_not_hold_up_another_client(exchange: Exchange) -> None:
    """Before the replay streamed, each login built its whole replay in one go: 250 logins to a day of
    100,000 resting orders kept the order book busy for tens of seconds, and another client's insert
    waited far past the 3 s the contract allows. Now every insert is answered (in milliseconds: see
    benchmarks/replay_load.py) while the crowd stays connected."""
    book = exchange.create_book()
    _build_day(exchange, book, CROWD_DAY)
    login = encode_frame(
        ob.LOGIN_REQUEST, common_pb2.LoginRequest(request_id=1, username="crowd").SerializeToString()
    )
    crowd = [exchange.raw_socket("order_book") for _ in range(CROWD)]
    try:
        for sock in crowd:
            sock.sendall(login)
        trader = exchange.order_book()
        for i in range(100):
            response = insert(trader, book, BUY, 1.0 + (i % 10) / 100, 1)  # each within TIMEOUT, 3 s
            assert not response.error_message
        barrier = trader.request(ob.BarrierRequest(), check=True)
        assert isinstance(barrier, ob.BarrierResponse)
    finally:
        for sock in crowd:
            sock.close()
