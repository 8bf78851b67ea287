"""Bad input on the gateway's port (execution + risk_limits, sections 1, 2, 6 and 7 of the contract) and
the gateway's lifecycle (section 8): a clear error or a closed connection, the gateway alive and serving
others, no state changed.

What the gateway does with each (the framework's rules, app.component and net.connection, as for every
component), and the test that covers it:

- a bad length (below 4, above 1,048,576) closes that connection at once, and only that one:
  `test_a_bad_length_closes_only_that_connection`;
- garbage bytes close that connection only: `test_garbage_closes_only_that_connection`;
- an undecodable payload of a request type the gateway accepts closes that connection only, before and
  after login, once the requests before it in the same write are answered (an insert among them is
  placed), nothing after it carried out: `test_an_undecodable_payload_closes_only_that_connection`;
- a frame of a type the gateway does not accept from clients (a response or event type, an order_book-only
  request, an unknown type) is ignored, its payload never decoded, the connection stays usable:
  `test_types_not_accepted_from_clients_are_ignored`;
- unknown fields (an order_book-only on_behalf_of_username among them) and fields of the wrong wire type
  are skipped, as protobuf decodes them; a varint too large for an int32 field arrives truncated to 32
  bits and is refused by validation; an order_book request whose type number is the gateway's own insert
  is read as that insert: `test_unknown_fields_wire_types_and_truncated_numbers`;
- risk_limits requests before login are refused (execution's: test_execution.py's
  `test_requests_before_login_are_refused`); a second login on a connection is refused and leaves its
  user as it was: `test_risk_limits_before_login_and_a_second_login`;
- Set with huge, negative, NaN or infinite values is an error naming the field and changes nothing
  (Get returns the limits set before, and they still hold); the largest values are accepted and
  returned as set: `test_extreme_risk_limits`;
- inserts with an unknown side, an extreme quantity or price, and cancels of order ids 0, negative or
  huge are errors (the order book's wording) and place nothing; the largest valid quantity and price
  are accepted and recorded as sent: `test_extreme_inserts_and_cancels`;
- a half frame left unfinished on one connection stalls no one else, and is handled once finished:
  `test_a_half_frame_stalls_no_one`;
- SIGTERM with clients connected (idle, mid-frame, pipelining): the gateway exits 0 within 2 s and closes
  them; started again it serves a fresh login:
  `test_sigterm_with_clients_connected_exits_0_within_2_seconds`.
"""

from __future__ import annotations

import math
import struct
import time

import pytest
from google.protobuf.message import Message

from optivex.app.auth import ALREADY_LOGGED_IN, NOT_LOGGED_IN
from optivex.client import RequestFailed
from optivex.proto import common_pb2, info_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.proto import risk_limits_pb2 as rl
from optivex.units import INT32_MAX, MAX_UNITS, UNITS_PER_ONE
from optivex.wire import MAX_FRAME_LENGTH

from .helpers import (
    BUY,
    SELL,
    Exchange,
    SyncClient,
    assert_bad_lengths_close_the_connection,
    assert_garbage_closes_the_connection,
    insert,
    until_barrier,
)
from .test_execution import events, place, watcher, withdraw
from .test_info_bad_inputs import STOP_LIMIT, frame
from .test_risk_limits import breached, get_instruments, get_user, ok, rolling, set_instrument, set_user

LOGIN_REQUEST = ex.LOGIN_REQUEST
INSERT_REQUEST = ex.INSERT_ORDER_REQUEST
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
INT32_MIN = -(2**31)
PIPELINED = 2000
"""Inserts the pipelining client of the SIGTERM test sends in one write, never reading the answers."""
HALF_FRAME_LENGTH = MAX_FRAME_LENGTH
"""Declared length of the half frame left unfinished: the largest legal one."""
HALF_FRAME_SENT = MAX_FRAME_LENGTH // 2
"""Bytes of its payload sent (the rest never is, until the test finishes it)."""


def field(number: int, wire_type: int, value: bytes) -> bytes:
    """One protobuf field as raw bytes: its tag (a one- or two-byte varint here) and `value`."""
    tag = number << 3 | wire_type
    return (bytes([tag]) if tag < 0x80 else bytes([tag & 0x7F | 0x80, tag >> 7])) + value


