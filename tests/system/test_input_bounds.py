"""Input bounds (net.connection): partial frames are bounded in total, and a stalled half frame is closed.

Before these bounds, 300 connections each holding an unfinished 1 MiB frame
cost the order book 1 MB each, with no limit and no deadline.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from pathlib import Path

import pytest

from optivex.net.connection import FRAME_STALL_TIMEOUT, MAX_INPUT_BUFFERED
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH, encode_frame

from .helpers import Exchange

pytestmark = pytest.mark.xdist_group("heavy")
"""Heavy (large days, floods, installs): one at a time on one worker, so the rest stay responsive."""

CONNECTIONS = 250
MISSING = 100
"""Bytes of each big frame never sent."""
PARTIAL = 4 + MAX_FRAME_LENGTH - MISSING
"""Bytes of each unfinished frame sent (length field included)."""
WAIT = 60.0
"""Seconds allowed for the closes to be seen (an answer awaited, not a pause)."""


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True


def _wait_closed(socks: list[socket.socket], count: int, closed: set[socket.socket]) -> None:
    """Until at least `count` of `socks` are closed by the order book (or WAIT seconds have passed)."""
    deadline = time.monotonic() + WAIT
    while len(closed) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(closed)} of {len(socks)} connections closed, expected {count}"
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], min(left, 1.0))
        closed.update(s for s in readable if _closed_by_peer(s))


def _served(exchange: Exchange) -> None:
    client = exchange.order_book()
    response = client.request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
    assert isinstance(response, ob.CreateOrderBookResponse)


def test_unfinished_big_frames_are_bounded_in_total_and_others_are_served(exchange: Exchange) -> None:
    pid = exchange.deployment.component("order_book").pid
    assert pid is not None
    _served(exchange)
    before = _rss(pid)
    head = struct.pack(">II", MAX_FRAME_LENGTH, ob.CREATE_ORDER_BOOK_REQUEST)
    body = head + b"\x00" * (PARTIAL - len(head))
    socks: list[socket.socket] = []
    closed: set[socket.socket] = set()
    try:
        for _ in range(CONNECTIONS):
            sock = exchange.raw_socket("order_book")
            socks.append(sock)
            try:
                sock.sendall(body)
            except ConnectionError:
                closed.add(sock)
        fit = MAX_INPUT_BUFFERED // PARTIAL
        _wait_closed(socks, CONNECTIONS - fit, closed)
        grown = _rss(pid) - before
        assert grown < MAX_INPUT_BUFFERED + 48 * 1024 * 1024, f"order book grew by {grown} bytes"
        _served(exchange)
        assert "input budget exhausted" in exchange.deployment.logs()
    finally:
        for sock in socks:
            sock.close()


def test_a_half_sent_frame_is_closed_after_its_deadline_and_what_came_before_answered(
    exchange: Exchange,
) -> None:
    sock = exchange.raw_socket("order_book")
    sock.settimeout(FRAME_STALL_TIMEOUT + WAIT)
    request = ob.CreateOrderBookRequest(request_id=5, tick_size=0.01).SerializeToString()
    half = encode_frame(ob.CREATE_ORDER_BOOK_REQUEST, request)
    sock.sendall(half + half[: len(half) // 2])
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionError:
        pass
    length, msg_type = struct.unpack_from(">II", data)
    assert msg_type == ob.CREATE_ORDER_BOOK_RESPONSE
    assert ob.CreateOrderBookResponse.FromString(data[8 : 4 + length]).request_id == 5
    assert len(data) == 4 + length  # then closed, nothing more
    assert "half-sent frame" in exchange.deployment.logs()
    _served(exchange)
    sock.close()
