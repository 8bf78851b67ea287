"""Following the order book: a link that keeps a ``BookMirror`` of it and offers a barrier.

``Feed`` is an ``app.dependents.Link`` (same connect/reconnect code as a plain
request link) whose set-up logs in and applies the login replay. On every
connection, first or after the order book restarted or the link dropped:

1. connect, send LoginRequest (with ``extension_events``: the feed gets
   OnOrderAmended, not the contract form of an amend) and at once a
   BarrierRequest;
2. apply every event that comes to a fresh, empty mirror (the replay: books,
   then resting orders);
3. when the BarrierResponse arrives, the replay is applied (the order book
   answers a barrier after everything it had queued for the connection,
   the replay included): the new mirror replaces the old one and the owner
   is told once, ``on_reset(mirror)``, with the whole state;
4. from then on each event is applied as it arrives and its change handed
   to ``on_change(change)`` (plain data: ``feed.mirror``'s named tuples);
5. when the connection is lost the owner hears ``on_lost()`` and the feed
   reconnects (step 1) with a fresh replay.

An event the mirror cannot apply (``MirrorError``: the stream is not what the
order book sends) is logged and the connection dropped, so the mirror is
rebuilt from a fresh replay.

``await feed.barrier()`` returns once every event the order book had sent
this feed before now is applied to the mirror (and handed to the owner): a
BarrierRequest on the feed's own connection, whose response comes after all
of them. It raises ``Unavailable``/``NoAnswer`` (``app.dependents``) when the
order book cannot be asked. When a live barrier's response arrives the owner
hears ``on_settled()`` first, before any waiter resumes: an owner that
publishes in batches (info) publishes there, so whoever awaited the barrier
finds everything before it published.

Replay cost: each event is decoded once (protobuf) and applied in place; no
per-event task, future or log call, and no change objects are handed out
during the replay (the owner gets the whole mirror at the end). Reading is
paced by the connection (it stops reading while frames wait to be handled),
so the order book streams a large replay as fast as the feed applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import DecodeError, Message

from optivex.app.config import Address, ComponentConfig
from optivex.app.dependents import Link, LinkError
from optivex.client.aio import AsyncClient
from optivex.client.session import RequestTimeout
from optivex.feed.events import EVENT_CLASSES, apply_event, load_event
from optivex.feed.mirror import BookMirror, Change, MirrorError
from optivex.net import Connection
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

ChangeCallback = Callable[[Change], None]
ResetCallback = Callable[[BookMirror], None]
LostCallback = Callable[[], None]
SettledCallback = Callable[[], None]


@runtime_checkable
class FeedListener(Protocol):
    """A component that follows the order book (``Follows``) and wants to hear about it."""

    def feed_reset(self, mirror: BookMirror) -> None:
        """A fresh mirror, the replay applied: the whole state (first connection or a new day)."""

    def feed_changed(self, change: Change) -> None:
        """One live change, applied to the mirror already."""

    def feed_lost(self) -> None:
        """The connection to the order book is lost; the feed reconnects by itself."""


@runtime_checkable
class SettlingFeedListener(FeedListener, Protocol):
    """A FeedListener that also hears of each live barrier's response before its waiters resume."""

    def feed_settled(self) -> None:
        """Every event before a barrier's response is applied (and handed out): publish what waits."""


class _FeedClient(AsyncClient):
    """An AsyncClient on which the order book's events skip the generic path (request matching,
    event wrapping): decoded here and handed straight to ``on_message``, the feed. A BarrierResponse
    calls ``on_barrier`` before it resolves its request."""

    on_barrier: Callable[[], None] | None = None

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        cls = EVENT_CLASSES.get(msg_type)
        callback = self.on_message
        if cls is None or callback is None:
            if msg_type == pb.BARRIER_RESPONSE and self.on_barrier is not None:
                self.on_barrier()
            super().frame_received(conn, msg_type, payload)
            return
        try:
            message = cls.FromString(payload)
        except DecodeError:
            conn.close(f"undecodable {cls.__name__} from the order book")
            return
        try:
            callback(message)
        except Exception:  # the owner's bug: logged, and the next events still applied (as AsyncClient)
            self.log.exception("handling a %s from the order book failed", cls.__name__)


