"""Slow readers through the real info process, over real sockets (issue 8, item 2).

A stalled subscriber is a raw socket with a small receive buffer that logs in, subscribes, then
reads nothing. How long until info must be holding its unsent output is not a matter of time but of
bytes: the kernel can take at most its send buffer (autotuned up to tcp_wmem's maximum) plus the
stalled socket's receive buffer (`kernel_capacity`). So the driver changes a deep book (each
OnPriceDepthBook some 60 KB) until a reading subscriber has received more than that plus
`INFO_PAUSE_ABOVE` of those frames (the stalled one was sent the same frames until it backed up):
from then on the stalled connection is certainly backed up, and its book messages are conflated.

- `test_a_stalled_subscriber_delays_nobody_and_gets_every_trade_and_the_latest_books`: while it
  is stalled a reading subscriber gets every change (one message per paced change) and ends on the
  order book's books; once it reads again the stalled one gets every trade (the same trade ids, in
  order), book messages that are states the book went through, the last one the book as it is, and
  fewer of them than the reader (conflation).
- `test_past_max_unsent_bytes_a_subscriber_that_never_reads_is_dropped_and_named`: with info's
  maxUnsentBytes lowered to MAX_UNSENT, trades (never conflated) pile up behind a backed-up
  subscriber; past the bound it is disconnected, info's log names it (user and address), and the
  reading subscriber goes on being served.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import cast

import pytest
from google.protobuf.message import Message

from optivex.client import ClientSession
from optivex.deploy import (
    ComponentSpec,
    Deployment,
    components_for_suite,
    default_deployment_path,
    load_deployment,
)
from optivex.info.component import INFO_PAUSE_ABOVE
from optivex.logsafe import loggable
from optivex.proto import common_pb2, info_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import HEADER_SIZE, READ_SIZE

from .helpers import (
    BARRIER_USER,
    BUY,
    PRICE_DEPTH_BOOK,
    SELL,
    TIMEOUT,
    TOP_OF_BOOK,
    Exchange,
    SyncClient,
    insert,
    settle,
    subscribe,
    until_barrier,
)
from .order_book_day import OrderBookDay, assert_follows, book_states
from .test_info import BOOK_MESSAGES, shown

pytestmark = pytest.mark.xdist_group("heavy")

DEEP = "DEEP"
"""The deep book: DEEP_LEVELS levels a side, so that each OnPriceDepthBook is big (some 60 KB)."""
DEEP_LEVELS = 2000
TAPE = "TAPE"
"""A small book, for trades."""
PACE = "PACE"
"""An instrument nothing trades, for `settle`."""
STALLED_RCVBUF = 4096
"""The stalled socket's SO_RCVBUF (set before it connects, so the window it advertises stays small)."""
MAX_UNSENT = 256 * 1024
"""Info's maxUnsentBytes in the drop test (4 x INFO_PAUSE_ABOVE; the default is 8 MiB)."""
SWEEP = 1000
"""Resting orders one insert sweeps in the drop test: SWEEP trades at once."""
CHUNK = 250
"""Requests pipelined at once."""

Deploy = Callable[[Iterable[ComponentSpec], Collection[str]], Deployment]


