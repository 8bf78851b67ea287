"""net.Connection on a fake transport: batching, bounds, fairness, violations, streams, input limits.

The fake transport records every write and models the unsent bytes of a
peer that does not read (``stalled``) with asyncio's write-buffer limits
(pause_writing above high, resume_writing at or below low), so every test
is deterministic: nothing waits on time except the stall-deadline test,
which waits for the close itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from optivex.net import connection as net
from optivex.net.connection import (
    FRAMES_PER_TURN,
    MAX_IN_FLIGHT,
    RESUME_IN_FLIGHT,
    STREAM_FRAMES_PER_ITERATION,
    STREAM_HIGH_WATER,
    STREAM_SLICE_FRAMES,
    Connection,
    input_buffered,
)
from optivex.wire import FrameDecoder, encode_frame

LOG = logging.getLogger("test.connection")


class FakeTransport:
    """What a Connection needs of an asyncio transport; the peer reads only when told (``drain``)."""

    def __init__(self, protocol: Connection) -> None:
        self.protocol = protocol
        self.writes: list[bytes] = []
        self.stalled = False
        self.unsent = 0
        self.high = 64 * 1024
        self.low = self.high // 4
        self.paused = False
        self.reading = True
        self.closed = False
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = 64 * 1024 if high is None else high
        self.low = self.high // 4 if low is None else low
        self._maybe_pause()

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)
        if self.stalled:
            self.unsent += len(data)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self.paused and self.unsent > self.high:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self) -> None:
        """The peer reads everything unsent (and goes on reading)."""
        self.stalled = False
        self.unsent = 0
        if self.paused:
            self.paused = False
            self.protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def frames(self) -> list[tuple[int, bytes]]:
        return FrameDecoder().feed(b"".join(self.writes))


class Recorder:
    """A FrameHandler that logs every frame and, unless told otherwise, echoes it back."""

    def __init__(self, echo: bool = True, hold: bool = False) -> None:
        self.echo = echo
        self.hold = hold
        self.seen: list[tuple[Connection, int, bytes]] = []
        self.closed: list[Connection] = []

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        self.seen.append((conn, msg_type, payload))
        if self.hold:
            conn.hold()
        elif self.echo:
            conn.send(encode_frame(msg_type + 1, payload))

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        self.closed.append(conn)


class Producer:
    """A StreamProducer of `count` frames of type 7 numbered from 0."""

    def __init__(self, count: int, size: int = 8) -> None:
        self.count = count
        self.size = size
        self.next = 0
        self.calls = 0
        self.released = 0

    def produce(self, max_frames: int) -> list[bytes] | None:
        self.calls += 1
        if self.next == self.count:
            return None
        end = min(self.count, self.next + max_frames)
        frames = [encode_frame(7, i.to_bytes(4, "big") * (self.size // 4)) for i in range(self.next, end)]
        self.next = end
        return frames

    def release(self) -> None:
        self.released += 1


def _connect(handler: Recorder, **kwargs: Any) -> tuple[Connection, FakeTransport]:
    conn = Connection(handler, LOG, **kwargs)
    transport = FakeTransport(conn)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def _run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def _turns(n: int = 5) -> None:
    """Let the loop run n iterations."""
    for _ in range(n):
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool], limit: int = 100_000) -> None:
    """Let the loop run until `condition` holds (iterations, not time)."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _until_closed(transport: FakeTransport, limit: float = 30.0) -> None:
    """Wait (in loop time) for the connection to be closed; fail after `limit` seconds."""
    deadline = asyncio.get_running_loop().time() + limit
    while not transport.closed:
        assert asyncio.get_running_loop().time() < deadline, "never closed"
        await asyncio.sleep(0.01)


def _frames(count: int, msg_type: int = 1) -> bytes:
    return b"".join(encode_frame(msg_type, i.to_bytes(4, "big")) for i in range(count))


# batching ---------------------------------------------------------------


def test_the_responses_to_one_read_go_out_in_one_write() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder())
        conn.data_received(_frames(5))
        assert len(transport.writes) == 1
        assert [t for t, _ in transport.frames()] == [2] * 5

    _run(test)


