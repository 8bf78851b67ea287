"""A pure mirror of the order book's state, rebuilt from its events (section 3 of the contract).

No asyncio, no protobuf: the follower (``optivex.feed.follower``) decodes the
order book's messages and calls the ``apply_*`` methods with plain integers
(prices in units of 0.0001, see ``optivex.units``). Each method returns what
changed as plain data (the named tuples below), so an owner (info, the
gateway) can react without looking at the order book's frames.

What it keeps:

- every book of the day with its tick, creation timestamp and instrument;
- every resting order with its owner (the ``username`` of OnOrderInserted)
  and its remaining quantity;
- per book and side, the total quantity of each price level, kept up to date
  on every change (never summed on demand), and the level prices in a sorted
  list, so the best level is one index away;
- a version per book, bumped by every change applied to it;
- section 3's consistency rule: an insert that traded adds its full quantity
  and names its ``trade_ids``; the book is consistent again (``consistent``,
  ``pending_trades``) only once every one of those trades arrived. In between
  the book may look crossed: owners that publish books wait for consistency.
  The Optivex extension of that rule: an order inserted with
  ``cancels_remainder`` (IMMEDIATE_OR_CANCEL, or self-trade prevention
  CANCEL_INCOMING) rests for a moment with whatever its trades leave; its
  book is consistent again only once that order left the book (filled in
  full, or its OnOrderCancelled arrived: ``pending_cancels``), so an owner
  never publishes a book crossed by an IOC's transient rest;
- the Optivex extension events: an amend that kept priority
  (``apply_order_amended``, OnOrderAmended) lowers an order's open quantity
  in place; an amend that lost priority arrives as a cancel (reason
  CANCEL_REPLACED) and an insert naming ``replaces_order_id``. Cancels carry
  their reason (common.proto's CancelReason values).

Events that cannot follow from the order book's own sequence (an unknown
book, a duplicate order id, a trade nobody announced) raise ``MirrorError``
and leave the mirror unchanged: the follower then rebuilds it from a fresh
replay.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from optivex.engine.types import BUY, SELL

__all__ = [
    "BUY",
    "SELL",
    "BookCreated",
    "BookMirror",
    "Change",
    "Instrument",
    "LevelChange",
    "MirrorBook",
    "MirrorError",
    "MirrorOrder",
    "OrderAmended",
    "OrderCancelled",
    "OrderInserted",
    "TradeApplied",
]


class MirrorError(ValueError):
    """An event that cannot be applied to the mirror's state (the mirror is left unchanged)."""


class Instrument(NamedTuple):
    """The instrument a book trades, as plain data (common.proto's Instrument)."""

    symbol: str
    description: str = ""
    currency: str = ""
    multiplier: float = 0.0


class LevelChange(NamedTuple):
    """The new total of one price level; ``total`` 0 means the level is gone."""

    side: int
    price: int
    total: int


class BookCreated(NamedTuple):
    """A new (empty) book."""

    book_id: int
    version: int
    consistent: bool
    """Always True (an empty book); here so that every change has book_id, version and consistent."""
    tick: int
    timestamp: int
    instrument: Instrument | None


class OrderInserted(NamedTuple):
    """An order added with its full quantity; ``trade_ids`` its trades, still to come as TradeApplied.

    The Optivex extension fields (defaults: the contract's limit order):
    ``replaces_order_id`` the order this one replaces (an amend that lost
    priority; that order's OrderCancelled, reason CANCEL_REPLACED, came just
    before), ``cancels_remainder`` whether what its trades leave is cancelled
    at once (an OrderCancelled follows them unless it trades in full),
    ``time_in_force`` the insert's TimeInForce value.
    """

    book_id: int
    version: int
    consistent: bool
    order_id: int
    side: int
    price: int
    quantity: int
    owner: str
    timestamp: int
    trade_ids: tuple[int, ...]
    level: LevelChange
    replaces_order_id: int = 0
    cancels_remainder: bool = False
    time_in_force: int = 0


