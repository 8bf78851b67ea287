"""Section 2 of the contract: request ids, errors, prices, tick sizes, quantities, ids, timestamps, login."""

from __future__ import annotations

import threading
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from google.protobuf.message import Message

from optivex.client import RequestFailed
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import encode_frame

from .helpers import BUY, SELL, TIMEOUT, Exchange, SyncClient, cancel, insert, until_barrier

LOGIN_REQUEST = 0
REQUEST_IDS = [0, 1, -1, 2**31, -(2**31) - 1, 2**62 + 12345, 2**63 - 1, -(2**63)]
NAN = float("nan")
INF = float("inf")


def frame(msg_type: int, message: Message) -> bytes:
    return encode_frame(msg_type, message.SerializeToString())


def only_error(response: Any) -> tuple[str, ...]:
    """The names of the fields set on a response: an error leaves all but these two unset."""
    return tuple(sorted(field.name for field, _ in response.ListFields()))


def assert_error(response: Any, request_id: int | None = None) -> None:
    assert response.error_message, f"expected an error, got {response}"
    if request_id is not None:
        assert response.request_id == request_id
    unset = {"error_message", "request_id"}
    assert set(only_error(response)) <= unset, f"an error response with other fields set: {response}"


def expected_price(price: float) -> float:
    """The contract's rounding: the shortest decimal of the double, to 4 decimals, ties to even."""
    return float(Decimal(repr(price)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))


def decimals(value: float) -> int:
    """Decimals of the shortest text of a double (12.3456 -> 4)."""
    text = repr(value)
    assert "e" not in text, text
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


# ---------------------------------------------------------------- request_id


def test_order_book_echoes_every_request_id(exchange: Exchange) -> None:
    for n, request_id in enumerate(REQUEST_IDS, 1):  # day so far: books 1..n-1, orders 1..n-1
        client = exchange.order_book()
        data = frame(
            ob.CREATE_ORDER_BOOK_REQUEST, ob.CreateOrderBookRequest(request_id=request_id, tick_size=0.01)
        )
        data += frame(
            ob.CREATE_ORDER_BOOK_REQUEST, ob.CreateOrderBookRequest(request_id=request_id, tick_size=0)
        )
        for price, quantity in ((10.0, 1), (10.0, 0)):
            data += frame(
                ob.INSERT_ORDER_REQUEST,
                ob.InsertOrderRequest(
                    request_id=request_id, order_book_id=n, side=BUY, price=price, quantity=quantity
                ),
            )
        for _ in range(2):  # the second time it is no longer resting
            data += frame(
                ob.CANCEL_ORDER_REQUEST,
                ob.CancelOrderRequest(request_id=request_id, order_book_id=n, order_id=n),
            )
        for _ in range(2):  # the second login is an error
            data += frame(LOGIN_REQUEST, common_pb2.LoginRequest(request_id=request_id, username="me"))
        client.send_raw(data)
        expected = [
            (ob.CreateOrderBookResponse, ""),
            (ob.CreateOrderBookResponse, "error"),
            (ob.InsertOrderResponse, ""),
            (ob.InsertOrderResponse, "error"),
            (ob.CancelOrderResponse, ""),
            (ob.CancelOrderResponse, "error"),
            (common_pb2.LoginResponse, ""),
            (common_pb2.LoginResponse, "error"),
        ]
        for cls, outcome in expected:
            response: Any = client.receive()
            while isinstance(response, ob.OnOrderBookCreated | ob.OnOrderInserted):  # the login's replay
                response = client.receive()
            is_expected = type(response) is cls  # (kept apart: the response stays Any for the checks below)
            assert is_expected, (cls.__name__, response)
            assert response.request_id == request_id, (cls.__name__, response)
            assert bool(response.error_message) == bool(outcome), (request_id, response)


