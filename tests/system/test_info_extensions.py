"""Info's Optivex extensions (proto/info.proto, types 40-49, fields >= 100), through the deployment runner.

Which rule each test covers:

- unsubscribe (OrderBookUnsubscribeRequest): nothing of the subscription after its response (a barrier
  after changes another subscriber was sent), and subscribing again afterwards:
  `test_unsubscribe_stops_the_subscriptions_updates`; trades go on while the other type is held and stop
  once none is: `test_trades_stop_only_when_no_subscription_on_the_symbol_remains`; errors (held only
  as the other type, never held, unknown symbol, unknown type, twice, before login) change nothing:
  `test_unsubscribing_what_is_not_held_is_an_error`; a connection's subscribes and unsubscribes sent in
  one write take effect in the order sent: `test_pipelined_subscribes_and_unsubscribes_take_effect_in_order`;
- depth limit (OrderBookSubscribeRequest.depth_limit): only the best N levels of each side:
  `test_a_depth_limit_shows_only_the_best_levels`; updated only when those changed, while an unlimited
  subscriber gets every change: `test_a_change_below_the_limit_sends_the_limited_subscriber_nothing`;
  subscribing again replaces the limit: `test_subscribing_again_replaces_the_depth_limit`; errors:
  `test_a_negative_depth_limit_is_an_error`, `test_a_depth_limit_with_top_of_book_is_an_error`.
"""

from __future__ import annotations

from typing import cast

from google.protobuf.message import Message

from optivex.proto import info_pb2

from .helpers import (
    BUY,
    PRICE_DEPTH_BOOK,
    SELL,
    TOP_OF_BOOK,
    Exchange,
    SyncClient,
    cancel,
    insert,
    subscribe,
    until_barrier,
)
from .test_info import Depth, Top, create, depth, drained, next_book, shown, top

BOOK_MESSAGES = (info_pb2.OnTopOfBook, info_pb2.OnPriceDepthBook)
LADDER: Depth = ([(10.0, 1), (9.9, 2), (9.8, 3)], [(10.1, 4), (10.2, 5), (10.3, 6)])
"""The book `ladder` makes."""


def ladder(exchange: Exchange, book: int) -> list[int]:
    """Rest LADDER's orders (one per level) in `book`; their order ids, bids best first then asks."""
    trader = exchange.order_book()
    ids = []
    for side, levels in ((BUY, LADDER[0]), (SELL, LADDER[1])):
        for price, quantity in levels:
            response = insert(trader, book, side, price, quantity)
            assert response.error_message == ""
            ids.append(response.order_id)
    return ids


def best(levels: int) -> Depth:
    """LADDER's best `levels` of each side."""
    return (LADDER[0][:levels], LADDER[1][:levels])


def unsubscribe_request(request_id: int, symbol: str, kind: int) -> info_pb2.OrderBookUnsubscribeRequest:
    return info_pb2.OrderBookUnsubscribeRequest(
        request_id=request_id,
        instrument_symbol=symbol,
        subscription_type=cast(info_pb2.SubscriptionType, kind),
    )


def unsubscribe(client: SyncClient, symbol: str, kind: int, request_id: int = 7) -> str:
    """Unsubscribe; the response must be the very next message: its error_message ("" on success)."""
    client.send(unsubscribe_request(request_id, symbol, kind))
    response = client.receive_as(info_pb2.OrderBookUnsubscribeResponse)
    assert response.request_id == request_id, response
    return response.error_message


def depth_request(request_id: int, symbol: str, limit: int) -> info_pb2.OrderBookSubscribeRequest:
    return info_pb2.OrderBookSubscribeRequest(
        request_id=request_id, instrument_symbol=symbol, subscription_type=PRICE_DEPTH_BOOK, depth_limit=limit
    )


def subscribe_depth(client: SyncClient, symbol: str, limit: int) -> Depth:
    """A PRICE_DEPTH_BOOK subscription with depth_limit `limit`: the response (success) is the very next
    message, the snapshot the one after; what the snapshot shows."""
    client.send(depth_request(9, symbol, limit))
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert (response.request_id, response.error_message) == (9, ""), response
    snapshot = next_book(client, info_pb2.OnPriceDepthBook)
    assert snapshot.instrument_symbol == symbol
    return depth(snapshot)


def subscribe_error(client: SyncClient, request: info_pb2.OrderBookSubscribeRequest) -> str:
    """A subscribe that must fail: its error_message; nothing follows the response."""
    client.send(request)
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert response.request_id == request.request_id and response.error_message, response
    assert until_barrier(client) == [], f"a message after the error for {request}"
    return response.error_message


