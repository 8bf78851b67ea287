"""Info's fan-out: S depth subscribers of one instrument while a client pipelines into the order book.

Each run starts the info suite's deployment (order book, admin, info) through
the deployment runner in a temp dir (real processes, as in the system tests),
creates one instrument through admin, and starts ONE subscriber process that
logs S clients in to info (users of the deployment's user data, password =
username) and subscribes each to the instrument's PRICE_DEPTH_BOOK. That
process reads every socket with `selectors` and only splits frames
(`wire.FrameDecoder`): protobuf is decoded for the `--lag-sample`
subscribers' book messages (their timestamps) and, once the driver is done,
for the latest book message of each read burst (is it the final book?). Then
one driver client (this process) talks straight to the order book:

1. saturated: two windows of `--window` requests in flight (as in
   orderbook_tcp.py): each window inserts non-marketable orders on 50 price
   levels a side (2% marketable, so there are trades) and cancels what the
   window before last left resting, until `--orders` inserts were sent; then
   it cancels every order still resting and inserts one marker order at a
   price and quantity no other order uses. Figure 1, order-book events/s
   absorbed end to end: the events the order book emitted (OnOrderInserted +
   OnTrade + OnOrderCancelled, counted from the responses) divided by the
   time from the first send until EVERY reading subscriber's latest
   OnPriceDepthBook shows exactly the final book (the marker alone). Book
   messages may be conflated (info sends the latest state when a subscriber
   can take more); that is allowed and is what is measured.
2. paced: the same mix at `--paced-rate` requests/s for `--paced-seconds`
   (batches sent every millisecond, about `--window` orders left resting),
   then the same teardown and a second marker.

Figure 2, lag: the order book stamps each change with time.time_ns() (wall
clock, orderbook/component.py) and OnPriceDepthBook.timestamp is the stamp of
the change that made the book what it is, so lag = the subscriber process's
time.time_ns() when the read returned - the message's timestamp, for every
book message of the sampled subscribers: p50/p99 of the saturated phase
(mostly queueing behind the backlog) and of the paced phase (up to its
teardown) are printed apart.

Each S runs twice: without and with `--stalled` extra subscribers that log
in, take their snapshot and never read again (the figures are the reading
ones'). Info's memory (VmRSS of its process before the driver starts and at
the end, and its peak VmHWM) shows whether it stays bounded; log lines count
the connections dropped as slow consumers (the order book's feed to info, and
info's subscribers); the bytes left unread in each stalled socket show that
info really saw it back up (the rest of its books were conflated). CPU use of
the order book, info, the subscriber process and the driver over the
saturated phase tells which one was the bottleneck (2 cores, shared). First, a
baseline of the same minutes: the order book alone with one plain listener
process (orderbook_tcp.py's), the same saturated driver, until the listener
holds every event. `--repeat N` runs each (S, stalled) N times: the machine's
speed drifts within minutes, and a busy machine (see the load average
printed first) lowers every figure.

    uv run python benchmarks/info_fanout.py [--subscribers 20,100] [--stalled 10] [--orders 60000]
    uv run python benchmarks/info_fanout.py --quick      # a smoke run with small numbers
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import itertools
import multiprocessing
import os
import random
import selectors
import socket
import statistics
import struct
import tempfile
import termios
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from orderbook_tcp import Listeners
from orderbook_tcp import insert as random_insert
from replay_load import _status

from optivex.client import ClientSession, SyncClient
from optivex.deploy import (
    ADMIN_USER,
    DEFAULT_USERS,
    Deployment,
    RunningComponent,
    default_deployment_path,
    load_deployment,
    start_suite,
)
from optivex.proto import admin_pb2, common_pb2, info_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.wire import READ_SIZE, FrameDecoder

SYMBOL = "FANOUT"
MARKER_PRICE = 42.42
"""The final book's only level: a bid no other order of the run uses (they are priced 99.41-100.59)."""
MARKER_QUANTITY = 4242
"""The saturated phase's marker quantity; the paced phase's is one more (each final book is unique)."""
MARKETABLE_SHARE = 0.02
PACED_TICK = 0.001
"""Seconds between the paced driver's batches."""
SETUP_TIMEOUT = 60.0
"""Seconds the subscriber process has to log every client in and take every snapshot."""
COMPONENT_START_TIMEOUT = 10.0
"""Seconds each component has to accept connections (the runner's 2 s is tight on a busy 2-core machine)."""
DONE_TIMEOUT = 300.0
"""Seconds every reading subscriber has, once the driver is done, to hold the final book."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SLOW_CONSUMER = "slow consumer"
"""What net.Connection's log line says when it drops a connection whose unsent data passed its bound."""
READERS = tuple(u.username for u in DEFAULT_USERS if u != ADMIN_USER)
"""Info users the subscribers log in as (round robin; password = username, as in the system tests)."""