def test_admin_echoes_every_request_id(exchange: Exchange) -> None:
    for n, request_id in enumerate(REQUEST_IDS):
        client = exchange.connect("admin")
        create = admin_pb2.CreateInstrumentRequest(
            request_id=request_id, instrument=common_pb2.Instrument(symbol=f"S{n}"), tick_size=0.01
        )
        data = frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, create)  # before login
        for password in ("x", "bob", "bob"):  # refused, accepted, second login
            data += frame(
                LOGIN_REQUEST,
                common_pb2.LoginRequest(request_id=request_id, username="bob", password=password),
            )
        data += frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, create)
        data += frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, create)  # the symbol exists now
        client.send_raw(data)
        expected = [
            (admin_pb2.CreateInstrumentResponse, "error"),
            (common_pb2.LoginResponse, "error"),
            (common_pb2.LoginResponse, ""),
            (common_pb2.LoginResponse, "error"),
            (admin_pb2.CreateInstrumentResponse, ""),
            (admin_pb2.CreateInstrumentResponse, "error"),
        ]
        for cls, outcome in expected:
            response: Any = client.receive_as(cls)
            assert response.request_id == request_id, (cls.__name__, response)
            assert bool(response.error_message) == bool(outcome), (request_id, response)


def test_request_ids_need_not_be_unique(exchange: Exchange) -> None:
    book = exchange.create_book()
    client = exchange.order_book()
    request = ob.InsertOrderRequest(request_id=5, order_book_id=book, side=BUY, price=10.0, quantity=1)
    client.send(request, request, ob.CancelOrderRequest(request_id=5, order_book_id=book, order_id=1))
    first = client.receive_as(ob.InsertOrderResponse)
    second = client.receive_as(ob.InsertOrderResponse)
    cancelled = client.receive_as(ob.CancelOrderResponse)
    assert (first.request_id, first.order_id, second.request_id, second.order_id) == (5, 1, 5, 2)
    assert (cancelled.request_id, cancelled.error_message) == (5, "")
    other = exchange.order_book()  # another connection may use the same ids
    other.send(request)
    assert other.receive_as(ob.InsertOrderResponse).order_id == 3


# ---------------------------------------------------------------- errors


def test_order_book_errors_leave_the_other_fields_unset(exchange: Exchange) -> None:
    book = exchange.create_book(0.05)
    client = exchange.order_book()
    assert insert(client, book, SELL, 10.0, 5).order_id == 1
    requests: list[Message] = [
        ob.CreateOrderBookRequest(request_id=11, tick_size=0.00001),
        ob.CreateOrderBookRequest(request_id=12, tick_size=-1),
        # would cross the resting sell, had they been valid
        ob.InsertOrderRequest(request_id=13, order_book_id=book, side=BUY, price=10.01, quantity=5),
        ob.InsertOrderRequest(request_id=14, order_book_id=book, side=BUY, price=10.0, quantity=0),
        ob.InsertOrderRequest(request_id=15, order_book_id=book + 7, side=BUY, price=10.0, quantity=5),
        ob.CancelOrderRequest(request_id=16, order_book_id=book, order_id=99),
        ob.CancelOrderRequest(request_id=17, order_book_id=book + 7, order_id=1),
    ]
    for request in requests:
        response = client.request(request)
        assert_error(response, request.request_id)  # type: ignore[attr-defined]
    client.login("me")
    response = client.request(common_pb2.LoginRequest(request_id=18, username="me"))
    assert_error(response, 18)


def test_admin_errors_leave_the_other_fields_unset(exchange: Exchange) -> None:
    client = exchange.connect("admin")
    create = admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01)
    assert_error(client.request(create))  # not logged in
    assert_error(client.request(common_pb2.LoginRequest(username="alice", password="bob")))
    client.login("alice", "alice")
    assert client.request(create, check=True)
    assert_error(client.request(create))  # the symbol exists
    bad_tick = admin_pb2.CreateInstrumentRequest(
        instrument=common_pb2.Instrument(symbol="X"), tick_size=0.011111
    )
    assert_error(client.request(bad_tick))
    bad_symbol = admin_pb2.CreateInstrumentRequest(
        instrument=common_pb2.Instrument(symbol="A B"), tick_size=0.01
    )
    assert_error(client.request(bad_symbol))
    assert_error(client.request(common_pb2.LoginRequest(username="alice", password="alice")))