def test_frames_sent_outside_a_turn_go_out_once_per_loop_iteration() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder())
        conn.send(encode_frame(1, b"a"))
        conn.send(encode_frame(1, b"b"))
        assert transport.writes == []
        await _turns(1)
        assert len(transport.writes) == 1 and len(transport.frames()) == 2

    _run(test)


# output bound -------------------------------------------------------------


def test_reading_pauses_above_pause_above_and_resumes_once_drained() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(), pause_above=1000, max_unsent=10_000)
        transport.stalled = True
        conn.send(encode_frame(1, b"x" * 1200))
        await _turns(1)
        assert transport.paused and not transport.reading
        transport.drain()
        assert transport.reading and not transport.closed

    _run(test)


def test_a_consumer_past_max_unsent_is_aborted() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(), pause_above=1000, max_unsent=5000)
        transport.stalled = True
        for _ in range(4):
            conn.send(encode_frame(1, b"x" * 1000))
            await _turns(1)
        assert not transport.aborted
        conn.send(encode_frame(1, b"x" * 2000))
        await _turns(1)
        assert transport.aborted and conn.closed

    _run(test)


# fairness -----------------------------------------------------------------


def test_a_pipelining_connection_is_handled_frames_per_turn_with_others_in_between() -> None:
    async def test() -> None:
        handler = Recorder()
        busy, busy_transport = _connect(handler)
        other, _ = _connect(handler)
        busy.data_received(_frames(FRAMES_PER_TURN * 2 + 10))
        assert len(handler.seen) == FRAMES_PER_TURN
        assert not busy_transport.reading  # not read while its backlog waits
        other.data_received(_frames(1))
        await _until(lambda: len(handler.seen) == FRAMES_PER_TURN * 2 + 11)
        order = [conn is other for conn, _, _ in handler.seen]
        assert order.index(True) == FRAMES_PER_TURN  # right after the first turn
        assert busy_transport.reading
        assert len(busy_transport.writes) == 3  # one write per turn

    _run(test)


# violations ---------------------------------------------------------------


def test_a_bad_length_closes_after_answering_the_frames_before_it() -> None:
    async def test() -> None:
        handler = Recorder()
        conn, transport = _connect(handler)
        conn.data_received(_frames(3) + b"\x00\x00\x00\x01")
        assert len(handler.seen) == 3
        assert len(transport.frames()) == 3
        assert transport.closed and conn.closed

    _run(test)


# requests in flight ---------------------------------------------------------


def test_held_requests_beyond_max_in_flight_wait_and_the_peer_is_not_read() -> None:
    async def test() -> None:
        handler = Recorder(hold=True)
        conn, transport = _connect(handler)
        conn.data_received(_frames(MAX_IN_FLIGHT + 10))
        await _turns()
        assert len(handler.seen) == MAX_IN_FLIGHT
        assert not transport.reading
        conn.data_received(_frames(5))  # already in flight from the peer: queued, not handled
        await _turns()
        assert len(handler.seen) == MAX_IN_FLIGHT
        for _ in range(MAX_IN_FLIGHT - RESUME_IN_FLIGHT - 1):
            conn.release()
        await _turns()
        assert len(handler.seen) == MAX_IN_FLIGHT and not transport.reading  # not yet down to the resume mark
        conn.release()
        await _turns()
        assert len(handler.seen) == MAX_IN_FLIGHT + 15  # all that waited, in one go
        assert [p for _, _, p in handler.seen[-5:]] == [i.to_bytes(4, "big") for i in range(5)]
        assert transport.reading  # RESUME_IN_FLIGHT + 15 in flight, nothing waits

    _run(test)


def test_an_exclusive_hold_makes_every_further_frame_wait_until_released() -> None:
    async def test() -> None:
        handler = Recorder()
        conn, transport = _connect(handler)
        conn.hold(exclusive=True)
        conn.data_received(_frames(3))
        await _turns()
        assert handler.seen == [] and not transport.reading
        conn.release(exclusive=True)
        await _turns()
        assert len(handler.seen) == 3 and transport.reading

    _run(test)


def test_a_close_waits_for_held_requests() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(hold=True))
        conn.data_received(_frames(1))
        conn.close("test")
        assert not transport.closed
        conn.send(encode_frame(9, b"late reply"))
        conn.release()
        assert transport.closed and transport.frames() == [(9, b"late reply")]

    _run(test)