# --- the subscriber process -----------------------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    """One info connection of the subscriber process."""

    sock: socket.socket
    sampled: bool
    """Its book messages' timestamps are decoded (lag samples)."""
    stalled: bool
    """Never read once its snapshot arrived."""
    decoder: FrameDecoder
    state: int = info_pb2.LOGIN_RESPONSE
    """The frame type awaited during setup (LoginResponse, subscribe response, snapshot), then 0: live."""
    book: bytes = b""
    """The payload of the latest OnPriceDepthBook received."""
    fresh: bool = False
    """`book` changed since it was last compared with the final book."""
    frames: int = 0
    received: int = 0
    """Bytes received."""
    dropped: bool = False


@dataclass
class Seen:
    """What the subscriber process reports once every reading subscriber holds the final book."""

    done: float
    """time.monotonic() then (the same clock in every process of the machine)."""
    lags: list[int]
    """Nanoseconds from each sampled book message's timestamp to its arrival, since sampling started."""
    frames: list[int]
    """Frames each reading subscriber received since its login."""
    received: list[int]
    """Bytes each reading subscriber received since its login."""
    queued: list[int]
    """Bytes unread in each stalled subscriber's socket (what info sent it before it backed up)."""
    dropped: int
    """Reading subscribers info disconnected."""
    cpu: float
    """CPU seconds of the subscriber process so far."""