def kernel_capacity(sock: socket.socket) -> int:
    """The most bytes the kernel can hold on a connection whose receiver `sock` reads nothing: the
    sender's send buffer (autotuned up to tcp_wmem's maximum) and `sock`'s receive buffer."""
    try:
        send_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        pytest.skip("the kernel's TCP send buffer bound (/proc/sys/net/ipv4/tcp_wmem) is unknown")
    return send_max + sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class Stalled:
    """A raw info connection with a small receive buffer that reads only when told to."""

    def __init__(self, address: tuple[str, int], user: str) -> None:
        self.user = user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        self.session = ClientSession("info")
        self.pending: deque[Message] = deque()
        self.received: list[Message] = []
        """Every message after the login, but for subscription responses and OnInstrument."""
        self.send(common_pb2.LoginRequest(username=user, password=user))
        login = self.receive()
        assert isinstance(login, common_pb2.LoginResponse) and login.error_message == "", login

    @property
    def address(self) -> str:
        """Its address as info's log shows the peer."""
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def send(self, message: Message) -> int:
        request_id = self.session.prepare(message)
        self.sock.sendall(self.session.encode(message))
        return request_id

    def receive(self) -> Message:
        """The next message (ConnectionError once info closed the connection)."""
        while not self.pending:
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise ConnectionResetError("closed by info")
            self.pending.extend(self.session.receive(data))
        message = self.pending.popleft()
        self.received.append(message)
        return message

    def subscribe(self, symbol: str, kind: int) -> None:
        """Subscribe, reading the response and the snapshot (and any OnInstrument before them)."""
        request = info_pb2.OrderBookSubscribeRequest(
            instrument_symbol=symbol, subscription_type=cast(info_pb2.SubscriptionType, kind)
        )
        request_id = self.send(request)
        while not isinstance(response := self.receive(), info_pb2.OrderBookSubscribeResponse):
            assert isinstance(response, info_pb2.OnInstrument), response
        assert (response.request_id, response.error_message) == (request_id, ""), response
        snapshot = self.receive()
        assert isinstance(snapshot, (info_pb2.OnTopOfBook, info_pb2.OnPriceDepthBook)), snapshot
        assert snapshot.instrument_symbol == symbol
        self.received = [
            m
            for m in self.received
            if not isinstance(
                m, (common_pb2.LoginResponse, info_pb2.OrderBookSubscribeResponse, info_pb2.OnInstrument)
            )
        ]

    def read_until(self, trades: int, books: dict[type[Message], object]) -> None:
        """Read until it holds `trades` OnTrade messages and its last message of each book message
        class shows what `books` says (one symbol per class here)."""
        count = sum(isinstance(m, info_pb2.OnTrade) for m in self.received)
        last: dict[type[Message], object] = {
            type(m): shown(m) for m in self.received if isinstance(m, BOOK_MESSAGES)
        }
        while count < trades or any(last.get(cls) != state for cls, state in books.items()):
            message = self.receive()
            if isinstance(message, info_pb2.OnTrade):
                count += 1
            elif isinstance(message, BOOK_MESSAGES):
                last[type(message)] = shown(message)

    def until_barrier(self) -> list[Message]:
        """What arrives before the answer to a login that must fail (helpers.until_barrier)."""
        request_id = self.send(common_pb2.LoginRequest(username=BARRIER_USER, password=BARRIER_USER))
        start = len(self.received)
        while not (isinstance(m := self.receive(), common_pb2.LoginResponse) and m.request_id == request_id):
            pass
        assert m.error_message, "the barrier's login was accepted"
        del self.received[-1]
        return self.received[start:]

    def read_until_closed(self) -> int:
        """Read everything until info closes the connection; the bytes read."""
        total = 0
        try:
            while data := self.sock.recv(READ_SIZE):
                total += len(data)
        except ConnectionResetError:
            pass
        return total

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stalled_on(request: pytest.FixtureRequest) -> Iterator[Callable[[Exchange], Stalled]]:
    """Open a Stalled connection as dave on an exchange's info; closed after the test."""
    opened: list[Stalled] = []

    def open_on(exchange: Exchange) -> Stalled:
        stalled = Stalled(exchange.deployment.address("info"), "dave")
        opened.append(stalled)
        return stalled

    yield open_on
    for stalled in opened:
        stalled.close()


def pipeline(trader: SyncClient, requests: list[Message]) -> list[Message]:
    """Send the requests CHUNK at a time without waiting, then take their responses (no errors)."""
    responses: list[Message] = []
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        trader.send(*chunk)
        for _ in chunk:
            response = trader.receive()
            assert getattr(response, "error_message", "x") == "", response
            responses.append(response)
    return responses


def frame_size(message: Message) -> int:
    return HEADER_SIZE + message.ByteSize()


