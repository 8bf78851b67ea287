"""The fuzz harness: random and mutated frames against every protocol a deployment serves.

Used briefly by `test_fuzz.py` (in CI) and at length by `scripts/fuzz.py`. For one protocol, a
`Fuzzer` keeps `FuzzLimits.connections` connections open and, step after step, picks one and sends it
something drawn from a seeded RNG (the same seed makes the same choices in the same order; what they
apply to, books and orders of the day and connections still open, depends on the component's answers):

- valid frames of every request type with random fields (huge and negative numbers, NaN and infinite
  prices, unknown enum values, long and odd strings), and well-formed requests that do something
  (orders on the books of the day, instruments), many in one write or split over several writes;
- mutated frames (bits flipped, bytes changed, payloads cut or grown), random payloads, unknown message
  types, types only servers send, lengths below 4, above the maximum or not matching the payload, and
  now and then a frame of nearly the maximum length;
- logins, and connections cut mid-frame (by a FIN or a reset) or closed, then replaced.

It reads whatever comes back on every connection and checks that each frame the component sends is one
of the protocol's types and decodes. A logged-in order-book connection (the observer) follows the whole
day in a `BookMirror`, which checks the events as they come (ids increasing, trades between resting
orders at the resting order's price, cancels of resting orders). `verify` then checks the deployment
afterwards: every component still running, a fresh login's replay equal to the mirror with no book
crossed, and fresh well-behaved clients answered correctly on every protocol.

Bounds (`FuzzLimits`): seconds, connections open at once and in all, frames in all, bytes of one write,
bytes waiting to be sent on one connection. Only 127.0.0.1 is ever connected to.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from optivex.client import SyncClient
from optivex.deploy import DEFAULT_USERS, Deployment
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.protocols import LOGIN_REQUEST, PROTOCOLS, Protocol, protocol_for
from optivex.wire import MAX_FRAME_LENGTH, FrameDecoder, encode_frame

from .helpers import TIMEOUT, until_barrier

LOCALHOST = "127.0.0.1"
RECENT_ACTIONS = 40
"""Actions kept in a report for context when something fails."""
CONN_ACTIONS = 4
"""Actions kept per connection, for context."""
FINISH_TIMEOUT = 3 * TIMEOUT
"""Seconds the component has, after the run, to close the connections the fuzzer closed (FIN)."""


@dataclass(frozen=True)
class FuzzLimits:
    """Everything a fuzz run may take; the run ends at the first bound reached."""

    seconds: float = 2.0
    """Wall-clock length of the run."""
    connections: int = 8
    """Fuzzing connections open at once (the observer and verify's clients come on top)."""
    max_opened: int = 5_000
    """Fuzzing connections opened in all."""
    max_frames: int = 500_000
    """Frames sent in all."""
    max_write: int = 64 * 1024
    """Bytes of one action (one write or a few), near-maximal frames aside."""
    big_frame_every: int = 250
    """Steps between two frames of nearly MAX_FRAME_LENGTH (at most one such frame waits at a time)."""
    max_backlog: int = 2 * 1024 * 1024
    """Bytes waiting to be sent on one connection: above, it gets nothing more until they are sent."""


@dataclass
class FuzzReport:
    """What a run sent and saw, and what went wrong (`failures` empty: nothing)."""

    protocol: str
    seed: int
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    """Actions and frames sent, by kind."""
    bytes_sent: int = 0
    frames_received: int = 0
    opened: int = 0
    closed_by_server: int = 0
    steps: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    recent: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=RECENT_ACTIONS))
    """The last actions, for context."""

    def fail(self, message: str) -> None:
        if len(self.failures) < 100:  # the first ones tell; a broken component would repeat forever
            self.failures.append(message)

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.sent.items()))
        return (
            f"{self.protocol} (seed {self.seed}): {self.steps} steps in {self.seconds:.1f} s, "
            f"{self.bytes_sent} bytes sent, {self.frames_received} frames received, "
            f"{self.opened} connections opened, {self.closed_by_server} closed by the server\n  sent: {kinds}"
        )


# ---------------------------------------------------------------- random messages