def _unread(sock: socket.socket) -> int:
    """Bytes received by the kernel for `sock` and not read yet."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]


def _setup_frame(sub: Subscriber, msg_type: int, payload: bytes) -> None:
    """A frame received before the subscriber is live: login, then subscribe response, then snapshot."""
    if msg_type == info_pb2.ON_INSTRUMENT:
        return
    if msg_type != sub.state:
        raise RuntimeError(f"subscriber setup: frame type {msg_type} while awaiting type {sub.state}")
    if msg_type == info_pb2.LOGIN_RESPONSE:
        error = common_pb2.LoginResponse.FromString(payload).error_message
        sub.state = info_pb2.ORDER_BOOK_SUBSCRIBE_RESPONSE
    elif msg_type == info_pb2.ORDER_BOOK_SUBSCRIBE_RESPONSE:
        error = info_pb2.OrderBookSubscribeResponse.FromString(payload).error_message
        sub.state = info_pb2.ON_PRICE_DEPTH_BOOK
    else:
        error = ""
        sub.book = payload
        sub.state = 0
    if error:
        raise RuntimeError(f"subscriber setup refused: {error}")


def subscribe_all(host: str, port: int, reading: int, stalled: int, lag_sample: int, control: Pipe) -> None:
    """The subscriber process: log in and subscribe every client, then read them all until told to stop.

    Commands on `control`: ("start",) clears the lag samples and starts sampling (answered ("started",
    CPU seconds of this process));
    ("pause",) stops sampling; ("final", price, quantity) names the final book: once every reading
    subscriber's latest book is exactly that bid alone, it answers ("done", Seen); ("stop",) ends it.
    Any failure is sent as ("error", traceback).
    """
    try:
        _subscribe_all(host, port, reading, stalled, lag_sample, control)
    except KeyboardInterrupt:
        pass
    except Exception:
        control.send(("error", traceback.format_exc()))


def _subscribe_all(host: str, port: int, reading: int, stalled: int, lag_sample: int, control: Pipe) -> None:
    selector = selectors.DefaultSelector()
    selector.register(control.fileno(), selectors.EVENT_READ, None)
    session = ClientSession("info")
    users = itertools.cycle(READERS)
    subs: list[Subscriber] = []
    for index in range(reading + stalled):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        user = next(users)
        login = common_pb2.LoginRequest(request_id=1, username=user, password=user)
        request = info_pb2.OrderBookSubscribeRequest(
            request_id=2, instrument_symbol=SYMBOL, subscription_type=info_pb2.PRICE_DEPTH_BOOK
        )
        sock.sendall(session.encode(login) + session.encode(request))
        sock.setblocking(False)
        sub = Subscriber(sock, index < min(lag_sample, reading), index >= reading, FrameDecoder())
        subs.append(sub)
        selector.register(sock, selectors.EVENT_READ, sub)
    readers = subs[:reading]
    setting_up = len(subs)
    sampling = False
    lags: list[int] = []
    final: tuple[float, int] | None = None
    pending: set[Subscriber] = set()
    dropped = 0
    book_type = info_pb2.ON_PRICE_DEPTH_BOOK
    from_string = info_pb2.OnPriceDepthBook.FromString

    def is_final(payload: bytes) -> bool:
        assert final is not None
        book = from_string(payload)
        return not book.asks and len(book.bids) == 1 and (book.bids[0].price, book.bids[0].quantity) == final

    def check(sub: Subscriber) -> None:
        sub.fresh = False
        if is_final(sub.book):
            pending.discard(sub)

    def answer_if_done() -> None:
        nonlocal final
        if final is not None and not pending:
            seen = Seen(
                time.monotonic(),
                lags,
                [s.frames for s in readers],
                [s.received for s in readers],
                [_unread(s.sock) for s in subs[reading:]],
                dropped,
                time.process_time(),
            )
            control.send(("done", seen))
            final = None

    while True:
        for key, _ in selector.select():
            sub = key.data
            if sub is None:
                command = control.recv()
                if command[0] == "start":
                    lags = []
                    sampling = True
                    control.send(("started", time.process_time()))
                elif command[0] == "pause":
                    sampling = False
                elif command[0] == "final":
                    final = (command[1], command[2])
                    pending = {s for s in readers if not s.dropped}
                    for s in list(pending):
                        check(s)
                    answer_if_done()
                else:
                    return
                continue
            try:
                data = sub.sock.recv(READ_SIZE)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            received = time.time_ns()
            if not data:
                if sub.state:
                    raise RuntimeError("info closed a subscriber during its setup")
                selector.unregister(sub.sock)
                sub.dropped = True
                dropped += 1
                pending.discard(sub)
                answer_if_done()
                continue
            frames = sub.decoder.feed(data)
            if sub.decoder.error is not None:
                raise RuntimeError(f"info sent a bad frame: {sub.decoder.error}")
            sub.frames += len(frames)
            sub.received += len(data)
            if sub.state:
                while frames and sub.state:
                    _setup_frame(sub, *frames.pop(0))
                if sub.state:
                    continue
                setting_up -= 1
                if sub.stalled:
                    selector.unregister(sub.sock)
                if not setting_up:
                    control.send(("ready",))
            if sampling and sub.sampled:
                for msg_type, payload in frames:
                    if msg_type == book_type:
                        lags.append(received - from_string(payload).timestamp)
            for msg_type, payload in reversed(frames):
                if msg_type == book_type:
                    sub.book = payload
                    sub.fresh = True
                    break
            if final is not None and sub.fresh and sub in pending:
                check(sub)
                answer_if_done()


class SubscriberProcess:
    """The subscriber process, driven from here: the other side of `subscribe_all`'s commands."""

    def __init__(self, host: str, port: int, reading: int, stalled: int, lag_sample: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.control, child = ctx.Pipe()
        self.proc: BaseProcess = ctx.Process(
            target=subscribe_all, args=(host, port, reading, stalled, lag_sample, child), daemon=True
        )
        self.proc.start()
        child.close()

    def ready(self) -> None:
        """Wait until every client is logged in and holds its snapshot."""
        self.expect("ready", SETUP_TIMEOUT)

    def expect(self, what: str, timeout: float) -> tuple[Any, ...]:
        """The next answer, which must be `what`; the process's failure is raised here, with its traceback."""
        if not self.control.poll(timeout):
            raise TimeoutError(f"the subscriber process did not answer {what!r} in {timeout:.0f} s")
        answer: tuple[Any, ...] = self.control.recv()
        if answer[0] == "error":
            raise RuntimeError(f"the subscriber process failed:\n{answer[1]}")
        if answer[0] != what:
            raise RuntimeError(f"the subscriber process answered {answer!r}, not {what!r}")
        return answer

    def start_sampling(self) -> float:
        """Start a phase's lag samples; return the process's CPU seconds so far."""
        self.control.send(("start",))
        cpu: float = self.expect("started", SETUP_TIMEOUT)[1]
        return cpu

    def pause_sampling(self) -> None:
        """Stop taking lag samples (no answer)."""
        self.control.send(("pause",))

    def wait_final(self, quantity: int) -> Seen:
        """Name the final book (the marker bid of `quantity`); what was seen once every reader held it."""
        self.control.send(("final", MARKER_PRICE, quantity))
        seen: Seen = self.expect("done", DONE_TIMEOUT)[1]
        return seen

    def stop(self) -> None:
        """End the process: asked first, killed after 2 s."""
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.control.send(("stop",))
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        self.control.close()


# --- the driver -------------------------------------------------------------------------------------


class Driver:
    """One order-book client sending inserts and cancels; it knows which of its orders may still rest."""

    def __init__(self, client: SyncClient, book: int, window: int) -> None:
        self.client = client
        self.book = book
        self.window = window
        self.rng = random.Random(7)
        self.live: dict[int, None] = {}
        """Order ids that may still rest, oldest first (a cancel removes one when it is sent)."""
        self.events = 0
        """Events the order book emitted for this driver's requests (answered so far)."""
        self._inserts: dict[int, int] = {}
        """request_id -> quantity of each insert awaiting its response."""

    def _insert(self, marketable: bool) -> bytes:
        request = random_insert(self.rng, self.book, marketable)
        request_id, frame = self._encode(request)
        self._inserts[request_id] = request.quantity
        return frame

    def _cancel(self, order_id: int) -> bytes:
        del self.live[order_id]
        return self._encode(pb.CancelOrderRequest(order_book_id=self.book, order_id=order_id))[1]

    def _encode(self, request: pb.InsertOrderRequest | pb.CancelOrderRequest) -> tuple[int, bytes]:
        session = self.client.session
        request.request_id = session.next_request_id()
        return request.request_id, session.encode(request)

    def _mix(self, count: int, cancel: list[int]) -> list[bytes]:
        frames = [self._cancel(order_id) for order_id in cancel if order_id in self.live]
        rng = self.rng
        frames.extend(self._insert(rng.random() < MARKETABLE_SHARE) for _ in range(count))
        return frames

    def collect(self, count: int) -> list[int]:
        """Read `count` responses; return the ids of the orders they left resting."""
        resting = []
        for _ in range(count):
            message = self.client.receive()
            if isinstance(message, pb.InsertOrderResponse):
                assert not message.error_message, message.error_message
                self.events += 1 + len(message.trade_ids)
                if message.traded_quantity < self._inserts.pop(message.request_id):
                    self.live[message.order_id] = None
                    resting.append(message.order_id)
            else:
                assert isinstance(message, pb.CancelOrderResponse), message
                self.events += 0 if message.error_message else 1  # a marketable order may have filled it
        return resting

    def saturated(self, orders: int) -> None:
        """Two windows in flight; each window cancels what the window before last left resting."""
        left = orders
        in_flight: collections.deque[int] = collections.deque()

        def send(cancel: list[int]) -> None:
            nonlocal left
            inserts = max(0, min(self.window - len(cancel), left))
            left -= inserts
            frames = self._mix(inserts, cancel)
            self.client.sock.sendall(b"".join(frames))
            in_flight.append(len(frames))

        send([])
        send([])
        while in_flight:
            resting = self.collect(in_flight.popleft())
            if left:
                send(resting)

    def paced(self, rate: float, seconds: float) -> None:
        """`rate` requests/s for `seconds`, in batches each PACED_TICK, about `window` orders resting."""
        total = int(rate * seconds)
        sent = 0
        started = time.monotonic()
        while sent < total:
            due = min(total, int((time.monotonic() - started) * rate)) - sent
            if due <= 0:
                time.sleep(PACED_TICK)
                continue
            due = min(due, self.window)
            cancels = min(due, max(0, len(self.live) - self.window))
            frames = self._mix(due - cancels, list(itertools.islice(self.live, cancels)))
            self.client.sock.sendall(b"".join(frames))
            self.collect(len(frames))
            sent += len(frames)

    def finish(self, marker_quantity: int) -> None:
        """Cancel every order that may rest, then insert the marker: the book is then the marker alone."""
        frames = [self._cancel(order_id) for order_id in list(self.live)]
        marker = pb.InsertOrderRequest(
            order_book_id=self.book,
            side=common_pb2.BUY,
            price=MARKER_PRICE,
            quantity=marker_quantity,
            on_behalf_of_username="bench",
        )
        request_id, frame = self._encode(marker)
        self._inserts[request_id] = marker_quantity
        frames.append(frame)
        self.client.sock.sendall(b"".join(frames))
        self.collect(len(frames))


# --- runs -------------------------------------------------------------------------------------------


def slow_consumer_drops(component: RunningComponent) -> int:
    """How many connections the component's logs say it dropped as slow consumers."""
    count = 0
    for path in [component.stderr_path, *component.log_files()]:
        with contextlib.suppress(OSError):
            count += path.read_text(encoding="utf-8", errors="replace").count(SLOW_CONSUMER)
    return count


def percentile(ordered: list[int], p: float) -> float:
    """The p-th percentile of sorted nanoseconds, in milliseconds (nan without samples)."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1e6


@dataclass
class Phase:
    """One driver phase as the subscribers saw it."""

    events: int
    sent: float
    """Seconds from the first send until the driver's teardown was answered."""
    seconds: float
    """Seconds from the first send until every reading subscriber held the final book."""
    seen: Seen
    cpu: tuple[float, float, float, float, float]
    """CPU use in % of one core over `seconds`: the order book, info, the subscriber process, the driver,
    and every other process of the machine (others' work on a shared machine: noise)."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def driver_rate(self) -> float:
        return self.events / self.sent

    def lag(self) -> str:
        ordered = sorted(self.seen.lags)
        return f"{percentile(ordered, 50):.1f}/{percentile(ordered, 99):.1f}"


@dataclass
class Run:
    """One deployment's figures."""

    reading: int
    stalled: int
    saturated: Phase
    paced: Phase
    rss_before: int
    rss_after: int
    hwm: int
    feed_drops: int
    info_drops: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine spent busy (not idle or waiting for I/O) so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def phase(
    subscribers: SubscriberProcess,
    driver: Driver,
    pids: tuple[int, int],
    marker_quantity: int,
    orders: int,
    paced: tuple[float, float] | None,
) -> Phase:
    """The saturated driver (or the paced one: (rate, seconds)), its teardown, until every book is final.

    `pids`: the order book's and info's processes.
    """
    reader_cpu = subscribers.start_sampling()
    cpu = [cpu_seconds(pid) for pid in pids]
    driver_cpu = time.process_time()
    machine_cpu = machine_cpu_seconds()
    events_before = driver.events
    started = time.monotonic()
    if paced is None:
        driver.saturated(orders)
    else:
        driver.paced(*paced)
        subscribers.pause_sampling()  # the teardown's burst is not the paced rate's lag
    driver.finish(marker_quantity)
    sent = time.monotonic() - started
    seen = subscribers.wait_final(marker_quantity)
    seconds = seen.done - started
    ob, info = ((cpu_seconds(pid) - before) / seconds * 100 for pid, before in zip(pids, cpu, strict=True))
    readers = (seen.cpu - reader_cpu) / seconds * 100
    driven = (time.process_time() - driver_cpu) / seconds * 100
    others = (machine_cpu_seconds() - machine_cpu) / seconds * 100 - ob - info - readers - driven
    usage = (ob, info, readers, driven, max(0.0, others))
    return Phase(driver.events - events_before, sent, seconds, seen, usage)


def info_run(args: argparse.Namespace, reading: int, stalled: int) -> Run:
    """One fresh deployment: S reading (and `stalled` never-reading) subscribers, both phases."""
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        deployment = stack.enter_context(start_suite("info", tmp, start_timeout=COMPONENT_START_TIMEOUT))
        admin = SyncClient(*deployment.address("admin"), "admin", timeout=30)
        stack.callback(admin.close)
        admin.login(ADMIN_USER.username, ADMIN_USER.password)
        created = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=SYMBOL), tick_size=0.01
            ),
            check=True,
        )
        assert isinstance(created, admin_pb2.CreateInstrumentResponse)
        info_pid = deployment.component("info").pid
        ob_pid = deployment.component("order_book").pid
        assert info_pid is not None and ob_pid is not None
        client = SyncClient(*deployment.address("order_book"), "order_book", timeout=60)
        stack.callback(client.close)
        subscribers = SubscriberProcess(*deployment.address("info"), reading, stalled, args.lag_sample)
        stack.callback(subscribers.stop)
        subscribers.ready()
        rss_before = _status(info_pid, "VmRSS")
        driver = Driver(client, created.order_book_id, args.window)
        pids = (ob_pid, info_pid)
        saturated = phase(subscribers, driver, pids, MARKER_QUANTITY, args.orders, None)
        pace = (args.paced_rate, args.paced_seconds)
        paced = phase(subscribers, driver, pids, MARKER_QUANTITY + 1, args.orders, pace)
        return Run(
            reading,
            stalled,
            saturated,
            paced,
            rss_before,
            _status(info_pid, "VmRSS"),
            _status(info_pid, "VmHWM"),
            slow_consumer_drops(deployment.component("order_book")),
            slow_consumer_drops(deployment.component("info")),
        )
    raise AssertionError("unreachable")  # ExitStack may swallow exceptions, as far as mypy knows