def books(client: SyncClient, count: int) -> dict[type[Message], Top | Depth]:
    """The next `count` messages, book messages of distinct types (one change, in either order)."""
    got = {}
    for _ in range(count):
        message = next_book(client, BOOK_MESSAGES)
        assert type(message) not in got, f"two {type(message).__name__} for one change"
        got[type(message)] = shown(message)
    return got


# ---------------------------------------------------------------- unsubscribe


def test_unsubscribe_stops_the_subscriptions_updates(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    watcher = drained(info.info("bob"), 1)
    for subscriber in (client, watcher):
        subscribe(subscriber, "ABC", TOP_OF_BOOK)
        subscribe(subscriber, "ABC", PRICE_DEPTH_BOOK)
    insert(trader, book, BUY, 10.0, 1)
    for subscriber in (client, watcher):
        assert books(subscriber, 2) == {
            info_pb2.OnTopOfBook: ((10.0, 1), None),
            info_pb2.OnPriceDepthBook: ([(10.0, 1)], []),
        }
    assert unsubscribe(client, "ABC", TOP_OF_BOOK) == ""
    insert(trader, book, BUY, 10.5, 2)  # a change of both
    assert len(books(watcher, 2)) == 2
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == ([(10.5, 2), (10.0, 1)], [])
    assert until_barrier(client) == []  # and no top of book
    assert unsubscribe(client, "ABC", PRICE_DEPTH_BOOK) == ""
    # Changes the watcher was sent: info had published them, and nothing of them went to the client.
    sell = insert(trader, book, SELL, 11.0, 3)
    assert len(books(watcher, 2)) == 2
    cancel(trader, book, sell.order_id)
    assert len(books(watcher, 2)) == 2
    assert until_barrier(client) == []
    # subscribing again: a fresh snapshot, then updates as before
    assert top(subscribe(client, "ABC", TOP_OF_BOOK)) == ((10.5, 2), None)
    insert(trader, book, BUY, 10.5, 1)
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.5, 3), None)
    assert until_barrier(client) == []


def test_trades_stop_only_when_no_subscription_on_the_symbol_remains(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    other = create(info, "DEF").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 2)
    watcher = drained(info.info("bob"), 2)
    subscribe(watcher, "ABC", TOP_OF_BOOK)
    subscribe(client, "ABC", TOP_OF_BOOK)
    subscribe(client, "ABC", PRICE_DEPTH_BOOK)
    subscribe(client, "DEF", TOP_OF_BOOK)
    insert(trader, book, SELL, 10.0, 5)
    insert(trader, other, SELL, 20.0, 5)
    assert top(next_book(watcher, info_pb2.OnTopOfBook)) == (None, (10.0, 5))
    assert len(books(client, 2)) == 2
    assert top(next_book(client, info_pb2.OnTopOfBook)) == (None, (20.0, 5))  # DEF's
    assert unsubscribe(client, "ABC", TOP_OF_BOOK) == ""
    # it still holds ABC's depth: the trade, then the depth update (and no top of book)
    trade_id = insert(trader, book, BUY, 10.0, 1).trade_ids[0]
    assert client.receive_as(info_pb2.OnTrade).trade_id == trade_id
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == ([], [(10.0, 4)])
    assert until_barrier(client) == []
    assert unsubscribe(client, "ABC", PRICE_DEPTH_BOOK) == ""
    # no subscription on ABC: no trade; the watcher is sent them, so info had published them
    for left in (4, 3, 2):
        if left < 4:
            trade_id = insert(trader, book, BUY, 10.0, 1).trade_ids[0]
        assert watcher.receive_as(info_pb2.OnTrade).trade_id == trade_id
        assert top(next_book(watcher, info_pb2.OnTopOfBook)) == (None, (10.0, left))
    assert until_barrier(client) == []
    # DEF's trades still reach it
    trade_id = insert(trader, other, BUY, 20.0, 1).trade_ids[0]
    trade = client.receive_as(info_pb2.OnTrade)
    assert (trade.trade_id, trade.instrument_symbol) == (trade_id, "DEF")
    assert top(next_book(client, info_pb2.OnTopOfBook)) == (None, (20.0, 4))
    assert until_barrier(client) == []