def varint(value: int) -> bytes:
    """`value` (>= 0) as a protobuf varint."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string_field(number: int, text: str) -> bytes:
    data = text.encode()
    return field(number, 2, b"") + varint(len(data)) + data


class Trader:
    """Bob trading ABC through the gateway, every order-book event watched: a client that must keep
    being served, and the proof that nothing else reached the book."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.book = exchange.create_instrument("ABC")
        self.watch = watcher(exchange)
        self.client = exchange.gateway("bob")
        self.price = 10.0

    def still_served(self) -> None:
        """Nothing reached the order book since the last call; an insert through bob is answered with
        what the order book recorded; a fresh login is served; the gateway has not died."""
        assert events(self.watch) == [], "a bad input reached the order book"
        self.price = round(self.price + 0.01, 2)
        response = ok(place(self.client, "ABC", BUY, self.price, 1))
        (event,) = events(self.watch)
        assert isinstance(event, ob.OnOrderInserted)
        assert (event.order_id, event.timestamp, event.order_book_id) == (
            response.order_id,
            response.timestamp,
            self.book,
        )
        assert (event.side, event.price, event.quantity, event.username) == (BUY, self.price, 1, "bob")
        newcomer = self.exchange.gateway("carol")
        assert not get_user(newcomer).HasField("user_risk_limits")
        newcomer.close()
        assert self.exchange.deployment.poll_dead() == []


def violator(exchange: Exchange, logged_in: bool) -> SyncClient:
    """A gateway connection, logged in as alice or not, whose login (if any) is done."""
    client = exchange.gateway("alice" if logged_in else None)
    until_barrier(client)
    return client


Limits = tuple[rl.UserRiskLimits, dict[str, rl.InstrumentRiskLimits]]
"""A user's limits as Get returns them: the user's, and by instrument."""


def limits_of(client: SyncClient) -> Limits:
    return get_user(client).user_risk_limits, get_instruments(client)


def limited(exchange: Exchange, user_quantity: int, abc_quantity: int) -> tuple[SyncClient, Limits]:
    """alice on the gateway with max_outstanding_quantity limits set (hers, and in ABC), and her limits."""
    alice = exchange.gateway("alice")
    ok(set_user(alice, max_outstanding_quantity=user_quantity))
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=abc_quantity))
    return alice, limits_of(alice)


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_a_bad_length_closes_only_that_connection(gateway: Exchange, logged_in: bool) -> None:
    trader = Trader(gateway)
    assert_bad_lengths_close_the_connection(
        lambda: violator(gateway, logged_in), INSERT_REQUEST, trader.still_served
    )


def test_garbage_closes_only_that_connection(gateway: Exchange) -> None:
    trader = Trader(gateway)
    assert_garbage_closes_the_connection(lambda logged_in: violator(gateway, logged_in), trader.still_served)


ACCEPTED_REQUESTS = [
    LOGIN_REQUEST,
    ex.INSERT_ORDER_REQUEST,
    ex.CANCEL_ORDER_REQUEST,
    rl.GET_USER_RISK_LIMITS_REQUEST,
    rl.SET_USER_RISK_LIMITS_REQUEST,
    rl.GET_INSTRUMENT_RISK_LIMITS_REQUEST,
    rl.SET_INSTRUMENT_RISK_LIMITS_REQUEST,
]
"""Every request type the gateway accepts from clients."""


