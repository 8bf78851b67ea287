"""Section 1 of the contract (the wire format) and bad input, against the order book and against admin.

Every violation closes that one connection and nothing else: after each, other clients are still
answered and no component has died.
"""

from __future__ import annotations

import fcntl
import itertools
import math
import os
import signal
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message

from optivex.client import ConnectionClosed
from optivex.deploy import DEFAULT_USERS
from optivex.net.connection import DEFAULT_MAX_UNSENT
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH, FrameDecoder, encode_frame

from .helpers import BUY, SELL, TIMEOUT, Exchange, SyncClient, insert, until_barrier

PROTOCOLS = ("order_book", "admin")
LOGIN_REQUEST = 0
LOGIN_RESPONSE = 1
MAX_PAYLOAD = MAX_FRAME_LENGTH - 4
"""The largest legal payload: the length field counts the 4 bytes of the type too."""

REQUEST_TYPE = {"order_book": ob.CREATE_ORDER_BOOK_REQUEST, "admin": admin_pb2.CREATE_INSTRUMENT_REQUEST}
RESPONSE: dict[str, type[Message]] = {
    "order_book": ob.CreateOrderBookResponse,
    "admin": admin_pb2.CreateInstrumentResponse,
}
_ids = itertools.count(1000)
M = TypeVar("M", bound=Message)


def frame(msg_type: int, message: Message | bytes) -> bytes:
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    return encode_frame(msg_type, payload)


def login_frame(username: str, password: str = "", request_id: int = 1) -> bytes:
    return frame(
        LOGIN_REQUEST, common_pb2.LoginRequest(request_id=request_id, username=username, password=password)
    )


def sample_request(protocol: str) -> Any:
    """A request with a fresh request_id that succeeds (on admin: once logged in)."""
    n = next(_ids)
    if protocol == "order_book":
        return ob.CreateOrderBookRequest(request_id=n, tick_size=0.01)
    return admin_pb2.CreateInstrumentRequest(
        request_id=n, instrument=common_pb2.Instrument(symbol=f"W{n}"), tick_size=0.01
    )


def answered(client: SyncClient, protocol: str) -> Any:
    """Send one request: its response must be the very next message on the connection."""
    request = sample_request(protocol)
    client.send(request)
    response: Any = client.receive_as(RESPONSE[protocol])
    assert response.request_id == request.request_id
    return response


def ready_client(exchange: Exchange, protocol: str) -> SyncClient:
    """A connection whose requests succeed and that gets no events (the order book's is not logged in)."""
    return exchange.admin("alice") if protocol == "admin" else exchange.order_book()


def assert_still_serving(exchange: Exchange, protocol: str, *clients: SyncClient) -> None:
    """The given connections and a new one are answered, and no component has died."""
    for client in clients:
        assert answered(client, protocol).error_message == ""
    assert answered(ready_client(exchange, protocol), protocol).error_message == ""
    assert exchange.deployment.poll_dead() == []


def pad(message: Any, set_padding: Callable[[Any, str], None], size: int) -> bytes:
    """`message` serialized to exactly `size` bytes, growing a string field through `set_padding`."""
    length = 0
    for _ in range(10):
        set_padding(message, "x" * length)
        payload: bytes = message.SerializeToString()
        if len(payload) == size:
            return payload
        length += size - len(payload)
    raise AssertionError(f"cannot pad {type(message).__name__} to {size} bytes")


def set_username(message: Any, text: str) -> None:
    message.on_behalf_of_username = text


def set_description(message: Any, text: str) -> None:
    message.instrument.description = text


def expect(client: SyncClient, cls: type[M], what: str) -> M:
    """The next message, which must be a `cls`; a timeout fails with `what` was expected."""
    try:
        return client.receive_as(cls)
    except TimeoutError:
        raise AssertionError(f"no {cls.__name__} within {TIMEOUT:g} s: {what}") from None


