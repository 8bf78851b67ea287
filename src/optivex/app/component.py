"""The base of every component: serving a protocol, login, dispatch, lifecycle.

A component subclasses Component, names its protocols and marks one method
per request type with ``@handles(RequestClass)``. The base decodes each frame
once, answers requests before login with an error where login is required,
turns a handler's exception into an error response (never a dead process)
and fans events out to logged-in connections, encoding each message once.

Every request is answered exactly once, through its `Reply`: the handler's
first argument, ``handler(reply, request)``. ``reply.send(response)`` or
``reply.error(text)`` answers (the MessageType comes from the protocol
table), or ``reply.relay(response)`` with another protocol's message of the
same wire form (a forwarded request's response, re-labelled with this
request's id); a second answer is refused and logged as a bug. A handler that
raises or returns (a coroutine: finishes) without answering gets
INTERNAL_ERROR as its answer; one that raises after answering gets nothing
more. Frames the handler sends the requester otherwise (events) are not
answers.

Logging what clients send: client strings go through
`optivex.logsafe.loggable` (escaped, truncated), and complaints about a
connection's requests (unknown message types, requests before login,
refused logins) through `complain`, which logs at most
MAX_COMPLAINTS_PER_CONNECTION of them per connection.

``run_component(Cls)`` is the whole of a component: ``-c config``, validation,
logging, users, the event loop (uvloop where available), signals; its console
script enters through `optivex.app.launch`, which listens before importing it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import inspect
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar, cast

from google.protobuf.message import DecodeError, Message

from optivex.app.auth import NOT_LOGGED_IN, Authenticator
from optivex.app.config import ComponentConfig, ConfigError, load_config
from optivex.app.dependents import Dependency, Link, create_links
from optivex.app.launch import (
    LISTEN_BACKLOG,
    STOP_SIGNALS,
    argument_parser,
    new_event_loop,
    notify_ready,
    stop_requested,
)
from optivex.app.users import User, load_users
from optivex.logsafe import loggable
from optivex.net import BusyPoll, Connection
from optivex.proto import common_pb2
from optivex.protocols import LOGIN_REQUEST, Protocol, protocol_for
from optivex.wire import encode_frame

F = TypeVar("F", bound=Callable[..., Any])
Handler = Callable[["Reply", Any], Awaitable[None] | None]
"""``handler(reply, request)``: a method, or a coroutine method, marked with @handles."""

_HANDLES_ATTR = "_optivex_handles"
INTERNAL_ERROR = "internal error; the request was not carried out"
MAX_COMPLAINTS_PER_CONNECTION = 10
"""Complaints about one connection's requests that are logged (see Component.complain); later
ones are only counted, and their number logged when the connection closes."""
REFUSALS_LOGGED_EVERY = 10.0
"""Seconds between log lines about connections refused past maxConnections (the first at once)."""
DESCRIPTOR_RESERVE = 256
"""File descriptors kept for what is not a client connection (links, logs, listening sockets)."""

# The states of a Reply.
_OPEN = 0
"""Its handler runs and has not answered."""
_ANSWERED = 1
"""Answered; its handler may still run."""
_FINISHED = 2
"""Its handler is done (sync: returned; async: the coroutine ended); nothing more may be sent."""


class _Route:
    """What the base needs to dispatch one request type and to answer it."""

    __slots__ = (
        "handler",
        "is_async",
        "needs_login",
        "relayable",
        "request_cls",
        "response_cls",
        "response_type",
    )

    def __init__(
        self,
        request_cls: type[Message],
        handler: Handler,
        response_cls: type[Message],
        response_type: int,
        needs_login: bool,
    ) -> None:
        self.request_cls = request_cls
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.response_cls = response_cls
        self.response_type = response_type
        self.needs_login = needs_login
        self.relayable: dict[type[Message], bool] = {response_cls: True}
        """Whether a class's messages may answer this request through ``Reply.relay`` (same wire form)."""


