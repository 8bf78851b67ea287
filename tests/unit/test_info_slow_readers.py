"""info's fan-out over real sockets and net.Connection: a subscriber that stops reading gets its book
messages conflated (the latest state when it reads again) and every trade; past maxUnsentBytes it is
dropped with a log line naming it; the others get everything meanwhile."""

from __future__ import annotations

import asyncio
import logging
import socket
from functools import partial

import pytest

from optivex.info.component import INFO_PAUSE_ABOVE
from optivex.info.fanout import TOP_OF_BOOK, Fanout
from optivex.net import Connection
from optivex.wire import FrameDecoder, encode_frame

BOOK, TRADE = 22, 24
PUBLISHED = 3000
"""Book states published (with one trade each): far more than the slow reader's socket buffers hold."""
PAD = 2000


def book_frame(n: int) -> bytes:
    return encode_frame(BOOK, b"%d " % n + b"x" * PAD)


def trade_frame(n: int) -> bytes:
    return encode_frame(TRADE, b"%d" % n)


class _Ignore:
    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        pass

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        pass


async def _serve(
    fanout: Fanout, accepted: asyncio.Queue[Connection], max_unsent: int
) -> tuple[asyncio.Server, int]:
    log = logging.getLogger("test.info.fanout")

    def factory() -> Connection:
        conn = Connection(_Ignore(), log, max_unsent=max_unsent, pause_above=INFO_PAUSE_ABOVE)
        conn.on_drain = partial(fanout.drained, conn)
        accepted.put_nowait(conn)
        return conn

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


async def _connect(
    port: int, accepted: asyncio.Queue[Connection], slow: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Connection]:
    sock = socket.socket()
    if slow:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    conn = await accepted.get()
    if slow:
        server_sock = conn._transport.get_extra_info("socket") if conn._transport else None
        assert server_sock is not None
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return reader, writer, conn


async def _read_until(reader: asyncio.StreamReader, last_book: int, into: list[tuple[int, int]]) -> None:
    """Read frames into `into` as (type, n) until the book state `last_book` arrived."""
    decoder = FrameDecoder()
    while True:
        data = await reader.read(65536)
        assert data, "connection closed"
        for msg_type, payload in decoder.feed(data):
            into.append((msg_type, int(payload.split(b" ", 1)[0])))
            if msg_type == BOOK and into[-1][1] == last_book:
                return


def test_a_stalled_subscriber_gets_the_latest_state_and_every_trade_and_delays_nobody() -> None:
    async def scenario() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        fanout = Fanout()
        accepted: asyncio.Queue[Connection] = asyncio.Queue()
        server, port = await _serve(fanout, accepted, max_unsent=8 * 1024 * 1024)
        slow_reader, slow_writer, slow = await _connect(port, accepted, slow=True)
        fast_reader, fast_writer, fast = await _connect(port, accepted, slow=False)
        for conn in (slow, fast):
            fanout.subscribe(conn, "X", TOP_OF_BOOK, 0, book_frame(0))
        fast_got: list[tuple[int, int]] = []
        fast_reading = asyncio.create_task(_read_until(fast_reader, PUBLISHED, fast_got))
        paused_seen = False
        for n in range(1, PUBLISHED + 1):
            fanout.trade("X", trade_frame(n))
            fanout.book("X", TOP_OF_BOOK, n, book_frame(n))
            paused_seen = paused_seen or slow.writing_paused
            await asyncio.sleep(0)  # the loop writes, and the fast reader reads, between changes
        await fast_reading  # the fast subscriber got everything while the slow one did not read
        assert paused_seen and not slow.closed
        slow_got: list[tuple[int, int]] = []
        await _read_until(slow_reader, PUBLISHED, slow_got)
        for writer in (slow_writer, fast_writer):
            writer.close()
        server.close()
        return slow_got, fast_got

    slow_got, fast_got = asyncio.run(scenario())
    everything = list(range(PUBLISHED + 1))
    trades = list(range(1, PUBLISHED + 1))
    for got in (slow_got, fast_got):
        assert [n for t, n in got if t == TRADE] == trades  # every trade, in order
        books = [n for t, n in got if t == BOOK]
        assert books == sorted(books) and books[-1] == PUBLISHED  # never an older state after a newer one
        # Each book state comes after the trade of its change (trades before the update they caused).
        position = {item: i for i, item in enumerate(got)}
        assert all(position[(TRADE, n)] < position[(BOOK, n)] for n in books if n)
    assert [n for t, n in fast_got if t == BOOK] == everything
    assert len([n for t, n in slow_got if t == BOOK]) < PUBLISHED // 2  # conflated


def test_past_max_unsent_a_subscriber_that_never_reads_is_dropped_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> bool:
        fanout = Fanout()
        accepted: asyncio.Queue[Connection] = asyncio.Queue()
        server, port = await _serve(fanout, accepted, max_unsent=256 * 1024)
        _, writer, slow = await _connect(port, accepted, slow=True)
        slow.user = "slow\nuser"
        fanout.subscribe(slow, "X", TOP_OF_BOOK, 0, book_frame(0))
        for n in range(1, PUBLISHED + 1):
            fanout.trade("X", encode_frame(TRADE, b"%d " % n + b"t" * 500))  # trades are never conflated
            await asyncio.sleep(0)
            if slow.closed:
                break
        writer.close()
        server.close()
        return slow.closed

    with caplog.at_level(logging.WARNING, logger="test.info.fanout"):
        assert asyncio.run(scenario())
    logged = [r.getMessage() for r in caplog.records]
    assert any("slow consumer" in line and "'slow\\nuser'" in line for line in logged)
