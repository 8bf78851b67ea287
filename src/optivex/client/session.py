"""The client side of a protocol connection, without I/O: the one core both client layers use.

`ClientSession` turns requests into frames and received bytes (or frames) into
typed results, and it is the ONE place where responses are matched to
requests:

- `encode_request` gives a request a fresh request_id (unless it has one) and
  remembers that its response is awaited;
- every message received is then either a `Response` (its class is the
  response class of an awaited request and its request_id is that request's:
  the session stops waiting for it) or an `Event` (everything else: events,
  and responses to requests nobody awaits, such as those sent with
  `encode`/`send` only or with an id the session never issued);
- `forget` stops waiting for a request (its deadline passed, its caller gave
  up). Its response, should it still come, is dropped: a caller that has been
  told "timed out" never sees it, and a client that does not read events is
  not filled up by late answers. Only the id is remembered for that, in a
  table of at most `MAX_ABANDONED` ids (the oldest is forgotten first; a late
  response whose id was forgotten too becomes an `Event`).

Frames of a type the protocol does not know are skipped (counted in
`skipped`). A protocol violation by the server (a bad frame length, a payload
that does not decode as its type) ends the stream: the results before it are
returned, `error` says what happened and nothing more is decoded; the layers
then close the connection and raise `ProtocolViolation`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from optivex.protocols import PROTOCOLS, Protocol
from optivex.wire import Frame, FrameDecoder, FrameError, encode_frame

M = TypeVar("M", bound=Message)

MAX_ABANDONED = 1024
"""Request ids forgotten (timed out, cancelled) whose late responses are still recognised and dropped."""


class ConnectionClosed(Exception):
    """The server closed the connection (or it was reset)."""


class ProtocolViolation(ConnectionClosed):
    """The server broke the protocol (bad frame length, undecodable payload); the connection is closed."""


class RequestFailed(Exception):
    """A response carried an error_message."""

    def __init__(self, response: Message) -> None:
        self.response = response
        super().__init__(getattr(response, "error_message", "request failed"))


class RequestTimeout(TimeoutError):
    """No response within the request's deadline; the client no longer waits for it."""

    def __init__(self, request_id: int, seconds: float) -> None:
        self.request_id = request_id
        self.seconds = seconds
        super().__init__(f"no response to request {request_id} within {seconds:g} s")


class UnexpectedMessage(AssertionError):
    """`receive_as` got a message of another class than the one it was told to expect."""

    def __init__(self, expected: type[Message], message: Message) -> None:
        self.message = message
        text = str(message).replace("\n", " ")
        if len(text) > 200:
            text = text[:200] + "..."
        super().__init__(f"expected {expected.__name__}, got {type(message).__name__}: {text}")


@dataclass(slots=True)
class Response(Generic[M]):
    """The response to a request this session awaited."""

    request_id: int
    message: M


@dataclass(slots=True)
class Event:
    """A message that answers no awaited request: an event, or a response nobody waits for."""

    message: Message


Received = Response[Message] | Event
"""What the session makes of one received message."""
EventSink = Callable[[Message], object]
"""Takes each message that is an event (see `ClientSession.feed_data`)."""
ResponseSink = Callable[[int, Message], object]
"""Takes each response matched to an awaited request: (request_id, response)."""