def test_unsubscribing_what_is_not_held_is_an_error(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    create(info, "DEF")
    trader = info.order_book()
    anonymous = info.info(None)
    anonymous.send(unsubscribe_request(3, "ABC", TOP_OF_BOOK))
    response = anonymous.receive_as(info_pb2.OrderBookUnsubscribeResponse)
    assert response.request_id == 3 and response.error_message  # before login
    assert until_barrier(anonymous) == []
    client = drained(info.info(), 2)
    subscribe(client, "ABC", TOP_OF_BOOK)
    for symbol, kind, name in [
        ("ABC", PRICE_DEPTH_BOOK, "PRICE_DEPTH_BOOK"),  # held only as the other type
        ("DEF", TOP_OF_BOOK, "TOP_OF_BOOK"),  # never held
        ("NOPE", TOP_OF_BOOK, "TOP_OF_BOOK"),  # unknown symbol
        ("abc", TOP_OF_BOOK, "TOP_OF_BOOK"),
        ("", PRICE_DEPTH_BOOK, "PRICE_DEPTH_BOOK"),
    ]:
        error = unsubscribe(client, symbol, kind)
        assert error == f"not subscribed to {symbol!r} {name}", (symbol, kind, error)
        assert until_barrier(client) == []
    for bad in (2, 7, 2**31 - 1, -1):
        error = unsubscribe(client, "ABC", bad)
        assert error == f"unknown subscription type {bad}", error
        assert until_barrier(client) == []
    # the errors changed nothing: ABC's top of book still reaches it
    insert(trader, book, BUY, 10.0, 1)
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.0, 1), None)
    assert unsubscribe(client, "ABC", TOP_OF_BOOK) == ""
    assert unsubscribe(client, "ABC", TOP_OF_BOOK) == "not subscribed to 'ABC' TOP_OF_BOOK"  # twice
    assert until_barrier(client) == []