def test_an_undecodable_payload_closes_only_that_connection(gateway: Exchange) -> None:
    trader = Trader(gateway)
    for msg_type in ACCEPTED_REQUESTS:
        for payload in (b"\xff\xff\xff", string_field(2, "ABC")[:-1]):  # a bad tag; a cut string
            for logged_in in (False, True):
                client = violator(gateway, logged_in)
                client.send_raw(frame(msg_type, payload))
                assert client.wait_closed(), f"type {msg_type} with payload {payload.hex()} was not closed"
        trader.still_served()
    # requests before the violation in the same write are carried out and answered, nothing after it is
    client = violator(gateway, True)
    before = ex.InsertOrderRequest(request_id=9, instrument_symbol="ABC", side=SELL, price=20.0, quantity=3)
    after = ex.InsertOrderRequest(request_id=10, instrument_symbol="ABC", side=SELL, price=21.0, quantity=4)
    limits = rl.SetUserRiskLimitsRequest(
        request_id=11, user_risk_limits=rl.UserRiskLimits(max_outstanding_quantity=1)
    )
    client.send_raw(
        frame(INSERT_REQUEST, before)
        + frame(INSERT_REQUEST, b"\xff\xff\xff")
        + frame(INSERT_REQUEST, after)
        + frame(rl.SET_USER_RISK_LIMITS_REQUEST, limits)
    )
    response = client.receive_as(ex.InsertOrderResponse)
    assert (response.request_id, response.error_message) == (9, "")
    assert client.wait_closed()
    (event,) = events(trader.watch)
    assert isinstance(event, ob.OnOrderInserted)
    assert (event.order_id, event.price, event.quantity, event.username) == (
        response.order_id,
        20.0,
        3,
        "alice",
    )
    alice = gateway.gateway("alice")
    assert not get_user(alice).HasField("user_risk_limits")  # the Set after the violation never ran
    trader.still_served()


NOT_ACCEPTED = [
    frame(999, b"\xff\xff\xff"),
    frame(999, b""),
    frame(2**32 - 1, b"garbage"),
    # responses of the gateway's protocols
    frame(ex.LOGIN_RESPONSE, common_pb2.LoginResponse(request_id=5, error_message="x")),
    frame(ex.INSERT_ORDER_RESPONSE, ex.InsertOrderResponse(request_id=1, order_id=1)),
    frame(ex.CANCEL_ORDER_RESPONSE, ex.CancelOrderResponse(request_id=1)),
    frame(rl.GET_USER_RISK_LIMITS_RESPONSE, rl.GetUserRiskLimitsResponse(request_id=1)),
    frame(rl.SET_USER_RISK_LIMITS_RESPONSE, rl.SetUserRiskLimitsResponse(request_id=1)),
    frame(rl.GET_INSTRUMENT_RISK_LIMITS_RESPONSE, rl.GetInstrumentRiskLimitsResponse(request_id=1)),
    frame(rl.SET_INSTRUMENT_RISK_LIMITS_RESPONSE, rl.SetInstrumentRiskLimitsResponse(request_id=1)),
    # the order book's own types (requests and events) whose numbers the gateway does not use
    frame(ob.ON_ORDER_INSERTED, ob.OnOrderInserted(order_id=1, order_book_id=1, price=1.0, quantity=1)),
    frame(ob.ON_TRADE, ob.OnTrade(trade_id=1, order_book_id=1, price=1.0, quantity=1)),
    frame(ob.CANCEL_ORDER_REQUEST, ob.CancelOrderRequest(request_id=3, order_book_id=1, order_id=1)),
    frame(ob.BARRIER_REQUEST, ob.BarrierRequest(request_id=4)),
    frame(ob.TRADES_REQUEST, b""),
    frame(ob.LIST_BOOKS_REQUEST, b"\xff\xff\xff"),  # ignored by type: its payload is never decoded
    frame(info_pb2.ON_PRICE_DEPTH_BOOK, info_pb2.OnPriceDepthBook(instrument_symbol="ABC")),
]
"""Frames of types the gateway does not accept from clients. (Another protocol's type whose number the
gateway uses is read as the gateway's own: info's ON_TOP_OF_BOOK is 22, SetUserRiskLimitsRequest;
order_book's CreateOrderBookRequest is 10, InsertOrderRequest: see
test_unknown_fields_wire_types_and_truncated_numbers.)"""