def test_a_failed_request_changes_nothing(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    watcher = exchange.order_book("watcher")
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == book
    client = exchange.order_book()
    resting = insert(client, book, SELL, 10.0, 5)
    assert resting.order_id == 1
    assert watcher.receive_as(ob.OnOrderInserted).order_id == 1
    # Rejected inserts: no order id consumed, no trade, no event.
    for price, quantity in ((10.005, 5), (10.0, 0), (0.0, 5), (NAN, 5), (10.0, -3)):
        assert_error(insert(client, book, BUY, price, quantity))
    assert_error(insert(client, book + 1, BUY, 10.0, 5))
    # Rejected cancels: the order keeps resting.
    assert cancel(client, book + 1, 1).error_message
    assert cancel(client, book, 2).error_message
    # A rejected book: no book id consumed.
    assert_error(client.request(ob.CreateOrderBookRequest(tick_size=0.00001)))
    assert until_barrier(watcher) == []
    second = insert(client, book, BUY, 9.0, 2)
    assert second.order_id == 2  # the next id, as if nothing had been tried
    assert exchange.create_book(0.01) == book + 1
    trade = insert(client, book, BUY, 10.0, 1)
    assert (trade.order_id, list(trade.trade_ids), trade.traded_quantity) == (3, [1], 1)
    late = exchange.order_book("late")
    events = until_barrier(late)
    assert [type(e).__name__ for e in events] == ["OnOrderBookCreated"] * 2 + ["OnOrderInserted"] * 2
    orders = [e for e in events if isinstance(e, ob.OnOrderInserted)]
    assert [(e.order_id, e.quantity) for e in orders] == [(2, 2), (1, 4)]


def test_a_failed_instrument_creation_changes_nothing(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    admin = exchange.admin()
    assert exchange.create_instrument("ABC") == 1
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == 1
    for symbol, tick in (("ABC", 0.01), ("DEF", 0.00001), ("D E F", 0.01), ("DEF", 0.0)):
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol=symbol), tick_size=tick)
        )
        assert_error(response)
    assert until_barrier(watcher) == []
    assert exchange.create_instrument("DEF") == 2  # no book was created on the order book either
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == 2
    assert until_barrier(watcher) == []


# ---------------------------------------------------------------- prices and quantities

ROUNDING_CASES = [
    (10.00005, 10.0),  # a tie: to even
    (10.00015, 10.0002),
    (10.00025, 10.0002),
    (10.00035, 10.0004),
    (0.00015, 0.0002),
    (0.00025, 0.0002),
    (12.34565, 12.3456),
    (12.34575, 12.3458),
    (99.99995, 100.0),
    (1.00004999, 1.0),
    (1.00005001, 1.0001),
    (1.23456789, 1.2346),
    (123456 * 0.0001, 12.3456),  # 12.345600000000001
    (0.1 + 0.2, 0.3),  # 0.30000000000000004
    (2.675, 2.675),
    (1234567.8901, 1234567.8901),
    (0.0001, 0.0001),
    (67117829.05195, 67117829.052),  # large ties whose binary product lands just inside .5
    (84065467.50345, 84065467.5034),
]


def test_prices_are_rounded_to_4_decimals_ties_to_even(exchange: Exchange) -> None:
    book = exchange.create_book(0.0001)
    watcher = exchange.order_book("watcher")
    watcher.receive_as(ob.OnOrderBookCreated)
    client = exchange.order_book()
    for price, rounded in ROUNDING_CASES:
        assert expected_price(price) == rounded  # the test's own oracle agrees
        response = insert(client, book, BUY, price, 1)
        assert response.error_message == "", (price, response.error_message)
        event = watcher.receive_as(ob.OnOrderInserted)
        assert event.order_id == response.order_id
        # exactly the double of the 4-decimal value: the same double as parsing its shortest text
        assert repr(event.price) == repr(rounded), (price, event.price, rounded)
        assert decimals(event.price) <= 4
    # the replay carries the rounded prices too
    late = exchange.order_book("late")
    replay = [e for e in until_barrier(late) if isinstance(e, ob.OnOrderInserted)]
    assert sorted(repr(e.price) for e in replay) == sorted(repr(r) for _, r in ROUNDING_CASES)


def test_trades_happen_at_rounded_prices(exchange: Exchange) -> None:
    book = exchange.create_book(0.0001)
    watcher = exchange.order_book("watcher")
    watcher.receive_as(ob.OnOrderBookCreated)
    client = exchange.order_book()
    assert insert(client, book, SELL, 10.00015, 2).error_message == ""  # rests at 10.0002
    assert insert(client, book, BUY, 10.00011, 1).traded_quantity == 0  # 10.0001: does not cross
    response = insert(client, book, BUY, 10.00025, 5)  # 10.0002 (a tie, to even): crosses
    assert response.traded_quantity == 2
    events = [watcher.receive() for _ in range(4)]
    trade = events[3]
    assert isinstance(trade, ob.OnTrade)
    assert repr(trade.price) == "10.0002"
    assert [repr(e.price) for e in events[:3]] == ["10.0002", "10.0001", "10.0002"]  # type: ignore[attr-defined]


