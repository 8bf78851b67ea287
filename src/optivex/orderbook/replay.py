"""The login replay's snapshot: the day's state at login, handed out later in slices (pure).

A login must be shown the state at the moment it logged in (then the live
events after it), but a day may hold a million resting orders, too many to
walk, let alone encode, in one go. So at login ``ReplaySnapshots.take``
records, in one cheap step,

- the books of the day (``BookInfo``, in id order), and
- a copy of the engine's table of resting orders: references to the
  ``Order`` objects, copied at C speed (measured 20-70 ns per resting order,
  2-7 ms for 100,000), in no useful order;

then the snapshot is put in replay order a slice at a time, as its first
reader asks (``Replay.prepare``, GROUP_SLICE orders per call): orders are
grouped by book, side and price (fields that never change), the levels
sorted (books in id order; bids best first, then asks best first) and each
level put in id order (time priority) when a reader reaches it. Walking the
books' linked lists at login instead cost 0.3-1.2 us per resting order (the
orders are scattered in memory): 250 logins at once on a day of 100,000
orders, with another client trading between them, held that client up to
290 ms.

An order's ``remaining`` may change after the snapshot: a fill lowers it (a
full fill sets it to 0), and so does an amend that keeps priority, while a
cancel leaves it as it was. So while a snapshot is being read, the
component reports every fill (``note_fills``) and amend (``note_amend``)
and the snapshot keeps, for each order it holds, its remaining quantity
before the first such change after the snapshot: each order is handed out
with its remaining quantity at login.

Logins taken while nothing changed (same last order id, last trade id,
number of cancels and amends, and of books) share one snapshot.

Memory, per distinct snapshot in progress: 16 bytes per resting order while
it is being grouped, 8 once grouped, plus the orders that left the book
meanwhile (kept alive, about 150 bytes each) and about 100 bytes per order
filled meanwhile (its override). Per connection in progress: a ``Replay``
(about 100 bytes). The orders of the distinct snapshots in progress are
bounded by SNAPSHOT_ORDER_BUDGET: ``take`` returns None beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence

from optivex.engine import BookInfo, Exchange, Fill, Order

SNAPSHOT_ORDER_BUDGET = 32_000_000
"""Resting orders all distinct snapshots in progress may hold together (8-16 bytes each: 256-512 MB)."""
GROUP_SLICE = 2048
"""Orders grouped into levels per ``Replay.prepare`` call (about 1 ms)."""

_Key = tuple[int, int, int, int]
_Level = tuple[int, int, int]
"""(book id, side, price key): -price for bids, the price for asks, so sorting puts the best first."""


def _by_id(order: Order) -> int:
    return order.order_id


class Snapshot:
    """The state of the day at one moment: books, resting orders, and their remaining then."""

    __slots__ = (
        "_grouped",
        "_groups",
        "_pending",
        "_sorted",
        "books",
        "key",
        "last_order_id",
        "levels",
        "overrides",
        "readers",
        "size",
    )

    def __init__(self, key: _Key, books: list[BookInfo], orders: list[Order], last_order_id: int) -> None:
        self.key = key
        self.books = books
        self.size = len(orders)
        """Resting orders held."""
        self.last_order_id = last_order_id
        """Orders with a larger id were placed after the snapshot: not in it."""
        self.overrides: dict[int, int] = {}
        """order id -> remaining quantity at the snapshot, for the orders filled since."""
        self.readers = 0
        self._pending: list[Order] | None = orders
        """The copied table, until grouped."""
        self._grouped = 0
        self._groups: dict[_Level, list[Order]] = {}
        self.levels: list[list[Order]] | None = None
        """Once grouped: every level's orders, levels in replay order (each in id order once reached)."""
        self._sorted = 0
        """Levels [0, _sorted) are in id order."""

    def prepare(self, budget: int) -> bool:
        """Group up to ``budget`` more orders into levels; True once the snapshot is in replay order."""
        pending = self._pending
        if pending is None:
            return True
        start = self._grouped
        end = min(start + budget, len(pending))
        groups = self._groups
        for order in pending[start:end]:
            side = order.side
            key = (order.book_id, side, order.price if side else -order.price)
            level = groups.get(key)
            if level is None:
                groups[key] = [order]
            else:
                level.append(order)
        self._grouped = end
        if end < len(pending):
            return False
        self.levels = [groups[key] for key in sorted(groups)]
        self._groups = {}
        self._pending = None
        return True

    def level(self, index: int) -> list[Order]:
        """Level ``index`` of the replay, in id order (sorted when first reached)."""
        levels = self.levels
        assert levels is not None, "prepare() first"
        while self._sorted <= index:
            levels[self._sorted].sort(key=_by_id)  # almost always in id order already
            self._sorted += 1
        return levels[index]