def baseline(args: argparse.Namespace) -> None:
    """The order book alone with one plain listener: the saturated driver's events/s without info."""
    spec = load_deployment(default_deployment_path()).provider("order_book")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        deployment = Deployment([spec], Path(tmp), start_timeout=COMPONENT_START_TIMEOUT)
        stack.enter_context(deployment.start())
        host, port = deployment.address("order_book")
        listeners = Listeners(port, 1)
        stack.callback(listeners.stop)
        client = SyncClient(host, port, "order_book", timeout=60)
        stack.callback(client.close)
        created = client.request(pb.CreateOrderBookRequest(tick_size=0.01), check=True)
        assert isinstance(created, pb.CreateOrderBookResponse)
        driver = Driver(client, created.order_book_id, args.window)
        base = min(listeners.counts())
        started = time.monotonic()
        driver.saturated(args.orders)
        driver.finish(MARKER_QUANTITY)
        sent = time.monotonic() - started
        listeners.wait_for(base + driver.events)
        elapsed = time.monotonic() - started
        drops = slow_consumer_drops(deployment.component("order_book"))
    print(
        f"baseline, the order book alone with 1 plain listener (same driver: {args.orders:,} inserts, "
        f"window {args.window:,}): {driver.events:,} events in {elapsed:.2f} s = "
        f"{driver.events / elapsed:,.0f} events/s until the listener has them all "
        f"(driver {driver.events / sent:,.0f} events/s; {drops} slow-consumer drops)",
        flush=True,
    )