class Feed(Link):
    """A link to the order book that mirrors it; see the module docstring."""

    client_class = _FeedClient

    def __init__(
        self,
        target: str,
        address: Address,
        log: logging.Logger,
        *,
        username: str = "feed",
        on_change: ChangeCallback | None = None,
        on_reset: ResetCallback | None = None,
        on_lost: LostCallback | None = None,
        on_settled: SettledCallback | None = None,
        **link: Any,
    ) -> None:
        super().__init__(target, address, "order_book", log, **link)
        self.username = username
        self.on_change = on_change
        self.on_reset = on_reset
        self.on_lost = on_lost
        self.on_settled = on_settled
        self.mirror = BookMirror()
        """The mirror of the current connection once its replay is applied (empty before the first)."""
        self._building = self.mirror
        self._live = False
        self._current: AsyncClient | None = None

    def _message(self, message: Message) -> None:
        try:
            if not self._live:  # the replay: no change objects, the owner gets the whole mirror
                load_event(self._building, message)
                return
            change = apply_event(self._building, message)
        except MirrorError as exc:
            self.log.error("order book event not applicable (%s); resynchronising from a fresh replay", exc)
            self._live = False
            if self._current is not None:
                self._current.close()
            return
        if change is not None and self.on_change is not None:
            self.on_change(change)

    async def _set_up(self, client: AsyncClient) -> None:
        self._live = False
        self._current = client
        self._building = BookMirror()
        if isinstance(client, _FeedClient):
            client.on_barrier = self._barrier_answered
        login = client.request(
            common_pb2.LoginRequest(username=self.username, extension_events=True),
            self.deadline,
            expect=common_pb2.LoginResponse,
        )
        # No deadline on this barrier: the replay of a large day takes seconds. A
        # stalled order book keeps the link down (requests meanwhile: the unavailable rule).
        barrier = client.request(pb.BarrierRequest(), None, expect=pb.BarrierResponse)
        try:
            response = await login
            if response.error_message:
                raise LinkError(f"login refused: {response.error_message}")
        except BaseException as exc:
            # The barrier's future is not awaited: cancel it, or (the connection lost) take its
            # exception, else asyncio logs "Future exception was never retrieved" for each attempt.
            if not barrier.cancel() and not barrier.cancelled():
                barrier.exception()
            if isinstance(exc, RequestTimeout):
                raise LinkError(f"no login response within {self.deadline:g} s") from None
            raise
        await barrier
        self.mirror = self._building
        self._live = True

    def _barrier_answered(self) -> None:
        if self._live and self.on_settled is not None:
            try:
                self.on_settled()
            except Exception:  # the owner's bug: logged, and the barrier still answered
                self.log.exception("on_settled failed")

    def _went_up(self, client: AsyncClient) -> None:
        self.log.info(
            "order book replay applied: %d books, %d resting orders",
            sum(1 for _ in self.mirror.books()),
            len(self.mirror),
        )
        if self.on_reset is not None:
            self.on_reset(self.mirror)

    def _went_down(self) -> None:
        self._live = False
        if self.on_lost is not None:
            self.on_lost()

    async def barrier(self) -> None:
        """Return once every event the order book sent this feed before now is applied."""
        client = await self.wait_up()
        response = await self._request_on(client, pb.BarrierRequest(), pb.BarrierResponse)
        if response.error_message:
            raise LinkError(f"barrier refused: {response.error_message}")


@dataclass(frozen=True)
class Follows:
    """The dependency of a component that follows the order book: a Feed, its owner told as a FeedListener."""

    target: str = "order_book"

    def create(self, owner: Any, config: ComponentConfig, log: logging.Logger) -> Feed:
        feed = Feed(
            self.target, config.target(self.target), log, username=str(getattr(owner, "name", "feed"))
        )
        if isinstance(owner, FeedListener):
            feed.on_change = owner.feed_changed
            feed.on_reset = owner.feed_reset
            feed.on_lost = owner.feed_lost
        if isinstance(owner, SettlingFeedListener):
            feed.on_settled = owner.feed_settled
        return feed
