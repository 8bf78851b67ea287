"""The login replay under load: a very large day, and many logins at once that never read.

Starts the order book through the deployment runner (a real process, as in
the system tests), builds a day of resting orders with pipelined raw insert
frames, then:

a. one client logs in to a day of `--big` resting orders (1,000,000) and
   reads its replay: the time from the LoginRequest to the last replayed
   order, the replay's size, and the order book's memory (VmRSS before the
   login, VmHWM, the peak, after it); then a `feed.Feed` (how info and the
   gateway follow the order book) follows the same day: the time until its
   mirror holds the whole replay, its process's peak memory, and a barrier's
   round trip;
b. on a day of `--day` resting orders (100,000) in a fresh order book,
   `--logins` clients (250) log in at once and never read, while another
   client inserts one order at a time (`--inserts`) and waits for each
   response: that client's round-trip p50/p99/max, and the same without the
   logins for comparison. Target: no round trip above 50 ms.

    uv run python benchmarks/replay_load.py [--big 1000000] [--day 100000] [--logins 250]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import resource
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from optivex.app.config import Address
from optivex.client import SyncClient
from optivex.deploy import Deployment, default_deployment_path, load_deployment
from optivex.feed.follower import Feed
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.wire import READ_SIZE, FrameDecoder, encode_frame

BUY, SELL = common_pb2.BUY, common_pb2.SELL
WINDOW = 10_000
USERNAME = "desk-07-trader-01"


def _status(pid: int, key: str) -> int:
    """A VmXXX figure of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def build_day(host: str, port: int, book: int, count: int) -> None:
    """Insert `count` non-crossing orders, WINDOW frames per write, each window answered before the next."""
    rng = random.Random(3)
    sock = socket.create_connection((host, port))
    decoder = FrameDecoder()
    started = time.perf_counter()
    for start in range(0, count, WINDOW):
        frames = []
        for _ in range(min(WINDOW, count - start)):
            side = rng.choice((BUY, SELL))
            ticks = rng.randint(1, 2000) if side == BUY else rng.randint(2001, 4000)
            request = pb.InsertOrderRequest(
                order_book_id=book, side=side, price=ticks / 100, quantity=rng.randint(1, 100)
            )
            request.on_behalf_of_username = USERNAME
            frames.append(encode_frame(pb.INSERT_ORDER_REQUEST, request.SerializeToString()))
        sock.sendall(b"".join(frames))
        answered = 0
        while answered < len(frames):
            data = sock.recv(READ_SIZE)
            assert data, "order book closed the building connection"
            answered += len(decoder.feed(data))
    sock.close()
    elapsed = time.perf_counter() - started
    print(f"  built a day of {count:,} resting orders in {elapsed:.1f} s ({count / elapsed:,.0f} inserts/s)")


def login_frame(username: str) -> bytes:
    return encode_frame(0, common_pb2.LoginRequest(request_id=1, username=username).SerializeToString())


def big_day(deployment: Deployment, count: int) -> None:
    host, port = deployment.address("order_book")
    pid = deployment.component("order_book").pid
    assert pid is not None
    client = SyncClient(host, port, "order_book", timeout=60)
    created = client.request(pb.CreateOrderBookRequest(tick_size=0.01), check=True)
    assert isinstance(created, pb.CreateOrderBookResponse)
    build_day(host, port, created.order_book_id, count)
    rss_before = _status(pid, "VmRSS")
    sock = socket.create_connection((host, port))
    decoder = FrameDecoder()
    expected = 2 + count  # LoginResponse, the book, the orders
    frames = 0
    size = 0
    started = time.perf_counter()
    sock.sendall(login_frame("replay-reader"))
    while frames < expected:
        data = sock.recv(READ_SIZE)
        assert data, f"order book closed the replay after {frames:,} frames"
        size += len(data)
        frames += len(decoder.feed(data))
    elapsed = time.perf_counter() - started
    print(
        f"a. replay of {count:,} resting orders: {elapsed:.2f} s ({count / elapsed:,.0f} orders/s, "
        f"{size / 1e6:.1f} MB); order book VmRSS before the login {rss_before / 1e6:.0f} MB, "
        f"after {_status(pid, 'VmRSS') / 1e6:.0f} MB, peak (VmHWM) {_status(pid, 'VmHWM') / 1e6:.0f} MB"
    )
    sock.close()
    asyncio.run(follow(host, port, count))
    client.close()


