"""The blocking layer: one socket, one thread, messages in arrival order.

A thin shell around `ClientSession`: it reads bytes and hands them to the
session, which decodes them and says which message answers the request being
waited for; everything else (events, responses nobody awaits) is kept in
`pending`, in arrival order, for `receive()`.
"""

from __future__ import annotations

import collections
import socket
import struct
import time
from typing import TypeVar, overload

from google.protobuf.message import Message

from optivex.client.session import (
    ClientSession,
    ConnectionClosed,
    ProtocolViolation,
    RequestFailed,
    RequestTimeout,
    UnexpectedMessage,
)
from optivex.proto import common_pb2
from optivex.protocols import Protocol
from optivex.wire import READ_SIZE

M = TypeVar("M", bound=Message)
DEFAULT_TIMEOUT = 3.0
"""Seconds `receive` and `request` wait when not told otherwise."""


class SyncClient:
    """Blocking connection to one component.

    `receive()` returns messages in the order they arrived; `request()` sends
    and returns the response to that request (matched by the session), keeping
    whatever else arrived meanwhile (events) in `pending` for later `receive()`
    calls. The response to a request sent with `send()` is not awaited: it is
    received like an event. A request whose deadline passes raises
    `RequestTimeout` and is forgotten: its late response is dropped.

    `busy_poll` (seconds): before sleeping in a read, poll the socket for up
    to that long. A bot that waits for its responses gets them sooner (a
    process woken from sleep costs tens of microseconds on a virtual machine)
    at the price of a busy core while it waits.
    """

    def __init__(
        self,
        host: str,
        port: int,
        protocol: Protocol | str,
        timeout: float = DEFAULT_TIMEOUT,
        busy_poll: float = 0.0,
    ) -> None:
        self.session = ClientSession(protocol)
        self.timeout = timeout
        self.busy_poll = busy_poll
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking mode with the kernel's receive timeout: one recv() syscall
        # per read, where Python's own timeouts add a poll() (and settimeout()
        # fcntl calls) to every read: tens of microseconds a round trip here.
        self.sock.settimeout(None)
        self._receive_timeout = 0.0
        self.pending: collections.deque[Message] = collections.deque()
        """Messages received and not yet returned by `receive`, in arrival order."""
        self._answered: dict[int, Message] = {}
        """Responses the session matched, until `request` returns them."""
        self.closed = False

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()
        self.session.forget_all()

    def send(self, *messages: Message) -> None:
        """Send messages in one write; requests without a request_id get one (their responses are events)."""
        session = self.session
        for message in messages:
            session.prepare(message)
        self.sock.sendall(b"".join(session.encode(m) for m in messages))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, deadline: float) -> None:
        """One read; its events go to `pending`, its matched responses to `_answered`."""
        session = self.session
        if session.error is not None:
            if not self.closed:
                self.closed = True
                self.close()
            raise ProtocolViolation(f"protocol violation by the server: {session.error}")
        try:
            data = self._poll(deadline) if self.busy_poll else None
            if data is None:
                data = self._wait(deadline)
        except ConnectionError as exc:
            self.closed = True
            raise ConnectionClosed(str(exc)) from exc
        if not data:
            self.closed = True
            raise ConnectionClosed("closed by the server")
        session.feed_data(data, self.pending.append, self._answered.__setitem__)

    def _poll(self, deadline: float) -> bytes | None:
        """Read without sleeping, for up to `busy_poll` seconds; None when nothing came."""
        sock = self.sock
        until = min(time.monotonic() + self.busy_poll, deadline)
        while True:
            try:
                return sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.monotonic() >= until:
                    return None

    def _wait(self, deadline: float) -> bytes:
        """Sleep in reads until data comes or `deadline`; b"" when the server closed."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message within the timeout")
            current = self._receive_timeout
            if current > remaining + 0.001 or current < remaining / 2:
                seconds = int(remaining)
                micros = max(1, int((remaining - seconds) * 1_000_000)) if seconds == 0 else 0
                self.sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, micros)
                )
                self._receive_timeout = seconds + micros / 1_000_000
            try:
                return self.sock.recv(READ_SIZE)
            except (BlockingIOError, TimeoutError):
                continue  # the kernel's timeout is rounded: it may wake early; the deadline decides

    def receive(self, timeout: float | None = None) -> Message:
        """The next message, waiting up to `timeout` seconds (TimeoutError after)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.pending:
            self._read(deadline)
        return self.pending.popleft()

    def receive_as(self, cls: type[M], timeout: float | None = None) -> M:
        """The next message, which must be a `cls` (UnexpectedMessage, an AssertionError, if not)."""
        message = self.receive(timeout)
        if not isinstance(message, cls):
            raise UnexpectedMessage(cls, message)
        return message

    @overload
    def request(self, message: Message, timeout: float | None = None, check: bool = False) -> Message: ...

    @overload
    def request(
        self, message: Message, timeout: float | None = None, check: bool = False, *, expect: type[M]
    ) -> M: ...

    def request(
        self,
        message: Message,
        timeout: float | None = None,
        check: bool = False,
        *,
        expect: type[Message] | None = None,
    ) -> Message:
        """Send a request and return its response.

        `check` raises RequestFailed when the response carries an error;
        `expect` (the response class) types the result for the caller and
        must be the class the protocol answers `message` with. After
        `timeout` seconds (the client's `timeout` by default) RequestTimeout,
        and the request is forgotten.
        """
        session = self.session
        request_id, frame = session.encode_request(message, expect)
        answered = self._answered
        try:
            self.sock.sendall(frame)
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            while (response := answered.pop(request_id, None)) is None:
                self._read(deadline)
        except BaseException as exc:
            session.forget(request_id)
            answered.pop(request_id, None)
            if isinstance(exc, TimeoutError):
                raise RequestTimeout(request_id, self.timeout if timeout is None else timeout) from None
            raise
        if check:
            error: str = getattr(response, "error_message", "")
            if error:
                raise RequestFailed(response)
        return response

    def login(
        self, username: str, password: str = "", timeout: float | None = None
    ) -> common_pb2.LoginResponse:
        """Log in; raises RequestFailed when refused."""
        return self.request(
            common_pb2.LoginRequest(username=username, password=password),
            timeout,
            True,
            expect=common_pb2.LoginResponse,
        )

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Read (and drop) messages until the server closes; False on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self._read(deadline)
                self.pending.clear()
                self._answered.clear()
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False
