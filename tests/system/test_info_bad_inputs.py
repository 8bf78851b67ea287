"""Bad input on info's port (sections 1 and 2 of the contract) and the info component's lifecycle (section 8).

Which rule each test covers:

- a bad length (below 4, above 1,048,576) closes that connection at once, and only that one; info
  keeps serving another client, subscribed or not: `test_a_bad_length_closes_only_that_connection`;
- garbage bytes close that connection only: `test_garbage_closes_only_that_connection`;
- an undecodable payload closes that connection only, before and after login:
  `test_an_undecodable_payload_closes_only_that_connection`;
- a frame of a type info does not accept from clients is ignored and the connection stays usable:
  `test_types_not_accepted_from_clients_are_ignored`;
- (subscribe before login is answered with an error: test_info.py's
  `test_subscribe_before_login_is_an_error`);
- SIGTERM with clients connected (subscribed, idle, mid-frame): info exits 0 within 2 s and closes
  them; started again it accepts within 2 s (the deployment runner checks it) and serves the day the
  order book still holds: `test_sigterm_with_clients_connected_exits_0_within_2_seconds`;
- SIGTERM to the whole deployment: every component, info included, exits 0:
  `test_the_whole_info_deployment_stops_with_status_0`.
"""

from __future__ import annotations

import struct
import time

import pytest
from google.protobuf.message import Message

from optivex.proto import common_pb2, info_pb2
from optivex.wire import encode_frame

from .helpers import (
    BUY,
    PRICE_DEPTH_BOOK,
    SELL,
    TOP_OF_BOOK,
    Exchange,
    SyncClient,
    assert_bad_lengths_close_the_connection,
    assert_garbage_closes_the_connection,
    insert,
    subscribe,
    until_barrier,
)

STOP_LIMIT = 2.0
"""Seconds a component has to exit after SIGTERM (section 8)."""
LOGIN_REQUEST = 0
SUBSCRIBE_REQUEST = info_pb2.ORDER_BOOK_SUBSCRIBE_REQUEST


def frame(msg_type: int, message: Message | bytes) -> bytes:
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    return encode_frame(msg_type, payload)


