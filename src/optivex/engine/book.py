"""The fast order book, and ``Books``: the books of one exchange with the engine's one hot path.

``OrderBook`` is one instrument's book: price-time priority, integer prices.
``Books`` holds every book of an exchange and what they share: the id
counters and the table of resting orders. Its ``insert`` and ``cancel`` are
the engine's only code that places and removes orders. ``Exchange`` inherits
them as they are, so the component's call lands on the hot path itself: a
delegating ``Exchange.cancel`` alone (one Python call more per cancel) cost
about 7% of the ``Exchange`` figure of benchmarks/engine_mix.py, the same for
insert would have cost about as much again. ``OrderBook.insert``/``cancel``
are the same path for a book used on its own.

Layout (chosen by profiling the exchange-core mix, see benchmarks/engine_mix.py):

- Each side keeps a binary heap of *keys* and a dict key -> ``Level``. A key is
  the price for asks and minus the price for bids, so on both sides the
  smallest key is the best price and one matching routine serves both.
  Each heap ends with a sentinel key larger than any price, so "does the
  incoming order cross?" is one comparison with ``heap[0]`` and never an
  emptiness test.
- The heap and the dict hold exactly the same keys, each once (a heap never
  holds a stale or duplicate key). A level that empties is not removed at
  once, not even at the top of its heap: the next order at that price reuses
  it (no allocation, no heap push), and a cancel does not look at the heap at
  all. An empty level at the top only makes the cross test answer "maybe":
  matching drops every empty or exhausted level it meets at the top, and the
  queries skip empty levels. The empty levels elsewhere are dropped by a
  compaction once a side holds more than 64 + 4 times as many levels as the
  larger side held after the previous one, so memory stays bounded over a
  day (by a few times the peak number of live levels) while a book whose
  prices keep coming back never reallocates its levels.
- The levels of the two sides never cross, empty ones included: every bid
  level is below every ask level. (Only matching removes levels at a crossing
  price, and an order rests only once matching removed every opposite level
  it crosses.) So an order that rests after crossing always opens a new
  level, and an order joining an existing level never crosses.
- A level is a doubly linked FIFO of its orders (``Order._prev``/``_next``):
  append, cancel and fill are O(1) and nothing dead is ever left behind in a
  queue. Its total quantity is not kept (one attribute update fewer on
  every insert, cancel and fill); ``levels``/``best`` add it up when asked.
- Resting orders of all the books of a ``Books`` are in one dict
  order_id -> Order (``Order.book_id`` names the book): O(1) cancel, and the
  order -> book table of the cancel errors. It holds resting orders only, so
  its memory follows what rests, not the orders of the day: CPython sizes a
  dict to about 3 times its live entries whenever it grows, and an insert
  off the hot path (one that opens a level or crosses) rebuilds the table
  once it is more than ``_TABLE_SLACK`` times the size that what rests needs
  (plus ``_TABLE_FLOOR`` entries, 64 KiB), so memory is freed soon after a
  crowd of orders left, not only when the table next grows. A cancel does no
  such test (it would cost every cancel). Of an order that left, nothing is
  kept: see ``Books._cancel_error`` for what a cancel of it answers.

The hot path. ``Books.insert`` handles the common case with no call at all: a
valid order that crosses nothing and joins an existing level of its book
(every resting order of the exchange-core mix but those that open a level).
Such an order's price needs no test of its own: a level is only ever opened
by a price that was validated in full, so a price equal to a level's is > 0,
<= MAX_UNITS and a multiple of the tick (only the quantity is tested).
Everything else (an order that may cross, opens a level, or anything
invalid) is validated in full, then matched by ``OrderBook._place``.
``Books.cancel`` finds the order in the shared table and unlinks it.

Insert is O(log levels) when it opens a level and O(1) otherwise (plus the
fills, and O(log levels) for each empty level dropped from the top); cancel
is O(1).

The trader extensions are off the hot path and leave it as it is:
``Books.place`` (time in force, self-trade prevention) is ``insert`` itself
for GTC without self-trade prevention, and otherwise validates as ``insert``,
matches with ``OrderBook._match`` (or ``_match_stp``, which also removes or
stops at the owner's own orders and drops exhausted levels the same way, so
the levels still never cross) and rests with ``OrderBook._rest``; a FOK
order is first measured by ``OrderBook._available`` (a walk of the heap in
key order, changing nothing). ``Books.amend`` reduces an order in place or
cancels it and places a new one; ``Books.cancel_orders`` cancels through
``cancel`` (O(ids) with a list of ids, else a scan of the order table).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from heapq import heapify, heappop, heappush
from operator import attrgetter
from sys import getsizeof
from typing import Final

from optivex.engine.types import (
    BUY,
    FOK,
    GTC,
    SELF_TRADE_PREVENTIONS,
    SELL,
    STP_ALLOW,
    STP_CANCEL_INCOMING,
    TIMES_IN_FORCE,
    Amendment,
    BookId,
    BookIntegrityError,
    Fill,
    Level,
    Order,
    OrderId,
    Placement,
    Price,
    Quantity,
    Rejected,
    TradeId,
)
from optivex.units import INT32_MAX, MAX_UNITS, format_units

__all__ = ["Books", "OrderBook", "order_error"]

_SENTINEL: Final = 1 << 62
"""A key above every valid key (prices are < 2**53 units)."""
_MIN_COMPACT: Final = 64
"""Levels a side may hold before its first compaction (see the module docstring)."""
_ENTRY_BYTES: Final = 100
"""Bytes a resting order costs the order table at most, in a table built for what rests (about 40-90)."""
_TABLE_FLOOR: Final = 640
"""Entries the order table may be sized for whatever rests (64 KiB at ``_ENTRY_BYTES``)."""
_TABLE_SLACK: Final = 8
"""The order table is rebuilt once it is this many times larger than what rests needs (plus the floor)."""
_FOK_STP: Final = ("", " (orders of the same owner not counted)", " before the first order of the same owner")
"""The end of a FOK rejection's message, by self-trade prevention (it says what was counted)."""