INT32_VALUES = (0, 1, -1, 2, 3, 7, 100, 4242, 2**31 - 1, -(2**31), 2**30)
INT64_VALUES = (*INT32_VALUES, 2**63 - 1, -(2**63), 2**53 + 1, 2**32, -(2**32), 10**15)
DOUBLE_VALUES = (
    0.0, -0.0, 1.0, -1.0, 0.01, 0.0001, 0.00005, 10.0, 10.005, 12.3456, 99.99995, 1e-300, 5e-324,
    1e308, -1e308, 1e15, math.nan, -math.nan, math.inf, -math.inf, 0.1 + 0.2,
)  # fmt: skip
STRING_VALUES = (
    "", "a", "ABC", "alice", "admin", " A B ", "\n", "line\nforged: log line", "\r\x00\x1b[31m", "é€😀",
    "'\"\\%s%n{}", "\u202e", "x" * 64, "y" * 1000,
)  # fmt: skip
UNKNOWN_ENUM_VALUES = (-1, 2, 3, 7, 99, 2**31 - 1, -(2**31))
MAX_DEPTH = 3
MAX_REPEATED = 4


def random_value(rng: random.Random, fd: Any) -> Any:
    """A value for one scalar field of `fd`'s type (a FieldDescriptor: the stubs type upb's apart), often
    an odd one."""
    t = fd.type
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return rng.choice(INT32_VALUES) if rng.random() < 0.7 else rng.randint(-(2**31), 2**31 - 1)
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return rng.choice(INT64_VALUES) if rng.random() < 0.7 else rng.randint(-(2**63), 2**63 - 1)
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice((0, 1, 7, 2**32 - 1, 2**31))
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice((0, 1, 7, 2**64 - 1, 2**63))
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = rng.choice(DOUBLE_VALUES) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
        if t == FieldDescriptor.TYPE_FLOAT and math.isfinite(value) and abs(value) > 3e38:
            value = math.copysign(math.inf, value)
        return value
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FieldDescriptor.TYPE_STRING:
        if rng.random() < 0.8:
            return rng.choice(STRING_VALUES)
        return "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 40)))
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 64))
    if t == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = list(fd.enum_type.values_by_number)
        return rng.choice(known) if rng.random() < 0.6 else rng.choice(UNKNOWN_ENUM_VALUES)
    raise AssertionError(f"field type {t} of {fd.full_name}")


def fill(rng: random.Random, message: Message, depth: int = 0) -> Message:
    """Set a random subset of `message`'s fields (nested messages too) to random values; returns it."""
    if depth > MAX_DEPTH:
        return message
    for fd in message.DESCRIPTOR.fields:
        if rng.random() < 0.25:
            continue
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue  # no maps in the protocols today; their keys would need values of their own
        try:
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                if fd.is_repeated:
                    for _ in range(rng.randint(0, MAX_REPEATED)):
                        fill(rng, getattr(message, fd.name).add(), depth + 1)
                else:
                    sub = getattr(message, fd.name)
                    sub.SetInParent()
                    fill(rng, sub, depth + 1)
            elif fd.is_repeated:
                getattr(message, fd.name).extend(
                    random_value(rng, fd) for _ in range(rng.randint(0, MAX_REPEATED))
                )
            else:
                setattr(message, fd.name, random_value(rng, fd))
        except (ValueError, TypeError):
            continue  # a value the field's type refuses (the byte mutations reach those)
    return message


def random_message(rng: random.Random, cls: type[Message]) -> Message:
    """A `cls` with random fields."""
    return fill(rng, cls())