# streams --------------------------------------------------------------------


def test_a_stream_goes_out_before_what_is_sent_after_it_and_is_released() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(echo=False))
        conn.send(encode_frame(1, b"before"))
        producer = Producer(1000)
        conn.stream(producer)
        assert conn.streaming
        conn.send(encode_frame(2, b"after"))
        second = Producer(3)
        conn.stream(second)
        conn.send(encode_frame(3, b"last"))
        await _until(lambda: not conn.streaming)
        frames = transport.frames()
        assert frames[0] == (1, b"before")
        assert [int.from_bytes(p[:4], "big") for _, p in frames[1:1001]] == list(range(1000))
        assert frames[1001] == (2, b"after")
        assert [t for t, _ in frames[1002:1005]] == [7, 7, 7]
        assert frames[1005:] == [(3, b"last")]
        assert producer.released == 1 and second.released == 1
        assert producer.calls >= 1000 // STREAM_SLICE_FRAMES

    _run(test)


def test_a_stream_started_behind_another_keeps_one_place_in_the_round_robin() -> None:
    async def test() -> None:
        conn, _ = _connect(Recorder(echo=False))
        conn.stream(Producer(1))
        conn.stream(Producer(100_000))  # starts in the slice that finishes the first
        other, _ = _connect(Recorder(echo=False))
        other.stream(Producer(100_000))
        await _turns(3)
        ready = list(net._streams.ready)
        assert ready.count(conn) == 1 and ready.count(other) == 1

    _run(test)


def test_a_stream_produces_only_while_the_peer_drains() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(echo=False))
        transport.stalled = True
        producer = Producer(100_000, size=64)
        conn.stream(producer)
        await _until(lambda: transport.paused)
        await _turns(20)
        produced = producer.next
        assert produced * 72 <= STREAM_HIGH_WATER + STREAM_SLICE_FRAMES * 72
        transport.drain()
        await _until(lambda: not conn.streaming)
        assert producer.next == 100_000 and len(transport.frames()) == 100_000

    _run(test)


def test_a_peer_that_takes_nothing_of_a_stream_is_dropped_after_the_stall_timeout() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(echo=False), stream_stall_timeout=0.05)
        transport.stalled = True
        producer = Producer(100_000, size=64)
        conn.stream(producer)
        await _until_closed(transport)
        assert transport.aborted and producer.released == 1

    _run(test)


def test_a_peer_that_drains_a_stream_in_time_is_not_dropped() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(echo=False), stream_stall_timeout=0.05)
        transport.stalled = True
        producer = Producer(100_000, size=64)
        conn.stream(producer)
        await _until(lambda: transport.paused)
        assert conn._stream_deadline is not None
        transport.drain()  # and it goes on reading: never paused again
        assert conn._stream_deadline is None  # the deadline is off
        await _until(lambda: not conn.streaming)
        assert not transport.closed and producer.next == 100_000

    _run(test)


def test_output_behind_a_stream_counts_against_max_unsent() -> None:
    async def test() -> None:
        conn, transport = _connect(Recorder(echo=False), max_unsent=STREAM_HIGH_WATER * 4)
        transport.stalled = True
        producer = Producer(100_000, size=64)
        conn.stream(producer)
        await _until(lambda: transport.paused)
        while not transport.aborted:
            conn.send(encode_frame(1, b"e" * 1000))
        assert conn.closed and producer.released == 1

    _run(test)


def test_streams_share_the_loop_round_robin_within_a_budget_per_iteration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(net, "STREAM_SECONDS_PER_ITERATION", 3600.0)  # the frame budget alone

    async def test() -> None:
        producers = [Producer(10_000) for _ in range(10)]
        conns = []
        for producer in producers:
            conn, _ = _connect(Recorder(echo=False))
            conn.stream(producer)
            conns.append(conn)
        handler = Recorder()
        other, other_transport = _connect(handler)
        await _turns(1)
        assert sum(p.next for p in producers) == STREAM_FRAMES_PER_ITERATION
        per_slice = STREAM_FRAMES_PER_ITERATION // STREAM_SLICE_FRAMES
        assert [p.next for p in producers[:per_slice]] == [STREAM_SLICE_FRAMES] * per_slice
        other.data_received(_frames(1))  # a request between two iterations is handled at once
        assert len(other_transport.frames()) == 1
        await _turns(1)
        assert sum(p.next for p in producers) == 2 * STREAM_FRAMES_PER_ITERATION
        await _until(lambda: not any(c.streaming for c in conns))
        assert all(p.next == 10_000 and p.released == 1 for p in producers)

    _run(test)


