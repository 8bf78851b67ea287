"""What info publishes, computed from the feed's mirror and its changes: pure, integers inside.

No asyncio, no protobuf: ``Market`` follows a ``feed.mirror.BookMirror``
(``reset(mirror)`` with a whole fresh mirror, ``apply(change)`` with each
live change already applied to it, ``settle()`` whenever the owner wants the
books published) and returns what info must publish, as plain data, in the
order it must go out:

- ``Listed``: an instrument to announce (a book that has an instrument),
  from ``apply`` at once;
- ``Trade``: one trade, in matching order, from ``apply`` at once, so always
  before the book update it caused (section 5);
- ``TopUpdate`` / ``DepthUpdate``: a book's new top of book / depth, from
  ``settle``: one per book changed since the last settle, only if the book
  is consistent (the mirror's ``consistent``: never half a sweep, so never
  crossed; a book half-way through a sweep waits for the next settle) and
  only when what it shows changed;
- ``Delisted``: a symbol that no longer exists after a reset (a new day).

Every change that is not a trade or a new book only marks its book changed
(its timestamp the change's): inserts, cancels (whatever their reason) and
the extension's ``OrderAmended`` (an amend that kept priority lowers its
level's total in the mirror) alike; the mirror's consistency covers the
extension's IOC orders, whose transient rest a book never shows.

Book updates are coalesced (section 5 allows conflation under load): the
owner settles once per batch of feed events (info: once per event-loop
turn, and at each barrier), so a burst of changes to one book costs one
top, one depth and one encoding, not one per change; a quiet book's every
change is still published, since each arrives in a batch of its own.

Each book's last published top and depth (``BookView``) are what a snapshot
shows: a consistent state, even while the mirror is half-way through a sweep
whose frames arrived in two reads.

Quantities shown: a level's total can exceed int32 (many orders of up to
2**31-1 each), and ``PriceLevel.quantity`` is int32, so a shown total is
clamped to ``MAX_SHOWN_QUANTITY`` (2**31-1). States are compared as shown:
a change hidden by the clamp publishes nothing.

Depth shown: at most ``MAX_DEPTH_LEVELS`` levels per side, the best ones, so
that an OnPriceDepthBook always fits in one frame (``wire.MAX_FRAME_LENGTH``,
1 MiB; a level takes at most 17 bytes encoded).
"""

from __future__ import annotations

from typing import NamedTuple

from optivex.feed.mirror import (
    BUY,
    SELL,
    BookCreated,
    BookMirror,
    Change,
    Instrument,
    MirrorBook,
    TradeApplied,
)

MAX_SHOWN_QUANTITY = 2**31 - 1
"""The largest level total info shows (PriceLevel.quantity is int32); larger totals show as this."""

MAX_DEPTH_LEVELS = 30_000
"""Levels per side a depth shows (the best ones): 2 x 30,000 levels of at most 17 bytes fit in a frame."""

Level = tuple[int, int]
"""(price in units, shown total quantity)."""


class Top(NamedTuple):
    """The best level of each side, None while that side is empty."""

    bid: Level | None
    ask: Level | None


class Depth(NamedTuple):
    """Every level, bids best (highest) first, asks best (lowest) first."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


EMPTY_TOP = Top(None, None)
EMPTY_DEPTH = Depth((), ())


class Listed(NamedTuple):
    """An instrument to announce (OnInstrument)."""

    symbol: str
    book_id: int
    created_timestamp: int
    tick: int
    instrument: Instrument


class Delisted(NamedTuple):
    """A symbol that no longer exists (after a reset): its subscriptions end."""

    symbol: str


class Trade(NamedTuple):
    """One trade of an instrument (OnTrade)."""

    symbol: str
    trade_id: int
    timestamp: int
    price: int
    quantity: int
    aggressor_side: int


class TopUpdate(NamedTuple):
    symbol: str
    timestamp: int
    top: Top


class DepthUpdate(NamedTuple):
    symbol: str
    timestamp: int
    depth: Depth


Publication = Listed | Delisted | Trade | TopUpdate | DepthUpdate


def _shown(level: tuple[int, int] | None) -> Level | None:
    if level is None:
        return None
    price, total = level
    return (price, total) if total <= MAX_SHOWN_QUANTITY else (price, MAX_SHOWN_QUANTITY)


def shown_top(book: MirrorBook) -> Top:
    """The top of book of a (consistent) mirror book, as shown."""
    return Top(_shown(book.best(BUY)), _shown(book.best(SELL)))


def shown_depth(book: MirrorBook) -> Depth:
    """The depth of a (consistent) mirror book, as shown: the best MAX_DEPTH_LEVELS levels of each side."""
    m = MAX_SHOWN_QUANTITY
    bids = book.levels(BUY)
    asks = book.levels(SELL)
    if len(bids) > MAX_DEPTH_LEVELS:
        del bids[MAX_DEPTH_LEVELS:]
    if len(asks) > MAX_DEPTH_LEVELS:
        del asks[MAX_DEPTH_LEVELS:]
    return Depth(
        tuple((p, q if q <= m else m) for p, q in bids),
        tuple((p, q if q <= m else m) for p, q in asks),
    )


class BookView:
    """The last published state of one instrument's book: what its snapshots show."""

    __slots__ = (
        "book_id",
        "created_timestamp",
        "depth",
        "depth_timestamp",
        "instrument",
        "symbol",
        "tick",
        "top",
        "top_timestamp",
    )

    def __init__(self, book_id: int, tick: int, created_timestamp: int, instrument: Instrument) -> None:
        self.book_id = book_id
        self.tick = tick
        self.created_timestamp = created_timestamp
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.top = EMPTY_TOP
        self.top_timestamp = created_timestamp
        """The timestamp of the change that made ``top`` what it is (creation while unchanged)."""
        self.depth = EMPTY_DEPTH
        self.depth_timestamp = created_timestamp

    @property
    def listed(self) -> Listed:
        return Listed(self.symbol, self.book_id, self.created_timestamp, self.tick, self.instrument)