class TradeApplied(NamedTuple):
    """One trade: both orders reduced by ``quantity``; ``levels`` the totals it changed."""

    book_id: int
    version: int
    consistent: bool
    trade_id: int
    price: int
    quantity: int
    buy_order_id: int
    sell_order_id: int
    buy_owner: str
    sell_owner: str
    aggressor_side: int
    timestamp: int
    levels: tuple[LevelChange, ...]


class OrderCancelled(NamedTuple):
    """A resting order removed; ``quantity`` what it still had; ``reason`` a CancelReason value
    (0, CANCEL_REQUESTED, for a contract cancel)."""

    book_id: int
    version: int
    consistent: bool
    order_id: int
    side: int
    price: int
    quantity: int
    owner: str
    timestamp: int
    level: LevelChange
    reason: int = 0


class OrderAmended(NamedTuple):
    """An amend that kept priority (OnOrderAmended): the order rests on with ``quantity`` open, lowered
    from ``previous_quantity``, same id, price and place in its queue; ``timestamp`` the amend's."""

    book_id: int
    version: int
    consistent: bool
    order_id: int
    side: int
    price: int
    quantity: int
    previous_quantity: int
    owner: str
    timestamp: int
    level: LevelChange


Change = BookCreated | OrderInserted | TradeApplied | OrderCancelled | OrderAmended
"""Whatever an ``apply_*`` method returns."""


class MirrorOrder:
    """One resting order as the mirror knows it (``remaining`` is what still rests)."""

    __slots__ = ("book_id", "order_id", "owner", "price", "quantity", "remaining", "side", "timestamp")

    def __init__(
        self, order_id: int, book_id: int, side: int, price: int, quantity: int, owner: str, timestamp: int
    ) -> None:
        self.order_id = order_id
        self.book_id = book_id
        self.side = side
        self.price = price
        self.quantity = quantity
        """The quantity it was inserted with (the replay gives the remaining quantity instead), lowered
        by an amend that kept priority as much as its open quantity was."""
        self.remaining = quantity
        self.owner = owner
        self.timestamp = timestamp

    def __repr__(self) -> str:
        return (
            f"MirrorOrder(id={self.order_id}, book={self.book_id}, side={self.side}, price={self.price}, "
            f"remaining={self.remaining}/{self.quantity}, owner={self.owner!r})"
        )


class _Side:
    """The price levels of one side: level totals by price, and their keys sorted best first.

    A key is minus the price for bids and the price for asks, so the smallest
    key is the best price on both sides.
    """

    __slots__ = ("keys", "sign", "totals")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.totals: dict[int, int] = {}
        self.keys: list[int] = []

    def add(self, price: int, quantity: int) -> int:
        totals = self.totals
        total = totals.get(price)
        if total is None:
            totals[price] = quantity
            insort(self.keys, price * self.sign)
            return quantity
        total += quantity
        totals[price] = total
        return total

    def remove(self, price: int, quantity: int) -> int:
        total = self.totals[price] - quantity
        if total:
            self.totals[price] = total
        else:
            del self.totals[price]
            keys = self.keys
            del keys[bisect_left(keys, price * self.sign)]
        return total