def _total(level: Level) -> Quantity:
    """The total remaining quantity of a level's orders."""
    total = 0
    order = level.head
    while order is not None:
        total += order.remaining
        order = order._next
    return Quantity(total)


def _require(condition: bool, what: str) -> None:
    """Raise ``BookIntegrityError(what)`` unless ``condition`` holds (the integrity checks)."""
    if not condition:
        raise BookIntegrityError(what)


def order_error(side: int, price: int | None, quantity: int, tick: int) -> str | None:
    """Why an order of a book with tick `tick` (units) is invalid, or None; the order book's wording.

    ``price`` in units (None when the wire price was not representable). Shared by the order book
    (``Books.insert``) and the gateway, which validates before its risk checks.
    """
    if side != BUY and side != SELL:
        return f"invalid side {side!r}: it must be BUY or SELL"
    if price is None:
        return "invalid price: not a finite number representable with 4 decimals"
    if price <= 0:
        return f"invalid price {format_units(price)}: it must be > 0"
    if price > MAX_UNITS:
        return f"invalid price {format_units(price)}: too large"
    if price % tick:
        return f"invalid price {format_units(price)}: not a multiple of the tick size {format_units(tick)}"
    if quantity <= 0 or quantity > INT32_MAX:
        return f"invalid quantity {quantity}: it must be between 1 and {INT32_MAX}"
    return None