def test_prices_are_rounded_before_they_are_checked_against_the_tick(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    watcher = exchange.order_book("watcher")
    watcher.receive_as(ob.OnOrderBookCreated)
    client = exchange.order_book()
    for price, rounded in (
        (10.00999, 10.01),
        (10.00004, 10.0),
        (10.00005, 10.0),
        (10.01005, 10.01),
        (0.1 + 0.2, 0.3),
    ):
        response = insert(client, book, BUY, price, 1)
        assert response.error_message == "", (price, response.error_message)
        assert watcher.receive_as(ob.OnOrderInserted).price == rounded
    for price in (10.005, 10.01015, 10.0001, 10.00015):  # 10.005, 10.0102, 10.0001, 10.0002
        assert_error(insert(client, book, BUY, price, 1))


def test_invalid_prices_are_rejected(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    client = exchange.order_book()
    for price in (0.0, -0.0, -10.0, -0.01, 0.00004, 10.005, 1e-300, NAN, INF, -INF):
        for side in (BUY, SELL):
            response = insert(client, book, side, price, 1)
            assert response.error_message, (price, side)
            assert_error(response)
    assert insert(client, book, BUY, 10.0, 1).order_id == 1


def test_invalid_quantities_are_rejected(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    client = exchange.order_book()
    for quantity in (0, -1, -(2**31)):
        for side in (BUY, SELL):
            assert_error(insert(client, book, side, 10.0, quantity))
    big = insert(client, book, SELL, 10.0, 2**31 - 1)
    assert big.order_id == 1
    assert insert(client, book, BUY, 10.0, 2**31 - 1).traded_quantity == 2**31 - 1


# ---------------------------------------------------------------- tick sizes

INVALID_TICKS = [0.0, -0.0, -0.01, 0.00001, 0.00015, 0.012345, 1e-10, 0.1 + 0.2, NAN, INF, -INF]
VALID_TICKS = [0.0001, 0.0003, 0.0005, 0.01, 0.25, 1.0, 12.5, 100.0]


def test_order_book_tick_sizes(exchange: Exchange) -> None:
    client = exchange.order_book("me")
    for tick in INVALID_TICKS:
        response = client.request(ob.CreateOrderBookRequest(tick_size=tick))
        assert_error(response)
    for n, tick in enumerate(VALID_TICKS, 1):
        response = client.request(ob.CreateOrderBookRequest(tick_size=tick))
        assert isinstance(response, ob.CreateOrderBookResponse)
        assert (response.error_message, response.order_book_id) == ("", n), tick
        event = client.receive_as(ob.OnOrderBookCreated)
        assert (event.order_book_id, repr(event.tick_size)) == (n, repr(tick))


def test_admin_tick_sizes(exchange: Exchange) -> None:
    admin = exchange.admin()
    watcher = exchange.order_book("watcher")
    for n, tick in enumerate(INVALID_TICKS):
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=f"BAD{n}"), tick_size=tick
            )
        )
        assert_error(response)
    for n, tick in enumerate(VALID_TICKS, 1):
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=f"OK{n}"), tick_size=tick
            )
        )
        assert isinstance(response, admin_pb2.CreateInstrumentResponse)
        assert (response.error_message, response.order_book_id) == ("", n), tick
        event = watcher.receive_as(ob.OnOrderBookCreated)
        assert (event.order_book_id, repr(event.tick_size)) == (n, repr(tick))


def test_prices_must_be_multiples_of_odd_ticks(exchange: Exchange) -> None:
    book = exchange.create_book(0.0003)
    client = exchange.order_book()
    assert insert(client, book, BUY, 0.0009, 1).error_message == ""
    assert insert(client, book, BUY, 1.0002, 1).error_message == ""  # 3334 ticks
    assert insert(client, book, BUY, 3 * 0.0003, 1).error_message == ""  # 0.0009000000000000001 -> 0.0009
    for price in (0.0001, 0.001, 1.0):
        assert_error(insert(client, book, BUY, price, 1))


# ---------------------------------------------------------------- ids and timestamps