class MirrorBook:
    """One book of the mirror: its description, levels, resting orders by owner, version, consistency."""

    __slots__ = (
        "_by_owner",
        "_sides",
        "book_id",
        "instrument",
        "pending_cancels",
        "pending_trades",
        "tick",
        "timestamp",
        "version",
    )

    def __init__(self, book_id: int, tick: int, timestamp: int, instrument: Instrument | None) -> None:
        self.book_id = book_id
        self.tick = tick
        self.timestamp = timestamp
        self.instrument = instrument
        self.version = 0
        """Bumped by every change applied to this book (0 when created)."""
        self.pending_trades: set[int] = set()
        """Trade ids announced by inserts whose OnTrade has not arrived yet."""
        self.pending_cancels: set[int] = set()
        """Orders inserted with ``cancels_remainder`` that still rest (their cancel is to come)."""
        self._sides = (_Side(-1), _Side(1))  # indexed by BUY (0) and SELL (1)
        self._by_owner: dict[str, dict[int, MirrorOrder]] = {}

    @property
    def symbol(self) -> str | None:
        return None if self.instrument is None else self.instrument.symbol

    @property
    def consistent(self) -> bool:
        """True unless some announced trade of an insert, or the cancel of an order inserted with
        ``cancels_remainder``, is still to arrive (section 3 and its extension)."""
        return not self.pending_trades and not self.pending_cancels

    def levels(self, side: int) -> list[tuple[int, int]]:
        """(price, total quantity) of every level of one side, best first."""
        s = self._sides[side]
        totals = s.totals
        sign = s.sign
        return [(key * sign, totals[key * sign]) for key in s.keys]

    def best(self, side: int) -> tuple[int, int] | None:
        """(price, total quantity) of the best level of one side, or None when that side is empty."""
        s = self._sides[side]
        if not s.keys:
            return None
        price = s.keys[0] * s.sign
        return price, s.totals[price]

    def best_bid(self) -> tuple[int, int] | None:
        return self.best(BUY)

    def best_ask(self) -> tuple[int, int] | None:
        return self.best(SELL)

    def level_total(self, side: int, price: int) -> int:
        """The total quantity resting at one price of one side (0 if none)."""
        return self._sides[side].totals.get(price, 0)

    def orders_of(self, owner: str) -> list[MirrorOrder]:
        """The resting orders of one owner in this book, oldest (lowest id) first."""
        return sorted(self._by_owner.get(owner, {}).values(), key=lambda o: o.order_id)

    def owners(self) -> list[str]:
        """Owners with at least one resting order in this book."""
        return list(self._by_owner)

    def resting_orders(self) -> list[MirrorOrder]:
        """Every resting order in priority order: bids best first, then asks best first, oldest first."""
        orders = [o for by_id in self._by_owner.values() for o in by_id.values()]
        orders.sort(key=lambda o: (o.side, -o.price if o.side == BUY else o.price, o.order_id))
        return orders

    def __len__(self) -> int:
        """The number of resting orders."""
        return sum(len(by_id) for by_id in self._by_owner.values())