def test_types_not_accepted_from_clients_are_ignored(gateway: Exchange) -> None:
    trader = Trader(gateway)
    for logged_in in (False, True):
        client = violator(gateway, logged_in)
        for n, data in enumerate(NOT_ACCEPTED):
            client.send_raw(data)
            # the next message is the answer to a request sent after it
            client.send(rl.GetUserRiskLimitsRequest(request_id=100 + n))
            answer = client.receive_as(rl.GetUserRiskLimitsResponse)
            assert answer.request_id == 100 + n
            assert answer.error_message == ("" if logged_in else NOT_LOGGED_IN)
        # all in one write, around an insert
        request = ex.InsertOrderRequest(
            request_id=7, instrument_symbol="ABC", side=SELL, price=30.0, quantity=2
        )
        client.send_raw(b"".join(NOT_ACCEPTED) + frame(INSERT_REQUEST, request) + b"".join(NOT_ACCEPTED))
        response = client.receive_as(ex.InsertOrderResponse)
        assert response.request_id == 7
        assert until_barrier(client) == []
        if logged_in:
            assert response.error_message == ""
            (event,) = events(trader.watch)
            assert isinstance(event, ob.OnOrderInserted) and event.order_id == response.order_id
        else:
            assert response.error_message == NOT_LOGGED_IN
        trader.still_served()


def test_unknown_fields_wire_types_and_truncated_numbers(gateway: Exchange) -> None:
    trader = Trader(gateway)
    alice = violator(gateway, True)
    direct = gateway.order_book()

    def raw_insert(request_id: int, body: bytes) -> ex.InsertOrderResponse:
        alice.send_raw(frame(INSERT_REQUEST, field(1, 0, varint(request_id)) + body))
        response = alice.receive_as(ex.InsertOrderResponse)
        assert response.request_id == request_id
        return response

    symbol, side = string_field(2, "ABC"), field(3, 0, varint(SELL))
    price = field(4, 1, struct.pack("<d", 40.0))
    # unknown fields are skipped: the order book's on_behalf_of_username (100) does not make it bob's
    spoofed = raw_insert(1, symbol + side + price + field(5, 0, varint(6)) + string_field(100, "bob"))
    assert spoofed.error_message == ""
    (event,) = events(trader.watch)
    assert isinstance(event, ob.OnOrderInserted)
    assert (event.order_id, event.username, event.price, event.quantity) == (
        spoofed.order_id,
        "alice",
        40.0,
        6,
    )
    # a known field of the wrong wire type is an unknown field: the price stays 0
    wrong = raw_insert(2, symbol + side + field(4, 0, varint(40)) + field(5, 0, varint(1)))
    assert wrong.error_message == insert(direct, trader.book, SELL, 0.0, 1).error_message
    assert "invalid price" in wrong.error_message
    # quantities beyond int32 arrive truncated to their low 32 bits, then validated as the order book does
    for encoded, decoded in (
        (2**32, 0),
        (2**32 - 1, -1),
        (2**31, INT32_MIN),
        (2**64 - 1, -1),
        (2**40 + 5, 5),
    ):
        response = raw_insert(3, symbol + side + price + field(5, 0, varint(encoded)))
        if decoded > 0:
            assert response.error_message == ""
            (event,) = events(trader.watch)
            assert isinstance(event, ob.OnOrderInserted) and event.quantity == decoded
            ok(withdraw(alice, "ABC", response.order_id))
            events(trader.watch)
        else:
            straight = insert(direct, trader.book, SELL, 40.0, decoded)
            assert response.error_message == straight.error_message, encoded
            assert f"invalid quantity {decoded}" in response.error_message
            assert (response.order_id, response.timestamp) == (0, 0)
    # the order book's CreateOrderBookRequest travels as type 10, the gateway's InsertOrderRequest: read as
    # an insert (its tick_size, field 2, a double where the insert has a string: skipped), of no symbol
    alice.send_raw(
        frame(ob.CREATE_ORDER_BOOK_REQUEST, ob.CreateOrderBookRequest(request_id=4, tick_size=0.01))
    )
    response = alice.receive_as(ex.InsertOrderResponse)
    assert response.request_id == 4 and "unknown instrument" in response.error_message
    trader.still_served()


