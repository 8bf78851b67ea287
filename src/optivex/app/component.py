"""The base of every component: serving a protocol, login, dispatch, lifecycle.

A component subclasses Component, names its protocols and marks one method
per request type with ``@handles(RequestClass)``. The base decodes each frame
once, answers requests before login with an error where login is required,
turns a handler's exception into an error response (never a dead process)
and fans events out to logged-in connections, encoding each message once.

``run_component(Cls)`` is the whole of a component's ``main``: ``-c config``,
validation, logging, users, the event loop (uvloop where available), signals.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from google.protobuf.message import DecodeError, Message

from optivex.app.auth import NOT_LOGGED_IN, Authenticator
from optivex.app.config import ComponentConfig, ConfigError, load_config
from optivex.app.users import User, load_users
from optivex.net import BusyPoll, Connection
from optivex.proto import common_pb2
from optivex.protocols import LOGIN_REQUEST, Protocol, protocol_for
from optivex.wire import encode_frame

Handler = Callable[[Connection, Any], Awaitable[None] | None]
F = TypeVar("F", bound=Callable[..., Any])

_HANDLES_ATTR = "_optivex_handles"
INTERNAL_ERROR = "internal error; the request was not carried out"


def handles(request: type[Message]) -> Callable[[F], F]:
    """Mark a method as the handler of one request message class."""

    def mark(method: F) -> F:
        setattr(method, _HANDLES_ATTR, request)
        return method

    return mark


class Component:
    """A TCP server speaking one or more protocols on one port."""

    name: ClassVar[str]
    """Short name, used for the log file and messages."""
    protocols: ClassVar[tuple[str, ...]]
    default_auth_required: ClassVar[bool] = True
    default_busy_poll_microseconds: ClassVar[int] = 0
    """How long the loop polls instead of sleeping after a read, unless the config says (net.busy_poll)."""

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.protocol: Protocol = protocol_for(self.protocols)
        self.auth = Authenticator(users, config.auth_required)
        self.connections: set[Connection] = set()
        self.subscribers: dict[Connection, None] = {}
        """Logged-in connections, in login order: where events go."""
        self._max_unsent = config.max_unsent_bytes
        busy_poll = config.busy_poll_microseconds
        self.busy_poll_microseconds = self.default_busy_poll_microseconds if busy_poll is None else busy_poll
        self._busy_poll: BusyPoll | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[int, tuple[type[Message], Handler]] = {
            LOGIN_REQUEST: (common_pb2.LoginRequest, self._login),
        }
        for attr in dir(type(self)):
            request = getattr(getattr(type(self), attr), _HANDLES_ATTR, None)
            if request is not None:
                self._routes[self.protocol.types[request]] = (request, getattr(self, attr))

    # lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Connect to what this component depends on; runs before listening."""

    async def stop(self) -> None:
        """Release what start() acquired; runs after connections are closed."""

    async def serve(self) -> asyncio.Server:
        """Listen on the configured address."""
        loop = asyncio.get_running_loop()
        if self.busy_poll_microseconds:
            self._busy_poll = BusyPoll(loop, self.busy_poll_microseconds / 1_000_000)
        self._server = await loop.create_server(
            self._new_connection,
            self.config.listen_on.host,
            self.config.listen_on.port,
            reuse_address=True,
            backlog=1024,
        )
        return self._server

    def close_all(self) -> None:
        """Stop listening and close every connection, flushing what is queued."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()

    # FrameHandler -----------------------------------------------------

    def _new_connection(self) -> Connection:
        conn = Connection(self, self.log, max_unsent=self._max_unsent, busy_poll=self._busy_poll)
        self.connections.add(conn)
        return conn

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        route = self._routes.get(msg_type)
        if route is None:
            self.log.info(
                "ignoring message type %d from %s: not a request of %s",
                msg_type,
                conn.peer,
                self.protocol.name,
            )
            return
        cls, handler = route
        try:
            request = cls.FromString(payload)
        except DecodeError as exc:
            conn.close(f"protocol violation: payload of type {msg_type} is not a {cls.__name__} ({exc})")
            return
        if conn.user is None and msg_type != LOGIN_REQUEST and self.auth.auth_required:
            self.reply_error(conn, msg_type, request, NOT_LOGGED_IN)
            return
        sent_before = conn.frames_sent
        try:
            pending = handler(conn, request)
        except Exception:
            self.log.exception("handler of %s failed", cls.__name__)
            if conn.frames_sent == sent_before:  # never a second response to one request
                self.reply_error(conn, msg_type, request, INTERNAL_ERROR)
            return
        if pending is not None:
            self._run_async(conn, msg_type, request, pending)

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        self.connections.discard(conn)
        self.subscribers.pop(conn, None)
        if exc is not None:
            self.log.info("connection %s (user %s) lost: %s", conn.peer, conn.user, exc)
        self.on_disconnect(conn)

    def on_disconnect(self, conn: Connection) -> None:
        """Hook: a connection went away."""

    # helpers for handlers --------------------------------------------

    def encode(self, message: Message) -> bytes:
        return encode_frame(self.protocol.types[type(message)], message.SerializeToString())

    def reply(self, conn: Connection, message: Message) -> None:
        """Send one message to one connection."""
        conn.send(self.encode(message))

    def reply_error(self, conn: Connection, request_type: int, request: Message, error: str) -> None:
        """Answer `request` with its response type carrying only request_id and error_message."""
        response_cls = self.protocol.responses[request_type]
        request_id = getattr(request, "request_id", 0)
        self.reply(conn, response_cls(request_id=request_id, error_message=error))

    def broadcast(self, message: Message) -> None:
        """Send an event to every logged-in connection, encoded once."""
        self.broadcast_frames((self.encode(message),))

    def broadcast_frames(self, frames: Iterable[bytes]) -> None:
        """Send encoded events to every logged-in connection, as one piece of bytes shared by all."""
        data = b"".join(frames)
        if data:
            for conn in self.subscribers:
                conn.send(data)

    def _run_async(self, conn: Connection, msg_type: int, request: Message, pending: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await pending
            except Exception:
                self.log.exception("handler of %s failed", type(request).__name__)
                self.reply_error(conn, msg_type, request, INTERNAL_ERROR)
            finally:
                conn.release()

        conn.hold()
        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # login -------------------------------------------------------------

    def _login(self, conn: Connection, request: common_pb2.LoginRequest) -> None:
        error = self.auth.check(conn.user, request.username, request.password)
        self.reply(conn, common_pb2.LoginResponse(request_id=request.request_id, error_message=error))
        if error:
            self.log.info("login refused for %r from %s: %s", request.username, conn.peer, error)
            return
        conn.user = request.username
        self.log.info("%s logged in from %s", request.username or "(anonymous)", conn.peer)
        self.on_login(conn)
        self.subscribers[conn] = None

    def on_login(self, conn: Connection) -> None:
        """Hook: send a freshly logged-in connection the current state (before live events)."""


def setup_logging(name: str, config: ComponentConfig) -> logging.Logger:
    """Log to `<logDirectory>/<name>-<port>.log` and to stderr, at the configured level."""
    log_dir = config.log_directory
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"{name}-{config.listen_on.port}.log"
        file_handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write logs to {log_dir}: {exc.strerror or exc}") from exc
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger(f"optivex.{name}")
    logger.setLevel(config.log_level)
    logger.propagate = False
    for handler in (file_handler, logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def _serve_until_signalled(component: Component) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    starting = loop.create_task(component.start())
    signalled = loop.create_task(stopping.wait())
    await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await component.stop()
        return
    signalled.cancel()
    starting.result()
    server = await component.serve()
    # Everything allocated so far lives all day: keep it out of the collector's
    # scans, and collect young objects less often (orders are many and small).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    addresses = ", ".join(str(s.getsockname()[:2]) for s in server.sockets)
    polling = component.busy_poll_microseconds
    component.log.info(
        "%s listening on %s; %s",
        component.name,
        addresses,
        f"busy polling {polling} us after each read" if polling else "no busy polling",
    )
    await stopping.wait()
    component.log.info("%s stopping", component.name)
    component.close_all()
    await component.stop()
    await asyncio.sleep(0.05)  # let queued frames and close notifications go out
    component.abort_all()


def run_component(cls: type[Component], argv: list[str] | None = None) -> int:
    """The main of a component: `NAME -c config.json`; returns the exit status."""
    parser = argparse.ArgumentParser(prog=cls.name, description=cls.__doc__)
    parser.add_argument("-c", "--config", required=True, type=Path, help="component config (JSON)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, cls.default_auth_required)
        users = load_users(config.data_file_path)
        log = setup_logging(cls.name, config)
    except ConfigError as exc:
        print(f"{cls.name}: {exc}", file=sys.stderr)
        return 2
    log.info("%s starting with config %s (%d users)", cls.name, args.config, len(users))
    try:
        component = cls(config, users, log)
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            runner.run(_serve_until_signalled(component))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", config.listen_on.host, config.listen_on.port, exc)
        return 1
    log.info("%s stopped", cls.name)
    return 0