def reset_and_close(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---------------------------------------------------------------- segmentation


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_request_sent_byte_by_byte_is_answered(exchange: Exchange, protocol: str) -> None:
    client = exchange.connect(protocol)
    data = login_frame("alice", "alice") if protocol == "admin" else b""
    request = sample_request(protocol)
    data += frame(REQUEST_TYPE[protocol], request)
    for i in range(len(data)):
        client.send_raw(data[i : i + 1])
    if protocol == "admin":
        login = client.receive_as(common_pb2.LoginResponse)
        assert (login.request_id, login.error_message) == (1, "")
    response: Any = client.receive_as(RESPONSE[protocol])
    assert (response.request_id, response.error_message) == (request.request_id, "")
    assert_still_serving(exchange, protocol, client)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_frames_straddling_writes_are_all_answered(exchange: Exchange, protocol: str) -> None:
    client = exchange.connect(protocol)
    data = login_frame("bob", "bob") if protocol == "admin" else b""
    requests = [sample_request(protocol) for _ in range(5)]
    data += b"".join(frame(REQUEST_TYPE[protocol], r) for r in requests)
    for i in range(0, len(data), 7):  # each write ends inside a frame and starts the next
        client.send_raw(data[i : i + 7])
    if protocol == "admin":
        assert client.receive_as(common_pb2.LoginResponse).error_message == ""
    responses: list[Any] = [client.receive_as(RESPONSE[protocol]) for _ in requests]
    assert [(r.request_id, r.error_message) for r in responses] == [(q.request_id, "") for q in requests]


def test_many_order_book_frames_in_one_write_are_answered_in_order(exchange: Exchange) -> None:
    client = exchange.order_book()
    create = ob.CreateOrderBookRequest(request_id=1, tick_size=0.01)
    inserts = [
        ob.InsertOrderRequest(
            request_id=100 + i, order_book_id=1, side=BUY, price=round(5 + 0.01 * (i % 100), 2), quantity=1
        )
        for i in range(300)
    ]
    client.send(create, *inserts)
    created = client.receive_as(ob.CreateOrderBookResponse)
    assert (created.request_id, created.error_message, created.order_book_id) == (1, "", 1)
    responses = [client.receive_as(ob.InsertOrderResponse) for _ in inserts]
    assert [(r.request_id, r.error_message) for r in responses] == [(100 + i, "") for i in range(300)]
    assert [r.order_id for r in responses] == list(range(1, 301))


def test_many_admin_frames_in_one_write_are_answered_in_order(exchange: Exchange) -> None:
    client = exchange.connect("admin")
    login = common_pb2.LoginRequest(request_id=5, username="carol", password="carol")
    creates = [
        admin_pb2.CreateInstrumentRequest(
            request_id=-i, instrument=common_pb2.Instrument(symbol=f"I{i}"), tick_size=0.01
        )
        for i in range(1, 61)
    ]
    client.send(login, *creates)
    assert client.receive_as(common_pb2.LoginResponse).request_id == 5
    responses = [client.receive_as(admin_pb2.CreateInstrumentResponse) for _ in creates]
    assert [(r.request_id, r.error_message) for r in responses] == [(-i, "") for i in range(1, 61)]
    assert sorted(r.order_book_id for r in responses) == list(range(1, 61))


# ---------------------------------------------------------------- bad lengths


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_length_below_4_closes_that_connection_at_once(exchange: Exchange, protocol: str) -> None:
    bystander = ready_client(exchange, protocol)
    for length in range(4):
        for data in (
            struct.pack(">I", length),  # the length alone
            struct.pack(">II", length, REQUEST_TYPE[protocol]) + bytes(8),
        ):
            violator = exchange.connect(protocol)
            violator.send_raw(data)
            assert violator.wait_closed(), f"length {length} ({data.hex()}) did not close the connection"
        assert answered(bystander, protocol).error_message == ""
    assert_still_serving(exchange, protocol, bystander)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_length_above_the_maximum_closes_as_soon_as_it_is_read(exchange: Exchange, protocol: str) -> None:
    bystander = ready_client(exchange, protocol)
    for length in (MAX_FRAME_LENGTH + 1, MAX_FRAME_LENGTH + 4, 2**31, 2**32 - 1):
        head = struct.pack(">I", length)
        # only the 4 length bytes, never a payload: in one write, then split in two
        violator = exchange.connect(protocol)
        violator.send_raw(head)
        assert violator.wait_closed(), f"length {length} did not close the connection"
        violator = exchange.connect(protocol)
        violator.send_raw(head[:2])
        violator.send_raw(head[2:])
        assert violator.wait_closed(), f"length {length} sent in two writes did not close the connection"
        violator = exchange.connect(protocol)
        violator.send_raw(head + struct.pack(">I", REQUEST_TYPE[protocol]))  # length and type
        assert violator.wait_closed(), f"length {length} followed by a type did not close the connection"
    assert_still_serving(exchange, protocol, bystander)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_garbage_frame_of_exactly_the_maximum_length_is_handled(exchange: Exchange, protocol: str) -> None:
    bystander = ready_client(exchange, protocol)
    violator = exchange.connect(protocol)
    violator.send_raw(struct.pack(">II", MAX_FRAME_LENGTH, REQUEST_TYPE[protocol]) + b"\xff" * MAX_PAYLOAD)
    try:
        response = violator.receive()
    except ConnectionClosed:
        pass  # undecodable: closed, as it should be
    else:
        assert isinstance(response, RESPONSE[protocol])
    assert_still_serving(exchange, protocol, bystander)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_valid_frame_of_exactly_the_maximum_length_is_answered(exchange: Exchange, protocol: str) -> None:
    client = exchange.connect(protocol)
    message: Any
    msg_type: int
    if protocol == "order_book":  # an unknown book: an error response, nothing else
        message = ob.InsertOrderRequest(request_id=77, order_book_id=4242, side=BUY, price=1.0, quantity=1)
        payload = pad(message, set_username, MAX_PAYLOAD)
        msg_type = ob.INSERT_ORDER_REQUEST
    else:  # not logged in: an error response, nothing else
        message = admin_pb2.CreateInstrumentRequest(
            request_id=77, instrument=common_pb2.Instrument(symbol="BIG"), tick_size=0.01
        )
        payload = pad(message, set_description, MAX_PAYLOAD)
        msg_type = admin_pb2.CREATE_INSTRUMENT_REQUEST
    data = frame(msg_type, payload)
    assert len(data) == 4 + MAX_FRAME_LENGTH
    client.send_raw(data)
    response: Any = client.receive()
    expected = ob.InsertOrderResponse if protocol == "order_book" else admin_pb2.CreateInstrumentResponse
    assert isinstance(response, expected)
    assert response.request_id == 77 and response.error_message
    assert_still_serving(exchange, protocol)


def _maximal_insert(exchange: Exchange) -> tuple[int, SyncClient, SyncClient, ob.InsertOrderResponse]:
    """A legal insert of exactly the maximum frame length (a long on_behalf_of_username) on a real book.

    Returns the book, a logged-in watcher (its replay read), the sender and the insert's response.
    """
    book = exchange.create_book()
    watcher = exchange.order_book("watcher")
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == book
    sender = exchange.order_book()
    request = ob.InsertOrderRequest(request_id=77, order_book_id=book, side=BUY, price=10.0, quantity=3)
    sender.send_raw(frame(ob.INSERT_ORDER_REQUEST, pad(request, set_username, MAX_PAYLOAD)))
    response = sender.receive_as(ob.InsertOrderResponse)
    assert response.request_id == 77
    return book, watcher, sender, response


def test_a_maximal_legal_insert_gets_exactly_one_response(exchange: Exchange) -> None:
    _, _, sender, response = _maximal_insert(exchange)
    # The next request's response must be the next message: no second response to request 77.
    sender.send(ob.CreateOrderBookRequest(request_id=78, tick_size=0.01))
    follow = sender.receive()
    assert isinstance(follow, ob.CreateOrderBookResponse), (
        f"a second response to one request: {type(follow).__name__} {follow}".strip()
    )
    assert follow.request_id == 78
    if response.error_message:  # refused: nothing changed
        assert (response.order_id, list(response.trade_ids)) == (0, [])


def test_a_maximal_legal_insert_leaves_events_and_logins_working(exchange: Exchange) -> None:
    book, watcher, sender, response = _maximal_insert(exchange)
    if response.error_message:
        assert insert(sender, book, BUY, 10.0, 1).order_id == 1  # a failed request changes nothing
        return
    big = response.order_id
    # Watchers are told of it (in a legal frame: receive() would raise on a longer one) ...
    event = expect(watcher, ob.OnOrderInserted, f"order {big} was accepted but never announced")
    assert (event.order_id, event.quantity) == (big, 3)
    # ... and a connection logging in later gets its LoginResponse, the day's state, then live events.
    late = exchange.order_book()
    late.send(common_pb2.LoginRequest(request_id=9, username="late"))
    login = late.receive_as(common_pb2.LoginResponse)
    assert (login.request_id, login.error_message) == (9, "")
    assert late.receive_as(ob.OnOrderBookCreated).order_book_id == book
    assert late.receive_as(ob.OnOrderInserted).order_id == big
    small = insert(sender, book, SELL, 10.0, 1)
    assert small.traded_quantity == 1
    assert late.receive_as(ob.OnOrderInserted).order_id == small.order_id
    assert late.receive_as(ob.OnTrade).buy_order_id == big


@pytest.mark.parametrize("slack", [0, 8])
def test_a_near_maximal_instrument_exists_everywhere_once_confirmed(exchange: Exchange, slack: int) -> None:
    """An admin request with a huge description: an error changes nothing, a success is announced."""
    watcher = exchange.order_book("watcher")
    admin = exchange.admin()
    request = admin_pb2.CreateInstrumentRequest(
        request_id=31, instrument=common_pb2.Instrument(symbol="HUGE"), tick_size=0.01
    )
    admin.send_raw(
        frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, pad(request, set_description, MAX_PAYLOAD - slack))
    )
    response = admin.receive_as(admin_pb2.CreateInstrumentResponse)
    assert response.request_id == 31
    nxt = admin.request(
        admin_pb2.CreateInstrumentRequest(
            request_id=32, instrument=common_pb2.Instrument(symbol="NEXT"), tick_size=0.01
        )
    )
    assert isinstance(nxt, admin_pb2.CreateInstrumentResponse) and nxt.error_message == ""
    if response.error_message:
        assert (response.order_book_id, response.created_timestamp) == (0, 0)
        assert nxt.order_book_id == 1
        assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == 1
        return
    assert nxt.order_book_id == response.order_book_id + 1
    what = f"book {response.order_book_id} of the confirmed instrument was never announced"
    first = expect(watcher, ob.OnOrderBookCreated, what)
    assert first.order_book_id == response.order_book_id, (
        f"{what}; the next event is for book {first.order_book_id}"
    )
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == nxt.order_book_id
    late = exchange.order_book()
    late.send(common_pb2.LoginRequest(request_id=9, username="late"))
    login = late.receive_as(common_pb2.LoginResponse)
    assert (login.request_id, login.error_message) == (9, "")
    replay = [late.receive_as(ob.OnOrderBookCreated).order_book_id for _ in range(2)]
    assert replay == [response.order_book_id, nxt.order_book_id]