def report(runs: list[Run], args: argparse.Namespace) -> None:
    """The table of every run so far, and what its columns mean."""
    print()
    header = (
        f"{'S':>4} {'stalled':>7} {'events':>8} {'events/s':>8} {'driver ev/s':>11} {'lag sat.':>13} "
        f"{'paced ev/s':>10} {'lag paced':>12} {'frames/sub':>10} {'MB/sub':>6} {'stalled KB':>10} "
        f"{'CPU% ob/info/sub/drv/other':>26} "
        f"{'info RSS MB':>15} {'drops':>6}"
    )
    print(header)
    print("-" * len(header))
    for run in runs:
        sat, paced = run.saturated, run.paced
        frames = statistics.mean(sat.seen.frames) if sat.seen.frames else 0
        megabytes = statistics.mean(paced.seen.received) / 1e6 if paced.seen.received else 0
        queued = f"{statistics.mean(paced.seen.queued) / 1e3:,.0f}" if paced.seen.queued else "-"
        cpu = "/".join(f"{c:.0f}" for c in sat.cpu)
        rss = f"{run.rss_before / 1e6:.0f}->{run.rss_after / 1e6:.0f} ({run.hwm / 1e6:.0f})"
        drops = f"{run.feed_drops}/{run.info_drops}/{paced.seen.dropped}"
        print(
            f"{run.reading:>4} {run.stalled:>7} {sat.events:>8,} {sat.rate:>8,.0f} {sat.driver_rate:>11,.0f} "
            f"{sat.lag():>13} {paced.driver_rate:>10,.0f} {paced.lag():>12} {frames:>10,.0f} "
            f"{megabytes:>6.1f} {queued:>10} {cpu:>26} {rss:>15} {drops:>6}"
        )
    sampled = min(args.lag_sample, *(r.reading for r in runs))
    print(
        f"""
S: reading PRICE_DEPTH_BOOK subscribers; stalled: extra ones that never read after their snapshot.
events: the saturated phase's order-book events ({args.orders:,} inserts, window {args.window:,},
  teardown included); events/s: absorbed end to end, from the first send until every reading
  subscriber holds the final book; driver ev/s: as sent and answered by the order book.
lag sat. / lag paced: p50/p99 ms, book message received - its order-book timestamp, on {sampled}
  sampled subscribers; paced: {args.paced_rate:,.0f} requests/s asked for {args.paced_seconds:g} s
  (paced ev/s: the events/s achieved), its teardown left out.
frames/sub: frames each reading subscriber received in the saturated phase (books are conflated);
  MB/sub: bytes each received in both phases; stalled KB: bytes each stalled subscriber's socket
  holds unread at the end (what info sent it before its buffers filled; the rest was conflated).
CPU%: of one core, saturated phase: the order book / info / the subscriber process / the driver /
  all other processes of the machine (others' work: where it is high, every figure of the row suffers).
info RSS: VmRSS before the driver started -> at the end (peak VmHWM).
drops: the order book's feed to info / info's subscribers / reading subscribers, dropped as slow
  consumers (stalled subscribers are dropped once past info's maxUnsentBytes, if they get there).""",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="20,100", help="reading subscriber counts, one run each")
    parser.add_argument("--stalled", type=int, default=10, help="never-reading subscribers of the second run")
    parser.add_argument("--orders", type=int, default=60_000, help="inserts of the saturated phase")
    parser.add_argument("--window", type=int, default=1000, help="requests per window (two in flight)")
    parser.add_argument("--paced-rate", type=float, default=20_000, help="requests/s of the paced phase")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--lag-sample", type=int, default=5, help="subscribers whose lag is measured")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (S, stalled)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the order-book-alone baseline")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.stalled, args.orders, args.window = "3,6", 2, 2000, 200
        args.paced_rate, args.paced_seconds, args.lag_sample = 2000, 0.5, 2
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)", flush=True)
    if not args.no_baseline:
        baseline(args)
    runs: list[Run] = []
    try:
        for reading in (int(s) for s in args.subscribers.split(",")):
            for stalled in sorted({0, args.stalled}):
                for _ in range(args.repeat):
                    runs.append(info_run(args, reading, stalled))
                    print(f"  run done: S={reading}, stalled={stalled}", flush=True)
    finally:
        if runs:
            report(runs, args)


if __name__ == "__main__":
    main()