class BookMirror:
    """Every book of the day, rebuilt from the order book's events; see the module docstring."""

    __slots__ = ("_books", "_orders", "_symbols")

    def __init__(self) -> None:
        self._books: dict[int, MirrorBook] = {}
        self._symbols: dict[str, MirrorBook] = {}
        self._orders: dict[int, MirrorOrder] = {}

    # ------------------------------------------------------------------ applying events

    def apply_book_created(
        self, book_id: int, tick: int, timestamp: int, instrument: Instrument | None = None
    ) -> BookCreated:
        """OnOrderBookCreated (``tick`` in units)."""
        if book_id <= 0 or book_id in self._books:
            raise MirrorError(f"book {book_id} created twice or invalid")
        if tick <= 0:
            raise MirrorError(f"book {book_id}: invalid tick {tick}")
        if instrument is not None and instrument.symbol in self._symbols:
            raise MirrorError(f"book {book_id}: symbol {instrument.symbol!r} already used")
        book = MirrorBook(book_id, tick, timestamp, instrument)
        self._books[book_id] = book
        if instrument is not None:
            self._symbols[instrument.symbol] = book
        return BookCreated(book_id, 0, True, tick, timestamp, instrument)

    def apply_order_inserted(
        self,
        order_id: int,
        book_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
        trade_ids: Iterable[int] = (),
        replaces_order_id: int = 0,
        cancels_remainder: bool = False,
        time_in_force: int = 0,
    ) -> OrderInserted:
        """OnOrderInserted: rest the order with ``quantity`` (its full quantity; its trades follow).

        With ``cancels_remainder`` the book stays inconsistent until the order left it (its trades
        filled it, or its OnOrderCancelled came). ``replaces_order_id`` must no longer rest.
        """
        book = self._books.get(book_id)
        if book is None:
            raise MirrorError(f"order {order_id}: unknown book {book_id}")
        ids = tuple(trade_ids) if trade_ids else ()
        pending = book.pending_trades
        if ids and not pending.isdisjoint(ids):
            raise MirrorError(f"order {order_id}: trade ids announced twice")
        if replaces_order_id and replaces_order_id in self._orders:
            raise MirrorError(f"order {order_id} replaces order {replaces_order_id}, which still rests")
        total = self._rest(book, order_id, side, price, quantity, owner, timestamp)
        if ids:
            pending.update(ids)
        if cancels_remainder:
            book.pending_cancels.add(order_id)
        return OrderInserted(
            book_id,
            book.version,
            not pending and not book.pending_cancels,
            order_id,
            side,
            price,
            quantity,
            owner,
            timestamp,
            ids,
            LevelChange(side, price, total),
            replaces_order_id,
            cancels_remainder,
            time_in_force,
        )

    def load_order(
        self, order_id: int, book_id: int, side: int, price: int, quantity: int, owner: str, timestamp: int
    ) -> None:
        """A resting order of the login replay (its remaining ``quantity``, no trades): the same as
        ``apply_order_inserted`` without building a change (the replay's owner takes the whole mirror)."""
        book = self._books.get(book_id)
        if book is None:
            raise MirrorError(f"order {order_id}: unknown book {book_id}")
        self._rest(book, order_id, side, price, quantity, owner, timestamp)

    def _rest(
        self,
        book: MirrorBook,
        order_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
    ) -> int:
        """Add a resting order to ``book`` and its level; the level's new total."""
        if order_id in self._orders:
            raise MirrorError(f"order {order_id} inserted twice")
        if (side != BUY and side != SELL) or price <= 0 or quantity <= 0:
            raise MirrorError(f"order {order_id}: invalid side, price or quantity")
        order = MirrorOrder(order_id, book.book_id, side, price, quantity, owner, timestamp)
        self._orders[order_id] = order
        by_owner = book._by_owner.get(owner)
        if by_owner is None:
            book._by_owner[owner] = {order_id: order}
        else:
            by_owner[order_id] = order
        book.version += 1
        return book._sides[side].add(price, quantity)

    def apply_trade(
        self,
        trade_id: int,
        book_id: int,
        buy_order_id: int,
        sell_order_id: int,
        price: int,
        quantity: int,
        aggressor_side: int,
        timestamp: int,
    ) -> TradeApplied:
        """OnTrade: reduce both orders by ``quantity`` (an order at 0 leaves the book)."""
        book = self._books.get(book_id)
        if book is None:
            raise MirrorError(f"trade {trade_id}: unknown book {book_id}")
        if trade_id not in book.pending_trades:
            raise MirrorError(f"trade {trade_id}: not announced by an insert of book {book_id}")
        buy = self._orders.get(buy_order_id)
        sell = self._orders.get(sell_order_id)
        if buy is None or sell is None or buy.book_id != book_id or sell.book_id != book_id:
            raise MirrorError(f"trade {trade_id}: an order is not resting in book {book_id}")
        if buy.side != BUY or sell.side != SELL or not 0 < quantity <= min(buy.remaining, sell.remaining):
            raise MirrorError(f"trade {trade_id}: sides or quantity do not match its orders")
        book.pending_trades.discard(trade_id)
        levels = (self._reduce(book, buy, quantity), self._reduce(book, sell, quantity))
        book.version += 1
        return TradeApplied(
            book_id,
            book.version,
            book.consistent,
            trade_id,
            price,
            quantity,
            buy_order_id,
            sell_order_id,
            buy.owner,
            sell.owner,
            aggressor_side,
            timestamp,
            levels,
        )

    def apply_order_cancelled(self, order_id: int, timestamp: int, reason: int = 0) -> OrderCancelled:
        """OnOrderCancelled: remove a resting order (the event names no book: the order does).

        ``reason`` is the event's CancelReason value, passed on in the change.
        """
        order = self._orders.get(order_id)
        if order is None:
            raise MirrorError(f"cancel of order {order_id}, which is not resting")
        book = self._books[order.book_id]
        quantity = order.remaining
        level = self._reduce(book, order, quantity)
        book.version += 1
        return OrderCancelled(
            book.book_id,
            book.version,
            book.consistent,
            order_id,
            order.side,
            order.price,
            quantity,
            order.owner,
            timestamp,
            level,
            reason,
        )

    def apply_order_amended(
        self, order_id: int, book_id: int, quantity: int, previous_quantity: int, timestamp: int
    ) -> OrderAmended:
        """OnOrderAmended: a resting order of ``book_id`` keeps its place with ``quantity`` open.

        ``previous_quantity`` must be what the mirror has open, and ``quantity`` lower (> 0): an amend
        that keeps priority only reduces. The order's ``quantity`` is lowered by as much, so
        ``quantity - remaining`` stays what it traded.
        """
        order = self._orders.get(order_id)
        if order is None or order.book_id != book_id:
            raise MirrorError(f"amend of order {order_id}, which is not resting in book {book_id}")
        if previous_quantity != order.remaining or not 0 < quantity < previous_quantity:
            raise MirrorError(
                f"amend of order {order_id} from {previous_quantity} to {quantity}: "
                f"it has {order.remaining} open"
            )
        book = self._books[book_id]
        reduction = previous_quantity - quantity
        order.remaining = quantity
        order.quantity -= reduction
        total = book._sides[order.side].remove(order.price, reduction)
        book.version += 1
        return OrderAmended(
            book_id,
            book.version,
            book.consistent,
            order_id,
            order.side,
            order.price,
            quantity,
            previous_quantity,
            order.owner,
            timestamp,
            LevelChange(order.side, order.price, total),
        )

    def _reduce(self, book: MirrorBook, order: MirrorOrder, quantity: int) -> LevelChange:
        """Take ``quantity`` off a resting order (removing it at 0) and off its level."""
        order.remaining -= quantity
        if not order.remaining:
            del self._orders[order.order_id]
            by_owner = book._by_owner[order.owner]
            del by_owner[order.order_id]
            if not by_owner:
                del book._by_owner[order.owner]
            if book.pending_cancels:
                book.pending_cancels.discard(order.order_id)
        total = book._sides[order.side].remove(order.price, quantity)
        return LevelChange(order.side, order.price, total)

    # ------------------------------------------------------------------ queries

    def book(self, book_id: int) -> MirrorBook | None:
        return self._books.get(book_id)

    def book_by_symbol(self, symbol: str) -> MirrorBook | None:
        """The book of an instrument symbol, or None."""
        return self._symbols.get(symbol)

    def books(self) -> Iterator[MirrorBook]:
        """Every book, in id (creation) order."""
        return iter(self._books.values())

    def order(self, order_id: int) -> MirrorOrder | None:
        """A resting order (any book), or None."""
        return self._orders.get(order_id)

    def orders_of(self, owner: str, book_id: int | None = None) -> list[MirrorOrder]:
        """The resting orders of one owner, in one book or in all (book by book, oldest first)."""
        if book_id is not None:
            book = self._books.get(book_id)
            return [] if book is None else book.orders_of(owner)
        return [o for book in self._books.values() for o in book.orders_of(owner)]

    @property
    def consistent(self) -> bool:
        """True when every book is consistent."""
        return all(b.consistent for b in self._books.values())

    def __len__(self) -> int:
        """The number of resting orders, all books together."""
        return len(self._orders)
