"""Fan-out of info's messages to subscribers, with conflation for slow readers: no asyncio, no protobuf.

Frames arrive here encoded (once per change, by the component) and the same
bytes go to every subscriber of that (symbol, subscription type). A
subscriber is one connection (a ``Sink``) with all its subscriptions:

- **Trades** go to each connection subscribed to the symbol with any type,
  once per connection, at once, whatever its backlog: never dropped or
  conflated. They count against the connection's unsent bound
  (``maxUnsentBytes``): past it net.Connection's slow-consumer rule drops the
  connection, with a log line naming it.
- **Book messages** go at once while the connection is not backed up
  (``Sink.writing_paused``: its transport holds more unsent bytes than its
  high-water mark, see ``component.INFO_PAUSE_ABOVE``). While it is backed
  up only the latest state per subscription is kept (intermediate states
  are skipped, never queued); when it drains (``drained()``) each kept state
  is sent, unless it equals the state that subscription last received.

So the last book message a subscriber receives always shows the book as it
is, and a stalled subscriber costs one kept state per subscription, never a
backlog; nobody waits for it (sends never block).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

TOP_OF_BOOK = 0
PRICE_DEPTH_BOOK = 1
"""Subscription kinds: the values of info.proto's SubscriptionType."""
KINDS = (TOP_OF_BOOK, PRICE_DEPTH_BOOK)

Key = tuple[str, int]
"""(symbol, kind): one subscription of a connection."""


class Sink(Protocol):
    """Where a subscriber's frames go (a net.Connection, through the component's adapter)."""

    def send(self, frame: bytes) -> None:
        """Queue one encoded frame (never blocks)."""

    @property
    def writing_paused(self) -> bool:
        """Whether the connection holds more unsent bytes than it should take more book messages for."""


class Subscriber:
    """One connection's subscriptions and the conflation of its book messages (see the module docstring)."""

    __slots__ = ("keys", "last", "pending", "sink")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.keys: set[Key] = set()
        """The subscriptions it holds."""
        self.last: dict[Key, Hashable] = {}
        """The state each subscription last received."""
        self.pending: dict[Key, tuple[Hashable, bytes]] = {}
        """The latest state (and its frame) each subscription has not received, kept while backed up."""

    def book(self, key: Key, state: Hashable, frame: bytes) -> None:
        """A new state of a subscription: sent now, or kept (replacing an older one) while backed up."""
        if self.sink.writing_paused:
            if self.last.get(key) == state:
                self.pending.pop(key, None)
            else:
                self.pending[key] = (state, frame)
            return
        if self.pending:
            self.pending.pop(key, None)
        self.last[key] = state
        self.sink.send(frame)

    def snapshot(self, key: Key, state: Hashable, frame: bytes) -> None:
        """The snapshot of a (new or renewed) subscription: always sent at once, replacing a kept state."""
        self.keys.add(key)
        self.pending.pop(key, None)
        self.last[key] = state
        self.sink.send(frame)

    def trade(self, frame: bytes) -> None:
        self.sink.send(frame)

    def drained(self) -> None:
        """The connection can take more: send each kept state that differs from what it last received."""
        pending = self.pending
        if not pending:
            return
        self.pending = {}
        last = self.last
        for key, (state, frame) in pending.items():
            if key in self.keys and last.get(key) != state:
                last[key] = state
                self.sink.send(frame)

    def forget(self, key: Key) -> None:
        self.keys.discard(key)
        self.last.pop(key, None)
        self.pending.pop(key, None)


class Topic:
    """The subscribers of one symbol: by kind for book messages, all together for trades."""

    __slots__ = ("by_kind", "members")

    def __init__(self) -> None:
        self.by_kind: tuple[dict[Subscriber, None], dict[Subscriber, None]] = ({}, {})
        self.members: dict[Subscriber, int] = {}
        """Every subscriber of the symbol, with how many kinds it holds (trades go once to each)."""


class Fanout:
    """Every symbol's subscribers; the component hands it encoded frames."""

    __slots__ = ("subscribers", "topics")

    def __init__(self) -> None:
        self.topics: dict[str, Topic] = {}
        self.subscribers: dict[Sink, Subscriber] = {}

    def wants(self, symbol: str, kind: int) -> bool:
        """Whether anyone holds this subscription (else its frame need not be encoded)."""
        topic = self.topics.get(symbol)
        return topic is not None and bool(topic.by_kind[kind])

    def has_members(self, symbol: str) -> bool:
        """Whether anyone is subscribed to the symbol (with any kind)."""
        topic = self.topics.get(symbol)
        return topic is not None and bool(topic.members)

    def subscribe(self, sink: Sink, symbol: str, kind: int, state: Hashable, snapshot: bytes) -> None:
        """Add (or renew) a subscription and send its snapshot at once."""
        subscriber = self.subscribers.get(sink)
        if subscriber is None:
            subscriber = self.subscribers[sink] = Subscriber(sink)
        topic = self.topics.get(symbol)
        if topic is None:
            topic = self.topics[symbol] = Topic()
        key = (symbol, kind)
        if key not in subscriber.keys:
            topic.by_kind[kind][subscriber] = None
            topic.members[subscriber] = topic.members.get(subscriber, 0) + 1
        subscriber.snapshot(key, state, snapshot)

    def book(self, symbol: str, kind: int, state: Hashable, frame: bytes) -> None:
        """A new state of a symbol's book as one kind shows it, to each of its subscribers."""
        topic = self.topics.get(symbol)
        if topic is None:
            return
        key = (symbol, kind)
        for subscriber in topic.by_kind[kind]:
            subscriber.book(key, state, frame)

    def trade(self, symbol: str, frame: bytes) -> None:
        """A trade, once to each connection subscribed to the symbol."""
        topic = self.topics.get(symbol)
        if topic is None:
            return
        for subscriber in topic.members:
            subscriber.trade(frame)

    def drained(self, sink: Sink) -> None:
        subscriber = self.subscribers.get(sink)
        if subscriber is not None:
            subscriber.drained()

    def drop_symbol(self, symbol: str) -> None:
        """End every subscription to a symbol (it no longer exists)."""
        topic = self.topics.pop(symbol, None)
        if topic is None:
            return
        for kind in KINDS:
            for subscriber in topic.by_kind[kind]:
                subscriber.forget((symbol, kind))

    def remove(self, sink: Sink) -> None:
        """A connection went away: drop all its subscriptions."""
        subscriber = self.subscribers.pop(sink, None)
        if subscriber is None:
            return
        for symbol, kind in subscriber.keys:
            topic = self.topics.get(symbol)
            if topic is None:
                continue
            topic.by_kind[kind].pop(subscriber, None)
            topic.members.pop(subscriber, None)
            if not topic.members:
                del self.topics[symbol]