def same_wire_form(a: type[Message], b: type[Message]) -> bool:
    """Whether messages of `a` and `b` encode alike: the same fields (name, number, type, label)."""

    def form(cls: type[Message]) -> set[tuple[str, int, int, bool]]:
        return {(f.name, f.number, f.type, f.is_repeated) for f in cls.DESCRIPTOR.fields}

    return form(a) == form(b)


class Reply:
    """The one answer owed to one request: given to its handler, consumed by the call that answers.

    ``send(response)`` answers with the request's response class (anything
    else is refused as a bug), ``error(text)`` with that class carrying only
    request_id and error_message, ``relay(response)`` with a message of
    another class of the same wire form. Once answered, a further answer is
    refused and logged as a bug, never sent.

    A sync handler must answer before it returns: the base reuses one Reply
    for every sync request (no allocation on the hot path), so its Reply is
    valid only during the call. An async handler gets a Reply of its own,
    valid until its coroutine ends. A sync handler that forwards the request
    and answers from a callback calls ``defer()``: it gets a Reply of its own,
    valid until answered, and the connection counts the request in flight
    (net.Connection's MAX_IN_FLIGHT) until then; or ``defer_async(handler)``
    to go on in a coroutine (as if the handler had been async).
    """

    __slots__ = ("_component", "_held", "_route", "_state", "conn", "request")

    conn: Connection
    """The requester."""
    request: Any
    """The request being answered (a message of its handler's request class)."""

    def __init__(self, component: Component, conn: Connection, request: Any, route: _Route) -> None:
        self._component = component
        self.conn = conn
        self.request = request
        self._route = route
        self._state = _OPEN
        self._held = False

    @classmethod
    def _idle(cls, component: Component) -> Reply:
        """The reusable Reply of sync handlers, before its first request."""
        reply = cls.__new__(cls)
        reply._component = component
        reply._state = _FINISHED
        reply._held = False
        return reply

    @property
    def request_id(self) -> int:
        """The request's request_id (every request has one: proto/)."""
        request_id: int = self.request.request_id
        return request_id

    @property
    def user(self) -> str | None:
        """The requester's logged-in username (None before login)."""
        return self.conn.user

    def send(self, response: Message) -> None:
        """Answer with `response`, which must be of the request's response class."""
        route = self._route
        if self._state != _OPEN or type(response) is not route.response_cls:
            self._refuse(response, type(response) is route.response_cls)
            return
        self._state = _ANSWERED
        conn = self.conn
        conn.send(encode_frame(route.response_type, response.SerializeToString()))
        if self._held:  # a deferred reply: answered is finished
            self._held = False
            self._state = _FINISHED
            conn.release()

    def relay(self, response: Message) -> None:
        """Answer with a message of another protocol whose wire form is the response class's (a
        forwarded request's own response: the order book's InsertOrderResponse answering execution's),
        its request_id set to this request's. It is not copied: one field set, one serialisation.

        A message of another form is refused as a bug, as a wrong class is by ``send``.
        """
        route = self._route
        cls = type(response)
        relayable = route.relayable.get(cls)
        if relayable is None:
            relayable = route.relayable[cls] = same_wire_form(cls, route.response_cls)
        if self._state != _OPEN or not relayable:
            self._refuse(response, relayable)
            return
        response.request_id = self.request.request_id  # type: ignore[attr-defined]
        self._state = _ANSWERED
        conn = self.conn
        conn.send(encode_frame(route.response_type, response.SerializeToString()))
        if self._held:  # a deferred reply: answered is finished
            self._held = False
            self._state = _FINISHED
            conn.release()

    def defer(self) -> Reply:
        """The Reply to answer later with (from a callback), in place of this one; see the class docstring.

        The answer must come (a forwarded request's deadline sees to it): until then the request counts
        against the connection's requests in flight.
        """
        later = self._detach()
        if not later._held:
            later._held = True
            later.conn.hold()
        return later

    def defer_async(self, handler: Callable[[Reply], Awaitable[None]]) -> None:
        """Go on in the coroutine ``handler(reply)``, with a Reply of its own, as an async handler would."""
        later = self._detach()
        try:
            pending = handler(later)
        except Exception:  # it raised before its first await: answered as an async handler's failure
            self._component.log.exception("handler of %s failed", self._route.request_cls.__name__)
            if later._state == _OPEN:
                later.error(INTERNAL_ERROR)
            return
        self._component._run_async(later, pending)

    def _detach(self) -> Reply:
        if self._state != _OPEN:
            raise RuntimeError("only an open Reply can be deferred")
        # __init__'s fields set here, without its call: every forwarded request comes this way
        later = _new_reply(Reply)
        later._component = self._component
        later.conn = self.conn
        later.request = self.request
        later._route = self._route
        later._state = _OPEN
        later._held = self._held  # a deferred Reply deferred again: its hold on the connection passes on
        self._held = False
        self._state = _ANSWERED  # this one is done: its handler returns without answering
        return later

    def error(self, error_message: str) -> None:
        """Answer with the response class carrying only request_id and `error_message`."""
        self.send(self._route.response_cls(request_id=self.request_id, error_message=error_message))

    def _refuse(self, response: Message, fits: bool) -> None:
        """Log a refused answer (`fits`: whether its class could answer the request at all)."""
        route = self._route
        if not fits:
            why = f"a {type(response).__name__} is not the response to {route.request_cls.__name__}"
        elif self._state == _ANSWERED:
            why = "a second answer"
        else:
            why = "an answer after its handler finished"
        self._component.log.error(
            "bug: %s refused (%s %d from %s)",
            why,
            route.request_cls.__name__,
            self.request_id,
            self.conn.peer,
            stack_info=True,
        )


