"""Fan-out of info's messages to subscribers, with conflation for slow readers: no asyncio, no protobuf.

Frames arrive here encoded (once per change, by the component) and the same
bytes go to every subscriber that shows that state. A subscriber is one
connection (a ``Sink``) with all its subscriptions, at most one per
(symbol, subscription type); a PRICE_DEPTH_BOOK subscription has a depth
limit (0: every level; N > 0: the best N levels of each side).

- **Groups.** A symbol's subscribers (``Topic``) are grouped by what they
  show: one group for TOP_OF_BOOK, one PRICE_DEPTH_BOOK group per distinct
  depth limit. Each group keeps the state it was last sent; a new depth
  (``Fanout.depth``) is cut to each group's limit and compared with it, so a
  group gets a frame (encoded once, shared by its members) only when what
  it shows changed: a change below level N sends a limit-N group nothing.
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
- **Unsubscribe** ends one subscription at once: its kept state goes with
  it, and once the connection holds no subscription on the symbol it gets
  no more of its trades.

So the last book message a subscriber receives always shows the book as it
is, and a stalled subscriber costs one kept state per subscription, never a
backlog; nobody waits for it (sends never block).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Protocol

from optivex.info.market import Depth

TOP_OF_BOOK = 0
PRICE_DEPTH_BOOK = 1
"""Subscription kinds: the values of info.proto's SubscriptionType."""
KINDS = (TOP_OF_BOOK, PRICE_DEPTH_BOOK)
KIND_NAMES = {TOP_OF_BOOK: "TOP_OF_BOOK", PRICE_DEPTH_BOOK: "PRICE_DEPTH_BOOK"}

Key = tuple[str, int]
"""(symbol, kind): one subscription of a connection."""


def best_levels(depth: Depth, limit: int) -> Depth:
    """What a depth subscription with `limit` shows: every level (0), or the best `limit` of each side."""
    if limit == 0 or (len(depth.bids) <= limit and len(depth.asks) <= limit):
        return depth
    return Depth(depth.bids[:limit], depth.asks[:limit])


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
        self.keys: dict[Key, int] = {}
        """The subscriptions it holds, each with its depth limit (0 for TOP_OF_BOOK)."""
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

    def snapshot(self, key: Key, limit: int, state: Hashable, frame: bytes) -> None:
        """The snapshot of a (new or renewed) subscription: always sent at once, replacing a kept state."""
        self.keys[key] = limit
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
        self.keys.pop(key, None)
        self.last.pop(key, None)
        self.pending.pop(key, None)


class Group:
    """The subscribers of one symbol that show the same thing (one kind, one depth limit)."""

    __slots__ = ("members", "state")

    def __init__(self, state: Hashable) -> None:
        self.members: dict[Subscriber, None] = {}
        self.state = state
        """What the group was last sent (its first member's snapshot, then each update)."""


class Topic:
    """The subscribers of one symbol: in groups for book messages, all together for trades."""

    __slots__ = ("depth", "members", "top")

    def __init__(self) -> None:
        self.top: Group | None = None
        """TOP_OF_BOOK subscribers (None while there are none)."""
        self.depth: dict[int, Group] = {}
        """PRICE_DEPTH_BOOK subscribers by depth limit (a group exists only while it has members)."""
        self.members: dict[Subscriber, int] = {}
        """Every subscriber of the symbol, with how many kinds it holds (trades go once to each)."""

    def group(self, kind: int, limit: int) -> Group | None:
        return self.top if kind == TOP_OF_BOOK else self.depth.get(limit)

    def join(self, subscriber: Subscriber, kind: int, limit: int, state: Hashable) -> None:
        group = self.group(kind, limit)
        if group is None:
            group = Group(state)
            if kind == TOP_OF_BOOK:
                self.top = group
            else:
                self.depth[limit] = group
        group.members[subscriber] = None

    def leave(self, subscriber: Subscriber, kind: int, limit: int) -> None:
        """`subscriber` leaves one group (it held that subscription); an empty group goes."""
        group = self.group(kind, limit)
        if group is None:
            return
        group.members.pop(subscriber, None)
        if not group.members:
            if kind == TOP_OF_BOOK:
                self.top = None
            else:
                del self.depth[limit]
        held = self.members.get(subscriber, 0) - 1
        if held > 0:
            self.members[subscriber] = held
        else:
            self.members.pop(subscriber, None)


