"""Section 5 of the contract: the info component's market data, through the deployment runner.

Which rule each test covers:

- login, OnInstrument after login and later, none for a bare book:
  `test_subscribe_before_login_is_an_error`, `test_on_instrument_for_each_existing_instrument_after_login`,
  `test_on_instrument_for_each_instrument_created_later`, `test_a_bare_order_book_is_no_instrument`,
  `test_pushed_messages_go_only_to_logged_in_connections`,
  `test_a_failed_login_may_be_retried_and_a_second_login_is_refused` (section 2's login rule);
- subscribe errors: `test_unknown_symbol_is_an_error`, `test_unknown_subscription_type_is_an_error`;
- response then snapshot at once, empty book: `test_response_then_snapshot_of_an_empty_book`,
  `test_response_then_snapshot_of_a_book_with_orders`;
- a message when what it shows changes, none otherwise: `test_an_update_when_what_it_shows_changes`,
  `test_a_change_below_the_top_sends_no_top_of_book`;
- re-subscribe and both types: `test_subscribing_again_gives_a_fresh_snapshot`,
  `test_both_types_on_one_symbol`;
- OnTopOfBook totals and unset sides: `test_top_of_book_shows_the_total_quantity_of_the_best_level`;
- OnPriceDepthBook order: `test_depth_shows_every_level_best_first`;
- exact prices: `test_prices_are_exact_four_decimal_doubles`;
- OnTrade to exactly the subscribers, once, in matching order, before the book update, never half a
  sweep, never crossed: `test_trades_reach_exactly_the_subscribers_before_the_book_update`,
  `test_a_sell_sweep_that_rests_its_remainder`, `test_book_messages_never_show_a_crossed_book`.

Section 4's confirmation rule and "the snapshot reflects every change already told" are in
test_info_confirmation.py; bad inputs and the lifecycle in test_info_bad_inputs.py.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf.message import Message

from optivex.proto import admin_pb2, common_pb2, info_pb2
from optivex.proto import order_book_pb2 as ob

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

Level = tuple[float, int]
Top = tuple[Level | None, Level | None]
Depth = tuple[list[Level], list[Level]]
BOOK_MESSAGES = (info_pb2.OnTopOfBook, info_pb2.OnPriceDepthBook)


def create(
    exchange: Exchange, symbol: str, tick: float = 0.01, **fields: Any
) -> admin_pb2.CreateInstrumentResponse:
    """Create an instrument through admin (success required) and return the response."""
    admin = getattr(exchange, "_info_admin", None) or exchange.admin()
    exchange._info_admin = admin  # type: ignore[attr-defined]
    response = admin.request(
        admin_pb2.CreateInstrumentRequest(
            instrument=common_pb2.Instrument(symbol=symbol, **fields), tick_size=tick
        ),
        check=True,
        expect=admin_pb2.CreateInstrumentResponse,
    )
    return response


def level(message: info_pb2.PriceLevel) -> Level:
    return (message.price, message.quantity)


def top(message: Message) -> Top:
    """(best bid, best ask) of an OnTopOfBook, each None while that side is unset."""
    assert isinstance(message, info_pb2.OnTopOfBook), message
    return (
        level(message.best_bid) if message.HasField("best_bid") else None,
        level(message.best_ask) if message.HasField("best_ask") else None,
    )


def depth(message: Message) -> Depth:
    """(bids, asks) of an OnPriceDepthBook."""
    assert isinstance(message, info_pb2.OnPriceDepthBook), message
    return ([level(b) for b in message.bids], [level(a) for a in message.asks])


def shown(message: Message) -> Top | Depth:
    """What a book message shows (its timestamp aside)."""
    if isinstance(message, info_pb2.OnTopOfBook):
        return top(message)
    return depth(message)


def assert_consistent(message: Message) -> None:
    """A book message shows a book that is not crossed, with levels in order and positive quantities."""
    if isinstance(message, info_pb2.OnTopOfBook):
        bid, ask = top(message)
        bids, asks = ([bid] if bid else []), ([ask] if ask else [])
    else:
        bids, asks = depth(message)
    assert all(q > 0 for _, q in bids + asks), message
    assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True), (
        f"bids not best first: {message}"
    )
    assert [p for p, _ in asks] == sorted({p for p, _ in asks}), f"asks not best first: {message}"
    if bids and asks:
        assert bids[0][0] < asks[0][0], f"crossed book: {message}"


def next_book(client: SyncClient, cls: type[Message] | tuple[type[Message], ...]) -> Any:
    """The next message, which must be a consistent book message of class `cls` (or one of them)."""
    message = client.receive()
    assert isinstance(message, cls), f"expected {cls}, got {type(message).__name__}: {message}"
    assert_consistent(message)
    return message


def drained(client: SyncClient, instruments: int) -> SyncClient:
    """`client` after its OnInstrument for each of the day's `instruments` arrived, and nothing else.

    Waits for each (test_info_confirmation.py checks that they come with the login).
    """
    for _ in range(instruments):
        client.receive_as(info_pb2.OnInstrument)
    assert until_barrier(client) == []
    return client


def test_subscribe_before_login_is_an_error(info: Exchange) -> None:
    create(info, "ABC")
    client = info.info(None)
    client.send(info_pb2.OrderBookSubscribeRequest(request_id=3, instrument_symbol="ABC"))
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert response.request_id == 3 and response.error_message
    assert until_barrier(client) == []  # no snapshot, no OnInstrument
    client.login("bob", "bob")
    announced = client.receive_as(info_pb2.OnInstrument)
    assert announced.instrument.symbol == "ABC"
    assert top(subscribe(client, "ABC")) == (None, None)


def test_a_failed_login_may_be_retried_and_a_second_login_is_refused(info: Exchange) -> None:
    create(info, "ABC")
    client = info.info(None)
    refused = client.request(common_pb2.LoginRequest(username="alice", password="wrong"))
    assert isinstance(refused, common_pb2.LoginResponse) and refused.error_message
    assert until_barrier(client) == []  # not logged in: no OnInstrument
    client.login("alice", "alice")
    assert client.receive_as(info_pb2.OnInstrument).instrument.symbol == "ABC"
    again = client.request(common_pb2.LoginRequest(username="alice", password="alice"))
    assert isinstance(again, common_pb2.LoginResponse) and again.error_message
    assert until_barrier(client) == []  # the refused login sent no second OnInstrument


def test_on_instrument_for_each_existing_instrument_after_login(info: Exchange) -> None:
    responses = [
        create(info, "ABC", 0.05, description="A B C", currency="GBP", multiplier=10),
        create(info, "DEF", 0.0001),
        create(info, "G.H-1_x", 1.0, currency="USD"),
    ]
    client = info.info("carol")
    announced = until_barrier(client)
    assert all(isinstance(m, info_pb2.OnInstrument) for m in announced), announced
    got = sorted((cast(info_pb2.OnInstrument, m) for m in announced), key=lambda m: m.order_book_id)
    assert [m.order_book_id for m in got] == [r.order_book_id for r in responses]
    assert [m.created_timestamp for m in got] == [r.created_timestamp for r in responses]
    assert [m.tick_size for m in got] == [0.05, 0.0001, 1.0]
    assert [
        (m.instrument.symbol, m.instrument.description, m.instrument.currency, m.instrument.multiplier)
        for m in got
    ] == [("ABC", "A B C", "GBP", 10), ("DEF", "", "", 0), ("G.H-1_x", "", "USD", 0)]


def test_on_instrument_for_each_instrument_created_later(info: Exchange) -> None:
    create(info, "OLD")
    clients = [info.info(user) for user in ("alice", "bob")]
    for client in clients:
        assert client.receive_as(info_pb2.OnInstrument).instrument.symbol == "OLD"
        assert until_barrier(client) == []
    later = [create(info, f"NEW{i}", 0.5, description=f"new {i}") for i in range(3)]
    for client in clients:
        for response in later:
            event = client.receive_as(info_pb2.OnInstrument)
            assert (event.order_book_id, event.created_timestamp, event.tick_size) == (
                response.order_book_id,
                response.created_timestamp,
                0.5,
            )
            assert event.instrument.description == f"new {response.order_book_id - 2}"
        assert until_barrier(client) == []


def test_a_bare_order_book_is_no_instrument(info: Exchange) -> None:
    client = info.info()
    assert until_barrier(client) == []
    bare = info.create_book(0.01)
    instrument = create(info, "REAL")
    assert instrument.order_book_id == bare + 1
    # The bare book came first on the feed: an OnInstrument for it would arrive before this one.
    event = client.receive_as(info_pb2.OnInstrument)
    assert (event.instrument.symbol, event.order_book_id) == ("REAL", instrument.order_book_id)
    late = info.info("bob")
    # in creation order, the bare book's would come first
    announced = late.receive_as(info_pb2.OnInstrument)
    assert (announced.instrument.symbol, announced.order_book_id) == ("REAL", instrument.order_book_id)
    assert until_barrier(late) == []
    assert until_barrier(client) == []


def test_pushed_messages_go_only_to_logged_in_connections(info: Exchange) -> None:
    create(info, "ABC")
    anonymous = info.info(None)
    watcher = drained(info.info(), 1)
    book = create(info, "DEF").order_book_id
    assert watcher.receive_as(info_pb2.OnInstrument).instrument.symbol == "DEF"
    subscribe(watcher, "DEF")
    insert(info.order_book(), book, BUY, 10.0, 1)
    assert top(next_book(watcher, info_pb2.OnTopOfBook)) == ((10.0, 1), None)
    assert until_barrier(anonymous) == []


def test_unknown_symbol_is_an_error(info: Exchange) -> None:
    create(info, "ABC")
    info.create_book()  # a bare book has no symbol to subscribe to
    client = drained(info.info(), 1)
    for symbol in ("NOPE", "abc", "", "ABC ", "2"):
        for kind in (TOP_OF_BOOK, PRICE_DEPTH_BOOK):
            client.send(
                info_pb2.OrderBookSubscribeRequest(
                    request_id=11,
                    instrument_symbol=symbol,
                    subscription_type=kind,
                )
            )
            response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
            assert response.request_id == 11 and response.error_message, (symbol, kind)
            assert until_barrier(client) == [], f"a message after the error for {symbol!r}"
    assert top(subscribe(client, "ABC")) == (None, None)


def test_unknown_subscription_type_is_an_error(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    client = drained(info.info(), 1)
    for kind in (2, 7, 99, 2**31 - 1, -1):
        client.send(
            info_pb2.OrderBookSubscribeRequest(
                request_id=5, instrument_symbol="ABC", subscription_type=cast(info_pb2.SubscriptionType, kind)
            )
        )
        response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
        assert response.request_id == 5 and response.error_message, kind
        assert until_barrier(client) == [], f"a message after the error for type {kind}"
    # A failed request changes nothing: a change of the book reaches a subscriber, not this client.
    watcher = drained(info.info("bob"), 1)
    subscribe(watcher, "ABC", PRICE_DEPTH_BOOK)
    insert(info.order_book(), book, SELL, 10.0, 2)
    assert depth(next_book(watcher, info_pb2.OnPriceDepthBook)) == ([], [(10.0, 2)])
    assert until_barrier(client) == []


def test_response_then_snapshot_of_an_empty_book(info: Exchange) -> None:
    create(info, "ABC")
    client = drained(info.info(), 1)
    snapshot = subscribe(client, "ABC", TOP_OF_BOOK)
    assert isinstance(snapshot, info_pb2.OnTopOfBook)
    assert not snapshot.HasField("best_bid") and not snapshot.HasField("best_ask")
    snapshot = subscribe(client, "ABC", PRICE_DEPTH_BOOK)
    assert isinstance(snapshot, info_pb2.OnPriceDepthBook)
    assert (len(snapshot.bids), len(snapshot.asks)) == (0, 0)
    assert until_barrier(client) == []


def test_response_then_snapshot_of_a_book_with_orders(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    for side, price, quantity in [
        (BUY, 9.9, 1),
        (BUY, 9.9, 2),
        (BUY, 9.8, 3),
        (SELL, 10.1, 4),
        (SELL, 10.3, 5),
    ]:
        insert(trader, book, side, price, quantity)
    client = drained(info.info(), 1)
    # sent with send(): the response must be the very next message, the snapshot the one after
    client.send(info_pb2.OrderBookSubscribeRequest(request_id=41, instrument_symbol="ABC"))
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert (response.request_id, response.error_message) == (41, "")
    snapshot = next_book(client, info_pb2.OnTopOfBook)
    assert (snapshot.instrument_symbol, top(snapshot)) == ("ABC", ((9.9, 3), (10.1, 4)))
    assert snapshot.timestamp > 0
    client.send(
        info_pb2.OrderBookSubscribeRequest(
            request_id=42, instrument_symbol="ABC", subscription_type=PRICE_DEPTH_BOOK
        )
    )
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert (response.request_id, response.error_message) == (42, "")
    snapshot = next_book(client, info_pb2.OnPriceDepthBook)
    assert depth(snapshot) == ([(9.9, 3), (9.8, 3)], [(10.1, 4), (10.3, 5)])
    assert until_barrier(client) == []


def test_an_update_when_what_it_shows_changes(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    other_book = create(info, "OTHER").order_book_id
    trader = info.order_book()
    tops = drained(info.info("alice"), 2)
    depths = drained(info.info("bob"), 2)
    subscribe(tops, "ABC", TOP_OF_BOOK)
    subscribe(depths, "ABC", PRICE_DEPTH_BOOK)
    steps: list[tuple[Any, Top, Depth]] = [
        (lambda: insert(trader, book, BUY, 10.0, 5), ((10.0, 5), None), ([(10.0, 5)], [])),
        (lambda: insert(trader, book, SELL, 10.5, 2), ((10.0, 5), (10.5, 2)), ([(10.0, 5)], [(10.5, 2)])),
        (lambda: insert(trader, book, BUY, 10.0, 1), ((10.0, 6), (10.5, 2)), ([(10.0, 6)], [(10.5, 2)])),
        (lambda: insert(trader, book, SELL, 10.0, 4), ((10.0, 2), (10.5, 2)), ([(10.0, 2)], [(10.5, 2)])),
        (lambda: cancel(trader, book, 2), ((10.0, 2), None), ([(10.0, 2)], [])),
    ]
    for i, (act, expected_top, expected_depth) in enumerate(steps):
        response = act()
        assert response.error_message == "", (i, response)
        for client in (tops, depths):
            trade_ids: list[int] = list(getattr(response, "trade_ids", ()))
            for _ in trade_ids:
                trade = client.receive_as(info_pb2.OnTrade)
                assert trade.instrument_symbol == "ABC"
        assert top(next_book(tops, info_pb2.OnTopOfBook)) == expected_top, i
        assert depth(next_book(depths, info_pb2.OnPriceDepthBook)) == expected_depth, i
    # a change of another instrument's book sends nothing to these subscribers
    insert(trader, other_book, BUY, 1.0, 1)
    watcher = drained(info.info("carol"), 2)
    subscribe(watcher, "OTHER", PRICE_DEPTH_BOOK)
    insert(trader, other_book, BUY, 2.0, 1)
    assert depth(next_book(watcher, info_pb2.OnPriceDepthBook)) == ([(2.0, 1), (1.0, 1)], [])
    assert until_barrier(tops) == []
    assert until_barrier(depths) == []


def test_a_change_below_the_top_sends_no_top_of_book(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    insert(trader, book, BUY, 10.0, 5)
    insert(trader, book, SELL, 11.0, 5)
    client = drained(info.info(), 1)
    assert top(subscribe(client, "ABC", TOP_OF_BOOK)) == ((10.0, 5), (11.0, 5))
    depths = drained(info.info("bob"), 1)
    subscribe(depths, "ABC", PRICE_DEPTH_BOOK)
    # each change waited for: changes made at once may be conflated
    below = insert(trader, book, BUY, 9.0, 3)  # below the best bid
    assert depth(next_book(depths, info_pb2.OnPriceDepthBook)) == ([(10.0, 5), (9.0, 3)], [(11.0, 5)])
    above = insert(trader, book, SELL, 12.0, 3)  # above the best ask
    assert depth(next_book(depths, info_pb2.OnPriceDepthBook)) == (
        [(10.0, 5), (9.0, 3)],
        [(11.0, 5), (12.0, 3)],
    )
    assert cancel(trader, book, below.order_id).error_message == ""
    assert depth(next_book(depths, info_pb2.OnPriceDepthBook)) == ([(10.0, 5)], [(11.0, 5), (12.0, 3)])
    assert cancel(trader, book, above.order_id).error_message == ""
    assert depth(next_book(depths, info_pb2.OnPriceDepthBook)) == ([(10.0, 5)], [(11.0, 5)])
    # Then a change of the top: the top subscriber's next message is that one, none came before it.
    insert(trader, book, BUY, 10.5, 1)
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.5, 1), (11.0, 5))
    assert until_barrier(client) == []


def test_subscribing_again_gives_a_fresh_snapshot(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    for kind in (TOP_OF_BOOK, PRICE_DEPTH_BOOK):
        first = subscribe(client, "ABC", kind)
        again = subscribe(client, "ABC", kind)  # not an error: a fresh snapshot follows
        assert shown(again) == shown(first)
    insert(trader, book, BUY, 10.0, 1)
    changed = [client.receive(), client.receive()]
    assert sorted(type(m).__name__ for m in changed) == ["OnPriceDepthBook", "OnTopOfBook"]
    for kind, expected in ((TOP_OF_BOOK, ((10.0, 1), None)), (PRICE_DEPTH_BOOK, ([(10.0, 1)], []))):
        assert shown(subscribe(client, "ABC", kind)) == expected
    # one subscription per symbol and type, however often subscribed: one message per change
    tops = []
    for price, quantity in ((10.0, 2), (10.1, 3)):
        insert(trader, book, BUY, price, quantity)
        tops += [m for m in (client.receive(), client.receive()) if isinstance(m, info_pb2.OnTopOfBook)]
    assert [top(m) for m in tops] == [((10.0, 3), None), ((10.1, 3), None)]
    assert until_barrier(client) == []


def test_both_types_on_one_symbol(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    assert top(subscribe(client, "ABC", TOP_OF_BOOK)) == (None, None)
    assert depth(subscribe(client, "ABC", PRICE_DEPTH_BOOK)) == ([], [])
    insert(trader, book, SELL, 20.0, 7)
    got = {type(m): shown(m) for m in (client.receive(), client.receive())}
    assert got == {info_pb2.OnTopOfBook: (None, (20.0, 7)), info_pb2.OnPriceDepthBook: ([], [(20.0, 7)])}
    insert(trader, book, SELL, 21.0, 1)  # not the top: the depth alone
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == ([], [(20.0, 7), (21.0, 1)])
    insert(trader, book, SELL, 19.0, 1)
    got = {type(m): shown(m) for m in (client.receive(), client.receive())}
    assert got == {
        info_pb2.OnTopOfBook: (None, (19.0, 1)),
        info_pb2.OnPriceDepthBook: ([], [(19.0, 1), (20.0, 7), (21.0, 1)]),
    }
    assert until_barrier(client) == []


def test_top_of_book_shows_the_total_quantity_of_the_best_level(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    subscribe(client, "ABC")
    orders = []
    for quantity, total in ((1, 1), (2, 3), (3, 6)):  # one order at a time: changes at once may be conflated
        orders.append(insert(trader, book, BUY, 10.0, quantity).order_id)
        assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.0, total), None)
    insert(trader, book, BUY, 9.0, 50)  # a worse level: no message
    insert(trader, book, SELL, 10.0, 2)  # fills the first order and 1 of the second
    assert client.receive_as(info_pb2.OnTrade).quantity == 1
    assert client.receive_as(info_pb2.OnTrade).quantity == 1
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.0, 4), None)
    assert cancel(trader, book, orders[2]).error_message == ""
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((10.0, 1), None)
    assert cancel(trader, book, orders[1]).error_message == ""
    assert top(next_book(client, info_pb2.OnTopOfBook)) == ((9.0, 50), None)
    insert(trader, book, SELL, 9.0, 50)  # empties the bid side, rests nothing
    assert client.receive_as(info_pb2.OnTrade).quantity == 50
    emptied = next_book(client, info_pb2.OnTopOfBook)
    assert not emptied.HasField("best_bid") and not emptied.HasField("best_ask")
    assert until_barrier(client) == []


def test_depth_shows_every_level_best_first(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    for side, price, quantity in [
        (BUY, 9.97, 1),
        (BUY, 9.99, 2),
        (BUY, 9.98, 3),
        (BUY, 9.99, 4),
        (SELL, 10.03, 5),
        (SELL, 10.01, 6),
        (SELL, 10.02, 7),
        (SELL, 10.01, 8),
    ]:
        insert(trader, book, side, price, quantity)
    client = drained(info.info(), 1)
    expected = ([(9.99, 6), (9.98, 3), (9.97, 1)], [(10.01, 14), (10.02, 7), (10.03, 5)])
    assert depth(subscribe(client, "ABC", PRICE_DEPTH_BOOK)) == expected
    insert(trader, book, SELL, 10.0, 1)
    expected = ([(9.99, 6), (9.98, 3), (9.97, 1)], [(10.0, 1), (10.01, 14), (10.02, 7), (10.03, 5)])
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == expected
    insert(trader, book, BUY, 9.96, 9)
    expected = ([(9.99, 6), (9.98, 3), (9.97, 1), (9.96, 9)], expected[1])
    assert depth(next_book(client, info_pb2.OnPriceDepthBook)) == expected
    assert until_barrier(client) == []


def test_prices_are_exact_four_decimal_doubles(info: Exchange) -> None:
    """Each price is the double nearest its 4-decimal value: 12.3456, not 123456 * 0.0001 ==
    12.345600000000001; 0.7, not 7 * 0.1 == 0.7000000000000001 (top, depth, trades, tick sizes)."""
    fine = create(info, "FINE", 0.0001).order_book_id
    coarse = create(info, "TENTH", 0.1).order_book_id
    trader = info.order_book()
    client = info.info()
    ticks = {
        m.instrument.symbol: m.tick_size for m in (client.receive_as(info_pb2.OnInstrument) for _ in "12")
    }
    assert ticks == {"FINE": 0.0001, "TENTH": 0.1}
    subscribe(client, "FINE", TOP_OF_BOOK)
    subscribe(client, "FINE", PRICE_DEPTH_BOOK)

    def both() -> dict[type[Message], Top | Depth]:
        return {
            type(m): shown(m) for m in (next_book(client, BOOK_MESSAGES), next_book(client, BOOK_MESSAGES))
        }

    insert(trader, fine, BUY, 12.3456, 1)
    assert both() == {
        info_pb2.OnTopOfBook: ((12.3456, 1), None),
        info_pb2.OnPriceDepthBook: ([(12.3456, 1)], []),
    }
    insert(trader, fine, SELL, 12.3457, 1)
    assert both()[info_pb2.OnTopOfBook] == ((12.3456, 1), (12.3457, 1))
    insert(trader, fine, BUY, 0.0003, 1)  # below the best bid: the depth alone
    bids = depth(next_book(client, info_pb2.OnPriceDepthBook))[0]
    assert bids == [(12.3456, 1), (0.0003, 1)]
    assert bids[1][0] != 3 * 0.0001 and bids[0][0] != 123456 * 0.0001  # the nearest doubles, not products
    insert(trader, fine, SELL, 12.3456, 1)
    trade = client.receive_as(info_pb2.OnTrade)
    assert (trade.instrument_symbol, trade.price, trade.aggressor_side) == ("FINE", 12.3456, SELL)
    assert both() == {
        info_pb2.OnTopOfBook: ((0.0003, 1), (12.3457, 1)),
        info_pb2.OnPriceDepthBook: ([(0.0003, 1)], [(12.3457, 1)]),
    }

    subscribe(client, "TENTH", TOP_OF_BOOK)
    for price in (0.3, 1.1, 0.7):
        insert(trader, coarse, SELL, price, 1)
    assert top(next_book(client, info_pb2.OnTopOfBook)) == (None, (0.3, 1))  # the only change of the top
    insert(trader, coarse, BUY, 0.3, 1)
    assert client.receive_as(info_pb2.OnTrade).price == 0.3
    assert top(next_book(client, info_pb2.OnTopOfBook)) == (None, (0.7, 1))
    assert depth(subscribe(client, "TENTH", PRICE_DEPTH_BOOK)) == ([], [(0.7, 1), (1.1, 1)])
    insert(trader, coarse, BUY, 1.1, 2)
    trades = [client.receive_as(info_pb2.OnTrade) for _ in range(2)]
    assert [(t.instrument_symbol, t.price) for t in trades] == [("TENTH", 0.7), ("TENTH", 1.1)]
    got = {type(m): shown(m) for m in (client.receive(), client.receive())}
    assert got == {info_pb2.OnTopOfBook: (None, None), info_pb2.OnPriceDepthBook: ([], [])}
    assert until_barrier(client) == []


def test_trades_reach_exactly_the_subscribers_before_the_book_update(info: Exchange) -> None:
    book = create(info, "ABC").order_book_id
    other_book = create(info, "XYZ").order_book_id
    trader = info.order_book()
    for side, price, quantity in [
        (SELL, 10.01, 2),
        (SELL, 10.01, 4),
        (SELL, 10.02, 3),
        (SELL, 10.03, 5),
        (BUY, 9.99, 1),
    ]:
        insert(trader, book, side, price, quantity)
    insert(trader, other_book, SELL, 10.0, 1)
    both = drained(info.info("alice"), 2)
    subscribe(both, "ABC", TOP_OF_BOOK)
    subscribe(both, "ABC", PRICE_DEPTH_BOOK)
    depth_only = drained(info.info("bob"), 2)
    subscribe(depth_only, "ABC", PRICE_DEPTH_BOOK)
    top_only = drained(info.info("carol"), 2)
    subscribe(top_only, "ABC", TOP_OF_BOOK)
    elsewhere = drained(info.info("dave"), 2)
    subscribe(elsewhere, "XYZ", PRICE_DEPTH_BOOK)
    unsubscribed = drained(info.info("alice"), 2)

    sweep = insert(trader, book, BUY, 10.02, 8)  # takes 2 + 4 at 10.01, then 2 of 3 at 10.02
    assert sweep.traded_quantity == 8 and len(sweep.trade_ids) == 3
    final_top: Top = ((9.99, 1), (10.02, 1))
    final_depth: Depth = ([(9.99, 1)], [(10.02, 1), (10.03, 5)])
    cases: list[tuple[SyncClient, set[type[Message]]]] = [
        (both, {info_pb2.OnTopOfBook, info_pb2.OnPriceDepthBook}),
        (depth_only, {info_pb2.OnPriceDepthBook}),
        (top_only, {info_pb2.OnTopOfBook}),
    ]
    for client, book_types in cases:
        trades = [client.receive_as(info_pb2.OnTrade) for _ in sweep.trade_ids]  # before any book message
        assert [t.trade_id for t in trades] == list(sweep.trade_ids)
        assert trades[0].trade_id < trades[1].trade_id < trades[2].trade_id
        assert [(t.instrument_symbol, t.price, t.quantity, t.aggressor_side) for t in trades] == [
            ("ABC", 10.01, 2, BUY),
            ("ABC", 10.01, 4, BUY),
            ("ABC", 10.02, 2, BUY),
        ]
        assert all(t.timestamp > 0 for t in trades)
        # the first book message after the sweep already shows all of it
        books = [client.receive() for _ in book_types]
        for message in books:
            assert_consistent(message)
        assert {type(m) for m in books} == book_types
        for message in books:
            assert shown(message) == (final_top if isinstance(message, info_pb2.OnTopOfBook) else final_depth)
        assert until_barrier(client) == [], "a trade twice, or a book message more"
    assert until_barrier(elsewhere) == []
    assert until_barrier(unsubscribed) == []


def test_a_sell_sweep_that_rests_its_remainder(info: Exchange) -> None:
    book = create(info, "ABC", 0.5).order_book_id
    trader = info.order_book()
    for price, quantity in [(99.5, 1), (100.0, 2), (100.0, 3), (98.0, 4)]:
        insert(trader, book, BUY, price, quantity)
    insert(trader, book, SELL, 101.0, 6)
    client = drained(info.info(), 1)
    subscribe(client, "ABC", TOP_OF_BOOK)
    subscribe(client, "ABC", PRICE_DEPTH_BOOK)
    sweep = insert(trader, book, SELL, 99.5, 10)  # 2 + 3 at 100.0, 1 at 99.5, 4 rest at 99.5
    assert sweep.traded_quantity == 6
    trades = [client.receive_as(info_pb2.OnTrade) for _ in sweep.trade_ids]
    assert [(t.trade_id, t.price, t.quantity, t.aggressor_side) for t in trades] == [
        (sweep.trade_ids[0], 100.0, 2, SELL),
        (sweep.trade_ids[1], 100.0, 3, SELL),
        (sweep.trade_ids[2], 99.5, 1, SELL),
    ]
    got = {type(m): shown(m) for m in (client.receive(), client.receive())}
    assert got == {
        info_pb2.OnTopOfBook: ((98.0, 4), (99.5, 4)),
        info_pb2.OnPriceDepthBook: ([(98.0, 4)], [(99.5, 4), (101.0, 6)]),
    }
    assert until_barrier(client) == []


def test_book_messages_never_show_a_crossed_book(info: Exchange) -> None:
    """Many crossing inserts, each filling partly or wholly: every book message is consistent and shows
    a change, every trade arrives once in order, and the last messages show the book as it is."""
    book = create(info, "ABC").order_book_id
    trader = info.order_book()
    client = drained(info.info(), 1)
    subscribe(client, "ABC", TOP_OF_BOOK)
    subscribe(client, "ABC", PRICE_DEPTH_BOOK)
    expected_trades: list[int] = []
    for i in range(40):
        side = BUY if i % 2 else SELL
        price = round(10.0 + (0.02 if side == BUY else -0.02) * (i % 3), 2)
        response = insert(trader, book, side, price, 1 + i % 4)
        expected_trades.extend(response.trade_ids)
    replay = info.order_book("replay")
    levels: dict[tuple[int, float], int] = {}
    for order in until_barrier(replay):
        if isinstance(order, ob.OnOrderInserted):
            levels[(order.side, order.price)] = levels.get((order.side, order.price), 0) + order.quantity
    bids = sorted(((p, q) for (s, p), q in levels.items() if s == BUY), reverse=True)
    asks = sorted((p, q) for (s, p), q in levels.items() if s == SELL)
    final: dict[type[Message], Any] = {
        info_pb2.OnTopOfBook: (bids[0] if bids else None, asks[0] if asks else None),
        info_pb2.OnPriceDepthBook: (bids, asks),
    }
    # Book messages may be conflated, but the last ones must show the book as it is: read until then.
    trade_ids: list[int] = []
    last: dict[type[Message], Any] = {}
    while len(trade_ids) < len(expected_trades) or last != final:
        message = client.receive()
        if isinstance(message, info_pb2.OnTrade):
            trade_ids.append(message.trade_id)
            continue
        assert_consistent(message)
        if type(message) in last:
            assert shown(message) != last[type(message)], f"a book message that shows no change: {message}"
        last[type(message)] = shown(message)
    assert trade_ids == expected_trades
    assert until_barrier(client) == []
