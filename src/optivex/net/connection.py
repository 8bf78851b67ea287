"""One TCP connection carrying frames, for servers and clients alike.

Incoming bytes go through the sans-I/O FrameDecoder and each frame is handed
to a FrameHandler. Outgoing frames are queued and written together: one
``transport.write`` per read for the connection that sent the requests, and
one per event-loop iteration for every other connection, however many frames
were queued for it.

Output bound (the slow-consumer policy). A peer that does not read its data
must neither grow our memory without limit nor delay anyone else:

- while the transport holds more than ``pause_above`` unsent bytes we stop
  reading that peer's requests (backpressure: it cannot make us produce more
  responses than it consumes);
- if the unsent bytes still exceed ``max_unsent`` (events keep coming for it),
  the connection is aborted and the reason logged. Other connections are never
  blocked: writes never wait.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Protocol as TypingProtocol
from typing import cast

from optivex.wire import FrameDecoder, FrameError

DEFAULT_MAX_UNSENT = 8 * 1024 * 1024
DEFAULT_PAUSE_ABOVE = 1024 * 1024


class FrameHandler(TypingProtocol):
    """What a Connection reports to."""

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        """One complete frame arrived."""

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        """The connection is gone (closed by either side, reset, or aborted)."""


class Connection(asyncio.Protocol):
    """Frames in via the handler, frames out batched per loop iteration."""

    def __init__(
        self,
        handler: FrameHandler,
        log: logging.Logger,
        *,
        max_unsent: int = DEFAULT_MAX_UNSENT,
        pause_above: int = DEFAULT_PAUSE_ABOVE,
    ) -> None:
        self._handler = handler
        self._log = log
        self._decoder = FrameDecoder()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._max_unsent = max_unsent
        self._pause_above = pause_above
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed = False
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
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._log.warning("closing %s: %s", self.peer, exc)
            self.abort()
            return
        handler = self._handler
        for msg_type, payload in frames:
            if self.closed:
                return
            handler.frame_received(self, msg_type, payload)
        if self._out:
            # Answer the requester now rather than on the next loop iteration:
            # a round trip is one write shorter. Other connections' queued
            # frames still go out together on the scheduled flush.
            self.flush()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._out.clear()
        self._handler.connection_closed(self, exc)

    def pause_writing(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    # sending ----------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue one encoded frame; it is written with the others of this loop iteration."""
        if self.closed:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
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

    def close(self) -> None:
        """Flush what is queued, then close gracefully."""
        if self._transport is not None and not self.closed:
            self.flush()
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent data included."""
        self._out.clear()
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()
