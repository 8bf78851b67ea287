"""Private execution reports (execution.proto 54-58): who subscribed, and what each feed change reports.

A connection subscribes once (``subscribe``); from then on every change the
feed applies to an order of its user makes the reports below, encoded once
and sent to each subscribed connection of that user in subscription order:

- ``TradeApplied``: an ``OnFill`` per side whose owner subscribed (both, buy
  first, for a self-trade); ``remaining_quantity`` is what the mirror still
  has of the order after the trade (0 once it left the book; for an order
  whose rest is cancelled at once, IMMEDIATE_OR_CANCEL, that rest until its
  OnOrderCancelled follows);
- ``OrderCancelled``: an ``OnOrderCancelled`` with the order book's reason
  and, for CANCEL_REPLACED, the order's new id;
- ``OrderAmended`` (priority kept) and ``OrderInserted`` with
  ``replaces_order_id`` (priority lost): an ``OnOrderAmended``.

Only orders of books with an instrument are reported (the execution protocol
names orders by symbol). The new id of a replaced order: the order book's
AmendOrderResponse comes before the order's events on the feed's connection,
so the gateway tells ``replaced(user, old, new)`` before the OrderCancelled
(CANCEL_REPLACED) arrives; for an amend the gateway did not send (straight on
the order book) the cancel's report waits for the OrderInserted that names
it, and goes out just before that order's OnOrderAmended.

With nobody subscribed the component does not call ``changed`` at all (it
tests ``by_user`` first): the plain fast path pays one dict test per change.
"""

from __future__ import annotations

from typing import cast

from optivex.feed.mirror import BookMirror, Change, OrderAmended, OrderCancelled, OrderInserted, TradeApplied
from optivex.net import Connection
from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.units import units_to_price
from optivex.wire import encode_frame

BUY = common_pb2.BUY
SELL = common_pb2.SELL
CANCEL_REPLACED = common_pb2.CANCEL_REPLACED


def _send(
    conns: list[Connection], msg_type: int, message: ex.OnFill | ex.OnOrderCancelled | ex.OnOrderAmended
) -> None:
    frame = encode_frame(msg_type, message.SerializeToString())
    for conn in conns:
        conn.send(frame)


def _symbol(mirror: BookMirror, book_id: int) -> str | None:
    book = mirror.book(book_id)
    return None if book is None else book.symbol


class ExecutionReports:
    """The subscribed connections of each user and the reports of feed changes; see the module docstring."""

    __slots__ = ("_held", "_replaced", "by_user")

    def __init__(self) -> None:
        self.by_user: dict[str, list[Connection]] = {}
        """The subscribed connections of each user with at least one, in subscription order."""
        self._replaced: dict[int, int] = {}
        """Old order id -> new id, from the amend responses of subscribed users (until its cancel)."""
        self._held: dict[int, OrderCancelled] = {}
        """CANCEL_REPLACED cancels whose new id is not known yet, by old order id."""

    def subscribe(self, conn: Connection, user: str) -> bool:
        """Subscribe `conn` (of `user`); False if it already is."""
        conns = self.by_user.get(user)
        if conns is None:
            self.by_user[user] = [conn]
            return True
        if conn in conns:
            return False
        conns.append(conn)
        return True

    def unsubscribe(self, conn: Connection, user: str | None) -> None:
        """`conn` closed: no more reports for it."""
        if user is None:
            return
        conns = self.by_user.get(user)
        if conns is not None and conn in conns:
            conns.remove(conn)
            if not conns:
                del self.by_user[user]

    def replaced(self, user: str, old_order_id: int, new_order_id: int) -> None:
        """An amend of `user` lost priority: `old_order_id` goes on as `new_order_id`."""
        if user in self.by_user:
            self._replaced[old_order_id] = new_order_id

    def reset(self) -> None:
        """A fresh mirror: forget amends whose events will never come on this connection."""
        self._replaced.clear()
        self._held.clear()

    def changed(self, change: Change, mirror: BookMirror) -> None:
        """The reports of one live change (already applied to `mirror`), sent."""
        kind = type(change)
        by_user = self.by_user
        if kind is TradeApplied:
            t = cast(TradeApplied, change)
            buyers = by_user.get(t.buy_owner)
            sellers = by_user.get(t.sell_owner)
            if buyers is None and sellers is None:
                return
            symbol = _symbol(mirror, t.book_id)
            if symbol is None:
                return
            price = units_to_price(t.price)
            for conns, order_id, side in ((buyers, t.buy_order_id, BUY), (sellers, t.sell_order_id, SELL)):
                if conns:
                    order = mirror.order(order_id)
                    fill = ex.OnFill(
                        order_id=order_id,
                        trade_id=t.trade_id,
                        instrument_symbol=symbol,
                        side=side,
                        price=price,
                        quantity=t.quantity,
                        remaining_quantity=0 if order is None else order.remaining,
                        aggressor=t.aggressor_side == side,
                        timestamp=t.timestamp,
                    )
                    _send(conns, ex.ON_FILL, fill)
        elif kind is OrderCancelled:
            c = cast(OrderCancelled, change)
            new_order_id = 0
            if c.reason == CANCEL_REPLACED:
                new_order_id = self._replaced.pop(c.order_id, 0)
                if not new_order_id:
                    if c.owner in by_user:
                        self._held[c.order_id] = c
                    return
            conns = by_user.get(c.owner)
            if conns is not None:
                self._cancelled(conns, c, new_order_id, mirror)
        elif kind is OrderInserted:
            i = cast(OrderInserted, change)
            if not i.replaces_order_id:
                return
            held = self._held.pop(i.replaces_order_id, None)
            conns = by_user.get(i.owner)
            if conns is None:
                return
            symbol = _symbol(mirror, i.book_id)
            if symbol is None:
                return
            if held is not None:
                self._cancelled(conns, held, i.order_id, mirror)
            amended = ex.OnOrderAmended(
                order_id=i.order_id,
                instrument_symbol=symbol,
                price=units_to_price(i.price),
                quantity=i.quantity,
                priority_kept=False,
                previous_order_id=i.replaces_order_id,
                timestamp=i.timestamp,
            )
            _send(conns, ex.ON_ORDER_AMENDED, amended)
        elif kind is OrderAmended:
            a = cast(OrderAmended, change)
            conns = by_user.get(a.owner)
            if conns is None:
                return
            symbol = _symbol(mirror, a.book_id)
            if symbol is None:
                return
            amended = ex.OnOrderAmended(
                order_id=a.order_id,
                instrument_symbol=symbol,
                price=units_to_price(a.price),
                quantity=a.quantity,
                priority_kept=True,
                previous_order_id=a.order_id,
                timestamp=a.timestamp,
            )
            _send(conns, ex.ON_ORDER_AMENDED, amended)

    @staticmethod
    def _cancelled(conns: list[Connection], c: OrderCancelled, new_order_id: int, mirror: BookMirror) -> None:
        symbol = _symbol(mirror, c.book_id)
        if symbol is None:
            return
        cancelled = ex.OnOrderCancelled(
            order_id=c.order_id,
            instrument_symbol=symbol,
            cancelled_quantity=c.quantity,
            reason=cast(common_pb2.CancelReason, c.reason),
            timestamp=c.timestamp,
            replaced_by_order_id=new_order_id,
        )
        _send(conns, ex.ON_ORDER_CANCELLED, cancelled)