def _last_timestamp(book: MirrorBook) -> int:
    """The latest timestamp a replayed book shows: its creation or its latest resting order."""
    return max([book.timestamp, *(o.timestamp for o in book.resting_orders())])


class Market:
    """The published state of every instrument; see the module docstring."""

    __slots__ = ("_announced", "_dirty", "_mirror", "_symbols", "_views")

    def __init__(self) -> None:
        self._mirror = BookMirror()
        self._views: dict[int, BookView] = {}
        self._symbols: dict[str, BookView] = {}
        self._dirty: dict[int, int] = {}
        """Books changed since they were last settled: book id -> timestamp of the latest change."""
        self._announced: set[tuple[int, int, str]] = set()
        """(book id, created timestamp, symbol) of every book announced so far (across resets)."""

    # ------------------------------------------------------------------ queries

    def view(self, symbol: str) -> BookView | None:
        """The published state of an instrument, or None if info does not know the symbol."""
        return self._symbols.get(symbol)

    def views(self) -> list[BookView]:
        """Every instrument, in creation order."""
        return list(self._views.values())

    @property
    def unsettled(self) -> bool:
        """Whether some book changed since it was last published (``settle`` has work)."""
        return bool(self._dirty)

    # ------------------------------------------------------------------ following the mirror

    def reset(self, mirror: BookMirror) -> list[Publication]:
        """A fresh mirror (the feed's replay, first connection or a new day): the whole state.

        Returns, in order: ``Listed`` for each instrument not announced before,
        ``Delisted`` for each symbol gone, then the top and depth of each
        symbol that existed before, where what it shows differs from what was
        published for that symbol.
        """
        old = self._symbols
        self._mirror = mirror
        self._views = {}
        self._symbols = {}
        self._dirty = {}
        out: list[Publication] = []
        updates: list[Publication] = []
        for book in mirror.books():
            instrument = book.instrument
            if instrument is None:
                continue
            view = BookView(book.book_id, book.tick, book.timestamp, instrument)
            view.top = shown_top(book)
            view.depth = shown_depth(book)
            if len(book):
                view.top_timestamp = view.depth_timestamp = _last_timestamp(book)
            self._views[book.book_id] = view
            self._symbols[view.symbol] = view
            key = (book.book_id, book.timestamp, view.symbol)
            if key not in self._announced:
                self._announced.add(key)
                out.append(view.listed)
            before = old.get(view.symbol)
            if before is not None:
                if before.top != view.top:
                    updates.append(TopUpdate(view.symbol, view.top_timestamp, view.top))
                if before.depth != view.depth:
                    updates.append(DepthUpdate(view.symbol, view.depth_timestamp, view.depth))
        out.extend(Delisted(symbol) for symbol in old if symbol not in self._symbols)
        out.extend(updates)
        return out

    def apply(self, change: Change) -> list[Publication]:
        """One live change, already applied to the mirror: what to publish at once (trades, instruments).

        The book's new state waits for ``settle``.
        """
        book_id = change.book_id
        view = self._views.get(book_id)
        if view is None:
            if type(change) is BookCreated and change.instrument is not None:
                return self._created(change, change.instrument)
            return []  # a book without an instrument: nothing of it is published
        self._dirty[book_id] = change.timestamp
        if type(change) is TradeApplied:
            return [
                Trade(
                    view.symbol,
                    change.trade_id,
                    change.timestamp,
                    change.price,
                    change.quantity,
                    change.aggressor_side,
                )
            ]
        return []

    def settle(self) -> list[Publication]:
        """The new top and depth of each consistent book changed since the last settle, where they changed.

        A book half-way through a sweep stays unsettled until a settle after its last trade.
        """
        dirty = self._dirty
        if not dirty:
            return []
        self._dirty = {}
        out: list[Publication] = []
        mirror = self._mirror
        for book_id, timestamp in dirty.items():
            view = self._views[book_id]
            book = mirror.book(book_id)
            if book is None:  # the mirror always has the book of a change it returned
                continue
            if not book.consistent:
                self._dirty[book_id] = timestamp
                continue
            top = shown_top(book)
            if top != view.top:
                view.top = top
                view.top_timestamp = timestamp
                out.append(TopUpdate(view.symbol, timestamp, top))
            depth = shown_depth(book)
            if depth != view.depth:
                view.depth = depth
                view.depth_timestamp = timestamp
                out.append(DepthUpdate(view.symbol, timestamp, depth))
        return out

    def _created(self, change: BookCreated, instrument: Instrument) -> list[Publication]:
        view = BookView(change.book_id, change.tick, change.timestamp, instrument)
        self._views[change.book_id] = view
        self._symbols[view.symbol] = view
        self._announced.add((change.book_id, change.timestamp, view.symbol))
        return [view.listed]
