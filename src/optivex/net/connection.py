"""One TCP connection carrying frames, for servers and clients alike.

Incoming bytes go through the sans-I/O FrameDecoder and each frame is handed
to a FrameHandler. Outgoing frames are queued and written together: one
``transport.write`` per connection at the end of each turn (the frames one
read brought, handled in one go), however many frames were queued for it;
frames queued outside a turn (replies of async handlers) go out once per
event-loop iteration.

Output bound (the slow-consumer policy). A peer that does not read its data
must neither grow our memory without limit nor delay anyone else:

- while the transport holds more than ``pause_above`` unsent bytes we stop
  reading that peer's requests (backpressure: it cannot make us produce more
  responses than it consumes);
- if the unsent bytes still exceed ``max_unsent`` (events keep coming for it),
  the connection is aborted and the reason logged. Other connections are never
  blocked: writes never wait.

Streams (``stream(producer)``): output too large to queue at once (a login
replay) is produced on demand, a slice at a time, only while the transport
holds fewer than STREAM_HIGH_WATER unsent bytes. While a stream is active,
everything else sent to the connection is deferred behind it, in order, and
counts against ``max_unsent`` with the transport's unsent bytes. One
process-wide scheduler runs the connections whose stream may produce
round-robin, STREAM_SLICE_FRAMES frames each, at most STREAM_FRAMES_PER_ITERATION
frames and STREAM_SECONDS_PER_ITERATION seconds per event-loop iteration, so
other connections' requests are read and handled between slices however many
streams are in progress. A peer that takes nothing of a stream for
STREAM_STALL_TIMEOUT seconds (its transport stays above the high-water mark)
is dropped (logged): a client that stopped reading its login replay must not
hold the replay's snapshot for the rest of the day.

Requests in flight: ``hold()``/``release()`` count the requests whose replies
come later (async handlers, deferred replies). At MAX_IN_FLIGHT held requests
the connection's frames are no longer handled and the peer no longer read;
both resume once no more than RESUME_IN_FLIGHT are held (so a pipelining
client is served in batches of frames, each forwarded in one write, rather
than one frame per answer).

Input bounds: the decoder holds at most one partial frame (at most its
declared length, itself at most ``wire.MAX_FRAME_LENGTH``); the partial frames
of all connections of the process together may hold MAX_INPUT_BUFFERED bytes,
and a connection whose partial frame would take the total above it is closed
(logged). A partial frame whose bytes stop arriving for FRAME_STALL_TIMEOUT
seconds (while we read) closes its connection (logged).

Fairness: a read that brings many frames (a pipelining client) is handled
FRAMES_PER_TURN frames at a time, other connections' callbacks running in
between, and the peer is not read from until its backlog is handled.

A protocol violation (bad length, undecodable payload) closes the connection
after the frames before it were handled and their responses sent.

Each read is reported to an optional BusyPoll, which keeps the loop polling
for a while instead of sleeping (see `busy_poll`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Protocol as TypingProtocol
from typing import cast

from optivex.logsafe import loggable
from optivex.net.busy_poll import BusyPoll
from optivex.wire import Frame, FrameDecoder

DEFAULT_MAX_UNSENT = 8 * 1024 * 1024
DEFAULT_PAUSE_ABOVE = 1024 * 1024
FRAMES_PER_TURN = 256
"""Frames of one connection handled before the others get a turn (fairness under pipelining)."""
CLOSE_GRACE = 1.0
"""Seconds a closing connection has to take what is still unsent (or streaming) before it is aborted."""
MAX_IN_FLIGHT = 64
"""Requests of one connection held (answered later) at once; above, its frames wait and it is not read."""
RESUME_IN_FLIGHT = MAX_IN_FLIGHT // 2
"""Once MAX_IN_FLIGHT were held, frames are handled again only when at most this many still are: a
pipelining client is then served in batches, not one frame (and one write onwards) per answer."""
STREAM_HIGH_WATER = 64 * 1024
"""A stream produces only while its transport holds at most this many unsent bytes (resumes below 1/4)."""
STREAM_SLICE_FRAMES = 128
"""Frames one stream produces per slice, before the next streaming connection's turn."""
STREAM_FRAMES_PER_ITERATION = 512
"""Frames all streams together produce per event-loop iteration (a replay frame costs 2-4 us to encode)."""
STREAM_SECONDS_PER_ITERATION = 0.002
"""Seconds all streams together may take per event-loop iteration (checked after each slice): on a
loaded machine fewer frames fit, and other clients still wait no longer than this for their turn."""
STREAM_STALL_TIMEOUT = 30.0
"""Seconds a stream may wait for its peer to drain what it produced before the connection is aborted."""
MAX_INPUT_BUFFERED = 64 * 1024 * 1024
"""Bytes of partial frames all connections of the process may hold together."""
FRAME_STALL_TIMEOUT = 10.0
"""Seconds a partial frame may wait for more bytes (while we read the peer) before its connection closes."""


