"""The exchange core: every order book of the day, instruments, and the queries of the component.

This is what the order-book component calls. ``Exchange`` is a ``Books``
(engine/book.py): placing and cancelling orders, id allocation and the
validation of orders are the book module's one hot path, inherited as they
are; this module adds creating books (tick and instrument symbol checks),
their descriptions and the day's queries. Ids are global: books, orders and
trades are numbered from 1, strictly increasing over the day, orders and
trades across all books. A rejected request raises ``Rejected`` and changes
nothing (no id is consumed).
"""

from __future__ import annotations

import re
from typing import Final

from optivex.engine.book import Books, OrderBook
from optivex.engine.types import BookId, BookInfo, BookIntegrityError, Order, Price, Rejected, Timestamp
from optivex.units import MAX_UNITS

__all__ = ["Exchange", "valid_symbol"]

_SYMBOL_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,32}")


def valid_symbol(symbol: object) -> bool:
    """True for an instrument symbol of 1 to 32 characters of ``[A-Za-z0-9._-]``."""
    return isinstance(symbol, str) and _SYMBOL_RE.fullmatch(symbol) is not None


class Exchange(Books):
    """Every book of the day plus validation; ``insert``/``cancel`` come from ``Books``."""

    __slots__ = ("_infos", "_symbols")

    def __init__(self) -> None:
        super().__init__()
        self._infos: list[BookInfo] = []
        self._symbols: dict[str, BookId] = {}

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
        book = OrderBook(len(self._infos) + 1, tick, books=self)
        info = BookInfo(book.book_id, Price(tick), symbol, Timestamp(timestamp))
        self._infos.append(info)
        if symbol is not None:
            self._symbols[symbol] = book.book_id
        return info

    def books(self) -> list[BookInfo]:
        """Every book of the day, in id order."""
        return list(self._infos)

    def book_info(self, book_id: int) -> BookInfo:
        """The description of one book; Rejected if unknown."""
        return self._infos[self.book(book_id).book_id - 1]

    def book(self, book_id: int) -> OrderBook:
        """The book itself (for queries: levels, best, resting orders); Rejected if unknown."""
        try:
            return self._books[book_id]
        except (KeyError, TypeError):
            raise Rejected(f"unknown order book {book_id}") from None

    def find_symbol(self, symbol: str) -> BookInfo | None:
        """The book of an instrument symbol, or None."""
        book_id = self._symbols.get(symbol)
        return None if book_id is None else self._infos[book_id - 1]

    # ------------------------------------------------------------------ queries

    def resting_orders(self) -> list[Order]:
        """Every resting order: book by book in id order, each in priority order (the login replay)."""
        out: list[Order] = []
        for info in self._infos:
            out.extend(self._books[info.book_id].resting_orders())
        return out

    def check_integrity(self) -> None:
        """Raise ``BookIntegrityError`` unless every book, the order table and the book list agree (tests)."""
        super().check_integrity()
        if [info.book_id for info in self._infos] != list(range(1, len(self._books) + 1)):
            raise BookIntegrityError("book descriptions and books differ")
        for symbol, book_id in self._symbols.items():
            if self._infos[book_id - 1].symbol != symbol:
                raise BookIntegrityError(f"symbol {symbol!r} points to another book")
