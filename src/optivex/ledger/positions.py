"""Day positions from fills: position, cash, bought, sold, traded volume, realised PnL (FIFO).

Pure and synchronous, exact integers throughout: quantities in lots, prices in units of
0.0001 (optivex.units), cash and PnL in ``price_units * quantity``.

Per (user, symbol): ``position`` = bought - sold; ``cash`` = sum of sell amounts minus sum
of buy amounts; ``volume`` = bought + sold; ``realised_pnl`` what closed positions made,
first in first out: a fill against the position (a sell while long, a buy while short)
closes the oldest open lots first and realises (exit - entry) x quantity for a long,
(entry - exit) x quantity for a short; what is left of the fill once the position is
flat opens a lot on the other side (a flip). Per symbol, the last trade price (anyone's).

Cost: O(1) amortised per fill (each fill opens at most one lot; each lot is closed once),
memory one small entry per open lot (consecutive fills at the same price share one).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

BUY = 0
SELL = 1
"""Sides as in optivex.engine.types and the protobuf enum."""


class PositionFigures(NamedTuple):
    """One user's day on one symbol (integers; amounts in price units x quantity)."""

    position: int
    cash: int
    bought: int
    sold: int
    volume: int
    realised_pnl: int
    last_price: int
    """The symbol's last trade price in units, anyone's (0: no trade seen)."""


class _Figures:
    """Mutable figures of one (user, symbol); ``lots`` the open lots, oldest first, [price, quantity]."""

    __slots__ = ("bought", "cash", "lots", "position", "realised", "sold")

    def __init__(self) -> None:
        self.position = 0
        self.cash = 0
        self.bought = 0
        self.sold = 0
        self.realised = 0
        # Every lot is on the side of the position's sign: long lots while position > 0, short while < 0.
        self.lots: deque[list[int]] = deque()

    def fill(self, buy: bool, price: int, quantity: int) -> None:
        position = self.position
        if buy:
            self.bought += quantity
            self.cash -= price * quantity
            self.position = position + quantity
            closing = position < 0
        else:
            self.sold += quantity
            self.cash += price * quantity
            self.position = position - quantity
            closing = position > 0
        lots = self.lots
        if closing:
            # A long closed by a sell makes (exit - entry); a short closed by a buy (entry - exit).
            sign = -1 if buy else 1
            realised = 0
            while quantity and lots:
                lot = lots[0]
                entry, size = lot
                if size <= quantity:
                    lots.popleft()
                    realised += (price - entry) * size
                    quantity -= size
                else:
                    lot[1] = size - quantity
                    realised += (price - entry) * quantity
                    quantity = 0
            self.realised += sign * realised
        if quantity:
            if lots and lots[-1][0] == price:
                lots[-1][1] += quantity
            else:
                lots.append([price, quantity])


class Ledger:
    """Every user's day figures per symbol, and each symbol's last trade price."""

    __slots__ = ("_last", "_users")

    def __init__(self) -> None:
        self._users: dict[str, dict[str, _Figures]] = {}
        self._last: dict[str, int] = {}

    def fill(self, user: str, symbol: str, side: int, price: int, quantity: int) -> None:
        """One fill of ``user``: ``side`` BUY (0) or SELL (1), ``price`` in units, ``quantity`` > 0.

        Does not touch the last trade price (``trade`` or ``trade_applied`` do).
        """
        self._figures(user, symbol).fill(side == BUY, price, quantity)

    def trade(self, symbol: str, price: int) -> None:
        """A trade on ``symbol`` at ``price`` units (anyone's): the symbol's last trade price."""
        self._last[symbol] = price

    def trade_applied(self, symbol: str, price: int, quantity: int, buyer: str, seller: str) -> None:
        """One trade as the feed shows it: the buyer's and the seller's fills and the last price.

        A self-trade (buyer == seller) is two fills of that user, the buy first.
        """
        self._last[symbol] = price
        users = self._users
        books = users.get(buyer)
        figures = None if books is None else books.get(symbol)
        (figures or self._figures(buyer, symbol)).fill(True, price, quantity)
        books = users.get(seller)
        figures = None if books is None else books.get(symbol)
        (figures or self._figures(seller, symbol)).fill(False, price, quantity)

    def position(self, user: str, symbol: str) -> PositionFigures | None:
        """The user's figures on ``symbol``; None if it has no fill there today."""
        figures = self._users.get(user, {}).get(symbol)
        return None if figures is None else self._figures_of(symbol, figures)

    def positions(self, user: str) -> dict[str, PositionFigures]:
        """The user's figures on every symbol it has filled on today, by symbol (sorted)."""
        books = self._users.get(user, {})
        return {symbol: self._figures_of(symbol, books[symbol]) for symbol in sorted(books)}

    def last_price(self, symbol: str) -> int:
        """The symbol's last trade price in units; 0 before any trade."""
        return self._last.get(symbol, 0)

    def clear(self) -> None:
        """Forget everything (a new trading day)."""
        self._users.clear()
        self._last.clear()

    def _figures(self, user: str, symbol: str) -> _Figures:
        books = self._users.get(user)
        if books is None:
            books = self._users[user] = {}
        figures = books.get(symbol)
        if figures is None:
            figures = books[symbol] = _Figures()
        return figures

    def _figures_of(self, symbol: str, f: _Figures) -> PositionFigures:
        return PositionFigures(
            f.position, f.cash, f.bought, f.sold, f.bought + f.sold, f.realised, self._last.get(symbol, 0)
        )

    def open_lots(self, user: str, symbol: str) -> list[tuple[int, int]]:
        """The user's open lots on ``symbol``, oldest first: (price, quantity), quantities > 0."""
        figures = self._users.get(user, {}).get(symbol)
        return [] if figures is None else [(price, size) for price, size in figures.lots]