def test_risk_limits_before_login_and_a_second_login(gateway: Exchange) -> None:
    trader = Trader(gateway)
    alice, before = limited(gateway, 5, 4)
    refused = gateway.gateway(None)
    with pytest.raises(RequestFailed, match="invalid username or password"):
        refused.login("alice", "wrong password")
    for anonymous in (gateway.gateway(None), refused):
        answers: list[Message] = [
            set_user(anonymous, max_outstanding_quantity=1),
            set_instrument(anonymous, "ABC", max_outstanding_quantity=1),
            anonymous.request(rl.GetUserRiskLimitsRequest(), expect=rl.GetUserRiskLimitsResponse),
            anonymous.request(rl.GetInstrumentRiskLimitsRequest(), expect=rl.GetInstrumentRiskLimitsResponse),
        ]
        for answer in answers:
            assert answer.error_message == NOT_LOGGED_IN, answer  # type: ignore[attr-defined]
        get = answers[2]
        assert isinstance(get, rl.GetUserRiskLimitsResponse) and not get.HasField("user_risk_limits")
        got = answers[3]
        assert isinstance(got, rl.GetInstrumentRiskLimitsResponse) and len(got.risk_limits_by_instrument) == 0
    assert limits_of(alice) == before
    # a second login (as bob, bob's password right) is refused: the connection stays alice's
    second = alice.request(
        common_pb2.LoginRequest(username="bob", password="bob"), expect=common_pb2.LoginResponse
    )
    assert second.error_message == ALREADY_LOGGED_IN
    assert limits_of(alice) == before
    breached(place(alice, "ABC", BUY, 10.0, 5), "max_outstanding_quantity")  # alice's limits still hold
    order = ok(place(alice, "ABC", BUY, 10.0, 4))
    (event,) = events(trader.watch)
    assert isinstance(event, ob.OnOrderInserted)
    assert (event.order_id, event.username) == (order.order_id, "alice")
    trader.still_served()


USER_ERRORS: list[tuple[str, rl.UserRiskLimits]] = [
    ("max_outstanding_quantity", rl.UserRiskLimits(max_outstanding_quantity=INT64_MIN)),
    ("message_rate_rolling_limit", rl.UserRiskLimits(message_rate_rolling_limit=rolling(INT32_MIN, 10))),
    ("message_rate_rolling_limit", rl.UserRiskLimits(message_rate_rolling_limit=rolling(1, INT32_MIN))),
    ("message_rate_rolling_limit", rl.UserRiskLimits(message_rate_rolling_limit=rolling(INT32_MAX, -1))),
    ("message_rate_rolling_limit", rl.UserRiskLimits(message_rate_rolling_limit=rolling(0, INT32_MIN))),
]
INSTRUMENT_ERRORS: list[tuple[str, rl.InstrumentRiskLimits]] = [
    ("max_outstanding_quantity", rl.InstrumentRiskLimits(max_outstanding_quantity=INT64_MIN)),
    ("max_outstanding_amount", rl.InstrumentRiskLimits(max_outstanding_amount=-math.inf)),
    ("max_outstanding_amount", rl.InstrumentRiskLimits(max_outstanding_amount=-math.nan)),
    ("max_outstanding_amount", rl.InstrumentRiskLimits(max_outstanding_amount=math.inf)),
    ("max_outstanding_amount", rl.InstrumentRiskLimits(max_outstanding_amount=-1e-300)),
    (
        "order_quantity_rolling_limit",
        rl.InstrumentRiskLimits(order_quantity_rolling_limit=rolling(INT32_MIN, 1)),
    ),
    (
        "order_quantity_rolling_limit",
        rl.InstrumentRiskLimits(order_quantity_rolling_limit=rolling(1, INT32_MIN)),
    ),
    ("order_amount_rolling_limit", rl.InstrumentRiskLimits(order_amount_rolling_limit=rolling(INT32_MIN, 1))),
    (
        "order_amount_rolling_limit",
        rl.InstrumentRiskLimits(order_amount_rolling_limit=rolling(INT32_MAX, -5)),
    ),
    # the first invalid field of several is named
    (
        "max_outstanding_quantity",
        rl.InstrumentRiskLimits(max_outstanding_quantity=-1, order_amount_rolling_limit=rolling(-1, -1)),
    ),
]
"""Invalid values at the extremes (test_risk_limits.py has the ones near zero), with the field named."""