_new_reply = object.__new__


class _Refusal(asyncio.Protocol):
    """A connection past the component's max_connections: closed as soon as it is accepted."""

    def __init__(self, component: Component) -> None:
        self._component = component

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._component._refuse(f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))
        transport.close()


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
    dependencies: ClassVar[tuple[Dependency, ...]] = ()
    """The components this one talks to (app.dependents): each gets a link in ``self.links``, kept up."""

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        self.config = config
        self.log = log
        self.protocol: Protocol = protocol_for(self.protocols)
        self.auth = Authenticator(users, config.auth_required)
        self.connections: set[Connection] = set()
        self.subscribers: dict[Connection, None] = {}
        """Logged-in connections, in login order: where events go."""
        self._complaints: dict[Connection, int] = {}
        """Complaints so far about each connection that had any."""
        self._max_unsent = config.max_unsent_bytes
        self.max_connections = config.max_connections
        """Client connections served at once (run_component may lower it to the descriptor limit)."""
        self._refused = 0
        """Connections refused past max_connections since the last log line about them."""
        self._refusals_logging: asyncio.TimerHandle | None = None
        busy_poll = config.busy_poll_microseconds
        self.busy_poll_microseconds = self.default_busy_poll_microseconds if busy_poll is None else busy_poll
        self._busy_poll: BusyPoll | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.links: dict[str, Link] = create_links(self, self.dependencies, config, log)
        """The link of each declared dependency, by connectTo target; started once listening."""
        self._reply = Reply._idle(self)
        self._routes: dict[int, _Route] = {LOGIN_REQUEST: self._route(common_pb2.LoginRequest, self._login)}
        for attr in dir(type(self)):
            request = getattr(getattr(type(self), attr), _HANDLES_ATTR, None)
            if request is not None:
                route = self._route(request, getattr(self, attr))
                self._routes[self.protocol.types[request]] = route

    def _route(self, request: type[Message], handler: Handler) -> _Route:
        request_type = self.protocol.types[request]
        response_cls = self.protocol.responses[request_type]
        needs_login = request_type != LOGIN_REQUEST and self.auth.auth_required
        return _Route(request, handler, response_cls, self.protocol.types[response_cls], needs_login)

    # lifecycle --------------------------------------------------------

    async def start(self) -> None:
        """Runs once listening, the links of ``dependencies`` connecting meanwhile; must not wait for them."""

    async def stop(self) -> None:
        """Release what start() acquired; runs after connections are closed."""

    async def serve(self, sockets: Sequence[socket.socket] = ()) -> list[asyncio.Server]:
        """Listen on the configured address, or on `sockets` already listening there (app.launch)."""
        loop = asyncio.get_running_loop()
        if self.busy_poll_microseconds:
            self._busy_poll = BusyPoll(loop, self.busy_poll_microseconds / 1_000_000)
        if sockets:
            for sock in sockets:
                server = await loop.create_server(self._new_connection, sock=sock, backlog=LISTEN_BACKLOG)
                self._servers.append(server)
        else:
            server = await loop.create_server(
                self._new_connection,
                self.config.listen_on.host,
                self.config.listen_on.port,
                reuse_address=True,
                backlog=LISTEN_BACKLOG,
            )
            self._servers.append(server)
        return self._servers

    def close_all(self) -> None:
        """Stop listening and close every connection, flushing what is queued."""
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.close()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()

    # FrameHandler -----------------------------------------------------

    def _new_connection(self) -> asyncio.Protocol:
        if len(self.connections) >= self.max_connections:
            return _Refusal(self)
        conn = self.make_connection()
        self.connections.add(conn)
        return conn

    def make_connection(self) -> Connection:
        """Hook: the Connection serving a newly accepted client (info sets bounds of its own)."""
        return Connection(self, self.log, max_unsent=self._max_unsent, busy_poll=self._busy_poll)

    def _refuse(self, peer: str) -> None:
        """A connection past max_connections is being closed: logged at once, then once per
        REFUSALS_LOGGED_EVERY seconds while more come, with their count."""
        if self._refusals_logging is None:
            self.log.warning(
                "refused a connection from %s: %d connections open, maxConnections %d",
                peer,
                len(self.connections),
                self.max_connections,
            )
            loop = asyncio.get_running_loop()
            self._refusals_logging = loop.call_later(REFUSALS_LOGGED_EVERY, self._log_refusals)
        else:
            self._refused += 1

    def _log_refusals(self) -> None:
        refused, self._refused = self._refused, 0
        if not refused:
            self._refusals_logging = None
            return
        self.log.warning(
            "refused %d more connections in %g s: %d connections open, maxConnections %d",
            refused,
            REFUSALS_LOGGED_EVERY,
            len(self.connections),
            self.max_connections,
        )
        loop = asyncio.get_running_loop()
        self._refusals_logging = loop.call_later(REFUSALS_LOGGED_EVERY, self._log_refusals)

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        route = self._routes.get(msg_type)
        if route is None:
            self.complain(conn, "ignoring message type %d: not a request of %s", msg_type, self.protocol.name)
            return
        try:
            request = route.request_cls.FromString(payload)
        except DecodeError as exc:
            name = route.request_cls.__name__
            conn.close(f"protocol violation: payload of type {msg_type} is not a valid {name} ({exc})")
            return
        if route.needs_login and conn.user is None:
            refused = Reply(self, conn, request, route)
            self.complain(
                conn, "refused %s %d: not logged in", route.request_cls.__name__, refused.request_id
            )
            refused.error(NOT_LOGGED_IN)
            return
        if route.is_async:
            reply = Reply(self, conn, request, route)
            self._run_async(reply, cast(Awaitable[None], route.handler(reply, request)))
            return
        reply = self._reply
        if reply._state == _FINISHED:
            reply.conn = conn
            reply.request = request
            reply._route = route
            reply._state = _OPEN
        else:  # dispatched from inside a handler: the running one keeps its Reply
            reply = Reply(self, conn, request, route)
        try:
            route.handler(reply, request)
        except Exception:
            self.log.exception("handler of %s failed", route.request_cls.__name__)
            if reply._state == _OPEN:
                reply.error(INTERNAL_ERROR)
        else:
            if reply._state == _OPEN:
                self._unanswered(reply)
        reply._state = _FINISHED

    def _unanswered(self, reply: Reply) -> None:
        self.log.error(
            "bug: handler of %s finished without answering; answered with an internal error",
            reply._route.request_cls.__name__,
        )
        reply.error(INTERNAL_ERROR)

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        self.connections.discard(conn)
        self.subscribers.pop(conn, None)
        if exc is not None:
            self.log.info("connection %s (user %s) lost: %s", conn.peer, loggable(conn.user), exc)
        complaints = self._complaints.pop(conn, 0)
        if complaints > MAX_COMPLAINTS_PER_CONNECTION:
            self.log.info(
                "connection %s (user %s) closed: %d more complaints about it were not logged",
                conn.peer,
                loggable(conn.user),
                complaints - MAX_COMPLAINTS_PER_CONNECTION,
            )
        self.on_disconnect(conn)

    def complain(self, conn: Connection, message: str, *args: object) -> None:
        """Log (at INFO) something wrong in what `conn` sent, at most MAX_COMPLAINTS_PER_CONNECTION times.

        `message` is a %-format, prefixed with the peer; client strings among
        `args` must be passed through `loggable`. The complaint after the last
        one logged is replaced by a line saying further ones are suppressed;
        how many were is logged when the connection closes.
        """
        count = self._complaints.get(conn, 0) + 1
        self._complaints[conn] = count
        if count <= MAX_COMPLAINTS_PER_CONNECTION:
            self.log.info("%s: " + message, conn.peer, *args)
        elif count == MAX_COMPLAINTS_PER_CONNECTION + 1:
            self.log.info(
                "%s: more than %d complaints; further ones are counted, not logged, until it closes",
                conn.peer,
                MAX_COMPLAINTS_PER_CONNECTION,
            )

    def on_disconnect(self, conn: Connection) -> None:
        """Hook: a connection went away."""

    # helpers for handlers --------------------------------------------

    def encode(self, message: Message) -> bytes:
        return encode_frame(self.protocol.types[type(message)], message.SerializeToString())

    def broadcast(self, message: Message) -> None:
        """Send an event to every logged-in connection, encoded once."""
        self.broadcast_frames((self.encode(message),))

    def broadcast_frames(self, frames: Iterable[bytes]) -> None:
        """Send encoded events to every logged-in connection, as one piece of bytes shared by all."""
        data = b"".join(frames)
        if data:
            for conn in self.subscribers:
                conn.send(data)

    def _run_async(self, reply: Reply, pending: Awaitable[None]) -> None:
        conn = reply.conn

        async def guarded() -> None:
            try:
                await pending
            except Exception:
                self.log.exception("handler of %s failed", type(reply.request).__name__)
                if reply._state == _OPEN:
                    reply.error(INTERNAL_ERROR)
            else:
                if reply._state == _OPEN:
                    self._unanswered(reply)
            finally:
                reply._state = _FINISHED
                conn.release()

        conn.hold()
        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # login -------------------------------------------------------------

    def _login(self, reply: Reply, request: common_pb2.LoginRequest) -> None:
        conn = reply.conn
        error = self.auth.check(conn.user, request.username, request.password)
        reply.send(common_pb2.LoginResponse(request_id=request.request_id, error_message=error))
        if error:
            self.complain(conn, "login refused for %s: %s", loggable(request.username), error)
            return
        conn.user = request.username
        name = loggable(request.username) if request.username else "(anonymous)"
        self.log.info("%s logged in from %s", name, conn.peer)
        if type(self).before_login_state is Component.before_login_state:
            self._send_login_state(conn)
            return
        # The state waits for before_login_state; the connection's next requests wait for the state.
        conn.hold(exclusive=True)

        async def send_when_ready() -> None:
            try:
                await self.before_login_state()
            except Exception as exc:
                self.log.warning("login state for %s sent as it stands: %s", conn.peer, exc)
            try:
                if not conn.closed:
                    self._send_login_state(conn)
            finally:
                conn.release(exclusive=True)

        task = asyncio.get_running_loop().create_task(send_when_ready())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_login_state(self, conn: Connection) -> None:
        try:
            self.on_login(conn)
        except Exception:
            # Logged in but never subscribed, it would wait for events forever: closed, it can log in again.
            conn.close("its login state could not be sent (a bug: the traceback follows)")
            raise
        self.subscribers[conn] = None

    async def before_login_state(self) -> None:
        """Hook: awaited after a LoginResponse, before on_login sends the state (e.g. a feed's barrier).

        Until then the connection gets no events, and its further requests wait.
        If it raises, the state is sent as it stands (logged). Not overridden:
        the state follows the LoginResponse at once.
        """

    def on_login(self, conn: Connection) -> None:
        """Hook: send a freshly logged-in connection the current state (before live events).

        If it raises, the connection is closed (after its LoginResponse) and the error logged.
        """


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


