"""The asyncio layer: requests answered by futures, events to a callback or a bounded queue.

A thin shell around `ClientSession` on the same `Connection` the servers use
(write batching, TCP_NODELAY, the slow-consumer bound on what we send): the
Connection splits the stream into frames, the session decodes each and says
whether it answers an awaited request (its future is resolved) or is an event.

Events go to `on_message` if set, else to the `messages` queue, read with
`receive()` / `receive_as()`. The queue is bounded without ever dropping an
event: once it holds `max_queued` events (DEFAULT_MAX_QUEUED unless told
otherwise) the client stops reading the socket (the server then sees a slow
consumer: its own bounds decide), and reads again once the consumer has
taken it down to half of that. The events of the read being handled when the
bound is reached are still queued, so the queue holds at most `max_queued`
plus one read's events.

Every request has a deadline: `request_timeout` seconds (DEFAULT_REQUEST_TIMEOUT
unless told otherwise; None for none) or the call's own `timeout`. Past it the
caller gets `RequestTimeout` (one timer per client, at the nearest deadline,
rather than one per request) and nothing is left behind: the future's entry is
freed and the session drops the late response, should it come. The same
happens when the caller cancels the future. When the connection closes, every
waiting request fails with `ConnectionClosed` (`ProtocolViolation` when the
server broke the protocol).

`request()` answers with a future; `request_callback()` is the same request
answered by a callback (the response, or the exception the future would have
raised), with no future and no task: the form for a server that forwards
many requests a second (the gateway). `request()` is built on it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from google.protobuf.message import Message

from optivex.client.session import (
    ClientSession,
    ConnectionClosed,
    ProtocolViolation,
    RequestFailed,
    RequestTimeout,
    UnexpectedMessage,
)
from optivex.net.connection import Connection, FrameHandler
from optivex.proto import common_pb2
from optivex.protocols import Protocol
from optivex.wire import FrameError

M = TypeVar("M", bound=Message)
MessageCallback = Callable[[Message], None]
DoneCallback = Callable[[Any], None]
"""Called once with a request's response, or with the exception that ended it
(RequestTimeout, ConnectionClosed)."""

DEFAULT_MAX_QUEUED = 1024
"""Events the `messages` queue holds before the client stops reading the socket."""
DEFAULT_REQUEST_TIMEOUT = 5.0
"""Seconds a request waits for its response unless told otherwise."""


class _ClientConnection(Connection):
    """A Connection whose reading also stops while its client's event queue is full.

    Connection pauses reading for reasons of its own (its output does not
    drain, an earlier read is still being handled); the consumer's reason is
    added here, on top of those, so that neither undoes the other's pause.
    It goes through Connection's own pause bookkeeping (`_set_paused`,
    `_reading_paused`, which its half-frame deadline also reads: a frame cut
    off by our pause is not the peer stalling); the queue-bound unit test
    fails if that stops working.
    """

    def __init__(self, handler: FrameHandler, log: logging.Logger) -> None:
        super().__init__(handler, log)
        self._consumer_full = False

    def _set_paused(self, **reasons: bool | None) -> None:
        super()._set_paused(**reasons)
        transport = self._transport
        if self._consumer_full and not self._reading_paused and transport is not None and not self.closed:
            self._reading_paused = True
            transport.pause_reading()

    def pause_reading(self) -> None:
        """Stop reading until `resume_reading` (and until the Connection's own reasons allow)."""
        self._consumer_full = True
        self._set_paused()

    def resume_reading(self) -> None:
        self._consumer_full = False
        self._set_paused()

    @property
    def violation(self) -> FrameError | None:
        """The bad frame length that made the Connection close, if that is why it closed."""
        return self._decoder.error


class _EventQueue(asyncio.Queue[Message]):
    """The events waiting for `receive`; each one taken may let the client read again."""

    def __init__(self, taken: Callable[[], None]) -> None:
        super().__init__()
        self._taken = taken

    def _get(self) -> Message:
        message = super()._get()
        self._taken()
        return message


class _Pending:
    """A request awaiting its response: whom to tell, and its deadline (loop time; None: none)."""

    __slots__ = ("deadline", "done", "seconds")

    done: DoneCallback
    deadline: float | None
    seconds: float
    """The request's timeout (for RequestTimeout's message)."""


_new_pending = object.__new__


class AsyncClient:
    """One connection to a component: requests answered by futures, events to a callback or queue.

    Requests get their request_id from the session (never reused on this
    connection), which matches each response to its request. Every other
    message, including the response to a request sent with `send()` (not
    awaited), is an event.
    """

    def __init__(
        self,
        protocol: Protocol | str,
        on_message: MessageCallback | None = None,
        log: logging.Logger | None = None,
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, not {max_queued}")
        self._loop = asyncio.get_running_loop()
        self.session = ClientSession(protocol)
        self.log = log or logging.getLogger("optivex.client")
        self.on_message = on_message
        """Called with each event, instead of queueing it, when set."""
        self.max_queued = max_queued
        self.request_timeout = request_timeout
        self.messages: asyncio.Queue[Message] = _EventQueue(self._event_taken)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Done once the connection is gone."""
        self._waiting: dict[int, _Pending] = {}
        """The requests the session awaits, by request_id."""
        self._sweep: asyncio.TimerHandle | None = None
        """The timer at the nearest deadline of the requests awaited (None while none has one)."""
        self._sweep_at = 0.0
        self._conn: _ClientConnection | None = None
        self._transport: asyncio.Transport | None = None
        self._queue_full = False
        self._failure: ConnectionClosed | None = None
        """Why the connection closed (or is closing), once known."""

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        protocol: Protocol | str,
        on_message: MessageCallback | None = None,
        log: logging.Logger | None = None,
        *,
        max_queued: int = DEFAULT_MAX_QUEUED,
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
    ) -> AsyncClient:
        """Open a connection (raises OSError when nobody listens)."""
        client = cls(protocol, on_message, log, max_queued=max_queued, request_timeout=request_timeout)
        transport, conn = await client._loop.create_connection(
            lambda: _ClientConnection(client, client.log), host, port
        )
        client._transport = transport
        client._conn = conn
        return client

    # FrameHandler -----------------------------------------------------

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        session = self.session
        waiting = self._waiting
        if waiting:  # the direct path of an awaited response: matched, popped, its waiter told
            answered = session.take_response(msg_type, payload)
            if answered is not None:
                request_id, response = answered
                pending = waiting.pop(request_id, None)
                if pending is not None:
                    try:  # _tell inlined
                        pending.done(response)
                    except Exception:
                        self.log.exception("a request's callback failed")
                return
        session.feed_frame(msg_type, payload, self._deliver, self._answered)
        if session.error is not None:
            self._fail(ProtocolViolation(f"protocol violation by the server: {session.error}"))

    def _answered(self, request_id: int, response: Message) -> None:
        pending = self._waiting.pop(request_id, None)
        if pending is not None:
            self._tell(pending, response)

    def _tell(self, pending: _Pending, result: Any) -> None:
        try:
            pending.done(result)
        except Exception:  # the caller's bug: logged, and the connection goes on
            self.log.exception("a request's callback failed")

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        if self._failure is None:
            violation = self._conn.violation if self._conn is not None else None
            if violation is not None:
                self._failure = ProtocolViolation(f"protocol violation by the server: {violation}")
            else:
                self._failure = ConnectionClosed(str(exc) if exc else "closed by the server")
        waiting, self._waiting = self._waiting, {}
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for pending in waiting.values():
            self._tell(pending, self._closed_error())
        self.session.forget_all()
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, failure: ConnectionClosed) -> None:
        if self._failure is None:
            self._failure = failure
        if self._conn is not None:
            self._conn.close(str(failure))

    def _closed_error(self) -> ConnectionClosed:
        """A fresh exception saying why the connection closed."""
        failure = self._failure or ConnectionClosed("connection is closed")
        return type(failure)(str(failure))

    def _deliver(self, message: Message) -> None:
        callback = self.on_message
        if callback is not None:
            try:
                callback(message)
            except Exception:
                self.log.exception("on_message failed on a %s", type(message).__name__)
            return
        queue = self.messages
        queue.put_nowait(message)
        if not self._queue_full and queue.qsize() >= self.max_queued and self._conn is not None:
            self._queue_full = True
            self._conn.pause_reading()

    def _event_taken(self) -> None:
        if self._queue_full and self.messages.qsize() <= self.max_queued // 2:
            self._queue_full = False
            if self._conn is not None:
                self._conn.resume_reading()

    # API --------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise ConnectionClosed("not connected")
        return self._conn

    @property
    def reading_paused(self) -> bool:
        """Whether the socket is not being read now (the queue is full, or the Connection holds back)."""
        transport = self._transport
        return transport is not None and not transport.is_closing() and not transport.is_reading()

    def send(self, message: Message) -> None:
        """Send without waiting for anything (a request's response will be an event)."""
        self.session.prepare(message)
        self.connection.send(self.session.encode(message))

    @overload
    def request(self, message: Message, timeout: float | None = None) -> asyncio.Future[Message]: ...

    @overload
    def request(
        self, message: Message, timeout: float | None = None, *, expect: type[M]
    ) -> asyncio.Future[M]: ...

    def request(
        self, message: Message, timeout: float | None = None, *, expect: type[Message] | None = None
    ) -> asyncio.Future[Any]:
        """Send a request; the future resolves to its response.

        After `timeout` seconds (the client's `request_timeout` by default) it
        fails with RequestTimeout; `expect` (the response class) types the
        result and must be the class the protocol answers `message` with.
        """
        future: asyncio.Future[Message] = self._loop.create_future()
        request_id = self.request_callback(
            message, functools.partial(_resolve, future), timeout, expect=expect
        )
        future.add_done_callback(functools.partial(self._settled, request_id))
        return future

    def request_callback(
        self,
        message: Message,
        done: DoneCallback,
        timeout: float | None = None,
        *,
        expect: type[Message] | None = None,
    ) -> int:
        """Send a request; `done` is called once with its response, or with the RequestTimeout or
        ConnectionClosed that ended it (never from inside this call). Returns its request_id.

        Raises at once, sending nothing, if the connection is closed or `expect` is not the class the
        protocol answers `message` with.
        """
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("not connected")
        if conn.closed or self.closed.done():
            raise self._closed_error()
        request_id, frame = self.session.encode_request(message, expect)
        seconds = self.request_timeout if timeout is None else timeout
        # _Pending's fields set here, without a call of its __init__: every forwarded request comes this way
        self._waiting[request_id] = pending = _new_pending(_Pending)
        pending.done = done
        if seconds is None:
            pending.deadline = None
            pending.seconds = 0.0
        else:
            pending.deadline = deadline = self._loop.time() + seconds
            pending.seconds = seconds
            if self._sweep is None or deadline < self._sweep_at:
                self._expire_at(deadline)
        conn.send(frame)
        return request_id

    def _expire(self) -> None:
        """Fail every awaited request past its deadline; check again later while some have one."""
        self._sweep = None
        now = self._loop.time()
        waiting = self._waiting
        expired = [i for i, p in waiting.items() if p.deadline is not None and p.deadline <= now]
        for request_id in expired:
            pending = waiting.pop(request_id)
            self.session.forget(request_id)
            self._tell(pending, RequestTimeout(request_id, pending.seconds))
        nearest = min((p.deadline for p in waiting.values() if p.deadline is not None), default=None)
        if nearest is not None:
            self._expire_at(nearest)

    def _expire_at(self, when: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = when
        self._sweep = self._loop.call_at(when, self._expire)

    def _settled(self, request_id: int, future: asyncio.Future[Message]) -> None:
        """A request's future is done: if its caller cancelled it, nobody waits for the response."""
        if future.cancelled() and self._waiting.pop(request_id, None) is not None:
            self.session.forget(request_id)

    @overload
    async def call(self, message: Message, timeout: float | None = None) -> Message: ...

    @overload
    async def call(self, message: Message, timeout: float | None = None, *, expect: type[M]) -> M: ...

    async def call(
        self, message: Message, timeout: float | None = None, *, expect: type[Message] | None = None
    ) -> Any:
        """Send a request and return its response; RequestFailed if it carries an error."""
        response = await (
            self.request(message, timeout)
            if expect is None
            else self.request(message, timeout, expect=expect)
        )
        if getattr(response, "error_message", ""):
            raise RequestFailed(response)
        return response

    async def login(
        self, username: str, password: str = "", timeout: float | None = None
    ) -> common_pb2.LoginResponse:
        """Log in; raises RequestFailed when refused."""
        return await self.call(
            common_pb2.LoginRequest(username=username, password=password),
            timeout,
            expect=common_pb2.LoginResponse,
        )

    async def receive(self, timeout: float | None = None) -> Message:
        """The next event (when no on_message callback is set).

        Events queued before the connection closed are still returned; then
        ConnectionClosed. TimeoutError after `timeout` seconds, if given.
        """
        queue = self.messages
        if not queue.empty():
            return queue.get_nowait()
        if self.closed.done():
            raise self._closed_error()
        getter = self._loop.create_task(queue.get())
        try:
            await asyncio.wait((getter, self.closed), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        if self.closed.done():
            raise self._closed_error()
        raise TimeoutError(f"no message within {timeout:g} s")

    async def receive_as(self, cls: type[M], timeout: float | None = None) -> M:
        """The next event, which must be a `cls` (UnexpectedMessage, an AssertionError, if not)."""
        message = await self.receive(timeout)
        if not isinstance(message, cls):
            raise UnexpectedMessage(cls, message)
        return message

    def close(self) -> None:
        """Close the connection (`closed` is done once it is gone)."""
        if self._conn is not None and not self._conn.closed:
            if self._failure is None:
                self._failure = ConnectionClosed("closed by the client")
            self._conn.close()


def _resolve(future: asyncio.Future[Message], result: Any) -> None:
    """A request's outcome to its future (unless its caller cancelled it)."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