def test_extreme_risk_limits(gateway: Exchange) -> None:
    trader = Trader(gateway)
    alice, before = limited(gateway, 7, 3)
    for name, user in USER_ERRORS:
        response = alice.request(
            rl.SetUserRiskLimitsRequest(user_risk_limits=user), expect=rl.SetUserRiskLimitsResponse
        )
        assert name in response.error_message, (user, response.error_message)
    for name, limits in INSTRUMENT_ERRORS:
        refused = alice.request(
            rl.SetInstrumentRiskLimitsRequest(instrument_symbol="ABC", instrument_risk_limits=limits),
            expect=rl.SetInstrumentRiskLimitsResponse,
        )
        assert name in refused.error_message, (limits, refused.error_message)
    # invalid limits for an unknown symbol: an error either way, and no entry for it
    assert set_instrument(alice, "NOPE", max_outstanding_amount=math.nan).error_message
    assert limits_of(alice) == before
    breached(place(alice, "ABC", BUY, 10.0, 4), "max_outstanding_quantity")  # still 3
    assert events(trader.watch) == []
    # the largest valid values are accepted and returned as set
    largest_user = rl.UserRiskLimits(
        max_outstanding_quantity=INT64_MAX, message_rate_rolling_limit=rolling(INT32_MAX, INT32_MAX)
    )
    largest = rl.InstrumentRiskLimits(
        max_outstanding_quantity=INT64_MAX,
        max_outstanding_amount=1.7976931348623157e308,  # the largest double: amounts have no bound
        order_quantity_rolling_limit=rolling(INT32_MAX, INT32_MAX),
        order_amount_rolling_limit=rolling(INT32_MAX, INT32_MAX),
    )
    ok(
        alice.request(
            rl.SetUserRiskLimitsRequest(user_risk_limits=largest_user), expect=rl.SetUserRiskLimitsResponse
        )
    )
    ok(
        alice.request(
            rl.SetInstrumentRiskLimitsRequest(instrument_symbol="ABC", instrument_risk_limits=largest),
            expect=rl.SetInstrumentRiskLimitsResponse,
        )
    )
    assert get_user(alice).user_risk_limits == largest_user
    assert get_instruments(alice) == {"ABC": largest}
    # and they hold: an order far under them is placed; past an amount above 2**53 units, one breaches
    ok(place(alice, "ABC", BUY, 10.0, 4))
    ok(set_instrument(alice, "ABC", max_outstanding_amount=MAX_UNITS / UNITS_PER_ONE + 1.0))
    breached(place(alice, "ABC", SELL, 900_000_000_000.0, 2), "max_outstanding_amount")
    (event,) = events(trader.watch)
    assert isinstance(event, ob.OnOrderInserted) and event.username == "alice"
    trader.still_served()


def test_extreme_inserts_and_cancels(gateway: Exchange) -> None:
    trader = Trader(gateway)
    direct = gateway.order_book()
    alice = gateway.gateway("alice")
    largest_price = (MAX_UNITS - MAX_UNITS % 100) / UNITS_PER_ONE  # the largest multiple of the tick 0.01
    invalid = [
        (7, 10.0, 1),  # unknown enum values of Side
        (INT32_MAX, 10.0, 1),
        (INT32_MIN, 10.0, 1),
        (BUY, 10.0, INT32_MIN),
        (SELL, 1e-5, 1),  # rounds to 0.0000
        (SELL, 5e-324, 1),
        (SELL, -0.0, 1),
        (BUY, 0.00015, 1),  # rounds to 0.0002: off the tick
        (BUY, -1e300, 1),
        (BUY, MAX_UNITS / UNITS_PER_ONE + 1.0, 1),  # past 2**53 units
        (BUY, 1.7976931348623157e308, 1),
    ]
    for side, price, quantity in invalid:
        through = place(alice, "ABC", side, price, quantity)
        straight = insert(direct, trader.book, side, price, quantity, "alice")
        assert through.error_message, (side, price, quantity)
        assert through.error_message == straight.error_message, (side, price, quantity)
        assert (through.order_id, through.timestamp, through.traded_quantity) == (0, 0, 0)
    assert events(trader.watch) == []
    # the largest valid quantity and price: placed, recorded as sent
    for price, quantity in ((20.0, INT32_MAX), (largest_price, 1), (largest_price, INT32_MAX)):
        response = ok(place(alice, "ABC", SELL, price, quantity))
        (event,) = events(trader.watch)
        assert isinstance(event, ob.OnOrderInserted)
        assert (event.order_id, event.price, event.quantity, event.username) == (
            response.order_id,
            price,
            quantity,
            "alice",
        )
    # cancels of order ids that name no resting order
    resting = ok(place(alice, "ABC", BUY, 1.0, 1))
    events(trader.watch)
    for order_id in (0, -1, -resting.order_id, INT64_MIN, INT64_MAX, 2**32 + resting.order_id):
        response = withdraw(alice, "ABC", order_id)
        assert "is not resting" in response.error_message, (order_id, response.error_message)
    assert events(trader.watch) == []
    ok(withdraw(alice, "ABC", resting.order_id))  # still resting, hers to cancel
    (event,) = events(trader.watch)
    assert isinstance(event, ob.OnOrderCancelled) and event.order_id == resting.order_id
    trader.still_served()