async def follow(host: str, port: int, count: int) -> None:
    """A Feed follows the day: time until its mirror holds the replay, then one barrier."""
    replayed = asyncio.Event()
    started = time.perf_counter()
    feed = Feed(
        "order_book", Address(host, port), logging.getLogger("feed"), on_reset=lambda _: replayed.set()
    )
    feed.start()
    await replayed.wait()
    elapsed = time.perf_counter() - started
    assert len(feed.mirror) == count, f"the mirror holds {len(feed.mirror):,} of {count:,} orders"
    barrier_started = time.perf_counter()
    await feed.barrier()
    barrier_ms = (time.perf_counter() - barrier_started) * 1000
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"a. a Feed mirrors the {count:,} orders in {elapsed:.2f} s ({count / elapsed:,.0f} orders/s); "
        f"this process's peak memory {peak_mb:.0f} MB; then a barrier in {barrier_ms:.1f} ms"
    )
    await feed.stop()


def round_trips(client: SyncClient, book: int, count: int) -> list[float]:
    """`count` inserts one at a time (resting, then cancelled in one untimed batch); milliseconds each."""
    rng = random.Random(9)
    latencies = []
    ids = []
    for _ in range(count):
        side = rng.choice((BUY, SELL))
        price = rng.randint(1, 2000) / 100 if side == BUY else rng.randint(2001, 4000) / 100
        request = pb.InsertOrderRequest(order_book_id=book, side=side, price=price, quantity=1)
        t0 = time.perf_counter()
        response = client.request(request)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert isinstance(response, pb.InsertOrderResponse) and not response.error_message
        ids.append(response.order_id)
    client.send(*(pb.CancelOrderRequest(order_book_id=book, order_id=i) for i in ids))
    for _ in ids:
        client.receive_as(pb.CancelOrderResponse)
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    over = sum(1 for x in ordered if x > 50)
    return f"p50 {pct(50):.2f} ms, p99 {pct(99):.2f} ms, max {ordered[-1]:.2f} ms, {over} above 50 ms"


def many_logins(deployment: Deployment, day: int, logins: int, inserts: int) -> None:
    host, port = deployment.address("order_book")
    pid = deployment.component("order_book").pid
    assert pid is not None
    client = SyncClient(host, port, "order_book", timeout=60)
    created = client.request(pb.CreateOrderBookRequest(tick_size=0.01), check=True)
    assert isinstance(created, pb.CreateOrderBookResponse)
    book = created.order_book_id
    build_day(host, port, book, day)
    quiet = round_trips(client, book, inserts)
    print(f"b. {inserts:,} one-at-a-time inserts, no logins: {summary(quiet)}")
    socks = [socket.create_connection((host, port)) for _ in range(logins)]
    frame = login_frame("never-reads")
    started = time.perf_counter()
    for sock in socks:
        sock.sendall(frame)
    loaded = round_trips(client, book, inserts)
    elapsed = time.perf_counter() - started
    print(
        f"b. {inserts:,} one-at-a-time inserts while {logins} logins that never read replay a day of "
        f"{day:,} orders: {summary(loaded)} ({elapsed:.1f} s); order book VmHWM "
        f"{_status(pid, 'VmHWM') / 1e6:.0f} MB"
    )
    alive = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            alive += sock.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except ConnectionError:
            pass
        sock.close()
    print(f"   {alive} of {logins} never-reading logins still connected at the end")
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000, help="resting orders of part a")
    parser.add_argument("--day", type=int, default=100_000, help="resting orders of part b")
    parser.add_argument("--logins", type=int, default=250, help="never-reading logins of part b")
    parser.add_argument("--inserts", type=int, default=3000, help="timed inserts of part b (each run)")
    args = parser.parse_args()
    config = load_deployment(default_deployment_path())
    spec = config.provider("order_book")
    parts: list[Callable[[Deployment], None]] = [
        lambda d: big_day(d, args.big),
        lambda d: many_logins(d, args.day, args.logins, args.inserts),
    ]
    for part in parts:
        with tempfile.TemporaryDirectory() as tmp, Deployment([spec], Path(tmp)).start() as deployment:
            part(deployment)


if __name__ == "__main__":
    main()