# ---------------------------------------------------------------- bad payloads and types


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_undecodable_payload_closes_only_that_connection(exchange: Exchange, protocol: str) -> None:
    bystander = ready_client(exchange, protocol)
    if protocol == "order_book":
        types = [
            LOGIN_REQUEST,
            ob.CREATE_ORDER_BOOK_REQUEST,
            ob.INSERT_ORDER_REQUEST,
            ob.CANCEL_ORDER_REQUEST,
        ]
    else:
        types = [LOGIN_REQUEST, admin_pb2.CREATE_INSTRUMENT_REQUEST]
    for msg_type in types:
        for logged_in in (False, True):
            violator = exchange.connect(protocol)
            if logged_in:
                violator.login("dave", "dave")
            violator.send_raw(frame(msg_type, b"\xff\xff\xff"))
            assert violator.wait_closed(), f"type {msg_type} with an undecodable payload was not closed"
            assert answered(bystander, protocol).error_message == ""
    assert_still_serving(exchange, protocol, bystander)


VIOLATIONS = {
    "length 3": struct.pack(">I", 3),
    "length above the maximum": struct.pack(">II", MAX_FRAME_LENGTH + 1, 10),
    "undecodable payload": None,  # a frame of the protocol's request type with b"\xff\xff\xff"
}


