"""The login replay's snapshot: the day's state at login, handed out later in slices (pure).

A login must be shown the state at the moment it logged in (then the live
events after it), but a day may hold a million resting orders, too many to
encode at once. So at login ``ReplaySnapshots.take`` records, in one step,

- the books of the day (``BookInfo``, in id order), and
- a list of references to the resting ``Order`` objects in replay order
  (books in id order; bids best first, then asks best first; oldest first
  within a price): one walk of the books, measured at 0.3-1.2 us per
  resting order (the orders are scattered in memory), so 30-120 ms for a
  day of 100,000 resting orders;

and the connection's ``Replay`` hands them out a slice at a time while the
book goes on changing. An order's ``remaining`` may change after the
snapshot: a fill lowers it (a full fill sets it to 0) while a cancel leaves
it as it was. So while a snapshot is being read, the component reports every
fill (``note_fills``) and the snapshot keeps, for each order it holds, its
remaining quantity before the first fill after the snapshot: each order is
handed out with its remaining quantity at login.

Logins taken while nothing changed (same last order id, last trade id,
number of cancels and of books) share one snapshot: many logins at once
(handled in the same few loop iterations) cost one walk or a few.

Memory, per distinct snapshot in progress: 8 bytes per resting order (the
list), plus the orders that left the book meanwhile (kept alive, about 150
bytes each) and about 100 bytes per order filled meanwhile (its override).
Per connection in progress: a ``Replay`` (about 100 bytes). The orders of
the distinct snapshots in progress are bounded by SNAPSHOT_ORDER_BUDGET:
``take`` returns None beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence

from optivex.engine import BookInfo, Exchange, Fill, Order

SNAPSHOT_ORDER_BUDGET = 32_000_000
"""Resting orders all distinct snapshots in progress may hold together (8 bytes each: 256 MB)."""

_Key = tuple[int, int, int, int]


class Snapshot:
    """The state of the day at one moment: books, resting orders, and their remaining then."""

    __slots__ = ("books", "key", "last_order_id", "orders", "overrides", "readers")

    def __init__(self, key: _Key, books: list[BookInfo], orders: list[Order], last_order_id: int) -> None:
        self.key = key
        self.books = books
        self.orders = orders
        self.last_order_id = last_order_id
        """Orders with a larger id were placed after the snapshot: not in it."""
        self.overrides: dict[int, int] = {}
        """order id -> remaining quantity at the snapshot, for the orders filled since."""
        self.readers = 0

    def remaining(self, order: Order) -> int:
        """The remaining quantity of one of the snapshot's orders at the snapshot."""
        overrides = self.overrides
        if overrides:
            return overrides.get(order.order_id, order.remaining)
        return order.remaining


class Replay:
    """One connection's reading of a snapshot: books, then orders, a slice at a time."""

    __slots__ = ("_book_pos", "_order_pos", "_owner", "snapshot")

    def __init__(self, owner: ReplaySnapshots, snapshot: Snapshot) -> None:
        self._owner: ReplaySnapshots | None = owner
        self.snapshot = snapshot
        self._book_pos = 0
        self._order_pos = 0
        snapshot.readers += 1

    @property
    def done(self) -> bool:
        """Whether everything was handed out (or the replay was closed)."""
        snapshot = self.snapshot
        return self._owner is None or (
            self._book_pos == len(snapshot.books) and self._order_pos == len(snapshot.orders)
        )

    def next_books(self, limit: int) -> list[BookInfo]:
        """Up to ``limit`` of the next books (empty once all books were handed out)."""
        start = self._book_pos
        books = self.snapshot.books[start : start + limit]
        self._book_pos = start + len(books)
        return books

    def next_orders(self, limit: int) -> list[tuple[Order, int]]:
        """Up to ``limit`` of the next orders with their remaining quantity at the snapshot.

        Empty until every book was handed out, and once every order was.
        """
        snapshot = self.snapshot
        if self._book_pos < len(snapshot.books):
            return []
        start = self._order_pos
        orders = snapshot.orders[start : start + limit]
        self._order_pos = start + len(orders)
        overrides = snapshot.overrides
        if overrides:
            get = overrides.get
            return [(o, get(o.order_id, o.remaining)) for o in orders]
        return [(o, o.remaining) for o in orders]

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
        orders = exchange.resting_orders()
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

    def _reader_gone(self, snapshot: Snapshot) -> None:
        snapshot.readers -= 1
        if snapshot.readers == 0:
            self._active.remove(snapshot)
            self._held -= len(snapshot.orders)
