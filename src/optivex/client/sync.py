"""A blocking client: one socket, one thread, messages in arrival order."""

from __future__ import annotations

import collections
import socket
import struct
import time
from typing import TypeVar

from google.protobuf.message import Message

from optivex.client.session import ClientSession, ConnectionClosed, RequestFailed
from optivex.proto import common_pb2
from optivex.protocols import Protocol
from optivex.wire import READ_SIZE

M = TypeVar("M", bound=Message)
DEFAULT_TIMEOUT = 3.0


class SyncClient:
    """Blocking connection to one component.

    `receive()` returns messages in the order they arrived; `request()` sends
    and returns the response with the same request_id, keeping whatever
    arrived before it (events) for later `receive()` calls.

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
        self.closed = False

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, *messages: Message) -> None:
        """Send messages in one write; requests without a request_id get one."""
        session = self.session
        for message in messages:
            session.prepare(message)
        self.sock.sendall(b"".join(session.encode(m) for m in messages))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, deadline: float) -> None:
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
        self.pending.extend(self.session.receive(data))
        if self.session.error is not None and not self.pending:
            self.closed = True
            raise ConnectionClosed(f"protocol violation by the server: {self.session.error}")

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
        """The next message, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.pending:
            self._read(deadline)
        return self.pending.popleft()

    def receive_as(self, cls: type[M], timeout: float | None = None) -> M:
        """The next message, which must be a `cls`."""
        message = self.receive(timeout)
        if not isinstance(message, cls):
            raise AssertionError(f"expected {cls.__name__}, got {type(message).__name__}: {message}")
        return message

    def request(self, message: Message, timeout: float | None = None, check: bool = False) -> Message:
        """Send a request and return its response; `check` raises RequestFailed on an error."""
        request_id = self.session.prepare(message)
        self.sock.sendall(self.session.encode(message))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = 0
        while True:
            while seen < len(self.pending):
                candidate = self.pending[seen]
                if self.session.is_response(candidate) and candidate.request_id == request_id:  # type: ignore[attr-defined]
                    del self.pending[seen]
                    if check and candidate.error_message:  # type: ignore[attr-defined]
                        raise RequestFailed(candidate)
                    return candidate
                seen += 1
            self._read(deadline)

    def login(
        self, username: str, password: str = "", timeout: float | None = None
    ) -> common_pb2.LoginResponse:
        """Log in; raises RequestFailed when refused."""
        response = self.request(common_pb2.LoginRequest(username=username, password=password), timeout, True)
        assert isinstance(response, common_pb2.LoginResponse)
        return response

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Read (and drop) messages until the server closes; False on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while True:
                self._read(deadline)
                self.pending.clear()
        except ConnectionClosed:
            return True
        except TimeoutError:
            return False