@pytest.mark.parametrize("violation", VIOLATIONS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_before_a_violation_in_the_same_write_are_answered(
    exchange: Exchange, protocol: str, violation: str
) -> None:
    """The requests that precede a violation are legal: carried out and answered, whatever the
    segmentation, before the connection closes."""
    watcher = exchange.order_book("watcher")
    violator = ready_client(exchange, protocol)
    requests = [sample_request(protocol) for _ in range(2)]
    bad = VIOLATIONS[violation] or frame(REQUEST_TYPE[protocol], b"\xff\xff\xff")
    after = frame(REQUEST_TYPE[protocol], sample_request(protocol))
    violator.send_raw(b"".join(frame(REQUEST_TYPE[protocol], r) for r in requests) + bad + after)
    # Both were carried out: their books exist ...
    what = f"the requests sent before the {violation} were not carried out"
    created = [expect(watcher, ob.OnOrderBookCreated, what).order_book_id for _ in requests]
    assert created == [1, 2]
    # ... and answered before the close.
    try:
        responses: list[Any] = [violator.receive_as(RESPONSE[protocol]) for _ in requests]
    except ConnectionClosed:
        raise AssertionError(f"closed without answering the requests sent before the {violation}") from None
    assert [(r.request_id, r.error_message) for r in responses] == [(q.request_id, "") for q in requests]
    assert [r.order_book_id for r in responses] == created
    assert violator.wait_closed()
    # Nothing after the violation was carried out: the next book is that of a request sent now (on
    # admin, over the same link to the order book as the violator's would have taken), then nothing.
    follow = answered(ready_client(exchange, protocol), protocol)
    assert follow.order_book_id == 3
    assert expect(watcher, ob.OnOrderBookCreated, "the book of a later request").order_book_id == 3
    assert until_barrier(watcher) == []
    assert_still_serving(exchange, protocol)


def _ignored_frames(protocol: str) -> list[bytes]:
    """Frames of types the server does not accept from clients."""
    common = [
        frame(999, b"\xff\xff\xff"),
        frame(999, b""),
        frame(2**32 - 1, b"garbage"),
        frame(LOGIN_RESPONSE, common_pb2.LoginResponse(request_id=5, error_message="x")),
    ]
    if protocol == "order_book":
        return [
            *common,
            frame(ob.ON_TRADE, ob.OnTrade(trade_id=1, order_book_id=1, price=1.0, quantity=1)),
            frame(ob.ON_ORDER_BOOK_CREATED, ob.OnOrderBookCreated(order_book_id=7, tick_size=0.01)),
            frame(ob.ON_ORDER_INSERTED, ob.OnOrderInserted(order_id=3)),
            frame(ob.ON_ORDER_CANCELLED, ob.OnOrderCancelled(order_id=3)),
            frame(ob.INSERT_ORDER_RESPONSE, ob.InsertOrderResponse(request_id=5, order_id=3)),
            frame(ob.CREATE_ORDER_BOOK_RESPONSE, ob.CreateOrderBookResponse(request_id=5)),
        ]
    return [
        *common,
        frame(admin_pb2.CREATE_INSTRUMENT_RESPONSE, admin_pb2.CreateInstrumentResponse(request_id=5)),
        # order-book requests are no admin requests
        frame(
            ob.INSERT_ORDER_REQUEST, ob.InsertOrderRequest(request_id=5, order_book_id=1, price=1, quantity=1)
        ),
        frame(ob.CANCEL_ORDER_REQUEST, ob.CancelOrderRequest(request_id=5, order_book_id=1, order_id=1)),
    ]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_types_not_accepted_from_clients_are_ignored(exchange: Exchange, protocol: str) -> None:
    ignored = _ignored_frames(protocol)
    # one by one, each followed by a request whose response must be the next message
    client = exchange.connect(protocol)
    for data in ignored:
        client.send_raw(data)
        response = answered(client, protocol)
        assert response.error_message if protocol == "admin" else not response.error_message
    # all in one write, mixed with requests (on admin: logged in)
    client = ready_client(exchange, protocol)
    requests = [sample_request(protocol) for _ in range(3)]
    data = b"".join(ignored) + frame(REQUEST_TYPE[protocol], requests[0])
    data += b"".join(ignored) + frame(REQUEST_TYPE[protocol], requests[1]) + b"".join(ignored)
    client.send_raw(data + frame(REQUEST_TYPE[protocol], requests[2]))
    responses: list[Any] = [client.receive_as(RESPONSE[protocol]) for _ in requests]
    assert [(r.request_id, r.error_message) for r in responses] == [(q.request_id, "") for q in requests]
    assert until_barrier(client) == []
    assert_still_serving(exchange, protocol, client)


# ---------------------------------------------------------------- abrupt disconnects


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_abrupt_disconnects_mid_frame_leave_the_component_serving(exchange: Exchange, protocol: str) -> None:
    bystander = ready_client(exchange, protocol)
    watcher = exchange.order_book("watcher")  # sees the events that go to the dead connections too
    whole = frame(REQUEST_TYPE[protocol], sample_request(protocol))
    for cut in (1, 4, 6, len(whole) // 2, len(whole) - 1):
        for logged_in, reset in itertools.product((False, True), (False, True)):
            user = DEFAULT_USERS[cut % len(DEFAULT_USERS)].username
            client = exchange.connect(protocol, user if logged_in else None)
            client.send_raw(whole[:cut])
            if reset:
                reset_and_close(client.sock)
            else:
                client.close()
    # Events now go to (some of) the dead connections; the live ones are served all the same.
    book = answered(exchange.order_book(), "order_book").order_book_id
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == book
    order = insert(exchange.order_book(), book, BUY, 10.0, 1).order_id
    assert watcher.receive_as(ob.OnOrderInserted).order_id == order
    assert_still_serving(exchange, protocol, bystander)


# ---------------------------------------------------------------- many clients


def test_fifty_logged_in_connections_are_all_answered_and_all_get_every_event(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    clients = [exchange.order_book() for _ in range(50)]
    for i, client in enumerate(clients):
        client.send(common_pb2.LoginRequest(request_id=1, username=f"user{i}"))
    for client in clients:
        assert client.receive_as(common_pb2.LoginResponse).error_message == ""
        assert client.receive_as(ob.OnOrderBookCreated).order_book_id == book
    for i, client in enumerate(clients):  # sends interleaved, then reads
        client.send(
            ob.InsertOrderRequest(
                request_id=10_000 + i,
                order_book_id=book,
                side=SELL if i % 2 else BUY,
                price=10.0,
                quantity=1 + i % 3,
                on_behalf_of_username=f"user{i}",
            ),
            ob.InsertOrderRequest(
                request_id=20_000 + i, order_book_id=book, side=BUY, price=round(9 - 0.01 * i, 2), quantity=1
            ),
        )
    events: list[list[Message]] = []
    responses: dict[int, ob.InsertOrderResponse] = {}
    for i, client in enumerate(clients):
        got: list[Message] = []
        mine: list[ob.InsertOrderResponse] = []
        while len(mine) < 2:
            message = client.receive()
            if isinstance(message, ob.InsertOrderResponse):
                mine.append(message)
            else:
                got.append(message)
        assert [(r.request_id, r.error_message) for r in mine] == [(10_000 + i, ""), (20_000 + i, "")]
        responses.update((r.request_id, r) for r in mine)
        events.append(got)
    order_ids = sorted(r.order_id for r in responses.values())
    assert order_ids == list(range(1, 101))
    trades = sum(len(r.trade_ids) for r in responses.values())
    assert trades > 0
    for client, got in zip(clients, events, strict=True):
        while len(got) < 100 + trades:
            got.append(client.receive())
    for got in events:
        assert got == events[0]  # the same events, in the same order, for every connection
    inserted = [e.order_id for e in events[0] if isinstance(e, ob.OnOrderInserted)]
    assert inserted == order_ids
    assert sum(isinstance(e, ob.OnTrade) for e in events[0]) == trades


def test_fifty_concurrent_admin_connections_are_all_answered(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    count = 50
    barrier = threading.Barrier(count)
    results: dict[int, admin_pb2.CreateInstrumentResponse] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            user = DEFAULT_USERS[i % len(DEFAULT_USERS)]
            client = exchange.connect("admin", user.username, user.password)
            barrier.wait(TIMEOUT * 3)
            response = client.request(
                admin_pb2.CreateInstrumentRequest(
                    request_id=i + 1, instrument=common_pb2.Instrument(symbol=f"C{i}"), tick_size=0.01
                )
            )
            assert isinstance(response, admin_pb2.CreateInstrumentResponse)
            results[i] = response
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert errors == []
    assert sorted(results) == list(range(count))
    assert all(r.error_message == "" and r.request_id == i + 1 for i, r in results.items())
    assert sorted(r.order_book_id for r in results.values()) == list(range(1, count + 1))
    created = [watcher.receive_as(ob.OnOrderBookCreated) for _ in range(count)]
    assert [e.order_book_id for e in created] == list(range(1, count + 1))
    by_book = {r.order_book_id: f"C{i}" for i, r in results.items()}
    assert all(e.instrument.symbol == by_book[e.order_book_id] for e in created)


# ---------------------------------------------------------------- slow consumers


def _read_login_response(sock: socket.socket) -> None:
    decoder = FrameDecoder()
    frames: list[tuple[int, bytes]] = []
    while not frames:
        data = sock.recv(4096)
        assert data, "closed before the LoginResponse"
        frames += decoder.feed(data)
    msg_type, payload = frames[0]
    assert msg_type == LOGIN_RESPONSE and common_pb2.LoginResponse.FromString(payload).error_message == ""


def _closed_after_draining(sock: socket.socket, timeout: float) -> bool:
    """Read (and drop) until EOF or reset: True; False if still open after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(1 << 20):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True


def _kernel_send_buffer_max() -> int:
    """The most a TCP socket's send buffer grows to (Linux), 4 MiB when unknown."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def test_a_consumer_that_never_reads_is_cut_off_without_delaying_others(exchange: Exchange) -> None:
    host, port = exchange.deployment.address("order_book")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(TIMEOUT)
    stalled.connect((host, port))
    stalled.sendall(login_frame("stalled"))
    _read_login_response(stalled)  # logged in: from now on it gets every event, and never reads

    book = exchange.create_book(0.01)
    generator = exchange.order_book()  # not logged in: responses only
    prober = exchange.order_book()
    # Each sweep rests `sweep` sells, then one buy takes them all: some 85 bytes of events per request
    # (an OnOrderInserted per sell, an OnTrade per fill). Enough sweeps for well over what the stalled
    # connection may hold: 8 MiB unsent plus the kernel's send buffer (its own receive buffer is tiny).
    sweep, per_chunk, in_flight = 1000, 10, 2
    needed = DEFAULT_MAX_UNSENT + _kernel_send_buffer_max()
    chunks = math.ceil(needed * 1.3 / (sweep * 80 * per_chunk))
    sell = frame(
        ob.INSERT_ORDER_REQUEST,
        ob.InsertOrderRequest(request_id=1, order_book_id=book, side=SELL, price=10.0, quantity=1),
    )
    buy = frame(
        ob.INSERT_ORDER_REQUEST,
        ob.InsertOrderRequest(request_id=2, order_book_id=book, side=BUY, price=10.0, quantity=sweep),
    )
    chunk = (sell * sweep + buy) * per_chunk  # pre-encoded, one write each
    chunk_requests = (sweep + 1) * per_chunk

    failures: list[BaseException] = []
    probes: list[int] = []
    done = threading.Event()
    window = threading.Semaphore(in_flight)  # whole chunks sent but not yet answered

    def send_flood() -> None:
        try:
            for _ in range(chunks):
                if not window.acquire(timeout=TIMEOUT * 2):
                    raise TimeoutError("a chunk of requests was not answered")
                generator.sock.sendall(chunk)
        except BaseException as exc:
            failures.append(exc)

    def probe() -> None:
        request = ob.InsertOrderRequest(order_book_id=book + 100, side=BUY, price=1.0, quantity=1)
        try:
            while not done.is_set():
                response = prober.request(request, timeout=TIMEOUT)  # TimeoutError: held up
                assert isinstance(response, ob.InsertOrderResponse) and response.error_message
                probes.append(1)
                request.request_id = 0
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=send_flood), threading.Thread(target=probe)]
    for thread in threads:
        thread.start()
    try:
        decoder = FrameDecoder()
        answered_count = 0
        last_insert = b""
        generator.sock.settimeout(TIMEOUT)
        while answered_count < chunks * chunk_requests:
            data = generator.sock.recv(1 << 20)
            assert data, "the generator's connection was closed"
            frames = decoder.feed(data)
            for _ in range(
                (answered_count + len(frames)) // chunk_requests - answered_count // chunk_requests
            ):
                window.release()
            answered_count += len(frames)
            if frames:
                last_insert = frames[-1][1]
    finally:
        done.set()
        for thread in threads:
            thread.join(TIMEOUT * 2)
    assert failures == []
    assert answered_count == chunks * chunk_requests
    assert ob.InsertOrderResponse.FromString(last_insert).traded_quantity == sweep
    assert len(probes) >= 3, f"only {len(probes)} probes completed during the flood"
    # The stalled connection was disconnected: after what was buffered, EOF (or a reset).
    assert _closed_after_draining(stalled, 10.0), "the connection that never reads was never closed"
    stalled.close()
    assert exchange.deployment.poll_dead() == []
    late = exchange.order_book("late")
    assert late.receive_as(ob.OnOrderBookCreated).order_book_id == book
    assert until_barrier(late) == []  # every sweep filled: nothing rests


def test_an_admin_client_that_never_reads_does_not_delay_others(exchange: Exchange) -> None:
    host, port = exchange.deployment.address("admin")
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.settimeout(TIMEOUT)
    stalled.connect((host, port))
    # Pipeline requests (each answered with an error: not logged in) without ever reading, until
    # the writes block.
    chunk = frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, sample_request("admin")) * 2000
    stalled.setblocking(False)
    sent = 0
    try:
        while sent < 200 * 1024 * 1024:
            sent += stalled.send(chunk)
    except BlockingIOError:
        pass
    assert sent < 200 * 1024 * 1024, "the admin kept reading requests whose responses are never read"
    other = exchange.admin("bob")
    for _ in range(5):  # each within TIMEOUT (answered's receive)
        assert answered(other, "admin").error_message == ""
    reset_and_close(stalled)
    assert_still_serving(exchange, "admin", other)


def _wait_delivered(sock: socket.socket) -> None:
    """Return once the peer's kernel has acknowledged every byte sent on `sock` (Linux: SIOCOUTQ is 0)."""
    deadline = time.monotonic() + TIMEOUT
    while struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]:
        assert time.monotonic() < deadline, "the order book's kernel did not take the bytes sent"
        os.sched_yield()


