"""The exchange core: every order book of the day, id allocation and request validation.

This is what the order-book component calls. Ids are global: books, orders and
trades are numbered from 1, strictly increasing over the day, orders and
trades across all books. A rejected request raises ``Rejected`` and changes
nothing (no id is consumed).

The hot path. ``insert`` handles the common case inline: a valid order that
crosses nothing and joins an existing level of its book (every resting order
of the exchange-core mix but those that open a level). Such an order's price
needs no test of its own: a level is only ever opened by a price that was
validated in full, so a price equal to a level's is > 0, <= MAX_UNITS and a
multiple of the tick (only the quantity is tested). Everything else (an
order that may cross, opens a level, or anything invalid) takes
``_insert_slow``: full validation, then ``OrderBook.insert``. ``cancel``
repeats ``OrderBook.cancel`` inline.

Those two inline copies of ``OrderBook`` code (appending an order to an
existing level, and unlinking a cancelled one: a dozen lines each) are kept
on purpose: calling the book's methods instead costs one Python call more
per insert and per cancel, measured at about 20% of the Exchange figure of
benchmarks/engine_mix.py (1.5 M against 1.2 M ops/s). Keep them in step with
the book; the property tests run both paths against the naive book.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from typing import Final

from optivex.engine.book import OrderBook
from optivex.engine.types import BUY, SELL, BookInfo, Fill, Level, Order, Rejected
from optivex.units import INT32_MAX, MAX_UNITS, format_units

_SYMBOL_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")


def valid_symbol(symbol: object) -> bool:
    """True for an instrument symbol of 1 to 32 characters of ``[A-Za-z0-9._-]``."""
    return isinstance(symbol, str) and _SYMBOL_RE.fullmatch(symbol) is not None


class Exchange:
    """Every book of the day plus validation; see the module docstring."""

    __slots__ = (
        "_books",
        "_infos",
        "_last_book",
        "_next_order_id",
        "_next_trade_id",
        "_run_books",
        "_run_starts",
        "_symbols",
    )

    def __init__(self) -> None:
        self._books: dict[int, OrderBook] = {}
        self._infos: list[BookInfo] = []
        self._symbols: dict[str, int] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        # Which book each order id went to (to tell "order of another book"
        # even once it is dead), run-length encoded: orders run_starts[i] ..
        # run_starts[i+1]-1 belong to book run_books[i]. One comparison per
        # insert; memory is 16 bytes per run, so at worst (every order in
        # another book than the previous one) 16 bytes per order.
        self._run_starts = array("q")
        self._run_books = array("q")
        self._last_book = 0

    # ------------------------------------------------------------------ books

    def create_book(self, tick: int, symbol: str | None = None, timestamp: int = 0) -> BookInfo:
        """Open a new empty book with this tick (units) and optional instrument symbol."""
        if not isinstance(tick, int) or not 0 < tick <= MAX_UNITS:
            raise Rejected(f"invalid tick size {tick!r}: it must be > 0 with at most 4 decimals")
        if symbol is not None:
            if not valid_symbol(symbol):
                raise Rejected(
                    f"invalid instrument symbol {symbol!r}: it must be 1 to 32 characters of [A-Za-z0-9._-]"
                )
            if symbol in self._symbols:
                raise Rejected(f"instrument symbol {symbol!r} already exists")
        book_id = len(self._infos) + 1
        info = BookInfo(book_id, tick, symbol, timestamp)
        self._books[book_id] = OrderBook(book_id, tick)
        self._infos.append(info)
        if symbol is not None:
            self._symbols[symbol] = book_id
        return info

    def books(self) -> list[BookInfo]:
        """Every book of the day, in id order."""
        return list(self._infos)

    def book_info(self, book_id: int) -> BookInfo:
        """The description of one book; Rejected if unknown."""
        if book_id not in self._books:
            raise Rejected(f"unknown order book {book_id}")
        return self._infos[book_id - 1]

    def book(self, book_id: int) -> OrderBook:
        """The book itself (for queries: levels, best, resting orders); Rejected if unknown."""
        book = self._books.get(book_id)
        if book is None:
            raise Rejected(f"unknown order book {book_id}")
        return book

    def find_symbol(self, symbol: str) -> BookInfo | None:
        """The book of an instrument symbol, or None."""
        book_id = self._symbols.get(symbol)
        return None if book_id is None else self._infos[book_id - 1]

    # ------------------------------------------------------------------ orders (hot path)

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
        # The common case, inline: a valid order that crosses nothing and joins
        # an existing level of its side. Its price needs no test of its own:
        # a level is only ever opened by a validated price (> 0, <= MAX_UNITS,
        # a multiple of the tick), so a price equal to a level's is valid.
        # Everything else (an unknown book, a bad side, price or quantity, an
        # order that crosses or opens a level) takes _insert_slow, which
        # validates in full.
        if price is None:
            return self._insert_slow(book_id, side, price, quantity, owner, timestamp)
        try:
            book = self._books[book_id]
            if side == BUY:
                level = None if book._ask_heap[0] <= price else book._bid_levels.get(-price)
            elif side == SELL:
                level = None if book._bid_heap[0] <= -price else book._ask_levels.get(price)
            else:
                level = None
        except (KeyError, TypeError):  # an unknown book, a price of the wrong type
            level = None
        if level is None or quantity <= 0 or quantity > INT32_MAX:
            return self._insert_slow(book_id, side, price, quantity, owner, timestamp)
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        if book_id != self._last_book:
            self._run_starts.append(order_id)
            self._run_books.append(book_id)
            self._last_book = book_id
        # OrderBook._rest on an existing level; keep the two in step.
        order = Order()
        order.order_id = order_id
        order.book_id = book_id
        order.side = side
        order.price = price
        order.quantity = quantity
        order.remaining = quantity
        order.owner = owner
        order.timestamp = timestamp
        order._next = None
        order._level = level
        tail = level.tail
        order._prev = tail
        if tail is None:
            level.head = order
        else:
            tail._next = order
        level.tail = order
        book._orders[order_id] = order
        return order, ()

    def _insert_slow(
        self, book_id: int, side: int, price: int | None, quantity: int, owner: str, timestamp: int
    ) -> tuple[Order, Sequence[Fill]]:
        """``insert`` with full validation, for all but the common case."""
        try:
            book = self._books[book_id]
        except (KeyError, TypeError):
            raise Rejected(f"unknown order book {book_id}") from None
        if (
            (side != BUY and side != SELL)
            or price is None
            or price <= 0
            or price > MAX_UNITS
            or price % book.tick
            or quantity <= 0
            or quantity > INT32_MAX
        ):
            raise _insert_error(book, side, price, quantity)
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        if book_id != self._last_book:
            self._run_starts.append(order_id)
            self._run_books.append(book_id)
            self._last_book = book_id
        trade_id = self._next_trade_id
        order, fills = book.insert(order_id, side, price, quantity, owner, timestamp, trade_id)
        self._next_trade_id = trade_id + len(fills)
        return order, fills

    def cancel(self, book_id: int, order_id: int, timestamp: int = 0) -> Order:
        """Cancel a resting order; return it (``remaining`` = the quantity cancelled).

        Rejected for an unknown book, an unknown order, an order of another
        book, or one no longer resting (filled or cancelled).
        """
        try:
            book = self._books[book_id]
        except (KeyError, TypeError):
            raise Rejected(f"unknown order book {book_id}") from None
        # OrderBook.cancel, inline; keep the two in step.
        order = book._orders.pop(order_id, None)
        if order is None:
            raise self._cancel_error(book_id, order_id)
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

    def _cancel_error(self, book_id: int, order_id: int) -> Rejected:
        if not isinstance(order_id, int) or not 0 < order_id < self._next_order_id:
            return Rejected(f"unknown order {order_id}")
        owner_book = self._book_of(order_id)
        if owner_book != book_id:
            return Rejected(f"order {order_id} belongs to order book {owner_book}, not {book_id}")
        return Rejected(f"order {order_id} is no longer resting (filled or cancelled)")

    def _book_of(self, order_id: int) -> int:
        return self._run_books[bisect_right(self._run_starts, order_id) - 1]

    # ------------------------------------------------------------------ queries

    def get_order(self, order_id: int) -> Order | None:
        """The resting order with this id (any book), or None if unknown or no longer resting."""
        if not isinstance(order_id, int) or not 0 < order_id < self._next_order_id:
            return None
        return self._books[self._book_of(order_id)].get(order_id)

    def book_of_order(self, order_id: int) -> int | None:
        """The id of the book an order was placed in (resting or not), or None if the id was never issued."""
        if not isinstance(order_id, int) or not 0 < order_id < self._next_order_id:
            return None
        return self._book_of(order_id)

    def resting_orders(self) -> list[Order]:
        """Every resting order: book by book in id order, each in priority order (the login replay)."""
        out: list[Order] = []
        for info in self._infos:
            out.extend(self._books[info.book_id].resting_orders())
        return out

    @property
    def last_order_id(self) -> int:
        """The id of the last order accepted (0 before the first)."""
        return self._next_order_id - 1

    @property
    def last_trade_id(self) -> int:
        """The id of the last trade (0 before the first)."""
        return self._next_trade_id - 1

    def check_integrity(self) -> None:
        """Check every book (tests only)."""
        for book in self._books.values():
            book.check_integrity()


def _insert_error(book: OrderBook, side: int, price: int | None, quantity: int) -> Rejected:
    """The reason an insert was refused (off the hot path)."""
    if side != BUY and side != SELL:
        return Rejected(f"invalid side {side!r}: it must be BUY or SELL")
    if price is None:
        return Rejected("invalid price: not a finite number representable with 4 decimals")
    if price <= 0:
        return Rejected(f"invalid price {format_units(price)}: it must be > 0")
    if price > MAX_UNITS:
        return Rejected(f"invalid price {format_units(price)}: too large")
    if price % book.tick:
        return Rejected(
            f"invalid price {format_units(price)}: not a multiple of the tick size {format_units(book.tick)}"
        )
    return Rejected(f"invalid quantity {quantity}: it must be between 1 and {INT32_MAX}")
