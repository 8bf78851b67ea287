"""The gateway's request path in one process, without sockets: a deterministic measure of its cost.

Four fake trading clients (alice, bob, carol, dave, every risk limit set far
above what the run reaches) pipeline inserts and cancels of their own orders
into the real GatewayComponent, as benchmarks/gateway.py's load clients do (at
most `window` requests in flight, a batch once a quarter of it is free). The
gateway's feed is the real Feed on its real client connection, talking to a
fake order book that answers each request with its response and then the event
it caused, one write per read. The transports are in memory: a write arrives
at the peer on the next loop iteration, at most 64 KiB a read, and a paused
reader gets nothing until it resumes. Busy polling is on with a window of 0
(one call per read) and the deadlines are far: nothing depends on the clock.

Prints microseconds per order (noisy on a shared machine). For a figure that
does not depend on the machine's load, count instructions with callgrind at
two sizes and divide the difference by the difference in orders (the start-up
and the warm-up cancel out); the fakes take about 40,000 instructions an order
of that (measured by replaying their inputs alone)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python benchmarks/gateway_inprocess.py 5000     # then 15000
    # (Ir(15000) - Ir(5000)) / 10000 = instructions per order

With PYTHONPATH=<worktree>/src it measures another version of the code.

    uv run python benchmarks/gateway_inprocess.py [ORDERS [WINDOW [uvloop|asyncio]]]
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from pathlib import Path
from typing import Any

from optivex.app.config import Address, ComponentConfig
from optivex.app.users import User
from optivex.gateway.component import GatewayComponent
from optivex.net import BusyPoll
from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as pb
from optivex.proto import risk_limits_pb2 as rl
from optivex.protocols import protocol_for
from optivex.wire import FrameDecoder, encode_frame

READ = 65536
GW = protocol_for(("execution", "risk_limits"))
USERS = ("alice", "bob", "carol", "dave")


class End:
    """One end of an in-memory stream: what the peer writes arrives here, read by `protocol`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self.loop = loop
        self.name = name
        self.protocol: Any = None
        self.peer: End | None = None
        self.buf: list[bytes] = []
        self.size = 0
        self.paused = False
        self.scheduled = False
        self.closed = False

    # transport API (used by the protocol on this end)
    def write(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer._incoming(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.buf and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._deliver)

    def is_reading(self) -> bool:
        return not self.paused

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    # delivery
    def _incoming(self, data: bytes) -> None:
        self.buf.append(data)
        if not self.scheduled and not self.paused:
            self.scheduled = True
            self.loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self.scheduled = False
        if self.paused or not self.buf:
            return
        data = b"".join(self.buf) if len(self.buf) > 1 else self.buf[0]
        if len(data) > READ:
            self.buf = [data[READ:]]
            data = data[:READ]
        else:
            self.buf = []
        self.protocol.data_received(data)
        if self.buf and not self.scheduled and not self.paused:
            self.scheduled = True
            self.loop.call_soon(self._deliver)


def pipe(loop: asyncio.AbstractEventLoop, a: Any, b: Any) -> tuple[End, End]:
    """A stream between protocols `a` and `b`: (the transport `a` writes to, the one `b` writes to)."""
    ea, eb = End(loop, "a"), End(loop, "b")
    ea.protocol, eb.protocol = a, b
    ea.peer, eb.peer = eb, ea
    return ea, eb


class FakeOrderBook:
    """Answers the feed's requests: response, then the event it caused, one write per read."""

    def __init__(self) -> None:
        self.end: End | None = None
        self.decoder = FrameDecoder()
        self.order_ids = iter(range(1, 1 << 62))
        self.resting: dict[int, int] = {}

    def data_received(self, data: bytes) -> None:
        out = []
        for msg_type, payload in self.decoder.feed(data):
            if msg_type == pb.INSERT_ORDER_REQUEST:
                r = pb.InsertOrderRequest.FromString(payload)
                oid = next(self.order_ids)
                out.append(
                    encode_frame(
                        pb.INSERT_ORDER_RESPONSE,
                        pb.InsertOrderResponse(
                            request_id=r.request_id, order_id=oid, timestamp=1000 + oid
                        ).SerializeToString(),
                    )
                )
                out.append(
                    encode_frame(
                        pb.ON_ORDER_INSERTED,
                        pb.OnOrderInserted(
                            order_id=oid,
                            order_book_id=r.order_book_id,
                            timestamp=1000 + oid,
                            side=r.side,
                            price=r.price,
                            quantity=r.quantity,
                            username=r.on_behalf_of_username,
                        ).SerializeToString(),
                    )
                )
            elif msg_type == pb.CANCEL_ORDER_REQUEST:
                c = pb.CancelOrderRequest.FromString(payload)
                out.append(
                    encode_frame(
                        pb.CANCEL_ORDER_RESPONSE,
                        pb.CancelOrderResponse(request_id=c.request_id).SerializeToString(),
                    )
                )
                out.append(
                    encode_frame(
                        pb.ON_ORDER_CANCELLED,
                        pb.OnOrderCancelled(
                            order_id=c.order_id, cancellation_timestamp=5
                        ).SerializeToString(),
                    )
                )
            elif msg_type == pb.LOGIN_REQUEST:
                r2 = common_pb2.LoginRequest.FromString(payload)
                out.append(
                    encode_frame(1, common_pb2.LoginResponse(request_id=r2.request_id).SerializeToString())
                )
            elif msg_type == pb.BARRIER_REQUEST:
                b = pb.BarrierRequest.FromString(payload)
                out.append(
                    encode_frame(
                        pb.ON_ORDER_BOOK_CREATED,
                        pb.OnOrderBookCreated(
                            order_book_id=1,
                            tick_size=0.01,
                            instrument=common_pb2.Instrument(symbol="GWBENCH"),
                        ).SerializeToString(),
                    )
                )
                out.append(
                    encode_frame(
                        pb.BARRIER_RESPONSE, pb.BarrierResponse(request_id=b.request_id).SerializeToString()
                    )
                )
            else:
                raise RuntimeError(f"fake order book: type {msg_type}")
        if out:
            assert self.end is not None
            self.end.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        pass


class FakeClient:
    """A pipelining trader: at most `window` in flight, a batch once a quarter of it is free."""

    def __init__(self, user: str, window: int, run: Run) -> None:
        self.user = user
        self.window = window
        self.batch = window // 4
        self.run = run
        self.end: End | None = None
        self.decoder = FrameDecoder()
        self.in_flight = 0
        self.resting: list[int] = []
        self.pool = []
        for i in range(1000):
            side = common_pb2.BUY if i % 2 else common_pb2.SELL
            price = (99.41 + (i % 50) / 100) if side == common_pb2.BUY else (100.10 + (i % 50) / 100)
            req = ex.InsertOrderRequest(
                request_id=i + 1,
                instrument_symbol="GWBENCH",
                side=side,
                price=round(price, 2),
                quantity=1 + i % 9,
            )
            self.pool.append(encode_frame(GW.types[ex.InsertOrderRequest], req.SerializeToString()))
        self.pool_index = 0
        self.next_id = 10_000
        self.loaded = False
        self.waiter: asyncio.Future[Any] | None = None
        self.cancel_type = GW.types[ex.CancelOrderRequest]

    def request(self, message: Any) -> asyncio.Future[Any]:
        """One request of the set-up (login, limits), answered before the load starts."""
        assert self.end is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.end.write(encode_frame(GW.types[type(message)], message.SerializeToString()))
        return self.waiter

    def data_received(self, data: bytes) -> None:
        frames = self.decoder.feed(data)
        if not self.loaded:
            for msg_type, payload in frames:
                message = GW.classes[msg_type].FromString(payload)
                if self.waiter is not None and not self.waiter.done() and hasattr(message, "request_id"):
                    self.waiter.set_result(message)
            return
        self.in_flight -= len(frames)
        for msg_type, payload in frames:
            if msg_type == GW.types[ex.InsertOrderResponse]:
                r = ex.InsertOrderResponse.FromString(payload)
                if r.error_message:
                    raise RuntimeError(r.error_message)
                self.resting.append(r.order_id)
            else:
                c = ex.CancelOrderResponse.FromString(payload)
                if c.error_message:
                    raise RuntimeError(c.error_message)
        self.run.answered(len(frames))
        if self.in_flight <= self.window - self.batch and not self.run.stopping:
            self.send(self.window - self.in_flight)

    def send(self, room: int) -> None:
        """Up to `room` requests in one write: cancels of what rests, then new inserts."""
        take = self.resting[:room]
        del self.resting[:room]
        frames = []
        for order_id in take:
            self.next_id += 1
            frames.append(
                encode_frame(
                    self.cancel_type,
                    ex.CancelOrderRequest(
                        request_id=self.next_id, instrument_symbol="GWBENCH", order_id=order_id
                    ).SerializeToString(),
                )
            )
        for _ in range(room - len(take)):
            frames.append(self.pool[self.pool_index])
            self.pool_index = (self.pool_index + 1) % 1000
        assert self.end is not None
        self.end.write(b"".join(frames))
        self.in_flight += len(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        raise RuntimeError(f"{self.user}'s connection lost")


class Run:
    """Counts the orders answered; the clock runs from the end of the warm-up to `target` more."""

    def __init__(self, target: int, warmup: int) -> None:
        self.count = 0
        self.target = target
        self.warmup = warmup
        self.stopping = False
        self.started_at = 0.0
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def answered(self, n: int) -> None:
        before = self.count
        self.count += n
        if before < self.warmup <= self.count:
            self.started_at = time.perf_counter()
        if self.count >= self.warmup + self.target and not self.stopping:
            self.stopping = True
            self.done.set_result(time.perf_counter() - self.started_at)


async def main(target: int, window: int) -> None:
    """Set the gateway, its feed and the clients up, log in, set every limit, run, print."""
    loop = asyncio.get_running_loop()
    log = logging.getLogger("harness")
    log.addHandler(logging.StreamHandler(sys.stderr))
    log.setLevel(logging.WARNING)
    config = ComponentConfig(
        log_level=logging.WARNING,
        log_directory=Path("/tmp"),
        listen_on=Address("127.0.0.1", 1),
        data_file_path=Path("/tmp/x"),
        auth_required=True,
        connect_to={"order_book": Address("127.0.0.1", 2)},
        busy_poll_microseconds=200,
    )
    users = {u: User(u, u, u) for u in USERS}
    gw = GatewayComponent(config, users, log)
    gw._busy_poll = BusyPoll(loop, 0.0)  # one call_soon a read: deterministic
    feed = gw.feed
    feed.deadline = 3600.0  # no deadline sweeps during the run (timing under callgrind)
    # the feed's connection to the fake order book
    client = feed.client_class("order_book", feed._message, feed.log, request_timeout=None)
    from optivex.client.aio import _ClientConnection

    fconn = _ClientConnection(client, feed.log)
    book = FakeOrderBook()
    e_gw, e_ob = pipe(loop, fconn, book)
    book.end = e_ob
    fconn.connection_made(e_gw)  # type: ignore[arg-type]
    client._conn = fconn
    client._transport = e_gw  # type: ignore[assignment]
    await feed._set_up(client)
    feed.client = client
    feed.connections = 1
    feed._up.set()
    feed._went_up(client)
    run = Run(target, window * 4)
    clients = []
    rolling = rl.RollingWindowLimit(limit=2_000_000_000, window_in_seconds=100_000)
    for user in USERS:
        fc = FakeClient(user, window, run)
        conn = gw.make_connection()
        gw.connections.add(conn)
        e_c, e_s = pipe(loop, fc, conn)
        fc.end = e_c
        conn.connection_made(e_s)  # type: ignore[arg-type]
        r = await fc.request(common_pb2.LoginRequest(request_id=1, username=user, password=user))
        assert not r.error_message, r
        r = await fc.request(
            rl.SetUserRiskLimitsRequest(
                request_id=2,
                user_risk_limits=rl.UserRiskLimits(
                    max_outstanding_quantity=10**12, message_rate_rolling_limit=rolling
                ),
            )
        )
        assert not r.error_message, r
        r = await fc.request(
            rl.SetInstrumentRiskLimitsRequest(
                request_id=3,
                instrument_symbol="GWBENCH",
                instrument_risk_limits=rl.InstrumentRiskLimits(
                    max_outstanding_quantity=10**12,
                    max_outstanding_amount=1e11,
                    order_quantity_rolling_limit=rolling,
                    order_amount_rolling_limit=rolling,
                ),
            )
        )
        assert not r.error_message, r
        fc.loaded = True
        clients.append(fc)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    for fc in clients:
        fc.send(window)
    seconds = await run.done
    print(f"{target} orders in {seconds:.3f} s: {seconds / target * 1e6:.2f} us/order", flush=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    w = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    loop_kind = sys.argv[3] if len(sys.argv) > 3 else "uvloop"
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(main(n, w))
    else:
        asyncio.run(main(n, w))
