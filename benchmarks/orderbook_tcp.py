"""The order-book component over loopback TCP: pipelined throughput and round trips.

Starts the order book through the deployment runner (a real process, as in
the system tests) and logs in two listener processes that receive every
event (they split the stream into frames and count them). Then:

1. pipelined: one client keeps two windows of requests in flight: each window
   inserts new orders (about 5% of them marketable) and cancels the orders
   the window before last inserted. Reports requests/s (inserts + cancels),
   measured from the first send until the listeners have received every
   event, so fan-out is included.
2. round trip: one client sends one insert at a time and waits for its
   response, while the listeners receive each order's event. Every
   `--cleanup-every` inserts the orders are cancelled in one untimed batch and
   the listeners drained, so the book stays small. Reports p50/p90/p99/max in
   microseconds, for a client that sleeps in its reads (plain blocking
   sockets) and for one that busy-polls (`SyncClient(busy_poll=...)`).

The order book runs with its config from deployment_config.json, so with
its default busy polling (`busyPollMicroseconds`, 200); `--server-busy-poll-us`
overrides it (0: the server sleeps in epoll between requests).

    uv run python benchmarks/orderbook_tcp.py [--windows 200] [--window 1000] [--round-trips 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import random
import socket
import tempfile
import time
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from optivex.client import ClientSession, SyncClient
from optivex.deploy import Deployment, default_deployment_path, load_deployment
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.wire import READ_SIZE, FrameDecoder

BUY, SELL = common_pb2.BUY, common_pb2.SELL


def listen(port: int, ready: Pipe, frames: Synchronized[int]) -> None:
    """Log in, then count frames as they arrive (blocking reads, like a real consumer)."""
    session = ClientSession("order_book")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(session.encode(common_pb2.LoginRequest(request_id=1, username="listener")))
    decoder = FrameDecoder()
    count = 0
    ready.send(True)
    while data := sock.recv(READ_SIZE):
        count += len(decoder.feed(data))
        frames.value = count


class Listeners:
    """Logged-in clients in processes of their own, each receiving every event."""

    def __init__(self, port: int, count: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.frames: list[Synchronized[int]] = []
        self.procs: list[BaseProcess] = []
        for _ in range(count):
            ready_r, ready_w = ctx.Pipe(duplex=False)
            frames = ctx.Value("q", 0, lock=False)
            proc = ctx.Process(target=listen, args=(port, ready_w, frames), daemon=True)
            proc.start()
            ready_r.recv()
            self.frames.append(frames)
            self.procs.append(proc)

    def counts(self) -> list[int]:
        return [f.value for f in self.frames]

    def wait_for(self, frames: int, timeout: float = 60.0) -> None:
        """Until every listener has received `frames` frames (polling: this is the benchmark's clock)."""
        deadline = time.monotonic() + timeout
        while min(self.counts(), default=frames) < frames:
            if time.monotonic() > deadline:
                raise TimeoutError(f"listeners saw {self.counts()} of {frames} frames")
            time.sleep(0.0005)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.join(2)


def insert(rng: random.Random, book: int, marketable: bool) -> pb.InsertOrderRequest:
    side = rng.choice((BUY, SELL))
    if marketable:
        price = 100.5 + rng.randint(0, 5) * 0.01 if side == BUY else 99.5 - rng.randint(0, 5) * 0.01
    else:
        price = 99.9 - rng.randint(0, 49) * 0.01 if side == BUY else 100.1 + rng.randint(0, 49) * 0.01
    return pb.InsertOrderRequest(
        order_book_id=book,
        side=side,
        price=round(price, 2),
        quantity=rng.randint(1, 10),
        on_behalf_of_username="bench",
    )


def pipelined(client: SyncClient, listeners: Listeners, book: int, windows: int, window: int) -> None:
    """Windows i and i+1 in flight; window i+2 (sent once i is answered) cancels what i left resting."""
    rng = random.Random(7)
    session = client.session
    request_id = 0
    sizes: list[int] = []  # requests per window sent
    resting: list[list[int]] = []  # per answered window: order ids left resting
    base = min(listeners.counts(), default=0)
    events = 0

    def send_window(cancel: list[int]) -> None:
        nonlocal request_id
        frames = []
        for order_id in cancel:
            request_id += 1
            frames.append(
                session.encode(
                    pb.CancelOrderRequest(request_id=request_id, order_book_id=book, order_id=order_id)
                )
            )
        for _ in range(window - len(cancel)):
            request_id += 1
            message = insert(rng, book, rng.random() < 0.05)
            message.request_id = request_id
            frames.append(session.encode(message))
        client.sock.sendall(b"".join(frames))
        sizes.append(len(frames))

    start = time.perf_counter()
    send_window([])
    send_window([])
    for index in range(windows):
        left: list[int] = []
        for _ in range(sizes[index]):
            message = client.receive()
            if isinstance(message, pb.InsertOrderResponse):
                assert not message.error_message, message.error_message
                events += 1 + len(message.trade_ids)
                if message.traded_quantity == 0:
                    left.append(message.order_id)
            else:
                assert isinstance(message, pb.CancelOrderResponse)
                events += 0 if message.error_message else 1  # a marketable order may have filled it
        resting.append(left)
        if index + 2 < windows:
            send_window(left)
    listeners.wait_for(base + events)
    elapsed = time.perf_counter() - start
    sent = sum(sizes[:windows])
    print(
        f"pipelined: {sent:,} requests (inserts and cancels) in {elapsed:.3f} s = "
        f"{sent / elapsed:,.0f} requests/s, {events:,} events to each of {len(listeners.procs)} listeners"
    )


def round_trips(
    client: SyncClient, listeners: Listeners, book: int, count: int, cleanup_every: int, label: str
) -> None:
    """Time one insert at a time; cancel the orders in untimed batches between runs of inserts."""
    rng = random.Random(11)
    latencies = []
    warm_up = 1000
    done = 0
    while done < count + warm_up:
        base = min(listeners.counts(), default=0)
        order_ids = []
        for _ in range(min(cleanup_every, count + warm_up - done)):
            msg = insert(rng, book, False)
            t0 = time.perf_counter_ns()
            response = client.request(msg)
            t1 = time.perf_counter_ns()
            assert isinstance(response, pb.InsertOrderResponse) and not response.error_message
            if done >= warm_up:
                latencies.append((t1 - t0) / 1000)
            order_ids.append(response.order_id)
            done += 1
        cancels = [pb.CancelOrderRequest(order_book_id=book, order_id=order_id) for order_id in order_ids]
        client.send(*cancels)
        for _ in cancels:
            cancelled = client.receive()
            assert isinstance(cancelled, pb.CancelOrderResponse) and not cancelled.error_message
        listeners.wait_for(base + 2 * len(order_ids))
    assert not client.session.error
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    print(
        f"round trip, {label} (insert, one at a time, {count:,} samples): p50 {pct(50):.0f} us, "
        f"p90 {pct(90):.0f} us, p99 {pct(99):.0f} us, max {latencies[-1]:.0f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--listeners", type=int, default=2, help="logged-in clients receiving every event")
    parser.add_argument(
        "--cleanup-every", type=int, default=500, help="inserts between untimed cancel batches"
    )
    parser.add_argument(
        "--client-busy-poll-us", type=int, default=200, help="busy polling of the second round-trip client"
    )
    parser.add_argument("--server-busy-poll-us", type=int, help="the order book's busyPollMicroseconds")
    args = parser.parse_args()
    config = load_deployment(default_deployment_path())
    spec = config.provider("order_book")
    if args.server_busy_poll_us is not None:
        spec = dataclasses.replace(
            spec, config={**spec.config, "busyPollMicroseconds": args.server_busy_poll_us}
        )
    with tempfile.TemporaryDirectory() as tmp, Deployment([spec], Path(tmp)).start() as deployment:
        host, port = deployment.address("order_book")
        listeners = Listeners(port, args.listeners)
        try:
            client = SyncClient(host, port, "order_book", timeout=30)
            created = client.request(pb.CreateOrderBookRequest(tick_size=0.01))
            assert isinstance(created, pb.CreateOrderBookResponse)
            book = created.order_book_id
            pipelined(client, listeners, book, args.windows, args.window)
            round_trips(client, listeners, book, args.round_trips, args.cleanup_every, "blocking client")
            client.busy_poll = args.client_busy_poll_us / 1_000_000
            label = f"busy-polling client ({args.client_busy_poll_us} us)"
            round_trips(client, listeners, book, args.round_trips, args.cleanup_every, label)
        finally:
            listeners.stop()


if __name__ == "__main__":
    main()