class OrderBook:
    """One order book with price-time priority; it belongs to one ``Books``.

    Orders reach it through its ``Books`` (``Exchange.insert``/``cancel``);
    ``insert``/``cancel`` here are the same path for a book used on its own.
    Time priority is arrival order, which is order id order; timestamps are
    stored, never compared.
    """

    __slots__ = (
        "_ask_heap",
        "_ask_levels",
        "_bid_heap",
        "_bid_levels",
        "_books",
        "_floor",
        "_limit",
        "_orders",
        "book_id",
        "tick",
    )

    def __init__(
        self,
        book_id: int = 0,
        tick: int = 1,
        compact_floor: int = _MIN_COMPACT,
        books: Books | None = None,
    ) -> None:
        """A new empty book of ``books`` (of a ``Books`` of its own if None).

        ``tick`` in units, > 0 (``Exchange.create_book`` validates); ``compact_floor``:
        levels a side may hold before the first compaction (small in tests).
        """
        if books is None:
            books = Books()
        if book_id in books._books:
            raise ValueError(f"book {book_id} already exists")
        self.book_id = BookId(book_id)
        self.tick = Price(tick)
        self._floor = compact_floor
        self._bid_heap: list[int] = [_SENTINEL]
        self._bid_levels: dict[int, Level] = {}
        self._ask_heap: list[int] = [_SENTINEL]
        self._ask_levels: dict[int, Level] = {}
        self._books = books
        self._orders = books._index
        self._limit = compact_floor
        books._books[self.book_id] = self

    # ------------------------------------------------------------------ orders

    def insert(
        self, side: int, price: int | None, quantity: int, owner: str, timestamp: int
    ) -> tuple[Order, Sequence[Fill]]:
        """``Books.insert`` into this book: the new order and its fills; Rejected if invalid."""
        return self._books.insert(self.book_id, side, price, quantity, owner, timestamp)

    def cancel(self, order_id: int) -> Order | None:
        """``Books.cancel`` in this book: the cancelled order, or None if it does not rest here."""
        try:
            return self._books.cancel(self.book_id, order_id)
        except Rejected:
            return None

    def _place(self, order: Order, trade_id: int) -> Sequence[Fill]:
        """Match a valid new order that does not join an existing level; rest what is left; its fills.

        ``order`` is not in the book yet (``_next`` None); ``trade_id`` is the
        first trade id to use, the fills have consecutive ones from there.
        """
        price = order.price
        fills: Sequence[Fill] = ()
        if order.side == BUY:
            if self._ask_heap[0] <= price:
                fills = self._match(order, self._ask_heap, self._ask_levels, price, 1, trade_id)
            key, heap, levels = -price, self._bid_heap, self._bid_levels
        else:
            if self._bid_heap[0] <= -price:
                fills = self._match(order, self._bid_heap, self._bid_levels, -price, -1, trade_id)
            key, heap, levels = price, self._ask_heap, self._ask_levels
        if not order.remaining:
            order._prev = order._level = None
            return fills
        # No level at this price: either the order crossed (and no level of its
        # side is at a crossing price, see the module docstring) or it would
        # have taken the hot path.
        order._prev = None
        order._level = levels[key] = Level(order)
        self._orders[order.order_id] = order
        heappush(heap, key)
        if len(heap) > self._limit:
            self._compact()
        return fills

    def _match(
        self,
        order: Order,
        heap: list[int],
        levels: dict[int, Level],
        limit: int,
        sign: int,
        trade_id: int,
    ) -> list[Fill]:
        """Trade ``order`` against the opposite side while its best key is <= ``limit``."""
        fills: list[Fill] = []
        # Typed for plain ints: the values are validated prices, quantities and
        # ids, and a NewType call per fill would cost a Python call each.
        append: Callable[[tuple[int, int, str, int, int]], None] = fills.append  # type: ignore[assignment]
        orders = self._orders
        rem = order.remaining
        key = heap[0]
        while True:
            # An empty level (even at the top: see the module docstring) has no
            # head, so it counts as exhausted below.
            level = levels[key]
            price = key * sign
            maker = level.head
            while maker is not None:
                avail = maker.remaining
                if avail > rem:
                    maker.remaining = avail - rem  # type: ignore[assignment]
                    append((trade_id, maker.order_id, maker.owner, price, rem))
                    trade_id += 1
                    rem = 0  # type: ignore[assignment]
                    break
                append((trade_id, maker.order_id, maker.owner, price, avail))
                trade_id += 1
                maker.remaining = 0  # type: ignore[assignment]
                del orders[maker.order_id]
                rem -= avail  # type: ignore[assignment]
                nxt = maker._next
                maker._prev = maker._next = None
                maker = nxt
                if not rem:
                    break
            if maker is not None:
                # Level still live: rem is 0.
                maker._prev = None
                level.head = maker
                break
            # Level exhausted (or empty already): it is the top, drop it.
            heappop(heap)
            del levels[key]
            key = heap[0]
            if not rem or key > limit:
                break
        order.remaining = rem
        return fills

    # ------------------------------------------------------------------ extensions (off the hot path)

    def _rest(self, order: Order) -> None:
        """Rest a valid order that crosses nothing at the back of its level (opening it if need be)."""
        if order.side == BUY:
            key, heap, levels = -order.price, self._bid_heap, self._bid_levels
        else:
            key, heap, levels = order.price, self._ask_heap, self._ask_levels
        order._next = None
        self._orders[order.order_id] = order
        level = levels.get(key)
        if level is None:
            order._prev = None
            order._level = levels[key] = Level(order)
            heappush(heap, key)
            if len(heap) > self._limit:
                self._compact()
            return
        order._level = level
        tail = level.tail
        order._prev = tail
        if tail is not None:
            tail._next = order
        else:  # the level was empty
            level.head = order
        level.tail = order

    def _match_stp(
        self,
        order: Order,
        heap: list[int],
        levels: dict[int, Level],
        limit: int,
        sign: int,
        trade_id: int,
        stp: int,
    ) -> tuple[list[Fill], list[Order], bool]:
        """``_match`` with self-trade prevention for an owner != "": fills, orders STP cancelled, stopped.

        A resting order of the same owner is removed whole (``STP_CANCEL_RESTING``:
        matching goes on) or ends the matching (``STP_CANCEL_INCOMING``: stopped
        True, that order stays). Levels it exhausts are dropped from the top as
        by ``_match``, so the levels never cross once the order rests.
        """
        fills: list[Fill] = []
        cancelled: list[Order] = []
        orders = self._orders
        owner = order.owner
        rem = order.remaining
        stopped = False
        key = heap[0]
        while rem and key <= limit:
            level = levels[key]
            price = Price(key * sign)
            maker = level.head
            while maker is not None and rem:
                if maker.owner == owner:
                    if stp == STP_CANCEL_INCOMING:
                        stopped = True
                        break
                    del orders[maker.order_id]
                    cancelled.append(maker)
                elif maker.remaining > rem:
                    maker.remaining = Quantity(maker.remaining - rem)
                    fills.append((TradeId(trade_id), maker.order_id, maker.owner, price, Quantity(rem)))
                    trade_id += 1
                    rem = Quantity(0)
                    break
                else:
                    fills.append((TradeId(trade_id), maker.order_id, maker.owner, price, maker.remaining))
                    trade_id += 1
                    rem = Quantity(rem - maker.remaining)
                    maker.remaining = Quantity(0)
                    del orders[maker.order_id]
                nxt = maker._next
                maker._prev = maker._next = None
                maker = nxt
            if maker is not None:
                maker._prev = None
                level.head = maker
                break
            heappop(heap)
            del levels[key]
            key = heap[0]
        order.remaining = rem
        return fills, cancelled, stopped

    def _available(
        self, heap: list[int], levels: dict[int, Level], limit: int, owner: str, stp: int, wanted: int
    ) -> int:
        """The quantity an order could trade at once (at most ``wanted``, or all there is below it).

        Walks the opposite side in priority order up to ``limit`` (a key), as
        ``_match``/``_match_stp`` would, changing nothing: with ``STP_CANCEL_RESTING``
        the orders of ``owner`` do not count, with ``STP_CANCEL_INCOMING`` the
        first of them ends the walk. The levels are visited in key order by a
        walk of the heap itself (a small frontier heap of (key, index)), so it
        costs O(levels visited x log) and never sorts the side.
        """
        total = 0
        size = len(heap)
        frontier = [(heap[0], 0)] if heap[0] <= limit else []
        while frontier:
            key, i = heappop(frontier)
            maker = levels[key].head
            while maker is not None:
                if stp != STP_ALLOW and maker.owner == owner:
                    if stp == STP_CANCEL_INCOMING:
                        return total
                else:
                    total += maker.remaining
                    if total >= wanted:
                        return total
                maker = maker._next
            for child in (2 * i + 1, 2 * i + 2):
                if child < size and heap[child] <= limit:
                    heappush(frontier, (heap[child], child))
        return total

    # ------------------------------------------------------------------ housekeeping

    def _compact(self) -> None:
        """Drop empty levels of both sides and rebuild their heaps; reset the size limit."""
        for heap, levels in ((self._bid_heap, self._bid_levels), (self._ask_heap, self._ask_levels)):
            for key in [k for k, lv in levels.items() if lv.head is None]:
                del levels[key]
            heap[:] = list(levels)
            heap.append(_SENTINEL)
            heapify(heap)
        self._limit = self._floor + 4 * max(len(self._bid_heap), len(self._ask_heap))

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of resting orders (O(resting orders): the count is not kept on the hot path)."""
        return sum(1 for _ in self._walk(BUY)) + sum(1 for _ in self._walk(SELL))

    def __contains__(self, order_id: object) -> bool:
        return self.get(order_id) is not None

    def get(self, order_id: object) -> Order | None:
        """The resting order of this book with this id, or None."""
        try:
            order = self._orders.get(order_id)  # type: ignore[call-overload]
        except TypeError:  # unhashable
            return None
        return order if order is not None and order.book_id == self.book_id else None

    def _live_keys(self, side: int) -> list[int]:
        levels = self._bid_levels if side == BUY else self._ask_levels
        return sorted(k for k, lv in levels.items() if lv.head is not None)

    def _walk(self, side: int) -> list[Order]:
        levels = self._bid_levels if side == BUY else self._ask_levels
        out: list[Order] = []
        for key in self._live_keys(side):
            order = levels[key].head
            while order is not None:
                out.append(order)
                order = order._next
        return out

    def side_orders(self, side: int) -> list[Order]:
        """Resting orders of one side, best price first, oldest first within a price."""
        return self._walk(side)

    def resting_orders(self) -> list[Order]:
        """Resting orders in priority order: bids best first, then asks best first; FIFO within a price."""
        return self._walk(BUY) + self._walk(SELL)

    def levels(self, side: int) -> list[tuple[Price, Quantity]]:
        """(price, total remaining quantity) of each level of one side, best first."""
        levels = self._bid_levels if side == BUY else self._ask_levels
        sign = -1 if side == BUY else 1
        return [(Price(key * sign), _total(levels[key])) for key in self._live_keys(side)]

    def best(self, side: int) -> tuple[Price, Quantity] | None:
        """(price, total quantity) of the best level of one side, or None when it is empty."""
        keys = self._live_keys(side)
        if not keys:
            return None
        levels = self._bid_levels if side == BUY else self._ask_levels
        return Price(-keys[0] if side == BUY else keys[0]), _total(levels[keys[0]])

    # ------------------------------------------------------------------ checks

    def check_integrity(self) -> None:
        """Raise ``BookIntegrityError`` unless every invariant of this book holds (O(orders); tests)."""
        seen = self._check_levels()
        mine = {oid: o for oid, o in self._orders.items() if o.book_id == self.book_id}
        _require(mine.keys() == seen.keys(), "the order table and the levels hold other orders")

    def _check_levels(self) -> dict[OrderId, Order]:
        """Check the heaps and levels; the resting orders found in them, by id."""
        seen: dict[OrderId, Order] = {}
        for side, heap, levels in (
            (BUY, self._bid_heap, self._bid_levels),
            (SELL, self._ask_heap, self._ask_levels),
        ):
            _require(heap.count(_SENTINEL) == 1, "one sentinel per heap")
            for i in range(1, len(heap)):
                _require(heap[(i - 1) // 2] <= heap[i], "heap order")
            keys = [k for k in heap if k != _SENTINEL]
            _require(len(keys) == len(set(keys)), "duplicate heap key")
            _require(set(keys) == set(levels), "heap keys and levels differ")
            _require(len(heap) <= max(self._limit, 1), "heap above its compaction limit")
            for key, level in levels.items():
                price = -key if side == BUY else key
                _require(0 < price <= MAX_UNITS and price % self.tick == 0, "invalid level price")
                order = level.head
                prev: Order | None = None
                while order is not None:
                    _require(order._prev is prev, "broken back link")
                    _require(order._level is level, "order points to another level")
                    _require(order.side == side and order.price == price, "order on the wrong level")
                    _require(order.book_id == self.book_id, "order of another book")
                    _require(0 < order.remaining <= order.quantity, "bad remaining quantity")
                    _require(order.order_id not in seen, "order twice in the book")
                    _require(
                        self._orders.get(order.order_id) is order,
                        "resting order missing from the order table",
                    )
                    _require(prev is None or prev.order_id < order.order_id, "FIFO broken within a level")
                    seen[order.order_id] = order
                    prev = order
                    order = order._next
                _require(level.tail is prev, "bad level tail")
        # Levels never cross, empty ones included (the hot path relies on it).
        top_bid, top_ask = self._bid_heap[0], self._ask_heap[0]
        _require(top_bid == _SENTINEL or top_ask == _SENTINEL or -top_bid < top_ask, "levels cross")
        bid, ask = self.best(BUY), self.best(SELL)
        _require(bid is None or ask is None or bid[0] < ask[0], f"crossed book: bid {bid} >= ask {ask}")
        return seen


class Books:
    """Every book of one exchange, their id counters and resting-order table; the one hot path.

    Ids are global: orders and trades are numbered from 1, strictly increasing
    across all books. A rejected request raises ``Rejected`` and changes
    nothing (no id is consumed). See the module docstring.
    """

    __slots__ = ("_books", "_index", "_next_order_id", "_next_trade_id")

    def __init__(self) -> None:
        self._books: dict[int, OrderBook] = {}
        self._index: dict[int, Order] = {}  # every resting order of every book
        self._next_order_id = 1
        self._next_trade_id = 1

    def insert(
        self,
        book_id: int,
        side: int,
        price: int | None,
        quantity: int,
        owner: str,
        timestamp: int,
    ) -> tuple[Order, Sequence[Fill]]:
        """Validate and place a limit order; return the new order and its fills.

        ``side`` is BUY or SELL; ``price`` in units (None when the wire price
        was not representable), > 0, at most ``units.MAX_UNITS`` and a
        multiple of the book's tick; ``quantity`` 1 .. 2**31-1. Anything else
        raises ``Rejected`` and changes nothing.

        The order's ``remaining`` is what rests (0 if it traded in full); the
        fills (an empty tuple when none) are in matching order with
        consecutive trade ids, the order being the aggressor of each; its
        traded quantity is ``order.quantity - order.remaining``.
        """
        # The common case: a valid order that crosses nothing and joins an
        # existing level of its side (see the module docstring: its price is
        # valid). Everything else (an unknown book, a bad side, price or
        # quantity, an order that may cross or opens a level) is validated in
        # full by _valid_book, then placed by OrderBook._place.
        try:
            book = self._books[book_id]
            if side == BUY:
                level = None if book._ask_heap[0] <= price else book._bid_levels.get(-price)  # type: ignore[operator]
            elif side == SELL:
                level = None if book._bid_heap[0] <= -price else book._ask_levels.get(price)  # type: ignore[operator,arg-type]
            else:
                level = None
        except (KeyError, TypeError):  # an unknown book, a price of the wrong type or None
            level = None
        if level is None or quantity <= 0 or quantity > INT32_MAX:
            book = self._valid_book(book_id, side, price, quantity)
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        # Validated values: a NewType call or cast would cost a Python call each.
        order = Order()
        order.order_id = order_id  # type: ignore[assignment]
        order.book_id = book_id  # type: ignore[assignment]
        order.side = side
        order.price = price  # type: ignore[assignment]
        order.quantity = order.remaining = quantity  # type: ignore[assignment]
        order.owner = owner
        order.timestamp = timestamp  # type: ignore[assignment]
        order._next = None
        if level is None:
            trade_id = self._next_trade_id
            fills = book._place(order, trade_id)
            self._next_trade_id = trade_id + len(fills)
            if getsizeof(self._index) > _TABLE_SLACK * (_TABLE_FLOOR + len(self._index) * _ENTRY_BYTES):
                self._shrink_table()
            return order, fills
        order._level = level
        tail = level.tail
        order._prev = tail
        if tail is not None:
            tail._next = order
        else:  # the level was empty
            level.head = order
        level.tail = order
        self._index[order_id] = order
        return order, ()

    def _shrink_table(self) -> None:
        """Rebuild the resting-order table at the size of what rests (in place: the books share it)."""
        entries = list(self._index.items())
        self._index.clear()  # frees the table
        self._index.update(entries)

    def _valid_book(self, book_id: int, side: int, price: int | None, quantity: int) -> OrderBook:
        """The book of a valid insert; Rejected with the reason otherwise (off the hot path)."""
        try:
            book = self._books[book_id]
        except (KeyError, TypeError):
            raise Rejected(f"unknown order book {book_id}") from None
        error = order_error(side, price, quantity, book.tick)
        if error is not None:
            raise Rejected(error)
        return book

    def cancel(self, book_id: int, order_id: int, timestamp: int = 0) -> Order:
        """Cancel a resting order; return it (``remaining`` = the quantity cancelled).

        Rejected for an unknown book, an unknown order (never issued), an
        order resting in another book, or one that rests nowhere: see
        ``_cancel_error`` for the rule on a dead order of another book.
        """
        try:
            order = self._index.pop(order_id, None)
        except TypeError:  # unhashable
            order = None
        if order is None or order.book_id != book_id:
            raise self._cancel_error(book_id, order_id, order)
        level: Level = order._level  # type: ignore[assignment]  # set while the order rests
        prev = order._prev
        nxt = order._next
        if prev is None:
            level.head = nxt
        else:
            prev._next = nxt
            order._prev = None
        if nxt is None:
            level.tail = prev
        else:
            nxt._prev = prev
            order._next = None
        return order

    def _cancel_error(self, book_id: int, order_id: int, resting: Order | None) -> Rejected:
        """Why a cancel failed; ``resting`` is the order if it rests in another book (put back).

        The table holds resting orders only, so of an order that rests nowhere
        (filled or cancelled) it no longer knows the book: such a cancel is
        answered "not resting in this book" whichever book it was placed in.
        Every other error is exact: an unknown book, an id never issued (ids
        are global and increasing: 0 < id <= last_order_id were issued), an
        order resting in another book.
        """
        if resting is not None:
            self._index[resting.order_id] = resting
        try:
            known_book = book_id in self._books
        except TypeError:
            known_book = False
        if not known_book:
            return Rejected(f"unknown order book {book_id}")
        if not isinstance(order_id, int) or not 0 < order_id < self._next_order_id:
            return Rejected(f"unknown order {order_id}")
        if resting is not None:
            return Rejected(f"order {order_id} belongs to order book {resting.book_id}, not {book_id}")
        return Rejected(
            f"order {order_id} is no longer resting in order book {book_id} "
            "(filled or cancelled, or an order of another book)"
        )

    # ------------------------------------------------------------------ extensions (off the hot path)

    def place(
        self,
        book_id: int,
        side: int,
        price: int | None,
        quantity: int,
        owner: str,
        timestamp: int,
        tif: int = GTC,
        stp: int = STP_ALLOW,
    ) -> Placement:
        """``insert`` with a time in force and self-trade prevention; what it did.

        Validated as ``insert`` (same errors), then ``tif`` (GTC, IOC, FOK) and
        ``stp`` (STP_ALLOW, STP_CANCEL_RESTING, STP_CANCEL_INCOMING). IOC: the
        rest after matching is cancelled. FOK: Rejected, changing nothing,
        unless the whole quantity trades at once (self-trade prevention
        counted). STP applies to the resting orders of the same owner, never
        for the owner "": CANCEL_RESTING removes each such order met and
        matching goes on; CANCEL_INCOMING stops matching at the first one and
        cancels the rest of the new order, whatever ``tif``. GTC with
        STP_ALLOW (or the owner "") is ``insert`` itself. See ``Placement``.
        """
        book = self._valid_book(book_id, side, price, quantity)
        if tif not in TIMES_IN_FORCE:
            raise Rejected(f"invalid time in force {tif!r}: it must be GTC, IOC or FOK")
        if stp not in SELF_TRADE_PREVENTIONS:
            raise Rejected(
                f"invalid self-trade prevention {stp!r}: it must be ALLOW, CANCEL_RESTING or CANCEL_INCOMING"
            )
        if not owner:
            stp = STP_ALLOW
        if tif == GTC and stp == STP_ALLOW:
            return Placement(*self.insert(book_id, side, price, quantity, owner, timestamp), [], Quantity(0))
        assert price is not None  # validated
        if side == BUY:
            heap, levels, limit, sign = book._ask_heap, book._ask_levels, price, 1
        else:
            heap, levels, limit, sign = book._bid_heap, book._bid_levels, -price, -1
        if tif == FOK:
            available = book._available(heap, levels, limit, owner, stp, quantity)
            if available < quantity:
                raise Rejected(
                    f"FOK order cannot be filled in full: {available} of {quantity} available at "
                    f"{format_units(price)} or better{_FOK_STP[stp]}"
                )
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        order = Order.create(order_id, book_id, side, price, quantity, owner, timestamp)
        trade_id = self._next_trade_id
        fills: Sequence[Fill] = ()
        self_cancelled: list[Order] = []
        stopped = False
        if heap[0] <= limit:
            if stp == STP_ALLOW:
                fills = book._match(order, heap, levels, limit, sign, trade_id)
            else:
                fills, self_cancelled, stopped = book._match_stp(
                    order, heap, levels, limit, sign, trade_id, stp
                )
        self._next_trade_id = trade_id + len(fills)
        cancelled = 0
        if order.remaining and (stopped or tif != GTC):
            cancelled = order.remaining
            order.remaining = Quantity(0)
        if order.remaining:
            book._rest(order)
        else:
            order._prev = order._level = None
        if getsizeof(self._index) > _TABLE_SLACK * (_TABLE_FLOOR + len(self._index) * _ENTRY_BYTES):
            self._shrink_table()
        return Placement(order, fills, self_cancelled, Quantity(cancelled))

    def amend(
        self,
        book_id: int,
        order_id: int,
        price: int | None,
        quantity: int,
        timestamp: int,
        owner: str | None = None,
        stp: int = STP_ALLOW,
    ) -> Amendment:
        """Amend a resting order to ``price`` (None: unchanged) and ``quantity`` (the new open quantity).

        Same price and a smaller quantity: reduced in place, keeping its id,
        priority and timestamp (``quantity`` lowered by the same amount, so
        ``quantity - remaining`` stays the traded quantity). Otherwise the
        order is cancelled and a new one (new id, same owner and side, the
        amend's timestamp) placed as by ``place(..., GTC, stp)``: it may trade.
        Rejected, changing nothing: an unknown book, an order not resting in
        that book (the wording of ``cancel``), ``owner`` given and not the
        order's, an invalid price or quantity (the wording of ``insert``), an
        invalid ``stp``, or an amend that changes nothing. See ``Amendment``.
        """
        order = self.get_order(order_id)
        if order is None or order.book_id != book_id:
            raise self._cancel_error(book_id, order_id, order)
        if owner is not None and owner != order.owner:
            raise Rejected(f"order {order_id} is not an order of {owner}")
        new_price = order.price if price is None else price
        error = order_error(order.side, new_price, quantity, self._books[book_id].tick)
        if error is not None:
            raise Rejected(error)
        if stp not in SELF_TRADE_PREVENTIONS:
            raise Rejected(
                f"invalid self-trade prevention {stp!r}: it must be ALLOW, CANCEL_RESTING or CANCEL_INCOMING"
            )
        previous = order.remaining
        if new_price == order.price:
            if quantity == previous:
                raise Rejected(f"amend of order {order_id} changes nothing")
            if quantity < previous:
                order.quantity = Quantity(order.quantity - (previous - quantity))
                order.remaining = Quantity(quantity)
                return Amendment(order, None, True, previous, (), [], Quantity(0))
        self.cancel(book_id, order_id)
        placed = self.place(book_id, order.side, new_price, quantity, order.owner, timestamp, GTC, stp)
        return Amendment(
            placed.order, order, False, previous, placed.fills, placed.self_cancelled, placed.cancelled
        )

    def cancel_orders(
        self, owner: str, book_id: int = 0, order_ids: Iterable[int] | None = None
    ) -> list[Order]:
        """Cancel the resting orders of ``owner`` (in ``book_id``; 0: every book); them, ascending id.

        With ``order_ids`` only those, skipping ids that do not rest (in that
        book) or are another owner's: O(ids). Without: O(resting orders of
        every book), a scan of the resting-order table (no index by owner is
        kept: it would cost the hot path). Each returned order's
        ``remaining`` is the quantity cancelled. Rejected: an unknown book
        (``book_id`` != 0), changing nothing.
        """
        if book_id != 0:
            try:
                known = book_id in self._books
            except TypeError:
                known = False
            if not known:
                raise Rejected(f"unknown order book {book_id}")
        if order_ids is None:
            candidates: Iterable[Order | None] = self._index.values()
        else:
            candidates = [self.get_order(order_id) for order_id in set(order_ids)]
        targets = [
            order
            for order in candidates
            if order is not None and order.owner == owner and (not book_id or order.book_id == book_id)
        ]
        targets.sort(key=attrgetter("order_id"))
        for order in targets:
            self.cancel(order.book_id, order.order_id)
        return targets

    # ------------------------------------------------------------------ queries

    def get_order(self, order_id: int) -> Order | None:
        """The resting order with this id (any book), or None if unknown or no longer resting."""
        try:
            return self._index.get(order_id)
        except TypeError:
            return None

    def book_of_order(self, order_id: int) -> BookId | None:
        """The id of the book a resting order rests in; None if it rests nowhere or was never issued."""
        order = self.get_order(order_id)
        return None if order is None else order.book_id

    @property
    def last_order_id(self) -> OrderId:
        """The id of the last order accepted (0 before the first)."""
        return OrderId(self._next_order_id - 1)

    @property
    def last_trade_id(self) -> TradeId:
        """The id of the last trade (0 before the first)."""
        return TradeId(self._next_trade_id - 1)

    def resting_unordered(self) -> list[Order]:
        """Every resting order of every book, in no useful order: a copy of the order table at C speed.

        About 15 times cheaper than walking the books (``Exchange.resting_orders``
        gives priority order); for a snapshot that is sorted elsewhere.
        """
        return list(self._index.values())

    def resting_count(self) -> int:
        """Orders resting in all books (O(1): the size of the resting-order table)."""
        return len(self._index)

    def check_integrity(self) -> None:
        """Raise ``BookIntegrityError`` unless every book and the order table are consistent (tests)."""
        seen: dict[OrderId, Order] = {}
        for book_id, book in self._books.items():
            _require(book.book_id == book_id and book._books is self, "book registered under another id")
            seen.update(book._check_levels())
        _require(len(seen) == len(self._index), "the order table holds orders that rest in no book")
        for order_id, order in self._index.items():
            _require(seen.get(OrderId(order_id)) is order, "the order table and the books disagree")
            _require(0 < order_id < self._next_order_id, "resting order id above the last one issued")
