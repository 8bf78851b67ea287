"""The fast order book: one instrument, price-time priority, integer prices.

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
- A level is a doubly linked FIFO of its orders (``Order._prev``/``_next``):
  append, cancel and fill are O(1) and nothing dead is ever left behind in a
  queue. Its total quantity is not kept (one attribute update fewer on
  every insert, cancel and fill); ``levels``/``best`` add it up when asked.
  (A lazily cancelled deque per level was measured too: with one or two
  orders per level, as here, emptying and cleaning the deques cost more than
  the links they save.)
- Resting orders are also in one dict order_id -> Order, for O(1) cancel.

Insert is O(log levels) when it opens a level and O(1) otherwise (plus the
fills, and O(log levels) for each empty level dropped from the top); cancel
is O(1).
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heapify, heappop, heappush
from typing import Final

from optivex.engine.types import BUY, SELL, Fill, Level, Order

__all__ = ["OrderBook"]

_SENTINEL: Final = 1 << 62
"""A key above every valid key (prices are < 2**53 units)."""
_MIN_COMPACT: Final = 64


def _total(level: Level) -> int:
    """The total remaining quantity of a level's orders."""
    total = 0
    order = level.head
    while order is not None:
        total += order.remaining
        order = order._next
    return total


class OrderBook:
    """One order book with price-time priority.

    The caller allocates ids: ``insert`` gets the new order's id (increasing
    from one insert to the next: arrival order is id order) and the first trade
    id to use; the fills it returns use consecutive trade ids from there.
    Prices must be 0 < price < 2**53 and quantities > 0 (``Exchange``
    validates; the book trusts its caller). Time priority is arrival order;
    timestamps are stored, never compared.
    """

    __slots__ = (
        "_ask_heap",
        "_ask_levels",
        "_bid_heap",
        "_bid_levels",
        "_floor",
        "_limit",
        "_orders",
        "book_id",
        "tick",
    )

    def __init__(self, book_id: int = 0, tick: int = 1, compact_floor: int = _MIN_COMPACT) -> None:
        """``compact_floor``: levels a side may hold before the first compaction (small in tests)."""
        self.book_id = book_id
        self.tick = tick
        self._floor = compact_floor
        self._bid_heap: list[int] = [_SENTINEL]
        self._bid_levels: dict[int, Level] = {}
        self._ask_heap: list[int] = [_SENTINEL]
        self._ask_levels: dict[int, Level] = {}
        self._orders: dict[int, Order] = {}
        self._limit = compact_floor

    # ------------------------------------------------------------------ hot path

    def insert(
        self,
        order_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
        next_trade_id: int,
    ) -> tuple[Order, Sequence[Fill]]:
        """Match a new limit order, rest what is left; return it and its fills (in matching order)."""
        # Exchange.insert repeats _rest for an existing level inline (one call
        # less on the hottest path); keep the two in step.
        order = Order()
        order.order_id = order_id
        order.book_id = self.book_id
        order.side = side
        order.price = price
        order.quantity = quantity
        order.remaining = quantity
        order.owner = owner
        order.timestamp = timestamp
        order._next = None
        if side == BUY:
            if self._ask_heap[0] <= price:
                return order, self._take(order, next_trade_id)
            key = -price
            levels = self._bid_levels
        else:
            if self._bid_heap[0] <= -price:
                return order, self._take(order, next_trade_id)
            key = price
            levels = self._ask_levels
        self._rest(order, key, levels)
        return order, ()

    def _rest(self, order: Order, key: int, levels: dict[int, Level]) -> None:
        """Queue ``order`` at the back of level ``key`` of its side (opening it if needed)."""
        level = levels.get(key)
        if level is None:
            self._open_level(order, key, levels)
        else:
            order._level = level
            tail = level.tail
            order._prev = tail
            if tail is None:
                level.head = order
            else:
                tail._next = order
            level.tail = order
        self._orders[order.order_id] = order

    def _open_level(self, order: Order, key: int, levels: dict[int, Level]) -> None:
        """Rest ``order`` alone on a new level ``key`` of its side."""
        order._prev = None
        order._level = levels[key] = Level(order)
        heap = self._bid_heap if order.side == BUY else self._ask_heap
        heappush(heap, key)
        if len(heap) > self._limit:
            self._compact()

    def _take(self, order: Order, trade_id: int) -> list[Fill]:
        """Match a crossing order (not yet in the book, ``_next`` None), rest its remainder; its fills."""
        price = order.price
        if order.side == BUY:
            fills = self._match(order, self._ask_heap, self._ask_levels, price, 1, trade_id)
            key = -price
            levels = self._bid_levels
        else:
            fills = self._match(order, self._bid_heap, self._bid_levels, -price, -1, trade_id)
            key = price
            levels = self._ask_levels
        if not order.remaining:
            order._prev = order._level = None
            return fills
        self._rest(order, key, levels)
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
        append = fills.append
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
                    maker.remaining = avail - rem
                    append((trade_id, maker.order_id, maker.owner, price, rem))
                    trade_id += 1
                    rem = 0
                    break
                append((trade_id, maker.order_id, maker.owner, price, avail))
                trade_id += 1
                maker.remaining = 0
                del orders[maker.order_id]
                rem -= avail
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

    def cancel(self, order_id: int) -> Order | None:
        """Remove a resting order and return it (``remaining`` = quantity cancelled); None if not here."""
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        # Exchange.cancel repeats this method inline; keep the two in step.
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
        """Number of resting orders."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Order | None:
        """The resting order with this id, or None."""
        return self._orders.get(order_id)

    def _live_keys(self, side: int) -> list[int]:
        levels = self._bid_levels if side == BUY else self._ask_levels
        return sorted(k for k, lv in levels.items() if lv.head is not None)

    def side_orders(self, side: int) -> list[Order]:
        """Resting orders of one side, best price first, oldest first within a price."""
        levels = self._bid_levels if side == BUY else self._ask_levels
        out: list[Order] = []
        for key in self._live_keys(side):
            order = levels[key].head
            while order is not None:
                out.append(order)
                order = order._next
        return out

    def resting_orders(self) -> list[Order]:
        """Resting orders in priority order: bids best first, then asks best first; FIFO within a price."""
        return self.side_orders(BUY) + self.side_orders(SELL)

    def levels(self, side: int) -> list[tuple[int, int]]:
        """(price, total remaining quantity) of each level of one side, best first."""
        levels = self._bid_levels if side == BUY else self._ask_levels
        sign = -1 if side == BUY else 1
        return [(key * sign, _total(levels[key])) for key in self._live_keys(side)]

    def best(self, side: int) -> tuple[int, int] | None:
        """(price, total quantity) of the best level of one side, or None when it is empty."""
        keys = self._live_keys(side)
        if not keys:
            return None
        levels = self._bid_levels if side == BUY else self._ask_levels
        return (-keys[0] if side == BUY else keys[0]), _total(levels[keys[0]])

    # ------------------------------------------------------------------ checks (tests only)

    def check_integrity(self) -> None:
        """Raise AssertionError unless every invariant of the book holds (O(n); tests only)."""
        seen: dict[int, Order] = {}
        for side, heap, levels in (
            (BUY, self._bid_heap, self._bid_levels),
            (SELL, self._ask_heap, self._ask_levels),
        ):
            assert heap.count(_SENTINEL) == 1, "one sentinel per heap"
            for i in range(1, len(heap)):
                assert heap[(i - 1) // 2] <= heap[i], "heap order"
            keys = [k for k in heap if k != _SENTINEL]
            assert len(keys) == len(set(keys)), "duplicate heap key"
            assert set(keys) == set(levels), "heap keys and levels differ"
            assert len(heap) <= max(self._limit, 1), "heap above its compaction limit"
            for key, level in levels.items():
                price = -key if side == BUY else key
                assert price > 0, "non-positive price"
                order = level.head
                prev: Order | None = None
                while order is not None:
                    assert order._prev is prev, "broken back link"
                    assert order._level is level, "order points to another level"
                    assert order.side == side and order.price == price, "order on the wrong level"
                    assert order.book_id == self.book_id, "order of another book"
                    assert 0 < order.remaining <= order.quantity, "bad remaining quantity"
                    assert order.order_id not in seen, "order twice in the book"
                    assert self._orders.get(order.order_id) is order, "resting order missing from the index"
                    if prev is not None:
                        assert prev.order_id < order.order_id, "FIFO order broken within a level"
                    seen[order.order_id] = order
                    prev = order
                    order = order._next
                assert level.tail is prev, "bad level tail"
        assert len(seen) == len(self._orders), "index holds orders that are not in a level"
        bid, ask = self.best(BUY), self.best(SELL)
        assert bid is None or ask is None or bid[0] < ask[0], f"crossed book: bid {bid} >= ask {ask}"
