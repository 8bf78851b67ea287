"""The client side of a protocol connection, without I/O."""

from __future__ import annotations

import itertools

from google.protobuf.message import Message

from optivex.protocols import PROTOCOLS, Protocol
from optivex.wire import FrameDecoder, FrameError, encode_frame


class ConnectionClosed(Exception):
    """The server closed the connection (or it was reset)."""


class RequestFailed(Exception):
    """A response carried an error_message."""

    def __init__(self, response: Message) -> None:
        self.response = response
        super().__init__(getattr(response, "error_message", "request failed"))


class ClientSession:
    """Encodes messages into frames and decodes received bytes into messages."""

    def __init__(self, protocol: Protocol | str) -> None:
        self.protocol = PROTOCOLS[protocol] if isinstance(protocol, str) else protocol
        self._decoder = FrameDecoder()
        self._request_ids = itertools.count(1)
        self.response_classes = frozenset(self.protocol.responses.values())

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def prepare(self, message: Message) -> int:
        """Give a request without one a fresh request_id; return its request_id."""
        request_id: int = getattr(message, "request_id", 0)
        if request_id == 0 and hasattr(message, "request_id"):
            request_id = self.next_request_id()
            message.request_id = request_id
        return request_id

    def encode(self, message: Message) -> bytes:
        """The frame carrying `message`."""
        return encode_frame(self.protocol.types[type(message)], message.SerializeToString())

    def receive(self, data: bytes) -> list[Message]:
        """Messages completed by `data`; types this protocol does not know are skipped.

        Raises google.protobuf.message.DecodeError on an undecodable payload;
        a bad frame length ends the stream: see `error`.
        """
        classes = self.protocol.classes
        out: list[Message] = []
        for msg_type, payload in self._decoder.feed(data):
            cls = classes.get(msg_type)
            if cls is not None:
                out.append(cls.FromString(payload))
        return out

    @property
    def error(self) -> FrameError | None:
        """The server's protocol violation that ended the stream, if any."""
        return self._decoder.error

    def is_response(self, message: Message) -> bool:
        return type(message) in self.response_classes
