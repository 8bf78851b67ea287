"""The frame codec: bytes in, frames out, and frames back to bytes (sans-I/O).

A frame is a 4-byte big-endian length N (4 + payload length), a 4-byte
big-endian message type and N - 4 bytes of payload (section 1 of the
contract). The codec knows nothing of protobuf or sockets.
"""

from __future__ import annotations

import struct

MAX_FRAME_LENGTH = 1_048_576
"""The largest legal value of N, the length field (type + payload)."""

READ_SIZE = 65_536
"""Bytes asked of one socket read. Larger asks cost a fresh mmap, a page fault
per page touched and a munmap on every read: measured, they tripled the
system time of a client woken once per event."""

_HEADER = struct.Struct(">II")
_LENGTH = struct.Struct(">I")
HEADER_SIZE = _HEADER.size

Frame = tuple[int, bytes]
"""(message type, payload)."""


class FrameError(Exception):
    """A protocol violation: the connection that sent it must be closed."""


class FrameDecoder:
    """Splits a byte stream into frames, however the stream was segmented.

    A bad length is a protocol violation, seen as soon as its four bytes are
    in (without waiting for the payload): ``feed`` still returns the frames
    that came before it, sets ``error`` and decodes nothing more. Bytes are
    copied only when a frame spans reads.
    """

    __slots__ = ("_needed", "_pending", "error")

    def __init__(self) -> None:
        self._pending = bytearray()
        self._needed = HEADER_SIZE  # bytes _pending must hold before parsing again
        self.error: FrameError | None = None
        """The violation that ended the stream, if any."""

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame.

        At most one frame's header and declared length (so at most
        ``HEADER_SIZE + MAX_FRAME_LENGTH - 4`` bytes) once ``feed`` returns.
        """
        return len(self._pending)

    @property
    def incomplete(self) -> bool:
        """Whether part of a frame was received and the rest is still awaited."""
        return bool(self._pending)

    def clear(self) -> None:
        """Forget a partial frame (its connection is being closed) and free its bytes."""
        self._pending = bytearray()
        self._needed = HEADER_SIZE

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in order (none once ``error`` is set)."""
        if self.error is not None:
            return []
        pending = self._pending
        if pending:
            pending += data
            if len(pending) < self._needed:
                if len(pending) >= 4:
                    self._check_length(_LENGTH.unpack_from(pending)[0])
                return []
            data = bytes(pending)
            pending.clear()
        frames: list[Frame] = []
        append = frames.append
        unpack = _HEADER.unpack_from
        offset = 0
        size = len(data)
        while size - offset >= HEADER_SIZE:
            length, msg_type = unpack(data, offset)
            if length < 4 or length > MAX_FRAME_LENGTH:
                self._check_length(length)
                return frames
            end = offset + 4 + length
            if end > size:
                self._needed = end - offset
                break
            append((msg_type, data[offset + HEADER_SIZE : end]))
            offset = end
        else:
            self._needed = HEADER_SIZE
            if size - offset >= 4 and not self._check_length(_LENGTH.unpack_from(data, offset)[0]):
                return frames  # a bad length without its type yet
        if offset < size:
            pending += data[offset:] if offset else data
        return frames

    def _check_length(self, length: int) -> bool:
        if 4 <= length <= MAX_FRAME_LENGTH:
            return True
        self.error = FrameError(f"frame length {length} outside 4..{MAX_FRAME_LENGTH}")
        self._pending.clear()
        return False


def encode_frame(msg_type: int, payload: bytes) -> bytes:
    """One frame's bytes."""
    if len(payload) + 4 > MAX_FRAME_LENGTH:
        raise ValueError(f"payload of {len(payload)} bytes does not fit in a frame")
    return _HEADER.pack(len(payload) + 4, msg_type) + payload