def _wait_stopped(pid: int) -> None:
    """Return once process `pid` is stopped (a SIGSTOP is delivered asynchronously; Linux /proc)."""
    deadline = time.monotonic() + TIMEOUT
    stat = Path(f"/proc/{pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        os.sched_yield()


BURST = 1500
"""Requests of the pipelining client's one write: several turns' worth (FRAMES_PER_TURN), well under
what the order book's socket buffer takes while it is stopped (some 40 KB)."""


def test_a_pipelining_client_does_not_hold_up_another(exchange: Exchange) -> None:
    """A burst of requests in one read is handled in turns: another connection's request, read at the
    same time, is handled before the burst is through.

    The order book is stopped (SIGSTOP) while the burst and then the other request reach its socket
    buffers; on SIGCONT one poll reports both, the burst first. Handled in one go, the burst would take
    every order id before the other's; order ids are strictly increasing in handling order, so the other
    response's order_id tells how many of the burst were handled before it.
    """
    book = exchange.create_book()
    flooder = exchange.order_book()
    other = exchange.order_book()
    for client in (flooder, other):  # both connections accepted and read from
        assert until_barrier(client) == []
    burst = b"".join(
        frame(
            ob.INSERT_ORDER_REQUEST,
            ob.InsertOrderRequest(request_id=i, order_book_id=book, side=BUY, price=10.0, quantity=1),
        )
        for i in range(1, BURST + 1)
    )
    process = exchange.deployment.provider("order_book").process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        _wait_stopped(process.pid)
        flooder.send_raw(burst)
        _wait_delivered(flooder.sock)
        other.send(ob.InsertOrderRequest(request_id=7, order_book_id=book, side=SELL, price=11.0, quantity=1))
        _wait_delivered(other.sock)
    finally:
        process.send_signal(signal.SIGCONT)
    response = other.receive_as(ob.InsertOrderResponse)
    assert (response.request_id, response.error_message) == (7, "")
    responses = [flooder.receive_as(ob.InsertOrderResponse) for _ in range(BURST)]
    assert [(r.request_id, r.error_message) for r in responses] == [(i, "") for i in range(1, BURST + 1)]
    flood_ids = [r.order_id for r in responses]
    assert flood_ids == sorted(flood_ids)
    handled_before = sum(order_id < response.order_id for order_id in flood_ids)
    assert handled_before < BURST, (
        f"the other connection's request was handled after the whole burst of {BURST} in one read"
    )
    assert until_barrier(flooder) == [] and until_barrier(other) == []