class Fanout:
    """Every symbol's subscribers; the component hands it encoded frames."""

    __slots__ = ("subscribers", "topics")

    def __init__(self) -> None:
        self.topics: dict[str, Topic] = {}
        self.subscribers: dict[Sink, Subscriber] = {}

    def wants(self, symbol: str, kind: int) -> bool:
        """Whether anyone holds this subscription (else its frame need not be encoded)."""
        topic = self.topics.get(symbol)
        if topic is None:
            return False
        return topic.top is not None if kind == TOP_OF_BOOK else bool(topic.depth)

    def has_members(self, symbol: str) -> bool:
        """Whether anyone is subscribed to the symbol (with any kind)."""
        topic = self.topics.get(symbol)
        return topic is not None and bool(topic.members)

    def holds(self, sink: Sink, symbol: str, kind: int) -> bool:
        """Whether the connection holds this subscription."""
        subscriber = self.subscribers.get(sink)
        return subscriber is not None and (symbol, kind) in subscriber.keys

    def subscribe(
        self, sink: Sink, symbol: str, kind: int, state: Hashable, snapshot: bytes, limit: int = 0
    ) -> None:
        """Add (or renew, with a new depth limit if given) a subscription and send its snapshot at once.

        `state` is what it shows (for PRICE_DEPTH_BOOK: ``best_levels`` of the
        published depth), `snapshot` its frame; `limit` is 0 for TOP_OF_BOOK.
        """
        subscriber = self.subscribers.get(sink)
        if subscriber is None:
            subscriber = self.subscribers[sink] = Subscriber(sink)
        topic = self.topics.get(symbol)
        if topic is None:
            topic = self.topics[symbol] = Topic()
        key = (symbol, kind)
        held = subscriber.keys.get(key)
        if held != limit:
            if held is not None:
                topic.leave(subscriber, kind, held)
            topic.join(subscriber, kind, limit, state)
            topic.members[subscriber] = topic.members.get(subscriber, 0) + 1
        subscriber.snapshot(key, limit, state, snapshot)

    def unsubscribe(self, sink: Sink, symbol: str, kind: int) -> bool:
        """End one subscription (and drop its kept state); False if the connection does not hold it."""
        subscriber = self.subscribers.get(sink)
        if subscriber is None:
            return False
        key = (symbol, kind)
        limit = subscriber.keys.get(key)
        if limit is None:
            return False
        subscriber.forget(key)
        topic = self.topics.get(symbol)
        if topic is not None:
            topic.leave(subscriber, kind, limit)
            if not topic.members:
                del self.topics[symbol]
        if not subscriber.keys:
            del self.subscribers[sink]
        return True

    def book(self, symbol: str, kind: int, state: Hashable, frame: bytes, limit: int = 0) -> None:
        """A new state of one group of a symbol (TOP_OF_BOOK, or the depth limit `limit`), to each member."""
        topic = self.topics.get(symbol)
        if topic is None:
            return
        group = topic.group(kind, limit)
        if group is None:
            return
        group.state = state
        key = (symbol, kind)
        for subscriber in group.members:
            subscriber.book(key, state, frame)

    def depth(self, symbol: str, depth: Depth, encode: Callable[[Depth], bytes]) -> None:
        """A new published depth of a symbol: to each depth group whose shown levels changed.

        `encode` makes the frame of what a group shows; it is called once per
        group that changed, and that frame is shared by the group's members.
        """
        topic = self.topics.get(symbol)
        if topic is None:
            return
        key = (symbol, PRICE_DEPTH_BOOK)
        for limit, group in topic.depth.items():
            shown = best_levels(depth, limit)
            if shown == group.state:
                continue
            group.state = shown
            frame = encode(shown)
            for subscriber in group.members:
                subscriber.book(key, shown, frame)

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
        for subscriber in topic.members:
            subscriber.forget((symbol, TOP_OF_BOOK))
            subscriber.forget((symbol, PRICE_DEPTH_BOOK))

    def remove(self, sink: Sink) -> None:
        """A connection went away: drop all its subscriptions."""
        subscriber = self.subscribers.pop(sink, None)
        if subscriber is None:
            return
        for (symbol, kind), limit in subscriber.keys.items():
            topic = self.topics.get(symbol)
            if topic is None:
                continue
            topic.leave(subscriber, kind, limit)
            if not topic.members:
                del self.topics[symbol]