def test_ids_are_positive_and_strictly_increasing(exchange: Exchange) -> None:
    client = exchange.order_book()
    books = [exchange.create_book(), exchange.create_instrument("ABC"), exchange.create_book()]
    books.append(exchange.create_instrument("DEF"))
    assert books == [1, 2, 3, 4]
    order_ids: list[int] = []
    trade_ids: list[int] = []
    for round_ in range(3):
        for book in (books[2], books[0], books[3], books[1]):
            for side, price, quantity in ((SELL, 10.0, 2), (BUY, 10.0 + round_, 3)):
                response = insert(client, book, side, price, quantity)
                order_ids.append(response.order_id)
                trade_ids.extend(response.trade_ids)
    assert order_ids == list(range(1, 25))
    assert len(trade_ids) >= 12
    assert trade_ids == list(range(1, len(trade_ids) + 1))  # in matching order, across books


def test_timestamps_are_nanoseconds_since_the_epoch(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    client = exchange.order_book()
    before = time.time_ns()
    created = client.request(ob.CreateOrderBookRequest(tick_size=0.01))
    assert isinstance(created, ob.CreateOrderBookResponse)
    book = created.order_book_id
    resting = insert(client, book, SELL, 10.0, 2)
    taking = insert(client, book, BUY, 10.0, 1)
    assert cancel(client, book, resting.order_id).error_message == ""
    instrument = exchange.admin().request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01)
    )
    assert isinstance(instrument, admin_pb2.CreateInstrumentResponse)
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == book
    inserted = [watcher.receive_as(ob.OnOrderInserted) for _ in range(2)]
    trade = watcher.receive_as(ob.OnTrade)
    cancelled = watcher.receive_as(ob.OnOrderCancelled)
    after = time.time_ns()
    in_order = [
        created.timestamp,
        resting.timestamp,
        taking.timestamp,
        cancelled.cancellation_timestamp,
        instrument.created_timestamp,
    ]
    assert in_order == sorted(in_order)
    for stamp in [*in_order, inserted[0].timestamp, inserted[1].timestamp, trade.timestamp]:
        assert before <= stamp <= after, (before, stamp, after)
    assert inserted[0].timestamp <= inserted[1].timestamp <= trade.timestamp


# ---------------------------------------------------------------- login


def test_admin_requests_before_login_are_errors(exchange: Exchange) -> None:
    client = exchange.connect("admin")
    for request_id in (7, 7, 8):
        response = client.request(
            admin_pb2.CreateInstrumentRequest(
                request_id=request_id, instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01
            )
        )
        assert_error(response, request_id)
    client.login("alice", "alice")
    assert exchange.create_instrument("ABC") == 1  # nothing was created before


REFUSED_LOGINS = [
    ("alice", "wrong"),  # wrong password
    ("alice", ""),
    ("alice", "bob"),  # another user's password
    ("Alice", "alice"),  # usernames are case-sensitive
    ("mallory", "mallory"),  # unknown user
    ("", ""),
]


def test_admin_login_refusals_can_be_retried(exchange: Exchange) -> None:
    for n, (username, password) in enumerate(REFUSED_LOGINS, 1):
        client = exchange.connect("admin")
        refused = client.request(common_pb2.LoginRequest(request_id=3, username=username, password=password))
        assert_error(refused, 3)
        create = admin_pb2.CreateInstrumentRequest(
            instrument=common_pb2.Instrument(symbol=f"S{n}"), tick_size=0.01
        )
        assert_error(client.request(create))  # still not logged in
        refused = client.request(common_pb2.LoginRequest(request_id=4, username=username, password=password))
        assert_error(refused, 4)  # and again
        client.login("carol", "carol")
        response = client.request(create)
        assert isinstance(response, admin_pb2.CreateInstrumentResponse)
        assert (response.error_message, response.order_book_id) == ("", n), (username, password)


def test_admin_second_login_is_an_error_and_keeps_the_first(exchange: Exchange) -> None:
    client = exchange.connect("admin")
    client.login("alice", "alice")
    for username, password in (("alice", "alice"), ("bob", "bob"), ("alice", "wrong")):
        with pytest.raises(RequestFailed):
            client.login(username, password)
    response = client.request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01)
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse) and response.error_message == ""


