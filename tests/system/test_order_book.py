"""Section 3 of the contract: the order book component over TCP."""

from __future__ import annotations

from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, SELL, Exchange, cancel, insert, until_barrier


def test_create_book_answers_then_announces(exchange: Exchange) -> None:
    client = exchange.order_book("me")
    other = exchange.order_book("other")
    client.send(ob.CreateOrderBookRequest(request_id=7, tick_size=0.05))
    response = client.receive_as(ob.CreateOrderBookResponse)
    assert (response.request_id, response.error_message, response.order_book_id) == (7, "", 1)
    assert response.timestamp > 0
    for watcher in (client, other):
        event = watcher.receive_as(ob.OnOrderBookCreated)
        assert (event.order_book_id, event.tick_size) == (1, 0.05)
    assert exchange.create_book(0.01) == 2


def test_insert_response_then_inserted_then_trades_in_matching_order(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    client = exchange.order_book("trader")
    assert [type(e) for e in until_barrier(client)] == [ob.OnOrderBookCreated]  # the replay
    insert(client, book, SELL, 10.02, 3, "s1")
    insert(client, book, SELL, 10.01, 2, "s2")
    insert(client, book, SELL, 10.01, 4, "s3")
    assert [type(e) for e in until_barrier(client)] == [ob.OnOrderInserted] * 3
    client.send(ob.InsertOrderRequest(request_id=99, order_book_id=book, side=BUY, price=10.05, quantity=8))
    response = client.receive_as(ob.InsertOrderResponse)
    assert response.request_id == 99
    assert response.traded_quantity == 8
    assert len(response.trade_ids) == 3
    inserted = client.receive_as(ob.OnOrderInserted)
    assert (inserted.order_id, inserted.quantity, inserted.price, inserted.side) == (4, 8, 10.05, BUY)
    assert list(inserted.trade_ids) == list(response.trade_ids)
    trades = [client.receive_as(ob.OnTrade) for _ in range(3)]
    # best price first, oldest first within a price; each at the resting order's price
    assert [(t.sell_order_id, t.price, t.quantity) for t in trades] == [
        (2, 10.01, 2),
        (3, 10.01, 4),
        (1, 10.02, 2),
    ]
    assert all(t.buy_order_id == 4 and t.aggressor_side == BUY for t in trades)
    assert [t.trade_id for t in trades] == list(response.trade_ids)
    assert trades[0].trade_id > 0 and trades[0].trade_id < trades[1].trade_id < trades[2].trade_id


def test_sell_aggressor_matches_highest_bid_first(exchange: Exchange) -> None:
    book = exchange.create_book(0.5)
    client = exchange.order_book("trader")
    insert(client, book, BUY, 99.5, 1)
    insert(client, book, BUY, 100.0, 1)
    insert(client, book, BUY, 100.0, 1)
    assert [type(e) for e in until_barrier(client)] == [ob.OnOrderBookCreated] + [ob.OnOrderInserted] * 3
    response = insert(client, book, SELL, 99.0, 5)
    assert response.traded_quantity == 3
    client.receive_as(ob.OnOrderInserted)
    trades = [client.receive_as(ob.OnTrade) for _ in range(3)]
    assert [(t.buy_order_id, t.price, t.aggressor_side) for t in trades] == [
        (2, 100.0, SELL),
        (3, 100.0, SELL),
        (1, 99.5, SELL),
    ]
    # the remainder rests: a buy at 99 now trades with it
    assert insert(client, book, BUY, 99.0, 2).traded_quantity == 2


def test_no_trade_when_prices_do_not_cross(exchange: Exchange) -> None:
    book = exchange.create_book()
    client = exchange.order_book()
    insert(client, book, BUY, 10.00, 5)
    response = insert(client, book, SELL, 10.01, 5)
    assert (response.traded_quantity, list(response.trade_ids)) == (0, [])


def test_self_trade_is_allowed(exchange: Exchange) -> None:
    book = exchange.create_book()
    client = exchange.order_book()
    insert(client, book, BUY, 10.0, 5, "alice")
    assert insert(client, book, SELL, 10.0, 5, "alice").traded_quantity == 5


def test_insert_errors(exchange: Exchange) -> None:
    book = exchange.create_book(0.05)
    client = exchange.order_book()
    cases = [
        (book + 1, BUY, 10.0, 1, "order book"),
        (book, BUY, 10.01, 1, "tick"),
        (book, BUY, 0.0, 1, "price"),
        (book, BUY, -1.0, 1, "price"),
        (book, BUY, 10.0, 0, "quantity"),
        (book, BUY, 10.0, -5, "quantity"),
        (book, 7, 10.0, 1, "side"),
    ]
    for book_id, side, price, quantity, word in cases:
        response = insert(client, book_id, side, price, quantity)
        assert word in response.error_message, (book_id, side, price, quantity, response.error_message)
        assert (response.order_id, response.timestamp, list(response.trade_ids)) == (0, 0, [])
    assert insert(client, book, BUY, 10.05, 1).order_id == 1


def test_cancel_and_its_errors(exchange: Exchange) -> None:
    book = exchange.create_book()
    other_book = exchange.create_book()
    client = exchange.order_book("me")
    assert [type(e) for e in until_barrier(client)] == [ob.OnOrderBookCreated] * 2
    resting = insert(client, book, BUY, 10.0, 5).order_id
    filled = insert(client, book, SELL, 11.0, 1).order_id
    insert(client, book, BUY, 11.0, 1)
    assert [type(e) for e in until_barrier(client)] == [ob.OnOrderInserted] * 3 + [ob.OnTrade]
    client.send(ob.CancelOrderRequest(request_id=5, order_book_id=book, order_id=resting))
    response = client.receive_as(ob.CancelOrderResponse)
    assert (response.request_id, response.error_message) == (5, "")
    event = client.receive_as(ob.OnOrderCancelled)
    assert event.order_id == resting and event.cancellation_timestamp > 0
    for book_id, order_id in [
        (book + 99, resting),  # unknown book
        (book, 12345),  # unknown order
        (book, 0),
        (other_book, resting),  # order of another book
        (book, resting),  # already cancelled
        (book, filled),  # filled
    ]:
        assert cancel(client, book_id, order_id).error_message, (book_id, order_id)
    assert until_barrier(client) == []


def test_cancelled_order_no_longer_matches(exchange: Exchange) -> None:
    book = exchange.create_book()
    client = exchange.order_book()
    first = insert(client, book, SELL, 10.0, 5).order_id
    second = insert(client, book, SELL, 10.0, 5).order_id
    assert cancel(client, book, first).error_message == ""
    exchange.order_book("watcher")
    response = insert(client, book, BUY, 10.0, 10)
    assert response.traded_quantity == 5
    assert cancel(client, book, second).error_message  # filled


def test_events_reach_every_logged_in_connection_after_the_response(exchange: Exchange) -> None:
    book = exchange.create_book()
    a = exchange.order_book("a")
    b = exchange.order_book("b")
    silent = exchange.order_book()  # not logged in: responses only
    for watcher in (a, b):
        assert [type(e) for e in until_barrier(watcher)] == [ob.OnOrderBookCreated]
    silent_response = insert(silent, book, BUY, 10.0, 1)
    assert silent_response.order_id == 1
    assert a.receive_as(ob.OnOrderInserted).order_id == 1
    assert b.receive_as(ob.OnOrderInserted).order_id == 1
    assert until_barrier(silent) == []


def test_replay_on_login_shows_the_day_in_priority_order(exchange: Exchange) -> None:
    b1 = exchange.create_book(0.01)
    b2 = exchange.create_book(0.5)
    client = exchange.order_book()
    asks = [insert(client, b1, SELL, p, 10, "s") for p in (10.03, 10.02, 10.02)]
    bids = [insert(client, b1, BUY, p, 10, "b") for p in (9.98, 9.99, 9.99)]
    other = insert(client, b2, BUY, 50.0, 4)
    gone = insert(client, b1, BUY, 9.97, 1)
    assert cancel(client, b1, gone.order_id).error_message == ""
    partial = insert(client, b1, BUY, 10.02, 3)  # takes 3 of the older 10.02 ask
    assert partial.traded_quantity == 3

    late = exchange.order_book("late")
    events = until_barrier(late)
    created = [e for e in events if isinstance(e, ob.OnOrderBookCreated)]
    orders = [e for e in events if isinstance(e, ob.OnOrderInserted)]
    assert len(created) + len(orders) == len(events)
    assert events[: len(created)] == created  # books first
    assert [(c.order_book_id, c.tick_size) for c in created] == [(b1, 0.01), (b2, 0.5)]
    expected = [
        (bids[1].order_id, 9.99, 10),
        (bids[2].order_id, 9.99, 10),
        (bids[0].order_id, 9.98, 10),
        (asks[1].order_id, 10.02, 7),  # remaining quantity
        (asks[2].order_id, 10.02, 10),
        (asks[0].order_id, 10.03, 10),
        (other.order_id, 50.0, 4),
    ]
    assert [(o.order_id, o.price, o.quantity) for o in orders] == expected
    assert all(not o.trade_ids for o in orders)
    assert orders[3].timestamp == asks[1].timestamp  # original timestamp
    assert orders[6].order_book_id == b2


def test_replay_then_live_events(exchange: Exchange) -> None:
    book = exchange.create_book()
    client = exchange.order_book()
    insert(client, book, BUY, 10.0, 1)
    late = exchange.order_book("late")
    insert(client, book, BUY, 10.0, 2)
    assert late.receive_as(ob.OnOrderBookCreated).order_book_id == book
    assert late.receive_as(ob.OnOrderInserted).quantity == 1
    assert late.receive_as(ob.OnOrderInserted).quantity == 2


def test_ids_are_global_and_increasing_across_books(exchange: Exchange) -> None:
    b1 = exchange.create_book()
    b2 = exchange.create_book()
    client = exchange.order_book()
    ids = [insert(client, b, BUY, 10.0, 1).order_id for b in (b1, b2, b1, b2)]
    assert ids == [1, 2, 3, 4]
    t1 = insert(client, b2, SELL, 10.0, 1).trade_ids
    t2 = insert(client, b1, SELL, 10.0, 1).trade_ids
    assert list(t1) == [1] and list(t2) == [2]


def test_instrument_travels_with_the_book(exchange: Exchange) -> None:
    client = exchange.order_book("me")
    response = client.request(
        ob.CreateOrderBookRequest(
            tick_size=0.25, instrument={"symbol": "XYZ", "currency": "EUR", "multiplier": 2}
        )
    )
    assert isinstance(response, ob.CreateOrderBookResponse) and not response.error_message
    event = client.receive_as(ob.OnOrderBookCreated)
    assert (event.instrument.symbol, event.instrument.currency, event.instrument.multiplier) == (
        "XYZ",
        "EUR",
        2,
    )
    assert event.timestamp == response.timestamp
    duplicate = client.request(ob.CreateOrderBookRequest(tick_size=0.25, instrument={"symbol": "XYZ"}))
    assert isinstance(duplicate, ob.CreateOrderBookResponse) and "XYZ" in duplicate.error_message
    late = exchange.order_book("late")
    assert late.receive_as(ob.OnOrderBookCreated).instrument.symbol == "XYZ"


def test_barrier_answers_after_every_event_queued_before_it(exchange: Exchange) -> None:
    """The barrier extension: its response comes after every event the order book had sent before it."""
    book = exchange.create_book()
    trader = exchange.order_book()
    watcher = exchange.order_book(login="watcher")
    for i in range(50):
        insert(trader, book, BUY, 1.0 + i * 0.01, 1)
    response = watcher.request(ob.BarrierRequest(request_id=77), check=True)
    assert isinstance(response, ob.BarrierResponse) and response.request_id == 77
    events = list(watcher.pending)  # what arrived before the response (request() keeps it for receive())
    watcher.pending.clear()
    assert [type(e) for e in events] == [ob.OnOrderBookCreated] + [ob.OnOrderInserted] * 50
    assert [e.order_id for e in events if isinstance(e, ob.OnOrderInserted)] == list(range(1, 51))
    assert until_barrier(watcher) == []