class Market:
    """A subscriber to ABC's depth and the book it is shown: a client that must keep being served."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.book = exchange.create_instrument("ABC", 0.01)
        self.trader = exchange.order_book()
        self.client = exchange.info("bob")
        assert self.client.receive_as(info_pb2.OnInstrument).instrument.symbol == "ABC"
        assert until_barrier(self.client) == []
        subscribe(self.client, "ABC", PRICE_DEPTH_BOOK)
        self.price = 10.0

    def still_served(self) -> None:
        """A change of the book reaches the subscriber; a new client logs in, is told of ABC and
        subscribes; info has not died."""
        self.price = round(self.price + 0.01, 2)
        insert(self.trader, self.book, BUY, self.price, 1)
        update = self.client.receive_as(info_pb2.OnPriceDepthBook)
        assert update.bids[0].price == self.price
        newcomer = self.exchange.info("carol")
        assert newcomer.receive_as(info_pb2.OnInstrument).instrument.symbol == "ABC"
        snapshot = subscribe(newcomer, "ABC", TOP_OF_BOOK)
        assert isinstance(snapshot, info_pb2.OnTopOfBook) and snapshot.best_bid.price == self.price
        newcomer.close()
        assert self.exchange.deployment.poll_dead() == []


def violator(exchange: Exchange, logged_in: bool) -> SyncClient:
    client = exchange.info("alice" if logged_in else None)
    until_barrier(client)
    return client


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_a_bad_length_closes_only_that_connection(info: Exchange, logged_in: bool) -> None:
    market = Market(info)
    assert_bad_lengths_close_the_connection(
        lambda: violator(info, logged_in), SUBSCRIBE_REQUEST, market.still_served
    )


def test_garbage_closes_only_that_connection(info: Exchange) -> None:
    market = Market(info)
    assert_garbage_closes_the_connection(lambda logged_in: violator(info, logged_in), market.still_served)


def test_an_undecodable_payload_closes_only_that_connection(info: Exchange) -> None:
    market = Market(info)
    for msg_type in (LOGIN_REQUEST, SUBSCRIBE_REQUEST):
        for logged_in in (False, True):
            client = violator(info, logged_in)
            client.send_raw(frame(msg_type, b"\xff\xff\xff"))
            assert client.wait_closed(), f"type {msg_type} with an undecodable payload was not closed"
            market.still_served()
    # requests before the violation in the same write are still answered, nothing after it is
    client = violator(info, True)
    request = info_pb2.OrderBookSubscribeRequest(request_id=9, instrument_symbol="ABC")
    after = info_pb2.OrderBookSubscribeRequest(request_id=10, instrument_symbol="ABC")
    client.send_raw(
        frame(SUBSCRIBE_REQUEST, request)
        + frame(SUBSCRIBE_REQUEST, b"\xff\xff\xff")
        + frame(SUBSCRIBE_REQUEST, after)
    )
    response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
    assert (response.request_id, response.error_message) == (9, "")
    assert client.receive_as(info_pb2.OnTopOfBook).instrument_symbol == "ABC"
    assert client.wait_closed()
    market.still_served()


def test_types_not_accepted_from_clients_are_ignored(info: Exchange) -> None:
    market = Market(info)
    ignored = [
        frame(999, b"\xff\xff\xff"),
        frame(999, b""),
        frame(2**32 - 1, b"garbage"),
        frame(info_pb2.LOGIN_RESPONSE, common_pb2.LoginResponse(request_id=5, error_message="x")),
        frame(info_pb2.ON_INSTRUMENT, info_pb2.OnInstrument(order_book_id=5)),
        frame(info_pb2.ORDER_BOOK_SUBSCRIBE_RESPONSE, info_pb2.OrderBookSubscribeResponse(request_id=1)),
        frame(info_pb2.ON_TOP_OF_BOOK, info_pb2.OnTopOfBook(instrument_symbol="ABC")),
        frame(info_pb2.ON_PRICE_DEPTH_BOOK, info_pb2.OnPriceDepthBook(instrument_symbol="ABC")),
        frame(
            info_pb2.ON_TRADE, info_pb2.OnTrade(trade_id=1, instrument_symbol="ABC", price=1.0, quantity=1)
        ),
        frame(info_pb2.ON_TOP_OF_BOOK, b"\xff\xff\xff"),  # ignored by type: its payload is never decoded
    ]
    for logged_in in (False, True):
        client = violator(info, logged_in)
        for n, data in enumerate(ignored):
            client.send_raw(data)
            # the next message is the answer to a request sent after it
            client.send(info_pb2.OrderBookSubscribeRequest(request_id=100 + n, instrument_symbol="ABC"))
            response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
            assert response.request_id == 100 + n
            if logged_in:
                assert response.error_message == ""
                assert client.receive_as(info_pb2.OnTopOfBook).instrument_symbol == "ABC"
            else:
                assert response.error_message  # subscribe before login
        # all in one write, mixed with a subscribe
        client.send_raw(
            b"".join(ignored)
            + frame(
                SUBSCRIBE_REQUEST,
                info_pb2.OrderBookSubscribeRequest(
                    request_id=7,
                    instrument_symbol="ABC",
                    subscription_type=PRICE_DEPTH_BOOK,
                ),
            )
            + b"".join(ignored)
        )
        response = client.receive_as(info_pb2.OrderBookSubscribeResponse)
        assert response.request_id == 7 and bool(response.error_message) is not logged_in
        if logged_in:
            assert client.receive_as(info_pb2.OnPriceDepthBook).instrument_symbol == "ABC"
        assert until_barrier(client) == []
        market.still_served()


def test_sigterm_with_clients_connected_exits_0_within_2_seconds(info: Exchange) -> None:
    market = Market(info)
    insert(market.trader, market.book, SELL, 11.0, 4)
    assert market.client.receive_as(info_pb2.OnPriceDepthBook).asks[0].price == 11.0
    idle = info.info(None)
    mid_frame = info.info("alice")
    mid_frame.send_raw(struct.pack(">I", 100) + b"\x00\x00")  # half a frame, never finished
    never_reads = info.info("dave")
    subscribe(never_reads, "ABC", TOP_OF_BOOK)
    name = info.deployment.provider("info").name
    started = time.monotonic()
    code = info.deployment.stop_component(name)
    elapsed = time.monotonic() - started
    assert code == 0
    assert not info.deployment.component(name).killed
    assert elapsed < STOP_LIMIT, f"info took {elapsed:.2f} s to exit"
    for client in (market.client, idle, mid_frame, never_reads):
        assert client.wait_closed(), "a client's connection stayed open after info stopped"
    # Started again (the runner requires it to accept within 2 s), it serves the day the order book holds.
    info.deployment.start_component(name)
    client = info.info("carol")
    announced = client.receive_as(info_pb2.OnInstrument)
    assert (announced.instrument.symbol, announced.order_book_id) == ("ABC", market.book)
    snapshot = subscribe(client, "ABC", PRICE_DEPTH_BOOK)
    assert isinstance(snapshot, info_pb2.OnPriceDepthBook)
    assert (
        [(b.price, b.quantity) for b in snapshot.bids],
        [(a.price, a.quantity) for a in snapshot.asks],
    ) == (
        [],
        [(11.0, 4)],
    )
    assert until_barrier(client) == []


def test_the_whole_info_deployment_stops_with_status_0(info: Exchange) -> None:
    market = Market(info)
    market.still_served()
    started = time.monotonic()
    codes = info.deployment.stop()
    elapsed = time.monotonic() - started
    assert set(codes.values()) == {0}, codes
    assert not any(c.killed for c in info.deployment.components)
    assert elapsed < STOP_LIMIT
    assert market.client.wait_closed()