def mutate(rng: random.Random, payload: bytes) -> bytes:
    """`payload` with one to a few random byte-level changes."""
    data = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # change a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif op == 2 and data:  # cut
            del data[rng.randrange(len(data)) :]
        elif op == 3:  # insert random bytes
            i = rng.randint(0, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:  # a varint of ten 0xff bytes (more than 64 bits' worth) under a random tag
            data += bytes([rng.randrange(1, 16) << 3]) + b"\xff" * 9 + b"\x01"
        elif op == 5 and data:  # repeat a slice (fields seen twice)
            i = rng.randrange(len(data))
            data += data[i : i + rng.randint(1, 16)]
        elif op == 6:  # a length-delimited field claiming more than there is
            data += bytes([(rng.randrange(1, 16) << 3) | 2, rng.randrange(0x80, 0x100), 0x7F])
    return bytes(data)


# ---------------------------------------------------------------- the book mirror


MirrorState = tuple[dict[int, float], dict[int, tuple[int, int, float, int]]]
"""A mirror's books (id -> tick size) and resting orders (id -> book, side, price, remaining)."""


class BookMirror:
    """The day as an order-book connection is told it: books, resting orders, and checks on each event."""

    def __init__(self) -> None:
        self.books: dict[int, float] = {}
        """order_book_id -> tick size."""
        self.orders: dict[int, tuple[int, int, float, int]] = {}
        """Resting order_id -> (order_book_id, side, price, remaining quantity)."""
        self.last_order = 0
        self.last_trade = 0
        self.replaying = True
        """True until the end of the login replay (its orders come in priority order, not by id)."""

    def apply(self, message: Message) -> str | None:
        """Apply one event; a description of what is wrong with it, or None."""
        if isinstance(message, ob.OnOrderBookCreated):
            if message.order_book_id in self.books or message.order_book_id <= max(self.books, default=0):
                return f"book id {message.order_book_id} not above the earlier ones"
            self.books[message.order_book_id] = message.tick_size
        elif isinstance(message, ob.OnOrderInserted):
            if message.order_book_id not in self.books:
                return f"order {message.order_id} on unknown book {message.order_book_id}"
            if not self.replaying:
                if message.order_id <= self.last_order:
                    return f"order id {message.order_id} after {self.last_order}"
                self.last_order = message.order_id
            if message.quantity <= 0 or not message.price > 0:
                return f"order {message.order_id} with quantity {message.quantity}, price {message.price}"
            self.orders[message.order_id] = (
                message.order_book_id,
                int(message.side),
                message.price,
                message.quantity,
            )
        elif isinstance(message, ob.OnTrade):
            if message.trade_id <= self.last_trade:
                return f"trade id {message.trade_id} after {self.last_trade}"
            self.last_trade = message.trade_id
            buy, sell = self.orders.get(message.buy_order_id), self.orders.get(message.sell_order_id)
            if buy is None or sell is None:
                return f"trade {message.trade_id} of an order not resting: {message}"
            maker = sell if message.aggressor_side == common_pb2.BUY else buy
            if message.price != maker[2] or not 0 < message.quantity <= min(buy[3], sell[3]):
                return f"trade {message.trade_id} at {message.price} x {message.quantity}: {buy}, {sell}"
            for order_id, order in ((message.buy_order_id, buy), (message.sell_order_id, sell)):
                remaining = order[3] - message.quantity
                if remaining:
                    self.orders[order_id] = (*order[:3], remaining)
                else:
                    del self.orders[order_id]
        elif isinstance(message, ob.OnOrderCancelled) and self.orders.pop(message.order_id, None) is None:
            return f"cancel of order {message.order_id}, which does not rest"
        return None

    def state(self) -> MirrorState:
        """A copy of the books and resting orders."""
        return dict(self.books), dict(self.orders)

    def crossed_books(self) -> list[str]:
        """Books whose best bid is not below their best ask (after a consistent point)."""
        bids: dict[int, float] = {}
        asks: dict[int, float] = {}
        for book, side, price, _ in self.orders.values():
            if side == common_pb2.BUY:
                bids[book] = max(price, bids.get(book, -math.inf))
            else:
                asks[book] = min(price, asks.get(book, math.inf))
        return [f"book {b}: bid {bids[b]} >= ask {asks[b]}" for b in bids if b in asks and bids[b] >= asks[b]]


# ---------------------------------------------------------------- connections


class _Conn:
    """One non-blocking connection of the fuzzer: bytes to send, a decoder for what comes back."""

    def __init__(self, address: tuple[str, int], label: str) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.label = label
        self.decoder = FrameDecoder()
        self.out = bytearray()
        self.closed = False
        """Closed by us (cut, closed) or found closed by the server; the socket is closed then."""
        self.eof = False
        """The server closed it (or reset it)."""
        self.logged_in = False
        self.received = 0
        """Bytes received."""
        self.actions: collections.deque[str] = collections.deque(maxlen=CONN_ACTIONS)
        """Its last actions, for context."""

    def flush(self) -> None:
        while self.out and not self.eof and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return
            except OSError:
                self.eof = True
                return
            del self.out[:sent]

    def read(self) -> list[tuple[int, bytes]]:
        """The frames that arrived; sets `eof` when the server has closed the connection."""
        frames: list[tuple[int, bytes]] = []
        while not self.eof:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.eof = True
                break
            self.received += len(data)
            frames += self.decoder.feed(data)
        return frames

    def cut(self, reset: bool) -> None:
        """Close (with a reset: SO_LINGER 0)."""
        if not self.closed:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.closed = True


# ---------------------------------------------------------------- the fuzzer


class Fuzzer:
    """Fuzz one protocol of a running deployment; `run()` returns the report."""

    def __init__(
        self,
        deployment: Deployment,
        protocol: str,
        seed: int,
        limits: FuzzLimits = FuzzLimits(),
        verbose: Callable[[str], None] | None = None,
    ) -> None:
        self.deployment = deployment
        self.name = protocol
        # What the port serves: every protocol of the component providing `protocol` (the gateway
        # serves execution and risk_limits on one port, and answers both).
        self.protocol: Protocol = protocol_for(deployment.provider(protocol).protocols)
        self.rng = random.Random(f"{protocol}:{seed}")
        self.limits = limits
        self.verbose = verbose
        self.report = FuzzReport(protocol, seed)
        self.address = self._local(protocol)
        self.ob_address = self._local("order_book")
        self.conns: list[_Conn] = []
        self.mirror = BookMirror()
        self.observer = _Conn(self.ob_address, "observer")
        self._barrier_id = 0
        self._barrier_answered = False
        self.marker = 0
        """A book id: when the observer is told of it, `at_marker` gets the mirror's state."""
        self.at_marker: MirrorState | None = None
        self._symbols = itertools.count(1)
        self._request_types = sorted(self.protocol.requests)
        self._server_types = sorted(set(self.protocol.classes) - self.protocol.requests)

    def close(self) -> None:
        """Close the observer (the fuzzing connections are closed at the end of `run`)."""
        self.observer.cut(reset=False)
        for conn in self.conns:
            conn.cut(reset=True)
        self.conns.clear()

    def _local(self, protocol: str) -> tuple[str, int]:
        host, port = self.deployment.address(protocol)
        assert host == LOCALHOST, f"the fuzzer connects to {LOCALHOST} only, not {host}"
        return host, port

    # the run ---------------------------------------------------------

    def run(self) -> FuzzReport:
        """Fuzz until a bound of `limits` is reached, then close every fuzzing connection."""
        report = self.report
        started = time.monotonic()
        deadline = started + self.limits.seconds
        self._observer_login()
        while (
            time.monotonic() < deadline
            and report.opened <= self.limits.max_opened
            and report.sent["frames"] < self.limits.max_frames
        ):
            report.steps += 1
            if report.steps % 100 == 0 and self.deployment.poll_dead():
                dead = ", ".join(c.name for c in self.deployment.poll_dead())
                report.fail(f"component(s) died during the fuzz: {dead}")
                break
            self._step()
            self._pump(wait=0.0)
        self._finish()
        report.seconds = time.monotonic() - started
        return report

    def _finish(self) -> None:
        """Close every fuzzing connection with a FIN after what it was sent, and read until the server
        closes it too: then the component has handled all of it (a reset would leave that unknown)."""
        for conn in self.conns:
            conn.flush()
            if not conn.eof:
                try:
                    conn.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    conn.eof = True
        deadline = time.monotonic() + FINISH_TIMEOUT
        while self.conns and time.monotonic() < deadline:
            for conn in self.conns:
                conn.out.clear()  # nothing more goes out after the FIN
            self._pump(wait=0.05)
        for conn in self.conns:
            self.report.fail(
                f"{conn.label}: still open {FINISH_TIMEOUT:g} s after its FIN ({conn.received} bytes "
                f"received, {conn.decoder.buffered} "
                f"buffered; last actions: {'; '.join(conn.actions)})"
            )
            conn.cut(reset=True)
        self.conns.clear()

    def _observer_login(self) -> None:
        self.observer.out += encode_frame(
            LOGIN_REQUEST, common_pb2.LoginRequest(request_id=1, username="fuzz-observer").SerializeToString()
        )
        self.sync_observer()
        self.mirror.replaying = False
        self.mirror.last_order = max(self.mirror.orders, default=0)

    def sync_observer(self) -> None:
        """Send a barrier on the observer and apply every event that comes before its response."""
        self._barrier_id += 1
        self._barrier_answered = False
        self.observer.out += encode_frame(
            ob.BARRIER_REQUEST, ob.BarrierRequest(request_id=self._barrier_id).SerializeToString()
        )
        deadline = time.monotonic() + TIMEOUT
        while not self._barrier_answered:
            if time.monotonic() > deadline:
                raise AssertionError(f"the observer's barrier was not answered within {TIMEOUT:g} s")
            self._pump(wait=0.05)

    def _pump(self, wait: float) -> None:
        """Send what can be sent and read what came, on every connection; `wait`: seconds to wait for
        something to come or to be sendable first."""
        everyone = [self.observer, *self.conns]
        for conn in everyone:
            conn.flush()
        if wait:
            with selectors.DefaultSelector() as selector:
                for conn in everyone:
                    if not conn.closed and not conn.eof:
                        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
                        selector.register(conn.sock, events)
                selector.select(wait)
        for conn in everyone:
            if conn.closed:
                continue
            for msg_type, payload in conn.read():
                self._received(conn, msg_type, payload)
            if conn.decoder.error is not None:
                self.report.fail(f"{conn.label}: the server sent a bad frame: {conn.decoder.error}")
                conn.eof = True
            if conn.eof:
                if conn is self.observer:
                    dead = [f"{c.name} ({c.poll()})" for c in self.deployment.poll_dead()]
                    why = f": died: {', '.join(dead)}" if dead else ""
                    self.report.fail(f"the observer (logged in, reading everything) was disconnected{why}")
                    raise AssertionError("; ".join(self.report.failures))
                self.report.closed_by_server += 1
                conn.cut(reset=False)
        self.conns = [c for c in self.conns if not c.closed]

    def _received(self, conn: _Conn, msg_type: int, payload: bytes) -> None:
        self.report.frames_received += 1
        protocol = PROTOCOLS["order_book"] if conn is self.observer else self.protocol
        cls = protocol.classes.get(msg_type)
        if cls is None or msg_type in protocol.requests:
            self.report.fail(f"{conn.label}: the server sent a frame of type {msg_type}")
            return
        try:
            message = cls.FromString(payload)
        except DecodeError as exc:
            self.report.fail(f"{conn.label}: the server sent an undecodable {cls.__name__}: {exc}")
            return
        if conn is not self.observer:
            return
        if isinstance(message, ob.BarrierResponse):
            self._barrier_answered |= message.request_id == self._barrier_id
            return
        problem = self.mirror.apply(message)
        if problem:
            self.report.fail(f"observer: {problem}")
        if isinstance(message, ob.OnOrderBookCreated) and message.order_book_id == self.marker:
            self.at_marker = self.mirror.state()

    # actions -----------------------------------------------------------

    def _note(self, kind: str, conn: _Conn, detail: str = "") -> None:
        self.report.sent[kind] += 1
        text = f"{self.report.steps}: {conn.label} {kind}{' ' + detail if detail else ''}"
        self.report.recent.append(text)
        conn.actions.append(f"{kind}{' ' + detail if detail else ''}")
        if self.verbose is not None:
            self.verbose(text)

    def _open(self) -> _Conn:
        self.report.opened += 1
        conn = _Conn(self.address, f"#{self.report.opened}")
        self.conns.append(conn)
        return conn

    def _pick(self) -> _Conn | None:
        """A connection to act on: a new one while fewer than `connections` are open, else one that has
        room for more; None when none has (the server is not reading them now)."""
        if len(self.conns) < self.limits.connections:
            return self._open()
        live = [c for c in self.conns if len(c.out) < self.limits.max_backlog]
        return self.rng.choice(live) if live else None

    def _queue(self, conn: _Conn, data: bytes, frames: int) -> None:
        conn.out += data
        self.report.bytes_sent += len(data)
        self.report.sent["frames"] += frames

    def _step(self) -> None:
        rng = self.rng
        conn = self._pick()
        if conn is None:
            self.report.sent["waits"] += 1
            self._pump(wait=0.05)
            return
        if self.report.steps % self.limits.big_frame_every == 0:
            self._big_frame(conn)
            return
        action = rng.choices(
            (
                self._valid,
                self._sensible,
                self._mutated,
                self._random_payload,
                self._odd_types,
                self._bad_length,
                self._split,
                self._cut,
                self._login,
                self._close,
            ),
            weights=(20, 25, 15, 6, 6, 3, 6, 4, 6, 2),
        )[0]
        action(conn)

    def _request_frame(self, msg_type: int) -> bytes:
        cls = self.protocol.classes[msg_type]
        return encode_frame(msg_type, random_message(self.rng, cls).SerializeToString())

    def _valid(self, conn: _Conn) -> None:
        count = self.rng.randint(1, 20)
        types = [self.rng.choice(self._request_types) for _ in range(count)]
        self._queue(conn, b"".join(self._request_frame(t) for t in types), count)
        self._note("valid", conn, ",".join(self.protocol.classes[t].__name__ for t in types))

    def _sensible(self, conn: _Conn) -> None:
        frames = list(self._sensible_frames(conn))
        if not frames:
            self._valid(conn)
            return
        self._queue(conn, b"".join(frames), len(frames))
        self._note("sensible", conn, f"{len(frames)} frames")

    def _sensible_frames(self, conn: _Conn) -> Iterator[bytes]:
        """Well-formed requests that change the day: orders, cancels, books, instruments."""
        rng = self.rng
        if self.name == "order_book":
            books = list(self.mirror.books.items())
            if not books or rng.random() < 0.02:
                tick = rng.choice((0.01, 0.05, 0.25, 0.0001))
                yield encode_frame(
                    ob.CREATE_ORDER_BOOK_REQUEST,
                    ob.CreateOrderBookRequest(tick_size=tick).SerializeToString(),
                )
                return
            resting = list(self.mirror.orders)
            for _ in range(rng.randint(1, 30)):
                book, tick = rng.choice(books)
                if resting and rng.random() < 0.25:
                    request: Message = ob.CancelOrderRequest(
                        request_id=rng.randint(1, 99), order_book_id=book, order_id=rng.choice(resting)
                    )
                    yield encode_frame(ob.CANCEL_ORDER_REQUEST, request.SerializeToString())
                    continue
                ticks = rng.randint(round(9 / tick), round(11 / tick)) if tick <= 1 else rng.randint(1, 20)
                request = ob.InsertOrderRequest(
                    request_id=rng.randint(1, 99),
                    order_book_id=book,
                    side=rng.choice((common_pb2.BUY, common_pb2.SELL)),
                    price=round(ticks * tick, 4),
                    quantity=rng.randint(1, 50),
                    on_behalf_of_username=rng.choice(("", "alice", "bob")),
                )
                yield encode_frame(ob.INSERT_ORDER_REQUEST, request.SerializeToString())
        elif self.name == "admin":
            if not conn.logged_in:
                yield self._login_frame(conn)
            for _ in range(rng.randint(0, 2)):
                request = admin_pb2.CreateInstrumentRequest(
                    instrument=common_pb2.Instrument(symbol=f"FZ{next(self._symbols)}"),
                    tick_size=rng.choice((0.01, 0.5)),
                )
                yield encode_frame(admin_pb2.CREATE_INSTRUMENT_REQUEST, request.SerializeToString())
        elif not conn.logged_in:  # a protocol without its own well-formed requests here: log in at least
            yield self._login_frame(conn)

    def _login_frame(self, conn: _Conn) -> bytes:
        user = self.rng.choice(DEFAULT_USERS)
        conn.logged_in = True
        request = common_pb2.LoginRequest(request_id=self.rng.randint(1, 9), username=user.username)
        request.password = user.password
        return encode_frame(LOGIN_REQUEST, request.SerializeToString())

    def _login(self, conn: _Conn) -> None:
        if self.rng.random() < 0.7:
            self._queue(conn, self._login_frame(conn), 1)
            self._note("login", conn)
        else:
            self._queue(conn, self._request_frame(LOGIN_REQUEST), 1)
            self._note("login-random", conn)

    def _mutated(self, conn: _Conn) -> None:
        count = self.rng.randint(1, 10)
        data = b""
        for _ in range(count):
            msg_type = self.rng.choice(self._request_types)
            message = random_message(self.rng, self.protocol.classes[msg_type])
            data += encode_frame(msg_type, mutate(self.rng, message.SerializeToString()))
        self._queue(conn, data, count)
        self._note("mutated", conn, f"{count} frames")

    def _random_payload(self, conn: _Conn) -> None:
        msg_type = self.rng.choice(self._request_types)
        self._queue(conn, encode_frame(msg_type, self.rng.randbytes(self.rng.randint(0, 300))), 1)
        self._note("random-payload", conn, f"type {msg_type}")

    def _odd_types(self, conn: _Conn) -> None:
        """Unknown types, and the types only servers send, with random or valid payloads."""
        rng = self.rng
        count = rng.randint(1, 20)
        data = b""
        for _ in range(count):
            if self._server_types and rng.random() < 0.5:
                msg_type = rng.choice(self._server_types)
                payload = random_message(rng, self.protocol.classes[msg_type]).SerializeToString()
            else:
                msg_type = rng.choice((rng.randint(2, 2**32 - 1), rng.randint(16, 99), 2**32 - 1, 999))
                while msg_type in self.protocol.classes:
                    msg_type = rng.randint(200, 2**32 - 1)
                payload = rng.randbytes(rng.randint(0, 40))
            data += encode_frame(msg_type, payload)
        self._queue(conn, data, count)
        self._note("odd-types", conn, f"{count} frames")

    def _bad_length(self, conn: _Conn) -> None:
        rng = self.rng
        msg_type = rng.choice(self._request_types)
        payload = random_message(rng, self.protocol.classes[msg_type]).SerializeToString()
        kind = rng.randrange(4)
        if kind == 0:
            head = struct.pack(">I", rng.randint(0, 3))
        elif kind == 1:
            head = struct.pack(">I", rng.choice((MAX_FRAME_LENGTH + 1, 2**31, 2**32 - 1)))
        elif kind == 2:  # longer than what follows: the next frames are read as its payload
            head = struct.pack(">I", 4 + len(payload) + rng.randint(1, 64))
        else:  # shorter: the rest of the payload is read as the next frame
            head = struct.pack(">I", 4 + rng.randint(0, len(payload)))
        data = head + struct.pack(">I", msg_type) + payload + self._request_frame(msg_type)
        self._queue(conn, data, 2)
        self._note("bad-length", conn, ("below 4", "above max", "too long", "too short")[kind])

    def _split(self, conn: _Conn) -> None:
        """Valid frames written a few bytes at a time."""
        count = self.rng.randint(1, 5)
        data = b"".join(self._request_frame(self.rng.choice(self._request_types)) for _ in range(count))
        conn.flush()
        if conn.out or conn.eof:
            self._queue(conn, data, count)
        else:
            self.report.bytes_sent += len(data)
            self.report.sent["frames"] += count
            i = 0
            while i < len(data) and not conn.eof:
                n = self.rng.randint(1, 9)
                conn.out += data[i : i + n]
                conn.flush()
                i += n
            conn.out += data[i:]
        self._note("split", conn, f"{count} frames")

    def _cut(self, conn: _Conn) -> None:
        """Part of a frame, then a FIN or a reset."""
        frame = self._request_frame(self.rng.choice(self._request_types))
        cut = self.rng.randint(1, len(frame) - 1)
        self._queue(conn, frame[:cut], 0)
        conn.flush()
        reset = self.rng.random() < 0.5
        conn.cut(reset)
        self._note("cut", conn, f"after {cut} of {len(frame)} bytes, {'reset' if reset else 'FIN'}")

    def _close(self, conn: _Conn) -> None:
        conn.flush()
        conn.cut(reset=False)
        self._note("close", conn)

    def _big_frame(self, conn: _Conn) -> None:
        """A frame of nearly the maximum length: a request with a long string field, or random bytes."""
        rng = self.rng
        msg_type = rng.choice(self._request_types)
        size = MAX_FRAME_LENGTH - 4 - rng.randint(0, 64)
        if rng.random() < 0.5:
            payload = rng.randbytes(size)
        else:
            message = random_message(rng, self.protocol.classes[msg_type])
            strings = [fd for fd in message.DESCRIPTOR.fields if fd.type == FieldDescriptor.TYPE_STRING]
            if strings and not strings[0].is_repeated:
                setattr(message, strings[0].name, "z" * (size - len(message.SerializeToString()) - 8))
            payload = message.SerializeToString()[: MAX_FRAME_LENGTH - 4]
        self._queue(conn, encode_frame(msg_type, payload), 1)
        self._note("big-frame", conn, f"{len(payload)} bytes of type {msg_type}")


# ---------------------------------------------------------------- after a run


def verify(deployment: Deployment, fuzzer: Fuzzer) -> list[str]:
    """What is wrong with the deployment after `fuzzer` ran (empty: nothing).

    Every component still runs; a fresh login's replay plus the events after it equals the observer's
    mirror, both taken at the same point of the day (the announcement of a marker book created after
    that login: every logged-in connection is told the same events in the same order); no book is
    crossed there; fresh well-behaved clients get correct answers on every protocol served.
    """
    dead = deployment.poll_dead()
    if dead:
        return [f"component {c.name!r} died ({c.returncode}):\n{c.tail()}" for c in dead]
    problems: list[str] = []
    host, port = deployment.address("order_book")
    with (
        SyncClient(host, port, "order_book", timeout=TIMEOUT) as late,
        SyncClient(host, port, "order_book", timeout=TIMEOUT) as maker,
    ):
        late.login("fuzz-late")
        replayed = BookMirror()  # replaying throughout: the replay's orders come in priority order
        for event in until_barrier(late):
            if problem := replayed.apply(event):
                problems.append(f"replay: {problem}")
        created = maker.request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
        assert isinstance(created, ob.CreateOrderBookResponse)
        fuzzer.marker = created.order_book_id
        while fuzzer.marker not in replayed.books:
            if problem := replayed.apply(late.receive()):
                problems.append(f"after the replay: {problem}")
    fuzzer.sync_observer()  # answered after the marker's announcement
    if fuzzer.at_marker is None:
        return [*problems, f"the observer was never told of book {fuzzer.marker}"]
    books, orders = fuzzer.at_marker
    if replayed.books != books:
        problems.append(f"the replay's books differ from the mirror's: {_difference(replayed.books, books)}")
    if replayed.orders != orders:
        problems.append(
            f"the replay's resting orders differ from the mirror's: {_difference(replayed.orders, orders)}"
        )
    problems += [f"crossed: {p}" for p in replayed.crossed_books()]
    for protocol in sorted({p for c in deployment.components for p in c.protocols}):
        problems += [f"{protocol}: {p}" for p in well_behaved(deployment, protocol, fuzzer)]
    return problems


def _difference(replay: dict[int, Any], mirror: dict[int, Any]) -> str:
    """What differs between two dicts, briefly: counts and the first few entries of each side."""
    only_replay = sorted((k, v) for k, v in replay.items() if mirror.get(k) != v)[:5]
    only_mirror = sorted((k, v) for k, v in mirror.items() if replay.get(k) != v)[:5]
    return (
        f"{len(replay)} in the replay, {len(mirror)} in the mirror; replay has {only_replay}, "
        f"mirror has {only_mirror}"
    )


def well_behaved(deployment: Deployment, protocol: str, fuzzer: Fuzzer) -> list[str]:
    """A fresh client of `protocol` logs in and, where the harness knows the protocol, trades or
    creates an instrument; what went wrong (empty: nothing)."""
    host, port = deployment.address(protocol)
    user = DEFAULT_USERS[1]
    problems: list[str] = []
    with SyncClient(host, port, protocol, timeout=TIMEOUT) as client:
        login = client.request(common_pb2.LoginRequest(username=user.username, password=user.password))
        if not isinstance(login, common_pb2.LoginResponse) or login.error_message:
            return [f"a valid login was not accepted: {login}"]
        if protocol == "order_book":
            created = client.request(ob.CreateOrderBookRequest(tick_size=0.01))
            assert isinstance(created, ob.CreateOrderBookResponse)
            book = created.order_book_id
            sell = client.request(
                ob.InsertOrderRequest(order_book_id=book, side=common_pb2.SELL, price=10.0, quantity=3)
            )
            buy = client.request(
                ob.InsertOrderRequest(order_book_id=book, side=common_pb2.BUY, price=10.01, quantity=2)
            )
            assert isinstance(sell, ob.InsertOrderResponse) and isinstance(buy, ob.InsertOrderResponse)
            if created.error_message or sell.error_message or buy.error_message or buy.traded_quantity != 2:
                problems.append(f"a plain trade went wrong: {created} {sell} {buy}")
            elif book <= max(fuzzer.mirror.books, default=0) or buy.order_id <= sell.order_id:
                problems.append(f"ids not increasing: book {book}, orders {sell.order_id}, {buy.order_id}")
            fuzzer.sync_observer()
            if fuzzer.mirror.orders.get(sell.order_id) != (book, common_pb2.SELL, 10.0, 1):
                problems.append(
                    f"the observer's mirror missed the trade: {fuzzer.mirror.orders.get(sell.order_id)}"
                )
        elif protocol == "admin":
            symbol = f"WELL{fuzzer.marker}"  # a book id of the day: unique
            response = client.request(
                admin_pb2.CreateInstrumentRequest(
                    instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
                )
            )
            assert isinstance(response, admin_pb2.CreateInstrumentResponse)
            if response.error_message:
                problems.append(f"a valid instrument was refused: {response.error_message}")
            else:
                fuzzer.sync_observer()
                if response.order_book_id not in fuzzer.mirror.books:
                    problems.append(
                        f"book {response.order_book_id} of instrument {symbol} was never announced"
                    )
    return problems