def test_the_time_budget_ends_an_iteration_after_one_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net, "STREAM_SECONDS_PER_ITERATION", 0.0)

    async def test() -> None:
        producers = [Producer(1000) for _ in range(3)]
        for producer in producers:
            conn, _ = _connect(Recorder(echo=False))
            conn.stream(producer)
        await _turns(1)
        assert [p.next for p in producers] == [STREAM_SLICE_FRAMES, 0, 0]
        await _turns(1)
        assert [p.next for p in producers] == [STREAM_SLICE_FRAMES] * 2 + [0]

    _run(test)


def test_a_connection_lost_mid_stream_releases_its_streams() -> None:
    async def test() -> None:
        conn, _ = _connect(Recorder(echo=False))
        first, second = Producer(10_000), Producer(10)
        conn.stream(first)
        conn.stream(second)
        await _turns(1)
        conn.connection_lost(None)
        assert first.released == 1 and second.released == 1
        await _turns(3)
        assert second.calls == 0

    _run(test)


# input bounds --------------------------------------------------------------


def test_a_partial_frame_counts_in_the_input_budget_until_it_completes() -> None:
    async def test() -> None:
        base = input_buffered()
        handler = Recorder(echo=False)
        conn, _ = _connect(handler)
        frame = encode_frame(1, b"y" * 5000)
        conn.data_received(frame[:3000])
        assert input_buffered() == base + 3000 and conn._decoder.incomplete
        conn.data_received(frame[3000:])
        assert input_buffered() == base and len(handler.seen) == 1
        conn.data_received(frame[:100])
        conn.connection_lost(None)
        assert input_buffered() == base

    _run(test)


def test_a_connection_taking_the_input_budget_over_its_limit_is_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(net._input, "limit", net._input.total + 10_000)

    async def test() -> None:
        base = input_buffered()
        handler = Recorder()
        first, first_transport = _connect(handler)
        second, second_transport = _connect(handler)
        first.data_received(encode_frame(1, b"a" * 20_000)[:6000])
        second.data_received(encode_frame(1, b"b" * 20_000)[:6000])
        assert second_transport.closed and not first_transport.closed
        assert input_buffered() == base + 6000
        first.data_received(b"a" * 14_008)  # the rest: the first connection is served
        assert len(handler.seen) == 1 and input_buffered() == base

    with caplog.at_level(logging.WARNING, LOG.name):
        _run(test)
    assert "input budget exhausted" in caplog.text


def test_a_half_sent_frame_closes_its_connection_after_the_stall_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        base = input_buffered()
        handler = Recorder()
        conn, transport = _connect(handler, frame_stall_timeout=0.05)
        idle, idle_transport = _connect(handler, frame_stall_timeout=0.05)
        conn.data_received(_frames(1) + encode_frame(1, b"z" * 100)[:50])
        idle.data_received(_frames(1))  # complete frames only: no deadline runs
        assert len(transport.frames()) == 1  # what came before the half frame was answered
        await _until_closed(transport)
        assert not idle_transport.closed and input_buffered() == base

    with caplog.at_level(logging.WARNING, LOG.name):
        _run(test)
    assert "half-sent frame" in caplog.text


def test_a_failing_producer_drops_its_connection_and_other_streams_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Producer):
        def produce(self, max_frames: int) -> list[bytes] | None:
            raise RuntimeError("producer bug")

    async def test() -> None:
        bad, bad_transport = _connect(Recorder(echo=False))
        good, _ = _connect(Recorder(echo=False))
        failing, healthy = Failing(10), Producer(1000)
        bad.stream(failing)
        good.stream(healthy)
        await _until(lambda: not good.streaming)
        assert bad_transport.aborted and failing.released == 1
        assert healthy.next == 1000 and healthy.released == 1

    with caplog.at_level(logging.ERROR, LOG.name):
        _run(test)
    assert "producer bug" in caplog.text
