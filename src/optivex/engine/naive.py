"""A deliberately simple order book with the queries of ``OrderBook``: the oracle of the tests.

One list of resting orders per side, kept sorted by priority key
(best price, then arrival) after every change. Obviously right, slow. Its
caller allocates the ids (``insert`` takes them), so that it can follow an
``Exchange`` whose ids are global across books; it validates nothing.
"""

from __future__ import annotations

from optivex.engine.types import BUY, SELL, BookId, BookIntegrityError, Fill, Order, Price, Quantity, TradeId


class NaiveOrderBook:
    """Price-time priority the obvious way (see the module docstring)."""

    def __init__(self, book_id: int = 0, tick: int = 1) -> None:
        self.book_id = BookId(book_id)
        self.tick = Price(tick)
        self._sides: dict[int, list[tuple[tuple[int, int], Order]]] = {BUY: [], SELL: []}
        self._arrivals = 0

    def insert(
        self,
        order_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
        next_trade_id: int,
    ) -> tuple[Order, list[Fill]]:
        """Match, then rest the remainder: the order and its fills, trade ids from ``next_trade_id``."""
        order = Order.create(order_id, self.book_id, side, price, quantity, owner, timestamp)
        fills: list[Fill] = []
        opposite = self._sides[SELL if side == BUY else BUY]
        while order.remaining > 0 and opposite:
            _, maker = opposite[0]
            crosses = maker.price <= price if side == BUY else maker.price >= price
            if not crosses:
                break
            qty = min(order.remaining, maker.remaining)
            fills.append((TradeId(next_trade_id), maker.order_id, maker.owner, maker.price, qty))
            next_trade_id += 1
            order.remaining = Quantity(order.remaining - qty)
            maker.remaining = Quantity(maker.remaining - qty)
            if maker.remaining == 0:
                opposite.pop(0)
        if order.remaining > 0:
            self._arrivals += 1
            key = (-price if side == BUY else price, self._arrivals)
            own = self._sides[side]
            own.append((key, order))
            own.sort(key=lambda entry: entry[0])
        return order, fills

    def cancel(self, order_id: int) -> Order | None:
        """Remove a resting order and return it; None if not resting here."""
        for entries in self._sides.values():
            for i, (_, order) in enumerate(entries):
                if order.order_id == order_id:
                    del entries[i]
                    return order
        return None

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._sides.values())

    def get(self, order_id: int) -> Order | None:
        """The resting order with this id, or None."""
        for entries in self._sides.values():
            for _, order in entries:
                if order.order_id == order_id:
                    return order
        return None

    def side_orders(self, side: int) -> list[Order]:
        """Resting orders of one side in priority order."""
        return [order for _, order in self._sides[side]]

    def resting_orders(self) -> list[Order]:
        """Bids best first, then asks best first, oldest first within a price."""
        return self.side_orders(BUY) + self.side_orders(SELL)

    def levels(self, side: int) -> list[tuple[Price, Quantity]]:
        """(price, total remaining) per level, best first."""
        out: list[tuple[Price, Quantity]] = []
        for _, order in self._sides[side]:
            if out and out[-1][0] == order.price:
                out[-1] = (order.price, Quantity(out[-1][1] + order.remaining))
            else:
                out.append((order.price, order.remaining))
        return out

    def best(self, side: int) -> tuple[Price, Quantity] | None:
        """The best level of one side, or None."""
        levels = self.levels(side)
        return levels[0] if levels else None

    def check_integrity(self) -> None:
        """Raise ``BookIntegrityError`` if the book is crossed or a side is out of priority order."""
        for side, entries in self._sides.items():
            keys = [key for key, _ in entries]
            if keys != sorted(keys):
                raise BookIntegrityError("side out of priority order")
            for _, order in entries:
                if order.side != side or not 0 < order.remaining <= order.quantity:
                    raise BookIntegrityError(f"bad resting order {order!r}")
        bid, ask = self.best(BUY), self.best(SELL)
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            raise BookIntegrityError("crossed book")