class StreamProducer(TypingProtocol):
    """Output produced on demand (see ``Connection.stream``)."""

    def produce(self, max_frames: int) -> list[bytes] | None:
        """Up to ``max_frames`` encoded frames, None once finished.

        An empty list means "nothing to send yet": the producer used its turn
        for work of its own of about one slice (preparing what it will send).
        """

    def release(self) -> None:
        """The stream finished or its connection went away: drop what it holds (called once)."""


class _WriteBatch:
    """Connections that queued frames while a turn was handling frames; written when the turn ends.

    Handling runs in one thread, one turn at a time, so one batch serves the
    process: a request's response and the events it caused for every other
    connection go out as one write per connection, right after the turn,
    without another trip through the event loop.
    """

    __slots__ = ("active", "dirty")

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[Connection] = []

    def flush(self) -> None:
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for conn in dirty:
                conn.flush()


_batch = _WriteBatch()


class _StreamScheduler:
    """Runs the connections whose stream may produce, round-robin, a bounded amount per loop iteration."""

    __slots__ = ("loop", "ready", "scheduled")

    def __init__(self) -> None:
        self.ready: deque[Connection] = deque()
        self.scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, conn: Connection) -> None:
        loop = conn._loop
        if loop is not self.loop:  # a new event loop (tests run several): forget the old one's
            self.ready = deque(c for c in self.ready if c._loop is loop)
            self.loop = loop
            self.scheduled = False
        self.ready.append(conn)
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.run)

    def run(self) -> None:
        ready = self.ready
        budget = STREAM_FRAMES_PER_ITERATION
        until = perf_counter() + STREAM_SECONDS_PER_ITERATION
        while ready and budget > 0:
            conn = ready.popleft()
            budget -= conn._stream_slice(min(STREAM_SLICE_FRAMES, budget))
            if perf_counter() >= until:
                break
        if ready and self.loop is not None:
            self.loop.call_soon(self.run)  # the next iteration: I/O is polled in between
        else:
            self.scheduled = False


_streams = _StreamScheduler()