async def _serve_until_signalled(component: Component, sockets: Sequence[socket.socket]) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    if stop_requested():  # signalled while importing (app.launch): start, then stop at once
        stopping.set()
    # Listen first: connecting to dependencies (and their replays) never delays accepting.
    servers = await component.serve(sockets)
    for link in component.links.values():
        link.start()
    starting = loop.create_task(component.start())
    signalled = loop.create_task(stopping.wait())
    await asyncio.wait((starting, signalled), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        component.close_all()
        await _stop(component)
        return
    signalled.cancel()
    starting.result()
    # Everything allocated so far lives all day: keep it out of the collector's
    # scans, and collect young objects less often (orders are many and small).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    addresses = ", ".join(str(s.getsockname()[:2]) for server in servers for s in server.sockets)
    polling = component.busy_poll_microseconds
    component.log.info(
        "%s listening on %s; %s",
        component.name,
        addresses,
        f"busy polling {polling} us after each read" if polling else "no busy polling",
    )
    notify_ready()
    await stopping.wait()
    component.log.info("%s stopping", component.name)
    component.close_all()
    await _stop(component)
    await asyncio.sleep(0.05)  # let queued frames and close notifications go out
    component.abort_all()


async def _stop(component: Component) -> None:
    """The component's stop(), then its links closed."""
    try:
        await component.stop()
    finally:
        for link in component.links.values():
            await link.stop()


def _fit_descriptors(connections: int, log: logging.Logger) -> int:
    """Raise the process's soft limit of open files towards `connections` + DESCRIPTOR_RESERVE (at most
    to its hard limit); returns the connections that fit, logging when that is fewer."""
    try:
        import resource
    except ImportError:  # not POSIX: no such limit to raise
        return connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + DESCRIPTOR_RESERVE
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the limit of open files from %d to %d: %s", soft, wanted, exc)
    if soft == resource.RLIM_INFINITY or soft - DESCRIPTOR_RESERVE >= connections:
        return connections
    fitting = max(1, soft - DESCRIPTOR_RESERVE)
    log.warning(
        "maxConnections %d lowered to %d: the process may open %d files, %d kept for links and logs",
        connections,
        fitting,
        soft,
        DESCRIPTOR_RESERVE,
    )
    return fitting


def run_component(
    cls: type[Component], argv: list[str] | None = None, sockets: Sequence[socket.socket] = ()
) -> int:
    """The main of a component: `NAME -c config.json` (app.launch); returns the exit status.

    `sockets`: already listening on the config's listenOn (app.launch.listen_early); closed on errors.
    """
    args = argument_parser(cls.name, cls.__doc__).parse_args(argv)
    try:
        try:
            config = load_config(args.config, cls.default_auth_required)
            users = load_users(config.data_file_path)
            log = setup_logging(cls.name, config)
        except ConfigError as exc:
            print(f"{cls.name}: {exc}", file=sys.stderr)
            return 2
        log.info("%s starting with config %s (%d users)", cls.name, args.config, len(users))
        for warning in config.warnings:  # config.py cannot log: logging is set up from the config
            log.warning("%s", warning)
        config = dataclasses.replace(config, max_connections=_fit_descriptors(config.max_connections, log))
        try:
            component = cls(config, users, log)
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(_serve_until_signalled(component, sockets))
        except ConfigError as exc:
            log.error("%s", exc)
            return 2
        except OSError as exc:
            log.error("cannot serve on %s:%d: %s", config.listen_on.host, config.listen_on.port, exc)
            return 1
        log.info("%s stopped", cls.name)
        return 0
    finally:
        for sock in sockets:
            sock.close()
