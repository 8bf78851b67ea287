"""What both flavours of the SDK share, without I/O: settings, state, callbacks and their order.

`ExchangeBase` holds the connection settings (addresses, logins), the `MarketState` and
`AccountState` every received event is applied to (`_apply`), and the callbacks; the events to
report wait in an outbox, emptied in order by `_dispatch` (never nested: a callback that calls the
SDK only adds to the outbox the running loop empties). `Exchange` (blocking) and `AsyncExchange`
(asyncio) add the connections.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from optivex.client import state as core
from optivex.client.addresses import GATEWAY_PROTOCOL, Address, Addresses
from optivex.client.model import (
    ComponentName,
    ConnectionEvent,
    ExecutionReport,
    Fill,
    Instrument,
    PriceBook,
    Trade,
)
from optivex.protocols import Protocol

C = TypeVar("C")
log = logging.getLogger("optivex.client")

DEFAULT_TIMEOUT = 3.0
"""Seconds a request waits for its answer (and a subscription for its snapshot)."""
RETRY_MIN = 0.05
RETRY_MAX = 1.0
"""Seconds between reconnection attempts: doubling from RETRY_MIN up to RETRY_MAX."""


class Link(Generic[C]):
    """One component's connection (a client of type C while up), its login and reconnection schedule."""

    def __init__(
        self, name: ComponentName, address: Address, protocol: Protocol | str, username: str, password: str
    ) -> None:
        self.name: ComponentName = name
        self.address = address
        self.protocol = protocol
        self.username = username
        self.password = password
        self.client: C | None = None
        self.lost = ""
        """Why the connection is down ("" while up)."""
        self.retry_at = 0.0
        self.backoff = RETRY_MIN

    def retried(self, now: float) -> None:
        """An attempt to reconnect failed at `now`: the next one after the backoff, which doubles."""
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, RETRY_MAX)

    def restored(self) -> bool:
        """The link is up again; whether it had been lost (not its first connection)."""
        was_lost = bool(self.lost)
        self.lost = ""
        self.backoff = RETRY_MIN
        self.retry_at = 0.0
        return was_lost


class ExchangeBase(Generic[C]):
    """Settings, state and callbacks of an exchange connection (see the module docstring)."""

    def __init__(
        self,
        username: str = "alice",
        password: str | None = None,
        *,
        addresses: Addresses | None = None,
        config: str | Path | None = None,
        admin_username: str | None = None,
        admin_password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        execution_reports: bool = True,
        max_buffered: int = core.DEFAULT_MAX_BUFFERED,
    ) -> None:
        if addresses is None:
            addresses = Addresses.from_config(config) if config is not None else Addresses()
        password = username if password is None else password
        if admin_username is None:
            admin_username, default_admin_password = username, password
        else:
            default_admin_password = admin_username
        self.username = username
        self.addresses = addresses
        self.timeout = timeout
        self.market = core.MarketState(max_buffered)
        """Instruments, books and buffered trades (read it through the methods)."""
        self.account = core.AccountState(max_buffered)
        """Buffered execution reports (read it through the methods)."""
        self.account.wants_reports = execution_reports
        self._links: dict[ComponentName, Link[C]] = {
            "info": Link("info", addresses.info, "info", username, password),
            "gateway": Link("gateway", addresses.gateway, GATEWAY_PROTOCOL, username, password),
            "admin": Link(
                "admin",
                addresses.admin,
                "admin",
                admin_username,
                default_admin_password if admin_password is None else admin_password,
            ),
        }
        self.on_book: Callable[[PriceBook], object] | None = None
        """Called with each new book of a subscribed instrument (its snapshot first)."""
        self.on_trade: Callable[[Trade], object] | None = None
        """Called with each trade of a subscribed instrument."""
        self.on_instrument: Callable[[Instrument], object] | None = None
        """Called with each instrument info announces (every one of the day at login, then new ones)."""
        self.on_fill: Callable[[Fill], object] | None = None
        """Called with each fill of my orders."""
        self.on_report: Callable[[ExecutionReport], object] | None = None
        """Called with each execution report (fills, cancels, amends of my orders)."""
        self.on_connection: Callable[[ConnectionEvent], object] | None = None
        """Called when a connection is lost, restored, or could not resubscribe."""
        self._outbox: collections.deque[tuple[str, Any]] = collections.deque()
        self._connection_events: collections.deque[ConnectionEvent] = collections.deque()
        self._dispatching = False
        self.closed = False

    @property
    def connected(self) -> bool:
        """Every connection is up, logged in and (after a loss) restored: subscribed again."""
        return not self.closed and all(
            link.client is not None and not link.lost for link in self._links.values()
        )

    def lost_connections(self) -> dict[ComponentName, str]:
        """The connections that are down (or not yet restored) now, and why."""
        return {name: link.lost for name, link in self._links.items() if link.client is None or link.lost}

    def _apply(self, name: ComponentName, message: Message) -> None:
        """Apply one event of a component to the state; what it changed goes to the outbox."""
        if name == "info":
            update = self.market.apply(message)
            if update is not None:
                self._outbox.append((type(update).__name__, update))
        elif name == "gateway":
            report = self.account.apply(message)
            if report is not None:
                self._outbox.append(("report", report))

    def _lost(self, link: Link[C], reason: str) -> None:
        """A link's connection dropped (its client already gone): the state forgets what it can no
        longer follow (info: the books) and the callbacks are told."""
        link.client = None
        link.lost = reason
        if link.name == "info":
            self.market.connection_lost()
        self._notify_connection(ConnectionEvent(link.name, "lost", reason))

    def _notify_connection(self, event: ConnectionEvent) -> None:
        self._connection_events.append(event)
        self._outbox.append(("connection", event))

    def _take_connection_events(self) -> list[ConnectionEvent]:
        events = list(self._connection_events)
        self._connection_events.clear()
        return events

    def _dispatch(self) -> None:
        """Run the callbacks of what the outbox holds, in order (see the module docstring)."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            outbox = self._outbox
            while outbox:
                kind, item = outbox.popleft()
                callback: Callable[[Any], object] | None
                if kind == "PriceBook":
                    callback = self.on_book
                elif kind == "Trade":
                    callback = self.on_trade
                elif kind == "Instrument":
                    callback = self.on_instrument
                elif kind == "connection":
                    callback = self.on_connection
                else:
                    callback = self.on_report
                    if isinstance(item, Fill) and self.on_fill is not None:
                        self._call(self.on_fill, item)
                if callback is not None:
                    self._call(callback, item)
        finally:
            self._dispatching = False

    def _call(self, callback: Callable[[Any], object], item: object) -> None:
        """Run a callback; its failure (an exception, a rejected order of its own) is logged and the SDK
        goes on reading."""
        try:
            callback(item)
        except Exception:
            log.exception("callback %r failed on %r", callback, item)
