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
from typing import Protocol as TypingProtocol
from typing import cast

from optivex.net.busy_poll import BusyPoll
from optivex.wire import Frame, FrameDecoder

DEFAULT_MAX_UNSENT = 8 * 1024 * 1024
DEFAULT_PAUSE_ABOVE = 1024 * 1024
FRAMES_PER_TURN = 256
"""Frames of one connection handled before the others get a turn (fairness under pipelining)."""
CLOSE_GRACE = 1.0


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
        self._loop = asyncio.get_running_loop()
        self.closed = False
        self.frames_sent = 0
        """Frames queued on this connection so far (tells whether a request was answered)."""
        self.peer = "?"
        self.user: str | None = None
        """The logged-in username; None before a successful login."""

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
        frames = self._decoder.feed(data)
        if self._queue:  # still working through an earlier read
            self._queue.extend(frames)
        else:
            self._queue = frames
            self._turn()

    def _turn(self) -> None:
        """Handle up to FRAMES_PER_TURN queued frames, then let other connections have the loop."""
        frames = self._queue
        if len(frames) > FRAMES_PER_TURN:
            self._queue = frames[FRAMES_PER_TURN:]
            frames = frames[:FRAMES_PER_TURN]
        else:
            self._queue = []
        handler = self._handler
        _batch.active = True
        try:
            for msg_type, payload in frames:
                if self.closed or self._closing:
                    break
                handler.frame_received(self, msg_type, payload)
        finally:
            _batch.active = False
            _batch.flush()
        if self.closed or self._closing:
            return
        if self._queue:
            self._set_paused(backlog=True)
            self._loop.call_soon(self._turn)
            return
        self._set_paused(backlog=False)
        if self._decoder.error is not None:
            self.close(f"protocol violation: {self._decoder.error}")

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out.clear()
        self._queue = []
        self._handler.connection_closed(self, exc)

    def pause_writing(self) -> None:
        self._set_paused(writing=True)

    def resume_writing(self) -> None:
        self._set_paused(writing=False)

    def _set_paused(self, *, writing: bool | None = None, backlog: bool | None = None) -> None:
        """Read from the peer only while its output drains and no earlier read waits to be handled."""
        if writing is not None:
            self._write_paused = writing
        if backlog is not None:
            self._backlogged = backlog
        pause = self._write_paused or self._backlogged
        if pause != self._reading_paused and self._transport is not None and not self.closed:
            self._reading_paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    # sending ----------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue one encoded frame; it is written with the others queued in this turn or loop iteration."""
        if self.closed:
            return
        self.frames_sent += 1
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            if _batch.active:
                _batch.dirty.append(self)
            else:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write every queued frame now, in one write."""
        self._flush_scheduled = False
        out = self._out
        transport = self._transport
        if not out or transport is None or self.closed:
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        unsent = transport.get_write_buffer_size()
        if unsent > self._max_unsent:
            self._log.warning(
                "closing %s (user %s): slow consumer, %d bytes unsent", self.peer, self.user, unsent
            )
            self.abort()

    def close(self, reason: str = "") -> None:
        """Stop reading and handling, send what is queued (and the replies of requests in progress), close.

        A peer that does not read what is still unsent is dropped after CLOSE_GRACE seconds.
        """
        if self._transport is None or self.closed or self._closing:
            return
        if reason:
            self._log.warning("closing %s (user %s): %s", self.peer, self.user, reason)
        self._closing = True
        self._queue = []
        self._set_paused(backlog=True)
        if not self._in_progress:
            self._close_now()

    def _close_now(self) -> None:
        transport = self._transport
        assert transport is not None
        self.flush()
        self.closed = True
        transport.close()
        self._loop.call_later(CLOSE_GRACE, transport.abort)

    def hold(self) -> None:
        """A request of this connection is in progress (its reply will come later)."""
        self._in_progress += 1

    def release(self) -> None:
        """A request held by hold() was answered; a pending close may proceed."""
        self._in_progress -= 1
        if self._closing and not self._in_progress and not self.closed:
            self._close_now()

    def abort(self) -> None:
        """Drop the connection at once, unsent data included."""
        self._out.clear()
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()