def test_pipelined_subscribes_and_unsubscribes_take_effect_in_order(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    client.send(  # in one write: a subscribe waits for the feed's barrier, the unsubscribe after it for it
        info_pb2.OrderBookSubscribeRequest(
            request_id=1, instrument_symbol="ABC", subscription_type=TOP_OF_BOOK
        ),
        unsubscribe_request(2, "ABC", TOP_OF_BOOK),
        depth_request(3, "ABC", 0),
        unsubscribe_request(4, "ABC", PRICE_DEPTH_BOOK),
        depth_request(5, "ABC", 1),
    )
    got = [client.receive() for _ in range(8)]
    assert [
        (type(m).__name__, getattr(m, "request_id", None), getattr(m, "error_message", None)) for m in got
    ] == [
        ("OrderBookSubscribeResponse", 1, ""),
        ("OnTopOfBook", None, None),
        ("OrderBookUnsubscribeResponse", 2, ""),
        ("OrderBookSubscribeResponse", 3, ""),
        ("OnPriceDepthBook", None, None),
        ("OrderBookUnsubscribeResponse", 4, ""),
        ("OrderBookSubscribeResponse", 5, ""),
        ("OnPriceDepthBook", None, None),
    ]
    # what it holds in the end: the depth (limit 1) alone
    insert(trader, book, BUY, 10.0, 1)
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == ([(10.0, 1)], [])
    insert(trader, book, BUY, 9.0, 1)  # below level 1: nothing
    watcher = drained(info.info("bob"), 1)
    assert subscribe_depth(watcher, "ABC", 0) == ([(10.0, 1), (9.0, 1)], [])  # info has it
    assert until_barrier(client) == []


# ---------------------------------------------------------------- depth limit


def test_a_depth_limit_shows_only_the_best_levels(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    client = drained(info.info(), 1)
    assert subscribe_depth(client, "ABC", 2) == ([], [])  # an empty book
    assert unsubscribe(client, "ABC", PRICE_DEPTH_BOOK) == ""
    ladder(info, book)
    for limit, expected in [
        (1, best(1)),
        (2, best(2)),
        (3, LADDER),
        (4, LADDER),
        (0, LADDER),
        (2**31 - 1, LADDER),
    ]:
        assert subscribe_depth(client, "ABC", limit) == expected, limit
    assert until_barrier(client) == []


def test_a_change_below_the_limit_sends_the_limited_subscriber_nothing(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    ids = ladder(info, book)
    trader = info.order_book()
    limited = drained(info.info(), 1)
    same = drained(info.info("carol"), 1)
    every = drained(info.info("bob"), 1)
    assert subscribe_depth(limited, "ABC", 2) == subscribe_depth(same, "ABC", 2) == best(2)
    assert depth(subscribe(every, "ABC", PRICE_DEPTH_BOOK)) == LADDER
    bids, asks = LADDER
    # below level 2 of either side: the unlimited subscriber is sent each change, the limited ones nothing
    insert(trader, book, BUY, 9.7, 7)
    assert depth(next_book(every, info_pb2.OnPriceDepthBook)) == ([*bids, (9.7, 7)], asks)
    insert(trader, book, SELL, 10.3, 1)
    asks = [*asks[:2], (10.3, 7)]
    assert depth(next_book(every, info_pb2.OnPriceDepthBook)) == ([*bids, (9.7, 7)], asks)
    bids = [*bids, (9.7, 7)]
    assert until_barrier(limited) == [] and until_barrier(same) == []
    # level 2 changes: both limited subscribers are sent their 2 levels
    insert(trader, book, BUY, 9.9, 1)
    bids[1] = (9.9, 3)
    for client in (limited, same):
        assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == (bids[:2], asks[:2])
    assert depth(next_book(every, info_pb2.OnPriceDepthBook)) == (bids, asks)
    # the best bid leaves: level 3 moves up into view
    cancel(trader, book, ids[0])
    bids = bids[1:]
    for client in (limited, same):
        assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == (bids[:2], asks[:2])
    assert depth(next_book(every, info_pb2.OnPriceDepthBook)) == (bids, asks)
    # a trade reaches every subscriber, then the update of what each shows
    trade_id = insert(trader, book, BUY, 10.1, 1).trade_ids[0]
    asks[0] = (10.1, 3)
    for client in (limited, same, every):
        assert client.receive_as(info_pb2.OnTrade).trade_id == trade_id
    for client in (limited, same):
        assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == (bids[:2], asks[:2])
    assert depth(next_book(every, info_pb2.OnPriceDepthBook)) == (bids, asks)
    for client in (limited, same, every):
        assert until_barrier(client) == []


def test_subscribing_again_replaces_the_depth_limit(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    ladder(info, book)
    trader = info.order_book()
    client = drained(info.info(), 1)
    watcher = drained(info.info("bob"), 1)
    subscribe(watcher, "ABC", PRICE_DEPTH_BOOK)
    assert subscribe_depth(client, "ABC", 1) == best(1)
    assert subscribe_depth(client, "ABC", 3) == LADDER  # a fresh snapshot with 3 levels
    insert(trader, book, BUY, 9.8, 1)  # level 3: shown now
    bids, asks = [*LADDER[0][:2], (9.8, 4)], LADDER[1]
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == (bids, asks)
    assert depth(next_book(watcher, info_pb2.OnPriceDepthBook)) == (bids, asks)
    assert subscribe_depth(client, "ABC", 1) == (bids[:1], asks[:1])
    insert(trader, book, BUY, 9.8, 1)  # level 3: no longer shown
    bids[2] = (9.8, 5)
    assert depth(next_book(watcher, info_pb2.OnPriceDepthBook)) == (bids, asks)
    assert until_barrier(client) == []
    assert subscribe_depth(client, "ABC", 0) == (bids, asks)  # every level again
    insert(trader, book, SELL, 10.4, 1)
    asks = [*asks, (10.4, 1)]
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == (bids, asks)
    assert until_barrier(client) == []


def test_a_negative_depth_limit_is_an_error(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    client = drained(info.info(), 1)
    for limit in (-1, -2, -(2**31)):
        error = subscribe_error(client, depth_request(6, "ABC", limit))
        assert "depth_limit" in error and str(limit) in error, error
    # nothing was subscribed: a change reaches a subscriber, not this client
    watcher = drained(info.info("bob"), 1)
    subscribe(watcher, "ABC", PRICE_DEPTH_BOOK)
    insert(info.order_book(), book, BUY, 10.0, 1)
    assert depth(next_book(watcher, info_pb2.OnPriceDepthBook)) == ([(10.0, 1)], [])
    assert until_barrier(client) == []


def test_a_depth_limit_with_top_of_book_is_an_error(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    client = drained(info.info(), 1)
    for limit in (1, 5, 2**31 - 1, -1):
        request = info_pb2.OrderBookSubscribeRequest(
            request_id=8, instrument_symbol="ABC", subscription_type=TOP_OF_BOOK, depth_limit=limit
        )
        error = subscribe_error(client, request)
        assert "depth_limit" in error, error
    assert top(subscribe(client, "ABC", TOP_OF_BOOK)) == (None, None)  # without a limit: subscribed
    insert(info.order_book(), book, SELL, 10.0, 1)
    assert top(next_book(client, info_pb2.OnTopOfBook)) == (None, (10.0, 1))
    assert until_barrier(client) == []