class _InputBudget:
    """The bytes of partial frames held by every connection of the process."""

    __slots__ = ("limit", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0


_input = _InputBudget(MAX_INPUT_BUFFERED)


def input_buffered() -> int:
    """Bytes of partial frames held now by all connections of this process."""
    return _input.total


class FrameHandler(TypingProtocol):
    """What a Connection reports to."""

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        """One complete frame arrived."""

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        """The connection is gone (closed by either side, reset, or aborted)."""


class Connection(asyncio.Protocol):
    """Frames in via the handler, frames out batched: one write per turn or loop iteration."""

    def __init__(
        self,
        handler: FrameHandler,
        log: logging.Logger,
        *,
        max_unsent: int = DEFAULT_MAX_UNSENT,
        pause_above: int = DEFAULT_PAUSE_ABOVE,
        busy_poll: BusyPoll | None = None,
        frame_stall_timeout: float = FRAME_STALL_TIMEOUT,
        stream_stall_timeout: float = STREAM_STALL_TIMEOUT,
    ) -> None:
        self._handler = handler
        self._activity = busy_poll.activity if busy_poll is not None else None
        self._log = log
        self._decoder = FrameDecoder()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._max_unsent = max_unsent
        self._pause_above = pause_above
        self._transport: asyncio.Transport | None = None
        self._queue: list[Frame] = []
        """Frames received but not handled yet (a large read is handled over several turns)."""
        self._write_paused = False
        self._backlogged = False
        self._reading_paused = False
        self._closing = False
        self._in_progress = 0
        self._full = False
        """MAX_IN_FLIGHT requests were held: frames wait until RESUME_IN_FLIGHT."""
        self._stream: StreamProducer | None = None
        self._stream_ready = False
        """Whether this connection is in the stream scheduler's ready queue."""
        self._deferred: deque[bytes | StreamProducer] = deque()
        """Output queued behind the active stream, in order (frames and further streams)."""
        self._deferred_bytes = 0
        self._stream_stall_timeout = stream_stall_timeout
        self._stream_deadline: asyncio.TimerHandle | None = None
        """While a stream waits for its peer to drain: the STREAM_STALL_TIMEOUT deadline."""
        self._buffered = 0
        """Bytes of a partial frame counted in the process-wide input budget."""
        self._stall_timeout = frame_stall_timeout
        self._stall_handle: asyncio.TimerHandle | None = None
        self._last_input = 0.0
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self.peer = "?"
        self.user: str | None = None
        """The logged-in username; None before a successful login."""
        self.on_drain: Callable[[], None] | None = None
        """Called when the transport, paused above its high-water mark, drains below its low-water mark."""

    # asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=self._pause_above)

    def data_received(self, data: bytes) -> None:
        if self._activity is not None:
            self._activity()
        if self._closing:
            return
        decoder = self._decoder
        frames = decoder.feed(data)
        if decoder._pending or self._buffered:  # a partial frame (the property would cost a call a read)
            self._count_input(decoder.buffered)
            if self._closing:
                return
        if self._queue:  # still working through an earlier read
            self._queue.extend(frames)
        else:
            self._queue = frames
            self._turn()

    def _count_input(self, buffered: int) -> None:
        """A partial frame grew, shrank or completed: keep the input budget and the stall deadline."""
        grown = buffered - self._buffered
        self._buffered = buffered
        budget = _input
        budget.total += grown
        if not buffered:
            return
        self._last_input = self._loop.time()
        if grown > 0 and budget.total > budget.limit:
            self.close(
                f"input budget exhausted: a partial frame of {buffered} bytes would take the partial "
                f"frames of all connections to {budget.total} bytes (limit {budget.limit})"
            )
            return
        if self._stall_handle is None:
            self._stall_handle = self._loop.call_later(self._stall_timeout, self._check_stall)

    def _check_stall(self) -> None:
        self._stall_handle = None
        if self.closed or self._closing or not self._decoder.incomplete:
            return
        now = self._loop.time()
        if self._reading_paused:  # we are not reading: the peer is not the one stalling
            self._last_input = now
        idle = now - self._last_input
        if idle >= self._stall_timeout:
            self.close(
                f"half-sent frame: no bytes for {idle:.1f} s "
                f"(limit {self._stall_timeout:g} s) with {self._decoder.buffered} bytes of it received"
            )
        else:
            self._stall_handle = self._loop.call_later(self._stall_timeout - idle, self._check_stall)

    def _release_input(self) -> None:
        """Free the partial frame and give its bytes back to the input budget."""
        self._decoder.clear()
        _input.total -= self._buffered
        self._buffered = 0
        if self._stall_handle is not None:
            self._stall_handle.cancel()
            self._stall_handle = None

    def _turn(self) -> None:
        """Handle up to FRAMES_PER_TURN queued frames, then let other connections have the loop."""
        frames = self._queue
        if len(frames) > FRAMES_PER_TURN:
            self._queue = frames[FRAMES_PER_TURN:]
            frames = frames[:FRAMES_PER_TURN]
        else:
            self._queue = []
        frame_received = self._handler.frame_received
        batch = _batch
        batch.active = True
        try:
            for index, (msg_type, payload) in enumerate(frames):
                if self.closed or self._closing:
                    break
                if self._full:  # set by hold() at MAX_IN_FLIGHT held requests, cleared by release()
                    self._queue[:0] = frames[index:]  # they wait for release()s
                    break
                frame_received(self, msg_type, payload)
        finally:
            batch.active = False
            if batch.dirty:
                batch.flush()
        if self.closed or self._closing:
            return
        if self._queue:
            self._set_paused(backlog=True)
            if not self._full:
                self._loop.call_soon(self._turn)
            return
        if self._backlogged:  # else nothing to change: every other reason calls _set_paused itself
            self._set_paused(backlog=False)
        if self._decoder.error is not None:
            self.close(f"protocol violation: {self._decoder.error}")

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out.clear()
        self._queue = []
        self._release_input()
        self._end_streams()
        self._handler.connection_closed(self, exc)

    def pause_writing(self) -> None:
        self._set_paused(writing=True)
        if self._stream is not None:
            self._arm_stream_deadline()

    def resume_writing(self) -> None:
        self._set_paused(writing=False)
        self._cancel_stream_deadline()
        if self._stream is not None and not self._stream_ready and not self.closed:
            self._stream_ready = True
            _streams.add(self)
        if self.on_drain is not None and not self.closed:
            self.on_drain()

    @property
    def writing_paused(self) -> bool:
        """Whether the transport holds more unsent bytes than its high-water mark (``pause_above``)."""
        return self._write_paused

    def _set_paused(self, *, writing: bool | None = None, backlog: bool | None = None) -> None:
        """Read from the peer only while its output drains and no earlier read waits to be handled."""
        if writing is not None:
            self._write_paused = writing
        if backlog is not None:
            self._backlogged = backlog
        pause = self._write_paused or self._backlogged or self._full
        if pause != self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    # sending ----------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue one encoded frame; it is written with the others queued in this turn or loop iteration.

        While a stream is active the frame waits behind it (see ``stream``).
        """
        if self.closed:
            return
        if self._stream is not None:
            self._defer(frame)
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if _batch.active:
                _batch.dirty.append(self)
            else:
                self._loop.call_soon(self.flush)

    def _defer(self, item: bytes | StreamProducer) -> None:
        self._deferred.append(item)
        if isinstance(item, bytes):
            self._deferred_bytes += len(item)
            transport = self._transport
            unsent = self._deferred_bytes + (0 if transport is None else transport.get_write_buffer_size())
            if unsent > self._max_unsent:
                self._log.warning(
                    "closing %s (user %s): slow consumer, %d bytes unsent (behind a stream)",
                    self.peer,
                    loggable(self.user),
                    unsent,
                )
                self.abort()

    def stream(self, producer: StreamProducer) -> None:
        """Send what ``producer`` produces, as the peer drains it, after everything queued before.

        Frames sent while the stream is active (responses, events, another
        stream) go out after it, in order; they count against ``max_unsent``
        with the transport's unsent bytes. ``producer.release()`` is called
        once it finished or the connection went away.
        """
        if self.closed:
            producer.release()
            return
        if self._stream is not None:
            self._defer(producer)
            return
        self._start_stream(producer)

    def _start_stream(self, producer: StreamProducer) -> None:
        self._stream = producer
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high=STREAM_HIGH_WATER)
        if self._write_paused:
            self._arm_stream_deadline()
        elif not self._stream_ready:
            self._stream_ready = True
            _streams.add(self)

    def _arm_stream_deadline(self) -> None:
        """The stream waits for the peer to drain: give it STREAM_STALL_TIMEOUT seconds (once armed)."""
        if self._stream_deadline is None and not self.closed:
            self._stream_deadline = self._loop.call_later(self._stream_stall_timeout, self._stream_stalled)

    def _cancel_stream_deadline(self) -> None:
        if self._stream_deadline is not None:
            self._stream_deadline.cancel()
            self._stream_deadline = None

    def _stream_stalled(self) -> None:
        self._stream_deadline = None
        if self._stream is None or self.closed or not self._write_paused:
            return
        self._log.warning(
            "closing %s (user %s): slow consumer, took nothing of its stream for %g s",
            self.peer,
            loggable(self.user),
            self._stream_stall_timeout,
        )
        self.abort()

    def _stream_slice(self, max_frames: int) -> int:
        """Called by the scheduler: produce and write one slice; the number of frames it took (>= 1)."""
        self._stream_ready = False
        producer = self._stream
        if producer is None or self.closed:
            return 1
        try:
            frames = producer.produce(max_frames)
        except Exception:
            self._log.exception("stream to %s (user %s) failed; dropping it", self.peer, loggable(self.user))
            self.abort()
            return 1
        if frames is None:
            self._finish_stream()
        elif frames:
            self._out.extend(frames)
        self.flush()
        # _finish_stream may have started the next stream, which queued the connection already.
        if self._stream is not None and not self._stream_ready and not self._write_paused and not self.closed:
            self._stream_ready = True
            _streams.ready.append(self)
        return len(frames) if frames else max_frames

    def _finish_stream(self) -> None:
        """The active stream is done: release it, then move deferred output out up to the next stream."""
        producer = self._stream
        self._stream = None
        if producer is not None:
            producer.release()
        deferred = self._deferred
        out = self._out
        while deferred:
            item = deferred.popleft()
            if isinstance(item, bytes):
                self._deferred_bytes -= len(item)
                out.append(item)
            else:
                self._start_stream(item)
                return
        self._cancel_stream_deadline()
        if self._transport is not None:
            self._transport.set_write_buffer_limits(high=self._pause_above)
        if self._closing and not self._in_progress:
            self._loop.call_soon(self._close_now)

    def _end_streams(self) -> None:
        """The connection is gone: release every stream, drop deferred output."""
        self._cancel_stream_deadline()
        producer = self._stream
        self._stream = None
        if producer is not None:
            producer.release()
        for item in self._deferred:
            if not isinstance(item, bytes):
                item.release()
        self._deferred.clear()
        self._deferred_bytes = 0

    @property
    def streaming(self) -> bool:
        """Whether a stream is in progress (output is deferred behind it)."""
        return self._stream is not None

    def flush(self) -> None:
        """Write every queued frame now, in one write."""
        self._flush_scheduled = False
        out = self._out
        transport = self._transport
        if not out or transport is None or self.closed:
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        unsent = transport.get_write_buffer_size() + self._deferred_bytes
        if unsent > self._max_unsent:
            self._log.warning(
                "closing %s (user %s): slow consumer, %d bytes unsent", self.peer, loggable(self.user), unsent
            )
            self.abort()

    def close(self, reason: str = "") -> None:
        """Stop reading and handling, send what is queued (and the replies of requests in progress), close.

        A stream in progress goes on until it finished. A peer that does not
        read what is still unsent is dropped after CLOSE_GRACE seconds (counted
        from this call while a stream is in progress).
        """
        if self._transport is None or self.closed or self._closing:
            return
        if reason:
            self._log.warning("closing %s (user %s): %s", self.peer, loggable(self.user), reason)
        self._closing = True
        self._queue = []
        self._release_input()
        self._set_paused(backlog=True)
        if self._stream is not None:
            self._loop.call_later(CLOSE_GRACE, self.abort)
        elif not self._in_progress:
            self._close_now()

    def _close_now(self) -> None:
        transport = self._transport
        if transport is None or self.closed:
            return
        self.flush()
        self.closed = True
        transport.close()
        self._loop.call_later(CLOSE_GRACE, transport.abort)

    def hold(self, exclusive: bool = False) -> None:
        """A request of this connection is in progress (its reply will come later).

        At MAX_IN_FLIGHT such requests the connection's further frames wait
        and the peer is not read until one is released. An ``exclusive`` hold
        (a login whose state must go out before anything this connection asks
        next) makes every further frame wait until it is released.
        """
        self._in_progress += MAX_IN_FLIGHT if exclusive else 1
        if self._in_progress >= MAX_IN_FLIGHT and not self._full:
            self._full = True
            self._set_paused()

    def release(self, exclusive: bool = False) -> None:
        """A request held by hold() was answered; a pending close may proceed, waiting frames resume."""
        self._in_progress -= MAX_IN_FLIGHT if exclusive else 1
        if self._closing:
            if not self._in_progress and not self.closed and self._stream is None:
                self._close_now()
            return
        if self._full and self._in_progress <= RESUME_IN_FLIGHT and not self.closed:
            self._full = False
            if self._queue:
                self._loop.call_soon(self._turn)
            else:
                self._set_paused()

    def abort(self) -> None:
        """Drop the connection at once, unsent data included."""
        self._out.clear()
        if self._transport is not None and not self.closed:
            self.closed = True
            self._release_input()
            self._end_streams()
            self._transport.abort()
