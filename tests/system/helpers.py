"""Client helpers for system tests: connect, log in, create instruments, place orders."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from google.protobuf.message import Message

from optivex.client import SyncClient
from optivex.deploy import ADMIN_USER, Deployment
from optivex.proto import admin_pb2, common_pb2, info_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.protocols import protocol_for
from optivex.wire import MAX_FRAME_LENGTH

TIMEOUT = 3.0
"""What the contract's system tests allow for each expected message."""
GATEWAY_PROTOCOL = protocol_for(("execution", "risk_limits"))
"""The gateway's port: both protocols on one connection (section 8)."""
BARRIER_USER = "no such user (barrier)"
"""A username in no user data file: its login is refused, so a LoginRequest can serve as a barrier."""


class Exchange:
    """A running deployment and the clients a test opened on it (closed at the end)."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.clients: list[SyncClient] = []

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        for client in self.clients:
            client.close()

    def connect(
        self, protocol: str, login: str | None = None, password: str | None = None, *, component: str = ""
    ) -> SyncClient:
        """A client of `protocol`; logged in as `login` (password = username by default) if given.

        It connects to the protocol's provider, or to the component named `component` (one of several
        info processes).
        """
        deployment = self.deployment
        server = deployment.component(component) if component else deployment.provider(protocol)
        host, port = server.address
        client = SyncClient(host, port, protocol, timeout=TIMEOUT)
        self.clients.append(client)
        if login is not None:
            client.login(login, login if password is None else password)
        return client

    def raw_socket(self, protocol: str) -> socket.socket:
        host, port = self.deployment.address(protocol)
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        return sock

    def order_book(self, login: str | None = None) -> SyncClient:
        return self.connect("order_book", login, "")

    def admin(self, user: str = ADMIN_USER.username) -> SyncClient:
        return self.connect("admin", user)

    def info(self, login: str | None = "alice", component: str = "") -> SyncClient:
        """A client of the info protocol, logged in as `login` (password = username) unless None; of the
        info process named `component` if given.

        Its OnInstrument messages (one per existing instrument) follow the LoginResponse in `pending`.
        """
        return self.connect("info", login, component=component)

    def gateway(self, login: str | None = "alice", password: str | None = None) -> SyncClient:
        """A client of the gateway's port speaking both its protocols (execution and risk_limits, one
        connection), logged in as `login` (password = username by default) unless None."""
        host, port = self.deployment.provider("execution").address
        client = SyncClient(host, port, GATEWAY_PROTOCOL, timeout=TIMEOUT)
        self.clients.append(client)
        if login is not None:
            client.login(login, login if password is None else password)
        return client

    def create_instrument(self, symbol: str, tick_size: float = 0.01, **fields: Any) -> int:
        """Create an instrument through admin; return its order_book_id."""
        admin = getattr(self, "_admin", None) or self.admin()
        self._admin = admin
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=symbol, **fields), tick_size=tick_size
            ),
            check=True,
        )
        assert isinstance(response, admin_pb2.CreateInstrumentResponse)
        return response.order_book_id

    def create_book(self, tick_size: float = 0.01) -> int:
        """Create a bare book directly on the order book."""
        client = getattr(self, "_ob", None) or self.order_book()
        self._ob = client
        response = client.request(ob.CreateOrderBookRequest(tick_size=tick_size), check=True)
        assert isinstance(response, ob.CreateOrderBookResponse)
        return response.order_book_id


def insert(
    client: SyncClient, book: int, side: int, price: float, quantity: int, user: str = ""
) -> ob.InsertOrderResponse:
    """Insert an order and return its response (which may carry an error)."""
    response = client.request(
        ob.InsertOrderRequest(
            order_book_id=book,
            side=cast(common_pb2.Side, side),  # tests send invalid sides too
            price=price,
            quantity=quantity,
            on_behalf_of_username=user,
        )
    )
    assert isinstance(response, ob.InsertOrderResponse)
    return response


def cancel(client: SyncClient, book: int, order_id: int) -> ob.CancelOrderResponse:
    response = client.request(ob.CancelOrderRequest(order_book_id=book, order_id=order_id))
    assert isinstance(response, ob.CancelOrderResponse)
    return response


def barrier_request(client: SyncClient) -> tuple[Message, type[Message]]:
    """A request that changes nothing, and the class of its response, for `client`'s protocol.

    On the order book, the barrier extension (answered after everything it queued for the connection
    before it, login or not); elsewhere a LoginRequest that must fail: a second login on a logged-in
    connection, an unknown user's on one that is not (either is answered with an error, nothing changes).
    """
    if client.session.protocol.name == "order_book":
        return ob.BarrierRequest(), ob.BarrierResponse
    return common_pb2.LoginRequest(username=BARRIER_USER, password=BARRIER_USER), common_pb2.LoginResponse


def until_barrier(client: SyncClient) -> list[Message]:
    """Every message that arrives before the answer to a request that changes nothing (`barrier_request`).

    Everything the component sent on the connection before it read the request has arrived then:
    `until_barrier(client) == []` says nothing more is on its way, without waiting for silence.
    """
    request, response_class = barrier_request(client)
    client.send(request)
    request_id = request.request_id  # type: ignore[attr-defined]
    before: list[Message] = []
    while True:
        message = client.receive()
        if isinstance(message, response_class) and message.request_id == request_id:  # type: ignore[attr-defined]
            if response_class is common_pb2.LoginResponse:
                assert message.error_message, "the barrier's LoginRequest was accepted"  # type: ignore[attr-defined]
            return before
        before.append(message)


def create_then_at_once(
    pairs: Sequence[tuple[SyncClient, SyncClient]], creations: int, use: Callable[[SyncClient, str, int], str]
) -> list[str]:
    """Section 4's confirmation rule under load: every (admin client, other client) pair, each in a thread
    and all started together, creates ``creations // len(pairs)`` instruments (``C<pair>_<n>``, tick 0.01)
    and right after each confirmed creation calls ``use(other, symbol, n)``, which returns an error
    message ("" when the other component accepted the symbol). Returns every failure, as text."""
    start = threading.Barrier(len(pairs))
    failures: list[str] = []

    def run(index: int, admin: SyncClient, other: SyncClient) -> None:
        try:
            start.wait(TIMEOUT)
            for n in range(creations // len(pairs)):
                symbol = f"C{index}_{n}"
                response = admin.request(
                    admin_pb2.CreateInstrumentRequest(
                        instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
                    ),
                    expect=admin_pb2.CreateInstrumentResponse,
                )
                if response.error_message:
                    failures.append(f"create {symbol}: {response.error_message}")
                    continue
                error = use(other, symbol, n)
                if error:
                    failures.append(f"{symbol} right after its creation: {error}")
        except Exception as exc:  # reported with the rest: a thread's exception would otherwise be lost
            failures.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i, a, o)) for i, (a, o) in enumerate(pairs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def subscribe(
    client: SyncClient, symbol: str, kind: int = info_pb2.TOP_OF_BOOK
) -> info_pb2.OnTopOfBook | info_pb2.OnPriceDepthBook:
    """Subscribe on an info connection and return the snapshot.

    The response (success) must be the next message on the connection other than OnInstrument (which
    may come at any time), and the snapshot of `symbol` the one right after it.
    """
    request = info_pb2.OrderBookSubscribeRequest(
        instrument_symbol=symbol, subscription_type=cast(info_pb2.SubscriptionType, kind)
    )
    client.send(request)
    message = client.receive()
    while isinstance(message, info_pb2.OnInstrument):
        message = client.receive()
    assert isinstance(message, info_pb2.OrderBookSubscribeResponse), f"not the response: {message}"
    assert (message.request_id, message.error_message) == (request.request_id, ""), message
    snapshot_class = info_pb2.OnTopOfBook if kind == info_pb2.TOP_OF_BOOK else info_pb2.OnPriceDepthBook
    snapshot = client.receive()
    while isinstance(snapshot, info_pb2.OnInstrument):
        snapshot = client.receive()
    assert isinstance(snapshot, snapshot_class), f"not the {snapshot_class.__name__} snapshot: {snapshot}"
    assert snapshot.instrument_symbol == symbol
    return snapshot


def settle(client: SyncClient, quiet_symbol: str) -> list[Message]:
    """Every message info had for `client` from the order-book changes confirmed so far (a barrier on
    info's feed): the messages before the response to a subscription to `quiet_symbol`, an instrument
    nothing trades (its snapshot, after the response, is dropped).

    Info answers a subscription only after its feed's barrier, having published every change the order
    book had sent it before. Waiting for this after each order-book request paces a driver so that no
    two changes can be conflated.
    """
    request = info_pb2.OrderBookSubscribeRequest(
        instrument_symbol=quiet_symbol, subscription_type=TOP_OF_BOOK
    )
    client.send(request)
    before: list[Message] = []
    while True:
        message = client.receive()
        if (
            isinstance(message, info_pb2.OrderBookSubscribeResponse)
            and message.request_id == request.request_id
        ):
            assert message.error_message == "", message
            snapshot = client.receive_as(info_pb2.OnTopOfBook)
            assert snapshot.instrument_symbol == quiet_symbol
            return before
        before.append(message)


BUY = common_pb2.BUY
SELL = common_pb2.SELL
TOP_OF_BOOK = info_pb2.TOP_OF_BOOK
PRICE_DEPTH_BOOK = info_pb2.PRICE_DEPTH_BOOK


__all__ = [
    "BUY",
    "GATEWAY_PROTOCOL",
    "PRICE_DEPTH_BOOK",
    "SELL",
    "TIMEOUT",
    "TOP_OF_BOOK",
    "Exchange",
    "SyncClient",
    "barrier_request",
    "cancel",
    "create_then_at_once",
    "insert",
    "settle",
    "subscribe",
    "until_barrier",
]


BAD_LENGTHS = (0, 1, 2, 3, MAX_FRAME_LENGTH + 1, 2**31, 2**32 - 1)
"""Frame lengths outside wire.MAX_FRAME_LENGTH's range (below the type's 4 bytes, or above the maximum)."""


def assert_bad_lengths_close_the_connection(
    connect: Callable[[], SyncClient], request_type: int, still_served: Callable[[], None]
) -> None:
    """Every BAD_LENGTHS header (alone, with a request type, and cut in two writes) closes the connection
    `connect()` opened, and after each length `still_served()` shows another client is served."""
    for length in BAD_LENGTHS:
        head = struct.pack(">I", length)
        for data in (head, head + struct.pack(">I", request_type)):  # never a payload
            client = connect()
            client.send_raw(data)
            assert client.wait_closed(), f"length {length} ({data.hex()}) did not close the connection"
        client = connect()
        client.send_raw(head[:2])
        client.send_raw(head[2:])
        assert client.wait_closed(), f"length {length} sent in two writes did not close the connection"
        still_served()


GARBAGE = (
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # a length of 0x47455420: above the maximum
    b"\xff" * 64,
    b"\x00\x00\x00\x01\xff\xff",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello's first bytes
)
"""Bytes that are no frame stream of ours: each must close the connection it arrives on."""


def assert_garbage_closes_the_connection(
    connect: Callable[[bool], SyncClient], still_served: Callable[[], None]
) -> None:
    """Each of GARBAGE, sent on a connection `connect(logged_in)` opened (anonymous, then logged in),
    closes it, and after each `still_served()` shows another client is served."""
    for garbage in GARBAGE:
        for logged_in in (False, True):
            client = connect(logged_in)
            client.send_raw(garbage)
            assert client.wait_closed(), f"{garbage!r} did not close the connection"
            still_served()