class Replay:
    """One connection's reading of a snapshot: books, then orders, a slice at a time."""

    __slots__ = ("_book_pos", "_level", "_level_pos", "_owner", "snapshot")

    def __init__(self, owner: ReplaySnapshots, snapshot: Snapshot) -> None:
        self._owner: ReplaySnapshots | None = owner
        self.snapshot = snapshot
        self._book_pos = 0
        self._level = 0
        self._level_pos = 0
        snapshot.readers += 1

    def prepare(self, budget: int = GROUP_SLICE) -> bool:
        """Put the snapshot in replay order, ``budget`` orders at a time; True once it is."""
        return self.snapshot.prepare(budget)

    @property
    def done(self) -> bool:
        """Whether everything was handed out (or the replay was closed)."""
        snapshot = self.snapshot
        if self._owner is None:
            return True
        if self._book_pos < len(snapshot.books) or snapshot.levels is None:
            return False
        return self._level == len(snapshot.levels)

    def next_books(self, limit: int) -> list[BookInfo]:
        """Up to ``limit`` of the next books (empty once all books were handed out)."""
        start = self._book_pos
        books = self.snapshot.books[start : start + limit]
        self._book_pos = start + len(books)
        return books

    def next_orders(self, limit: int) -> list[tuple[Order, int]]:
        """Up to ``limit`` of the next orders with their remaining quantity at the snapshot.

        Empty until every book was handed out and the snapshot is prepared,
        and once every order was handed out.
        """
        snapshot = self.snapshot
        levels = snapshot.levels
        if self._book_pos < len(snapshot.books) or levels is None:
            return []
        out: list[Order] = []
        while len(out) < limit and self._level < len(levels):
            level = snapshot.level(self._level)
            start = self._level_pos
            taken = level[start : start + limit - len(out)]
            out += taken
            if start + len(taken) == len(level):
                self._level += 1
                self._level_pos = 0
            else:
                self._level_pos = start + len(taken)
        overrides = snapshot.overrides
        if overrides:
            get = overrides.get
            return [(o, get(o.order_id, o.remaining)) for o in out]
        return [(o, o.remaining) for o in out]

    def close(self) -> None:
        """Stop reading (finished or abandoned); the snapshot is dropped with its last reader."""
        owner = self._owner
        if owner is not None:
            self._owner = None
            owner._reader_gone(self.snapshot)


class ReplaySnapshots:
    """The snapshots of the replays in progress of one exchange; see the module docstring."""

    __slots__ = ("_active", "_cancels", "_exchange", "_held", "order_budget")

    def __init__(self, exchange: Exchange, order_budget: int = SNAPSHOT_ORDER_BUDGET) -> None:
        self._exchange = exchange
        self.order_budget = order_budget
        self._active: list[Snapshot] = []
        """Snapshots with readers, oldest first; the last one is shared by new logins while it is current."""
        self._held = 0
        """Orders held by the snapshots of ``_active``."""
        self._cancels = 0
        """Cancels and in-place amends so far (part of a snapshot's key)."""

    @property
    def in_progress(self) -> bool:
        """Whether some replay is being read (fills must then be reported)."""
        return bool(self._active)

    @property
    def held_orders(self) -> int:
        """Resting-order references held by the distinct snapshots in progress."""
        return self._held

    def take(self) -> Replay | None:
        """A replay of the state now; None if a new snapshot would exceed ``order_budget``."""
        exchange = self._exchange
        books = exchange.books()
        key = (exchange.last_order_id, exchange.last_trade_id, self._cancels, len(books))
        active = self._active
        if active and active[-1].key == key:
            return Replay(self, active[-1])
        orders = _resting_orders(exchange)
        if self._held + len(orders) > self.order_budget:
            return None
        snapshot = Snapshot(key, books, orders, exchange.last_order_id)
        active.append(snapshot)
        self._held += len(orders)
        return Replay(self, snapshot)

    def note_fills(self, fills: Sequence[Fill]) -> None:
        """An insert traded: keep each filled maker's remaining quantity before it, where still unknown.

        Call after ``Exchange.insert`` returned ``fills``; only the last fill
        of an insert may leave its maker resting.
        """
        active = self._active
        if not active or not fills:
            return
        last = len(fills) - 1
        for index, (_, maker_id, _, _, quantity) in enumerate(fills):
            before: int = quantity
            if index == last:
                maker = self._exchange.get_order(maker_id)
                if maker is not None:
                    before += maker.remaining
            for snapshot in active:
                if maker_id <= snapshot.last_order_id:
                    snapshot.overrides.setdefault(maker_id, before)

    def note_cancel(self) -> None:
        """An order was cancelled (its ``remaining`` is unchanged, but the state is not the same)."""
        self._cancels += 1

    def note_amend(self, order_id: int, previous_remaining: int) -> None:
        """A resting order was amended in place (``remaining`` lowered from ``previous_remaining``).

        The snapshots in progress that hold it keep its remaining quantity
        before, where still unknown (its OnOrderAmended follows their replay);
        the state changed without a new order, trade or cancel, so later
        logins take a new snapshot.
        """
        self._cancels += 1
        for snapshot in self._active:
            if order_id <= snapshot.last_order_id:
                snapshot.overrides.setdefault(order_id, previous_remaining)

    def _reader_gone(self, snapshot: Snapshot) -> None:
        snapshot.readers -= 1
        if snapshot.readers == 0:
            self._active.remove(snapshot)
            self._held -= snapshot.size


def _resting_orders(exchange: Exchange) -> list[Order]:
    """Every resting order of the exchange, in no useful order, copied at C speed.

    ``Exchange.resting_unordered`` copies the engine's resting-order table;
    walking the books (``Exchange.resting_orders``) costs 15 times as much. The hypothesis test
    of tests/unit/test_replay.py checks the replay against the engine's own
    ``resting_orders``.
    """
    return exchange.resting_unordered()
