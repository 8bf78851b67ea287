"""A deliberately simple order book with the queries of ``OrderBook``: the oracle of the tests.

One list of resting orders per side, kept sorted by priority key
(best price, then arrival) after every change. Obviously right, slow. Its
caller allocates the ids (``insert``/``place``/``amend`` take them), so that
it can follow an ``Exchange`` whose ids are global across books; it
validates nothing (but a FOK order that cannot fill raises ``Rejected``).

The extensions the obvious way: ``place`` matches maker by maker, checking
the owner of each for self-trade prevention; a FOK order is first tried on
copies of the resting orders and rejected unless that trial filled it.
"""

from __future__ import annotations

from collections.abc import Iterable

from optivex.engine.types import (
    BUY,
    FOK,
    GTC,
    SELL,
    STP_ALLOW,
    STP_CANCEL_INCOMING,
    Amendment,
    BookId,
    BookIntegrityError,
    Fill,
    Order,
    Placement,
    Price,
    Quantity,
    Rejected,
    TradeId,
)
from optivex.units import format_units

_FOK_STP = ("", " (orders of the same owner not counted)", " before the first order of the same owner")


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
        placed = self.place(order_id, side, price, quantity, owner, timestamp, next_trade_id)
        return placed.order, list(placed.fills)

    def place(
        self,
        order_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
        next_trade_id: int,
        tif: int = GTC,
        stp: int = STP_ALLOW,
    ) -> Placement:
        """``insert`` with a time in force and self-trade prevention (``Books.place``'s rules)."""
        if not owner:
            stp = STP_ALLOW
        if tif == FOK:
            trial = NaiveOrderBook(self.book_id, self.tick)
            for entry_side, entries in self._sides.items():
                trial._sides[entry_side] = [(key, _copy(o)) for key, o in entries]
            _, trial_fills, _, _ = trial._match(Order.create(0, 0, side, price, quantity, owner, 0), stp, 0)
            traded = sum(fill[4] for fill in trial_fills)
            if traded < quantity:
                raise Rejected(
                    f"FOK order cannot be filled in full: {traded} of {quantity} available at "
                    f"{format_units(price)} or better{_FOK_STP[stp]}"
                )
        order = Order.create(order_id, self.book_id, side, price, quantity, owner, timestamp)
        order, fills, self_cancelled, stopped = self._match(order, stp, next_trade_id)
        cancelled = 0
        if order.remaining > 0 and (stopped or tif != GTC):
            cancelled = order.remaining
            order.remaining = Quantity(0)
        if order.remaining > 0:
            self._rest(order)
        return Placement(order, fills, self_cancelled, Quantity(cancelled))

    def _match(
        self, order: Order, stp: int, next_trade_id: int
    ) -> tuple[Order, list[Fill], list[Order], bool]:
        """Trade ``order`` against the opposite side: it, its fills, the makers STP cancelled, stopped?"""
        fills: list[Fill] = []
        self_cancelled: list[Order] = []
        opposite = self._sides[SELL if order.side == BUY else BUY]
        while order.remaining > 0 and opposite:
            _, maker = opposite[0]
            crosses = maker.price <= order.price if order.side == BUY else maker.price >= order.price
            if not crosses:
                break
            if stp != STP_ALLOW and maker.owner == order.owner:
                if stp == STP_CANCEL_INCOMING:
                    return order, fills, self_cancelled, True
                opposite.pop(0)
                self_cancelled.append(maker)
                continue
            qty = min(order.remaining, maker.remaining)
            fills.append((TradeId(next_trade_id), maker.order_id, maker.owner, maker.price, qty))
            next_trade_id += 1
            order.remaining = Quantity(order.remaining - qty)
            maker.remaining = Quantity(maker.remaining - qty)
            if maker.remaining == 0:
                opposite.pop(0)
        return order, fills, self_cancelled, False

    def _rest(self, order: Order) -> None:
        self._arrivals += 1
        key = (-order.price if order.side == BUY else order.price, self._arrivals)
        own = self._sides[order.side]
        own.append((key, order))
        own.sort(key=lambda entry: entry[0])

    def amend(
        self,
        order_id: int,
        price: int | None,
        quantity: int,
        timestamp: int,
        new_order_id: int,
        next_trade_id: int,
        stp: int = STP_ALLOW,
    ) -> Amendment:
        """Amend a resting order (``Books.amend``'s rules, none of its checks): reduce it, or replace it.

        The replacement, if any, gets ``new_order_id``; the caller checks that the
        order rests here and that the amend changes something.
        """
        order = self.get(order_id)
        if order is None:
            raise ValueError(f"order {order_id} does not rest here")
        previous = order.remaining
        new_price = order.price if price is None else price
        if new_price == order.price and quantity < previous:
            order.quantity = Quantity(order.quantity - (previous - quantity))
            order.remaining = Quantity(quantity)
            return Amendment(order, None, True, previous, (), [], Quantity(0))
        self.cancel(order_id)
        placed = self.place(
            new_order_id, order.side, new_price, quantity, order.owner, timestamp, next_trade_id, GTC, stp
        )
        return Amendment(
            placed.order, order, False, previous, placed.fills, placed.self_cancelled, placed.cancelled
        )

    def cancel_orders(self, owner: str, order_ids: Iterable[int] | None = None) -> list[Order]:
        """Cancel the resting orders of ``owner`` here (only ``order_ids`` if given); them, ascending id."""
        wanted = None if order_ids is None else set(order_ids)
        targets = sorted(
            (
                o
                for o in self.resting_orders()
                if o.owner == owner and (wanted is None or o.order_id in wanted)
            ),
            key=lambda o: o.order_id,
        )
        for order in targets:
            self.cancel(order.order_id)
        return targets

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


def _copy(order: Order) -> Order:
    """A copy of an order outside any book (for a FOK trial)."""
    return Order.create(
        order.order_id,
        order.book_id,
        order.side,
        order.price,
        order.quantity,
        order.owner,
        order.timestamp,
        order.remaining,
    )