def test_a_user_may_hold_several_connections(exchange: Exchange) -> None:
    connections = [exchange.admin("bob") for _ in range(4)]
    for i, client in enumerate(connections):
        client.send(
            admin_pb2.CreateInstrumentRequest(
                request_id=i + 1, instrument=common_pb2.Instrument(symbol=f"S{i}"), tick_size=0.01
            )
        )
    responses = [c.receive_as(admin_pb2.CreateInstrumentResponse) for c in connections]
    assert [(r.request_id, r.error_message) for r in responses] == [(i + 1, "") for i in range(4)]
    assert sorted(r.order_book_id for r in responses) == [1, 2, 3, 4]
    connections[0].close()  # one going away leaves the others logged in
    response = connections[1].request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="MORE"), tick_size=0.01)
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse) and response.error_message == ""
    # on the order book too
    watchers = [exchange.order_book("alice") for _ in range(3)]
    for watcher in watchers:
        assert [watcher.receive_as(ob.OnOrderBookCreated).order_book_id for _ in range(5)] == [1, 2, 3, 4, 5]


def test_order_book_accepts_any_username_without_password(exchange: Exchange) -> None:
    logins = [("nobody-in-the-file", ""), ("alice", "not-her-password"), ("x" * 200, "pw"), ("", "")]
    for n, (username, password) in enumerate(logins, 1):
        client = exchange.order_book()
        response = client.request(common_pb2.LoginRequest(request_id=9, username=username, password=password))
        assert isinstance(response, common_pb2.LoginResponse)
        assert (response.request_id, response.error_message) == (9, ""), username
        replay = [client.receive_as(ob.OnOrderBookCreated).order_book_id for _ in range(1, n)]
        assert replay == list(range(1, n))
        book = exchange.create_book()
        assert client.receive_as(ob.OnOrderBookCreated).order_book_id == book  # logged in: gets events
        second = client.request(common_pb2.LoginRequest(request_id=10, username="other"))
        assert_error(second, 10)


def test_order_book_serves_requests_without_login_and_sends_events_only_to_logged_in(
    exchange: Exchange,
) -> None:
    silent = exchange.order_book()
    listener = exchange.order_book("listener")
    created = silent.request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
    assert isinstance(created, ob.CreateOrderBookResponse)
    book = created.order_book_id
    first = insert(silent, book, SELL, 10.0, 3)
    second = insert(silent, book, BUY, 10.0, 1)
    third = insert(silent, book, BUY, 9.0, 1)
    assert (first.order_id, second.traded_quantity, third.order_id) == (1, 1, 3)
    assert cancel(silent, book, third.order_id).error_message == ""
    # the logged-in connection got every event; the other one none
    events = [listener.receive() for _ in range(6)]
    names = [type(e).__name__ for e in events]
    assert names == [
        "OnOrderBookCreated",
        "OnOrderInserted",
        "OnOrderInserted",
        "OnTrade",
        "OnOrderInserted",
        "OnOrderCancelled",
    ]
    assert until_barrier(silent) == []
    # once logged in, it gets the state of the day, then live events
    silent.login("silent")
    assert silent.receive_as(ob.OnOrderBookCreated).order_book_id == book
    assert (silent.receive_as(ob.OnOrderInserted).order_id) == 1
    fourth = insert(exchange.order_book(), book, BUY, 8.0, 1)
    assert silent.receive_as(ob.OnOrderInserted).order_id == fourth.order_id


# ---------------------------------------------------------------- concurrency


def test_several_clients_are_served_concurrently(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    clients = [exchange.order_book() for _ in range(8)]
    per_client = 40
    barrier = threading.Barrier(len(clients))
    results: dict[int, list[ob.InsertOrderResponse]] = {}
    errors: list[BaseException] = []

    def trade(i: int, client: SyncClient) -> None:
        try:
            barrier.wait(TIMEOUT)
            mine = []
            for n in range(per_client):
                side = BUY if (i + n) % 2 else SELL
                mine.append(insert(client, book, side, 10.0, 1, f"user{i}"))
            results[i] = mine
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=trade, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert errors == []
    assert sorted(results) == list(range(len(clients)))
    responses = [r for mine in results.values() for r in mine]
    assert all(r.error_message == "" for r in responses)
    assert sorted(r.order_id for r in responses) == list(range(1, len(clients) * per_client + 1))
    for mine in results.values():  # each connection's ids increase in its own request order
        assert [r.order_id for r in mine] == sorted(r.order_id for r in mine)
    trade_ids = sorted(t for r in responses for t in r.trade_ids)
    assert trade_ids == list(range(1, len(trade_ids) + 1))
    assert sum(r.traded_quantity for r in responses) == len(trade_ids) > 0
    for client in clients:  # nobody got another's responses
        assert until_barrier(client) == []