class Market:
    """The day's instruments, a trader on the order book, the order book's account of the day
    (`OrderBookDay`) and a reading subscriber (alice: DEEP's depth, TAPE's top, paced by `step`)."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.books = {symbol: exchange.create_instrument(symbol) for symbol in (DEEP, TAPE, PACE)}
        self.trader = exchange.order_book()
        self.day = OrderBookDay(exchange)
        levels = [(BUY, round(50.0 - i * 0.01, 2)) for i in range(DEEP_LEVELS)]
        levels += [(SELL, round(50.01 + i * 0.01, 2)) for i in range(DEEP_LEVELS)]
        pipeline(self.trader, [self.insert_request(DEEP, side, price, 10) for side, price in levels])
        self.day.catch_up(states=False)
        self.reader = exchange.info("alice")
        settle(self.reader, PACE)  # its OnInstrument messages
        self.received: list[Message] = [
            subscribe(self.reader, DEEP, PRICE_DEPTH_BOOK),
            subscribe(self.reader, TAPE, TOP_OF_BOOK),
        ]
        self.lowest_bid = levels[DEEP_LEVELS - 1][1]

    def insert_request(self, symbol: str, side: int, price: float, quantity: int) -> ob.InsertOrderRequest:
        return ob.InsertOrderRequest(
            order_book_id=self.books[symbol], side=cast(common_pb2.Side, side), price=price, quantity=quantity
        )

    def step(self, symbol: str, side: int, price: float, quantity: int) -> list[Message]:
        """One insert, then what the reader got for it (all of it: paced by `settle`)."""
        assert insert(self.trader, self.books[symbol], side, price, quantity).error_message == ""
        got = settle(self.reader, PACE)
        self.received += got
        return got

    def back_up(self, stalled: Stalled) -> int:
        """Subscribe `stalled` to DEEP's depth and TAPE's top, then change DEEP (a new lowest bid each
        time) until the reader got more of its depth frames than the kernel and INFO_PAUSE_ABOVE can
        hold for `stalled`: it is backed up then. The steps made."""
        stalled.subscribe(DEEP, PRICE_DEPTH_BOOK)
        stalled.subscribe(TAPE, TOP_OF_BOOK)
        sent = 0
        steps = 0
        bound = kernel_capacity(stalled.sock) + INFO_PAUSE_ABOVE
        while sent <= bound:
            self.lowest_bid = round(self.lowest_bid - 0.01, 2)
            got = self.step(DEEP, BUY, self.lowest_bid, 1)
            depths = [m for m in got if isinstance(m, info_pb2.OnPriceDepthBook)]
            assert len(depths) == 1, got  # the reader gets every change, at once
            sent += frame_size(depths[0])
            steps += 1
        return steps

    def messages(self, cls: type[Message], symbol: str) -> list[Message]:
        return [m for m in self.received if isinstance(m, cls) and m.instrument_symbol == symbol]  # type: ignore[attr-defined]


def test_a_stalled_subscriber_delays_nobody_and_gets_every_trade_and_the_latest_books(
    info: Exchange, stalled_on: Callable[[Exchange], Stalled]
) -> None:
    market = Market(info)
    stalled = stalled_on(info)
    steps = market.back_up(stalled)
    # While it is backed up: trades on both books, sweeps over several of DEEP's levels among them.
    for i in range(20):
        got = market.step(DEEP, SELL, 49.99, 4)  # 10 a level at 50.00 and 49.99, then rests at 49.99
        assert len([m for m in got if isinstance(m, info_pb2.OnPriceDepthBook)]) == 1
        tape_price = round(20.0 + i * 0.01, 2)
        market.step(TAPE, BUY, tape_price, 2)
        got = market.step(TAPE, SELL, tape_price, 1)
        assert [type(m) for m in got] == [info_pb2.OnTrade, info_pb2.OnTopOfBook], got
    day = market.day.catch_up()
    trades = [m for m in market.received if isinstance(m, info_pb2.OnTrade)]
    assert len(trades) >= 20
    # The reader was never held up: its books are the order book's.
    assert shown(market.messages(info_pb2.OnPriceDepthBook, DEEP)[-1]) == day.depth(DEEP)
    assert shown(market.messages(info_pb2.OnTopOfBook, TAPE)[-1]) == day.top(TAPE)
    assert [t.trade_id for t in trades if t.instrument_symbol == DEEP] == day.trade_ids(DEEP)
    assert [t.trade_id for t in trades if t.instrument_symbol == TAPE] == day.trade_ids(TAPE)
    assert until_barrier(market.reader) == []

    # Reading again, the stalled one gets every trade and ends on the books as they are.
    stalled.read_until(
        len(trades), {info_pb2.OnPriceDepthBook: day.depth(DEEP), info_pb2.OnTopOfBook: day.top(TAPE)}
    )
    assert stalled.until_barrier() == []
    assert [m for m in stalled.received if isinstance(m, info_pb2.OnTrade)] == trades  # none dropped
    for symbol, cls in ((DEEP, info_pb2.OnPriceDepthBook), (TAPE, info_pb2.OnTopOfBook)):
        states = [(shown(m), n) for m, n in book_states(stalled.received, symbol, cls)]
        truth = day.depths[symbol] if cls is info_pb2.OnPriceDepthBook else day.tops[symbol]
        assert_follows(states, truth, f"stalled {symbol}")
    stalled_depths = [m for m in stalled.received if isinstance(m, info_pb2.OnPriceDepthBook)]
    reader_depths = market.messages(info_pb2.OnPriceDepthBook, DEEP)
    assert len(reader_depths) == 1 + steps + 20  # the snapshot, then one per change
    assert len(stalled_depths) < len(reader_depths)  # conflated


@pytest.fixture
def strict_info(deploy_components: Deploy) -> Iterator[Exchange]:
    """The info suite's deployment, info's maxUnsentBytes lowered to MAX_UNSENT."""
    config = load_deployment(default_deployment_path())
    info = config.provider("info")
    specs = [c for c in components_for_suite(config, "info") if c.name != info.name]
    specs.append(info.derive(config={"maxUnsentBytes": MAX_UNSENT}))
    with Exchange(deploy_components(specs, ())) as exchange:
        yield exchange


def test_past_max_unsent_bytes_a_subscriber_that_never_reads_is_dropped_and_named(
    strict_info: Exchange, stalled_on: Callable[[Exchange], Stalled]
) -> None:
    market = Market(strict_info)
    stalled = stalled_on(strict_info)
    market.back_up(stalled)
    # Backed up, it is sent every trade (never conflated) and reads none: past MAX_UNSENT, dropped.
    trade_bytes = 0
    while trade_bytes <= MAX_UNSENT:
        pipeline(market.trader, [market.insert_request(TAPE, SELL, 20.0, 1) for _ in range(SWEEP)])
        got = market.step(TAPE, BUY, 20.0, SWEEP)
        trades = [m for m in got if isinstance(m, info_pb2.OnTrade)]
        assert len(trades) == SWEEP
        trade_bytes += sum(frame_size(t) for t in trades)
    assert stalled.read_until_closed() > 0  # what the kernel held, then the end
    log = "\n".join(
        path.read_text(encoding="utf-8") for path in strict_info.deployment.component("info").log_files()
    )
    named = [line for line in log.splitlines() if stalled.address in line]
    assert any("slow consumer" in line and f"user {loggable(stalled.user)}" in line for line in named), named
    # The reader is still served, and its books are the order book's.
    got = market.step(DEEP, SELL, 49.99, 4)
    assert [type(m) for m in got][-1:] == [info_pb2.OnPriceDepthBook]
    day = market.day.catch_up()
    assert shown(got[-1]) == day.depth(DEEP)
    assert shown(market.messages(info_pb2.OnTopOfBook, TAPE)[-1]) == day.top(TAPE)
    assert until_barrier(market.reader) == []
