"""Links from a component to the components it depends on, kept up by the framework.

A component declares what it talks to::

    class AdminComponent(Component):
        dependencies = (Requests("order_book"),)      # a request link
    class InfoComponent(Component):
        dependencies = (Follows("order_book"),)       # a feed: link + mirror (optivex.feed)

and finds each one connected in ``self.links[target]``. The base starts the
links once it listens (connecting never delays accepting: the contract's 2 s
readiness), and stops them when the component stops. A ``Link`` connects to
its ``connectTo`` target, runs its set-up (a feed logs in and applies the
replay), serves requests, and reconnects after the target restarts or the
connection drops, with a fresh set-up each time. A feed is the same code:
``optivex.feed.follower.Feed`` is a Link with a mirror.

The unavailable rule (one rule for every dependent component): a request
that needs the target waits up to ``LINK_WAIT`` seconds for the link to be up
(not yet connected, reconnecting); then it is answered with
``"<target> unavailable; the request was not carried out"`` (``Unavailable``).

Deadlines and bounds of a request sent over a link (``Link.request``):

- at most ``MAX_IN_FLIGHT`` requests are outstanding on one link; more wait
  for a slot (backpressure: a burst from clients never overflows the link,
  whose peer reads at its own pace);
- every request has a deadline, ``REQUEST_DEADLINE`` seconds from when the
  link was up and the request queued for a slot; past it the caller gets
  ``NoAnswer`` ("<target> did not answer within D s; the request may or may
  not have been carried out") and nothing is left behind: the slot is freed
  and the client no longer waits for the response (a late one is dropped).
  The same error, with "connection lost" instead, when the link drops with
  the request unanswered.

``Link.send`` is the callback form of ``Link.request`` for a component that
forwards many requests a second (the gateway): while the link is up and has
a free slot the request goes out at once and the callback gets the response
or the LinkError, with no task or future; otherwise a task of its own waits
for the link and a slot as ``request`` does, then sends it the same way. On
both paths the callback runs as the response is read, before the frames that
follow it on that connection (for the gateway: the events the request caused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from google.protobuf.message import Message

from optivex.app.config import Address, ComponentConfig
from optivex.client.aio import AsyncClient
from optivex.client.session import ConnectionClosed, RequestTimeout

M = TypeVar("M", bound=Message)

LINK_WAIT = 2.0
"""Seconds a request that needs a target waits for its link to be up before it is answered 'unavailable'."""
REQUEST_DEADLINE = 2.0
"""Seconds a request over a link may take (slot wait and round trip) before its caller gets NoAnswer."""
MAX_IN_FLIGHT = 256
"""Requests outstanding on one link at once; further requests wait for a slot."""
RETRY_MIN = 0.02
RETRY_MAX = 0.25
"""Seconds between connection attempts: doubling from RETRY_MIN up to RETRY_MAX while the target is down."""


class LinkError(Exception):
    """A request over a link failed; ``str(exc)`` is the error_message to answer the client with."""


class Unavailable(LinkError):
    """The link was not up within LINK_WAIT (or the link is stopping): the request was not sent."""

    def __init__(self, target: str) -> None:
        super().__init__(f"{target.replace('_', ' ')} unavailable; the request was not carried out")


class Busy(LinkError):
    """No free slot (MAX_IN_FLIGHT requests outstanding) before the deadline: the request was not sent."""

    def __init__(self, target: str, seconds: float) -> None:
        super().__init__(
            f"{target.replace('_', ' ')} busy: no answer slot within {seconds:g} s; "
            "the request was not carried out"
        )


class NoAnswer(LinkError):
    """The request was sent (or may have been) and no response came: deadline passed or link lost."""

    def __init__(self, target: str, why: str) -> None:
        super().__init__(
            f"{target.replace('_', ' ')} {why}; the request may or may not have been carried out"
        )


class Link:
    """One connection to a ``connectTo`` target, kept up; see the module docstring.

    Subclasses (the feed) hook into the connection's life: ``_message`` gets
    every message that is not a response, ``_set_up`` runs on each new
    connection before it counts as up, ``_went_up``/``_went_down`` tell the
    owner.
    """

    client_class: type[AsyncClient] = AsyncClient
    """The client class of the link's connections (a feed's decodes events on a shorter path)."""

    def __init__(
        self,
        target: str,
        address: Address,
        protocol: str,
        log: logging.Logger,
        *,
        link_wait: float = LINK_WAIT,
        deadline: float = REQUEST_DEADLINE,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.target = target
        self.address = address
        self.protocol = protocol
        self.log = log
        self.link_wait = link_wait
        self.deadline = deadline
        self.client: AsyncClient | None = None
        """The connection while the link is up (set up done), else None."""
        self.connections = 0
        """How many times the link came up (1 after the first connection)."""
        self._up = asyncio.Event()
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        """Requests holding a slot (sent, or about to be)."""
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        """Requests waiting for a slot, first come first served; a freed slot passes to the first."""
        self._sending: set[asyncio.Task[None]] = set()
        """``send``'s requests that took the waiting path."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # lifecycle ---------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.client is not None

    def start(self) -> None:
        """Start connecting (in the background: returns at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"link to {self.target}")

    async def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.client is not None:
            self.client.close()
            self.client = None
        self._up.clear()

    async def wait_up(self, timeout: float | None = None) -> AsyncClient:
        """The connection once the link is up; Unavailable after `timeout` (default: link_wait)."""
        client = self.client
        if client is not None:
            return client
        if not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), self.link_wait if timeout is None else timeout)
        if self.client is None:
            raise Unavailable(self.target)
        return self.client

    async def _run(self) -> None:
        host, port = self.address.host, self.address.port
        delay = RETRY_MIN
        # Why the previous attempt failed (None once up). A failure is logged only when it changes:
        # an outage costs a line or two, not one per attempt (4 a second) for as long as it lasts.
        last_failure: str | None = None
        while True:
            client = None
            ready = False
            failure = None
            try:
                client = await self.client_class.connect(
                    host, port, self.protocol, self._message, self.log, request_timeout=None
                )
                await self._set_up(client)
                ready = not client.closed.done()  # not lost right after its set-up
            except OSError as exc:
                failure = f"cannot reach the {self.target} at {host}:{port} ({exc})"
            except (ConnectionClosed, LinkError) as exc:
                failure = f"connection to the {self.target} failed while setting up: {exc}"
            except Exception as exc:  # a bug in a set-up must not end the link for the rest of the day
                failure = f"setting up the connection to the {self.target} failed: {exc!r}"
                if failure != last_failure:
                    self.log.exception("%s; retrying", failure)
                    last_failure = failure
            except asyncio.CancelledError:  # stop() during a set-up: close what it opened
                if client is not None:
                    client.close()
                raise
            if client is None or not ready:
                if failure is not None and failure != last_failure:
                    self.log.warning("%s; retrying (logged again when the failure changes)", failure)
                    last_failure = failure
                if client is not None:
                    client.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay, last_failure = RETRY_MIN, None
            self.client = client
            self.connections += 1
            self._up.set()
            self.log.info("connected to the %s at %s:%d", self.target, host, port)
            self._run_hook(self._went_up, client)
            await asyncio.wait((client.closed,))
            self.client = None
            self._up.clear()
            self.log.error("lost the connection to the %s; reconnecting", self.target)
            self._run_hook(self._went_down)

    def _run_hook(self, hook: Callable[..., None], *args: Any) -> None:
        """Call `_went_up`/`_went_down` (a feed calls its owner there): a failure is logged, and the
        link goes on (it would otherwise never reconnect for the rest of the day)."""
        try:
            hook(*args)
        except Exception:
            self.log.exception("%s of the link to the %s failed", hook.__name__, self.target)

    # hooks ---------------------------------------------------------------

    def _message(self, message: Message) -> None:
        """A message that answers no request (an event); ignored by a plain link."""

    async def _set_up(self, client: AsyncClient) -> None:
        """Run on each new connection before the link counts as up (a feed: login and replay)."""

    def _went_up(self, client: AsyncClient) -> None:
        """The link is up (set-up done)."""

    def _went_down(self) -> None:
        """The link went down; it reconnects by itself."""

    # requests ------------------------------------------------------------

    async def request(self, message: Message, expect: type[M]) -> M:
        """Send a request and return its response, a `expect` (which may carry an error_message).

        Raises Unavailable (link not up within link_wait: not sent), Busy (no
        free slot before the deadline: not sent) or NoAnswer (sent, and the
        deadline passed or the link was lost before the response came).
        """
        client = await self.wait_up()
        return await self._request_on(client, message, expect)

    async def _request_on(self, client: AsyncClient, message: Message, expect: type[M]) -> M:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        await self._take_slot(deadline)
        try:
            if client.closed.done():
                raise Unavailable(self.target)
            # The client's own deadline frees the request's entry and drops a late response.
            return await client.request(message, max(deadline - loop.time(), 0.001), expect=expect)
        except RequestTimeout:
            raise NoAnswer(self.target, f"did not answer within {self.deadline:g} s") from None
        except ConnectionClosed:
            raise NoAnswer(self.target, "connection lost before it answered") from None
        finally:
            self._free_slot()

    def send(
        self,
        message: Message,
        expect: type[M],
        done: Callable[[M | LinkError], None],
        connection: int | None = None,
    ) -> None:
        """Send a request; `done` is called once with its response (a `expect`) or the LinkError
        ``request`` would have raised, never from inside this call. See the module docstring.

        With `connection` (a value of ``connections``) it goes out on that connection of the link only:
        if the link came up again before it could be sent, `done` gets Unavailable (for a request
        decided on what that connection's peer said: a mirror of the day before must not place an order
        in the new day).
        """
        client = self.client
        if connection is not None and connection != self.connections:
            client = None
        if client is None or self._in_flight >= self._max_in_flight or self._slot_waiters:
            waiting = self._send_waiting(message, expect, done, connection)
            task = asyncio.get_running_loop().create_task(waiting)
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            return
        self._in_flight += 1
        try:
            client.request_callback(message, partial(self._sent, done), self.deadline, expect=expect)
        except ConnectionClosed:  # lost a loop step before the link noticed: not sent
            self._free_slot()
            asyncio.get_running_loop().call_soon(self._tell, done, Unavailable(self.target))
        except BaseException:
            self._free_slot()
            raise

    def _sent(self, done: Callable[[Any], None], result: Any) -> None:
        """A request of ``send`` is over: its slot freed, `done` told (every forwarded response's path)."""
        if self._slot_waiters:
            self._free_slot()
        else:  # nobody waits for the slot (_free_slot's common case, without its call)
            self._in_flight -= 1
        # Not isinstance(result, Exception): it costs an attribute lookup through a response that is not one.
        if issubclass(type(result), Exception):
            if isinstance(result, RequestTimeout):
                result = NoAnswer(self.target, f"did not answer within {self.deadline:g} s")
            elif isinstance(result, ConnectionClosed):
                result = NoAnswer(self.target, "connection lost before it answered")
        try:  # _tell inlined
            done(result)
        except Exception:
            self.log.exception("a callback of a request to the %s failed", self.target)

    async def _send_waiting(
        self, message: Message, expect: type[M], done: Callable[[M | LinkError], None], connection: int | None
    ) -> None:
        """``send`` when it cannot go out at once: waits for the link and a slot, then sends as the fast
        path does, so that `done` runs as the response is read, before the frames that follow it (the
        events it caused), whichever path the request took."""
        loop = asyncio.get_running_loop()
        try:
            client = await self.wait_up()
            if connection is not None and connection != self.connections:
                raise Unavailable(self.target)
            deadline = loop.time() + self.deadline
            await self._take_slot(deadline)
        except LinkError as exc:
            self._tell(done, exc)
            return
        if client.closed.done() or (connection is not None and connection != self.connections):
            self._free_slot()
            self._tell(done, Unavailable(self.target))
            return
        remaining = max(deadline - loop.time(), 0.001)
        try:
            client.request_callback(message, partial(self._sent, done), remaining, expect=expect)
        except ConnectionClosed:  # lost a loop step before the link noticed: not sent
            self._free_slot()
            self._tell(done, Unavailable(self.target))
        except BaseException:
            self._free_slot()
            raise

    def _tell(self, done: Callable[[Any], None], result: Any) -> None:
        try:
            done(result)
        except Exception:  # the caller's bug: logged, and the link goes on
            self.log.exception("a callback of a request to the %s failed", self.target)

    async def _take_slot(self, deadline: float) -> None:
        """One of the link's MAX_IN_FLIGHT slots, waiting for it until `deadline` (then Busy)."""
        if self._in_flight < self._max_in_flight and not self._slot_waiters:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:  # timed out or cancelled while waiting
            if waiter.done() and not waiter.cancelled():
                self._free_slot()  # handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._slot_waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Busy(self.target, self.deadline) from None
            raise

    def _free_slot(self) -> None:
        """A request is done with its slot: it passes to the first waiter, if any."""
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot is handed over: _in_flight unchanged
                return
        self._in_flight -= 1


class Dependency(Protocol):
    """What a component declares in ``dependencies``: a target and how to build its link."""

    @property
    def target(self) -> str:
        """The connectTo key of the component depended on."""

    def create(self, owner: Any, config: ComponentConfig, log: logging.Logger) -> Link:
        """The (not yet started) link of `owner`, a component."""


@dataclass(frozen=True)
class Requests:
    """A request link to the ``connectTo`` target `target` (no login, no events)."""

    target: str
    protocol: str = "order_book"

    def create(self, owner: Any, config: ComponentConfig, log: logging.Logger) -> Link:
        return Link(self.target, config.target(self.target), self.protocol, log)


def create_links(
    owner: Any, dependencies: tuple[Dependency, ...], config: ComponentConfig, log: logging.Logger
) -> dict[str, Link]:
    """The links of a component's declared dependencies, by target (built, not started).

    One link per target (a feed serves requests too): a target declared twice is a ValueError.
    """
    links: dict[str, Link] = {}
    for dependency in dependencies:
        if dependency.target in links:
            raise ValueError(f"dependency on {dependency.target!r} declared twice")
        links[dependency.target] = dependency.create(owner, config, log)
    return links