def test_a_half_frame_stalls_no_one(gateway: Exchange) -> None:
    trader = Trader(gateway)
    request = frame(rl.GET_USER_RISK_LIMITS_REQUEST, rl.GetUserRiskLimitsRequest(request_id=77))
    small = violator(gateway, True)
    small.send_raw(request[:6])  # the length and half the type
    big = violator(gateway, True)
    payload = string_field(2, "x" * (HALF_FRAME_LENGTH - 10))  # 4 (type) + 2 (request_id) + 4 (its head)
    big_frame = frame(rl.GET_USER_RISK_LIMITS_REQUEST, field(1, 0, varint(78)) + payload)
    assert len(big_frame) == 4 + HALF_FRAME_LENGTH
    big.send_raw(big_frame[:HALF_FRAME_SENT])
    for _ in range(3):
        trader.still_served()
    # finished, each is handled as any other
    small.send_raw(request[6:])
    big.send_raw(big_frame[HALF_FRAME_SENT:])
    for client, request_id in ((small, 77), (big, 78)):
        response = client.receive_as(rl.GetUserRiskLimitsResponse)
        assert (response.request_id, response.error_message) == (request_id, "")
    trader.still_served()


def test_sigterm_with_clients_connected_exits_0_within_2_seconds(gateway: Exchange) -> None:
    trader = Trader(gateway)
    trader.still_served()
    idle = gateway.gateway(None)
    mid_frame = gateway.gateway("alice")
    mid_frame.send_raw(struct.pack(">I", 100) + b"\x00\x00")  # half a frame, never finished
    pipelining = gateway.gateway("dave")
    pipelining.send(
        *(
            ex.InsertOrderRequest(instrument_symbol="ABC", side=SELL, price=50.0 + n % 100, quantity=1)
            for n in range(PIPELINED)
        )
    )
    name = gateway.deployment.provider("execution").name
    started = time.monotonic()
    code = gateway.deployment.stop_component(name)
    elapsed = time.monotonic() - started
    assert code == 0
    assert not gateway.deployment.component(name).killed
    assert elapsed < STOP_LIMIT, f"the gateway took {elapsed:.2f} s to exit"
    for client in (trader.client, idle, mid_frame, pipelining):
        assert client.wait_closed(), "a client's connection stayed open after the gateway stopped"
    # Started again (the runner requires it to accept within 2 s), it serves a fresh login. (The order
    # book may still be placing dave's pipelined inserts the old gateway sent: they are left aside.)
    gateway.deployment.start_component(name)
    for user in ("carol", "bob"):
        client = gateway.gateway(user)
        response = ok(place(client, "ABC", BUY, 9.0, 2))
        (event,) = not_daves(events(trader.watch))
        assert isinstance(event, ob.OnOrderInserted)
        assert (event.order_id, event.timestamp, event.username, event.quantity) == (
            response.order_id,
            response.timestamp,
            user,
            2,
        )
    assert gateway.deployment.poll_dead() == []


def not_daves(changes: list[Message]) -> list[Message]:
    """`changes` but dave's inserts (each a SELL above any BUY of the test: they trade with nothing)."""
    left = [c for c in changes if not (isinstance(c, ob.OnOrderInserted) and c.username == "dave")]
    assert not any(isinstance(c, ob.OnTrade) for c in left), left
    return left