class ClientSession:
    """Encodes requests, decodes received bytes, matches responses to the requests awaiting them."""

    def __init__(self, protocol: Protocol | str) -> None:
        self.protocol = PROTOCOLS[protocol] if isinstance(protocol, str) else protocol
        self._decoder = FrameDecoder()
        self._request_ids = itertools.count(1)
        self.response_classes = frozenset(self.protocol.responses.values())
        self._response_types = {self.protocol.types[cls]: cls for cls in self.response_classes}
        """MessageType -> response class, for `take_response`."""
        self._waiting: dict[int, type[Message]] = {}
        """request_id -> the class of the response awaited."""
        self._abandoned: dict[int, type[Message]] = {}
        """Forgotten requests, oldest first, whose late responses are dropped."""
        self._violation: FrameError | None = None
        self.skipped = 0
        """Frames of a type this protocol does not know, skipped so far."""

    # requests ---------------------------------------------------------

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
        """The frame carrying `message` (its response, if any, will be an Event: nobody awaits it)."""
        return encode_frame(self.protocol.types[type(message)], message.SerializeToString())

    def response_class(self, request: Message) -> type[Message]:
        """The class of the response to `request`; ValueError if it is not a request of this protocol."""
        cls = self.protocol.responses.get(self.protocol.types.get(type(request), -1))
        if cls is None:
            raise ValueError(f"{type(request).__name__} is not a request of protocol {self.protocol.name}")
        return cls

    def encode_request(self, request: Message, expect: type[Message] | None = None) -> tuple[int, bytes]:
        """(request_id, frame) of a request whose response is then awaited (see `forget`).

        A request_id of 0 is replaced by a fresh one; a request_id already
        awaited is a ValueError (its responses could not be told apart), and
        so is a request of another protocol; an `expect` that is not the
        class of its response is a TypeError (nothing is awaited then).
        """
        # prepare, response_class and encode inlined: this is every request's path
        protocol = self.protocol
        msg_type = protocol.types.get(type(request), -1)
        expected = protocol.responses.get(msg_type)
        if expected is None:
            raise ValueError(f"{type(request).__name__} is not a request of protocol {protocol.name}")
        if expect is not None and expect is not expected:
            raise TypeError(f"{type(request).__name__} is not answered by {expect.__name__}")
        request_id: int = request.request_id  # type: ignore[attr-defined]
        if not request_id:
            request_id = next(self._request_ids)
            request.request_id = request_id  # type: ignore[attr-defined]
        waiting = self._waiting
        if request_id in waiting:
            raise ValueError(f"request_id {request_id} is already awaited")
        frame = encode_frame(msg_type, request.SerializeToString())
        if self._abandoned:
            self._abandoned.pop(request_id, None)
        waiting[request_id] = expected
        return request_id, frame

    def forget(self, request_id: int) -> None:
        """Stop waiting for a request; its response, should it come, is dropped."""
        expected = self._waiting.pop(request_id, None)
        if expected is None:
            return
        abandoned = self._abandoned
        abandoned[request_id] = expected
        if len(abandoned) > MAX_ABANDONED:
            del abandoned[next(iter(abandoned))]

    def forget_all(self) -> None:
        """Stop waiting for every request (the connection is gone)."""
        self._waiting.clear()
        self._abandoned.clear()

    @property
    def in_flight(self) -> int:
        """Requests whose responses are awaited."""
        return len(self._waiting)

    def awaits(self, request_id: int) -> bool:
        return request_id in self._waiting

    # received data ----------------------------------------------------

    def receive_data(self, data: bytes) -> list[Received]:
        """What the messages completed by `data` are, in arrival order (see the module docstring)."""
        out: list[Received] = []
        self.feed_data(data, lambda m: out.append(Event(m)), lambda i, m: out.append(Response(i, m)))
        return out

    def receive_frame(self, msg_type: int, payload: bytes) -> Received | None:
        """One frame already split from the stream (by a Connection); None when skipped or undecodable."""
        out: list[Received] = []
        self.feed_frame(
            msg_type, payload, lambda m: out.append(Event(m)), lambda i, m: out.append(Response(i, m))
        )
        return out[0] if out else None

    def receive(self, data: bytes) -> list[Message]:
        """Messages completed by `data`, responses and events alike (late responses dropped).

        Types this protocol does not know are skipped; a protocol violation
        ends the stream (see `error`).
        """
        out: list[Message] = []
        self.feed_data(data, out.append, lambda _, m: out.append(m))
        return out

    def feed_data(self, data: bytes, on_event: EventSink, on_response: ResponseSink) -> None:
        """`receive_data` without the wrapping: each message, in arrival order, to one of the two sinks.

        What the layers use: an event costs one call of `on_event` (a
        ``deque.append`` in SyncClient) and no allocation of its own.
        """
        if self._violation is None:
            self._classify(self._decoder.feed(data), on_event, on_response)

    def feed_frame(
        self, msg_type: int, payload: bytes, on_event: EventSink, on_response: ResponseSink
    ) -> None:
        """`receive_frame` without the wrapping (see `feed_data`)."""
        if self._violation is None:
            self._classify(((msg_type, payload),), on_event, on_response)

    def take_response(self, msg_type: int, payload: bytes) -> tuple[int, Message] | None:
        """(request_id, response) if this frame answers an awaited request (the session stops waiting
        for it), else None.

        None means the frame is anything else (an event, a response nobody
        awaits, an undecodable payload): nothing was classified, and
        `feed_frame` must take it. The fast path of a client whose frames are
        mostly awaited responses (a forwarding server's link): one decode, one
        match, no sink calls.
        """
        cls = self._response_types.get(msg_type)
        if cls is None or self._violation is not None:
            return None
        try:
            message = cls.FromString(payload)
        except DecodeError:
            return None
        request_id: int = message.request_id  # type: ignore[attr-defined]
        waiting = self._waiting
        if waiting.get(request_id) is not cls:
            return None
        del waiting[request_id]
        return request_id, message

    def _classify(self, frames: Iterable[Frame], on_event: EventSink, on_response: ResponseSink) -> None:
        """Decode frames and match responses to awaited requests: the one place where that happens."""
        classes = self.protocol.classes
        response_classes = self.response_classes
        waiting = self._waiting
        abandoned = self._abandoned
        for msg_type, payload in frames:
            cls = classes.get(msg_type)
            if cls is None:
                self.skipped += 1
                continue
            try:
                message = cls.FromString(payload)
            except DecodeError as exc:
                self._violation = FrameError(f"undecodable {cls.__name__} (type {msg_type}): {exc}")
                return
            if (waiting or abandoned) and cls in response_classes:
                request_id: int = message.request_id  # type: ignore[attr-defined]
                if waiting.get(request_id) is cls:
                    del waiting[request_id]
                    on_response(request_id, message)
                    continue
                if abandoned.get(request_id) is cls:
                    del abandoned[request_id]
                    continue
            on_event(message)

    @property
    def error(self) -> FrameError | None:
        """The server's protocol violation that ended the stream, if any."""
        return self._violation or self._decoder.error

    def is_response(self, message: Message) -> bool:
        """Whether `message` is of a response class of this protocol (awaited or not)."""
        return type(message) in self.response_classes
