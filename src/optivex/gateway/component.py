"""The execution and risk_limits protocols (sections 6 and 7 of the contract) on one port.

The gateway follows the order book (``Follows("order_book")``: a feed with a
mirror, ``optivex.feed``) and sends every insert and cancel to it over the
feed's own connection, on behalf of the logged-in user. On that one ordered
stream the order book's response to a request comes before the events it
caused (section 3), so the gateway sees, for each of its inserts, the
InsertOrderResponse, then OnOrderInserted, then its trades.

Risk limits are kept by ``optivex.risk.RiskEngine`` (pure): the gateway turns
protobuf into its calls and the feed's changes into its outstanding figures.

- Insert: the message rate is counted first (``count_request``), then the
  symbol is looked up in the mirror (after the feed's barrier if the mirror
  does not know it: a confirmed instrument is never "unknown", section 4),
  the order validated with the order book's own rules and wording
  (``engine.book.order_error``), then checked and reserved in one
  synchronous step (``check_insert``) before the request leaves. A rejection
  on an outstanding limit may be stale (fills and cancels only lower
  outstanding): the feed's barrier first, then the check again ("checks see
  every fill and cancel that any client has already been told of"). The
  response is the order book's (order_id, timestamp, trade_ids,
  traded_quantity); a refused or failed request releases its reservation.
- Cancel: counted, then decided from the mirror: another user's order, an
  order of another instrument, or one no longer resting is an error, answered
  without asking the order book, but only after the feed's barrier (the
  client may have heard of the order before the gateway's feed did).
- Risk limits: Set replaces the message as a whole and holds from its
  response on; Get returns what was set (user limits unset before any Set;
  every instrument set, zero-valued ones included).

Early events. The order book's response comes before the order's events on
the feed's connection, and Link.send's callback runs as the response is
read, so ``RiskEngine.placed`` normally comes before the OnOrderInserted of
that order; the engine copes with either order (``placed`` finds an order it
already counts). If the feed reconnected between the send and the response,
the reservation is settled instead (``RiskEngine.settled``: the new
connection's replay counts the order; its rolling-window entries stay).
"""

from __future__ import annotations

import logging
import sys
from time import monotonic
from typing import cast

from optivex.app.component import Component, Reply, handles, run_component
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError
from optivex.app.users import User
from optivex.engine.book import order_error
from optivex.feed.follower import Feed, Follows
from optivex.feed.mirror import BookMirror, Change, MirrorBook, OrderCancelled, OrderInserted, TradeApplied
from optivex.logsafe import loggable
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.proto import risk_limits_pb2 as rl
from optivex.risk.engine import Rejection, Reservation, RiskEngine
from optivex.risk.limits import (
    InstrumentLimits,
    Rolling,
    UserLimits,
    instrument_limits_error,
    user_limits_error,
)
from optivex.units import (
    MAX_UNITS,
    UNITS_PER_ONE,
    amount_to_units,
    format_units,
    price_to_units,
    units_to_price,
)


def _rolling(limit: rl.RollingWindowLimit, scale: int) -> Rolling:
    return Rolling(limit.limit * scale, float(limit.window_in_seconds))


def _rolling_message(rolling: Rolling, scale: int) -> rl.RollingWindowLimit:
    return rl.RollingWindowLimit(limit=rolling.limit // scale, window_in_seconds=int(rolling.window))


def user_limits(message: rl.UserRiskLimits) -> UserLimits:
    """The engine's form of a UserRiskLimits message (not validated: ``user_limits_error``)."""
    rate = None
    if message.HasField("message_rate_rolling_limit"):
        rate = _rolling(message.message_rate_rolling_limit, 1)
    return UserLimits(message.max_outstanding_quantity, rate)


def user_limits_message(limits: UserLimits) -> rl.UserRiskLimits:
    message = rl.UserRiskLimits(max_outstanding_quantity=limits.max_outstanding_quantity)
    if limits.message_rate is not None:
        message.message_rate_rolling_limit.CopyFrom(_rolling_message(limits.message_rate, 1))
    return message


def instrument_limits(message: rl.InstrumentRiskLimits) -> InstrumentLimits | str:
    """The engine's form of an InstrumentRiskLimits message, or the error naming the invalid field.

    Amounts become integer units (``units.amount_to_units``: rounded to 4 decimals as a price is); a
    rolling amount limit (an int32 of currency) is ``limit * UNITS_PER_ONE`` units.
    """
    amount = amount_to_units(message.max_outstanding_amount)
    if amount is None:
        return (
            f"max_outstanding_amount must be a finite number from 0 to {format_units(MAX_UNITS)}, "
            f"not {message.max_outstanding_amount!r}"
        )
    quantity = None
    if message.HasField("order_quantity_rolling_limit"):
        quantity = _rolling(message.order_quantity_rolling_limit, 1)
    rolling_amount = None
    if message.HasField("order_amount_rolling_limit"):
        rolling_amount = _rolling(message.order_amount_rolling_limit, UNITS_PER_ONE)
    limits = InstrumentLimits(message.max_outstanding_quantity, amount, quantity, rolling_amount)
    return instrument_limits_error(limits) or limits


def instrument_limits_message(limits: InstrumentLimits) -> rl.InstrumentRiskLimits:
    message = rl.InstrumentRiskLimits(
        max_outstanding_quantity=limits.max_outstanding_quantity,
        max_outstanding_amount=units_to_price(limits.max_outstanding_amount),
    )
    if limits.order_quantity is not None:
        message.order_quantity_rolling_limit.CopyFrom(_rolling_message(limits.order_quantity, 1))
    if limits.order_amount is not None:
        message.order_amount_rolling_limit.CopyFrom(_rolling_message(limits.order_amount, UNITS_PER_ONE))
    return message


def unknown_instrument(symbol: str) -> str:
    return f"unknown instrument {loggable(symbol)}"


def cancel_error(mirror: BookMirror, user: str, book: MirrorBook, symbol: str, order_id: int) -> str | None:
    """Why `user` may not cancel `order_id` of `book` as the mirror stands, or None."""
    order = mirror.order(order_id)
    if order is None:
        return f"order {order_id} is not resting (unknown, filled or cancelled)"
    if order.owner != user:
        return f"order {order_id} is not an order of yours"
    if order.book_id != book.book_id:
        return f"order {order_id} is not an order of {loggable(symbol)}"
    return None


class GatewayComponent(Component):
    """Trading by symbol for logged-in users, within their risk limits."""

    name = "gateway"
    protocols = ("execution", "risk_limits")
    dependencies = (Follows("order_book"),)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.feed = cast(Feed, self.links["order_book"])
        self.risk = RiskEngine()

    # the feed (FeedListener): the engine's outstanding figures -----------

    def feed_reset(self, mirror: BookMirror) -> None:
        self.risk.reset(
            (o.owner, o.book_id, o.price, o.remaining)
            for book in mirror.books()
            for o in book.resting_orders()
        )

    def feed_changed(self, change: Change) -> None:
        kind = type(change)
        if kind is OrderInserted:
            i = cast(OrderInserted, change)
            self.risk.order_added(i.owner, i.book_id, i.order_id, i.price, i.quantity)
        elif kind is TradeApplied:
            t = cast(TradeApplied, change)
            buy, sell = t.levels  # each order's own price: levels[0] the buy order's, levels[1] the sell's
            self.risk.order_reduced(t.buy_owner, t.book_id, buy.price, t.quantity)
            self.risk.order_reduced(t.sell_owner, t.book_id, sell.price, t.quantity)
        elif kind is OrderCancelled:
            c = cast(OrderCancelled, change)
            self.risk.order_reduced(c.owner, c.book_id, c.price, c.quantity)

    def feed_lost(self) -> None:
        """Nothing to do: requests in flight fail and release; the next replay resets the figures."""

    # helpers ---------------------------------------------------------------

    async def _settle(self, symbol: str) -> None:
        """Bring the mirror up to date where it could answer wrongly: unless the link is up and the
        mirror knows `symbol`, the feed's barrier (so "unknown instrument" is only said after it, and a
        mirror of a previous connection, perhaps of a previous day, is never used).

        Raises LinkError when the order book cannot be asked.
        """
        feed = self.feed
        if not feed.up or feed.mirror.book_by_symbol(symbol) is None:
            await feed.barrier()

    def _insert_target(self, symbol: str, side: int, price: int | None, quantity: int) -> MirrorBook | str:
        """The book an insert goes to as the mirror stands, or the error that answers it."""
        book = self.feed.mirror.book_by_symbol(symbol)
        if book is None:
            return unknown_instrument(symbol)
        return order_error(side, price, quantity, book.tick) or book

    def _cancel_target(self, user: str, symbol: str, order_id: int) -> MirrorBook | str:
        """The book a cancel goes to as the mirror stands, or the error that answers it."""
        mirror = self.feed.mirror
        book = mirror.book_by_symbol(symbol)
        if book is None:
            return unknown_instrument(symbol)
        return cancel_error(mirror, user, book, symbol, order_id) or book

    # execution --------------------------------------------------------------
    #
    # The fast path is synchronous: while the link is up and the mirror knows the symbol, the checks,
    # the reservation and the send happen in the handler itself (Link.send: no task, no future), and
    # the response answers a deferred Reply. Whatever needs the feed's barrier (an unknown symbol, the
    # link down, a rejection or a refused cancel the mirror may be behind on) goes on in a coroutine
    # (Reply.defer_async), which decides again after the barrier. Either way a request goes out only
    # on the connection whose mirror decided it (Link.send's `connection`): should the link have come
    # up again meanwhile (perhaps a new day), it is answered "unavailable" instead.

    @handles(ex.InsertOrderRequest)
    def insert_order(self, reply: Reply, request: ex.InsertOrderRequest) -> None:
        user = cast(str, reply.conn.user)
        risk = self.risk
        rejection = risk.count_request(user, monotonic())
        if rejection is not None:
            reply.error(rejection.message)
            return
        symbol = request.instrument_symbol
        price = price_to_units(request.price)
        feed = self.feed
        book = feed.mirror.book_by_symbol(symbol) if feed.up else None
        if book is not None:
            error = order_error(int(request.side), price, request.quantity, book.tick)
            if error:
                reply.error(error)  # invalid for that book: no barrier changes it
                return
            assert price is not None  # order_error refuses None
            checked = risk.check_insert(user, book.book_id, symbol, price, request.quantity, monotonic())
            if not isinstance(checked, Rejection):
                self._send_insert(reply.defer(), request, user, book, price, checked)
                return
            if not checked.outstanding:
                reply.error(checked.message)
                return
            # Maybe stale: fills and cancels any client was told of may not have reached the feed yet.
        reply.defer_async(lambda later: self._insert_after_barrier(later, request, user, price))

    async def _insert_after_barrier(
        self, reply: Reply, request: ex.InsertOrderRequest, user: str, price: int | None
    ) -> None:
        """An insert the mirror could not decide at once: decided after the feed's barrier."""
        symbol = request.instrument_symbol
        try:
            await self.feed.barrier()
        except LinkError as exc:
            reply.error(str(exc))
            return
        target = self._insert_target(symbol, int(request.side), price, request.quantity)
        if isinstance(target, str):
            reply.error(target)
            return
        assert price is not None  # order_error refuses None
        checked = self.risk.check_insert(user, target.book_id, symbol, price, request.quantity, monotonic())
        if isinstance(checked, Rejection):
            reply.error(checked.message)
            return
        self._send_insert(reply.defer(), request, user, target, price, checked)

    def _send_insert(
        self,
        reply: Reply,
        request: ex.InsertOrderRequest,
        user: str,
        target: MirrorBook,
        price: int,
        reservation: Reservation,
    ) -> None:
        """Send a checked, reserved insert on the connection whose mirror decided it; answer from its
        response."""
        feed = self.feed
        sent_on = feed.connections
        risk = self.risk

        def answered(response: ob.InsertOrderResponse | LinkError) -> None:
            if isinstance(response, LinkError):
                risk.release(reservation)
                reply.error(str(response))
                return
            if response.error_message:
                risk.release(reservation)
                reply.error(response.error_message)
                return
            if feed.connections == sent_on:
                risk.placed(reservation, response.order_id)
            else:
                # The order book's replay on the newer connection counted the order already (feed_reset);
                # it was accepted, so its rolling-window entries stay.
                risk.settled(reservation)
            answer = ex.InsertOrderResponse(
                request_id=request.request_id,
                order_id=response.order_id,
                timestamp=response.timestamp,
                traded_quantity=response.traded_quantity,
            )
            if response.trade_ids:
                answer.trade_ids.extend(response.trade_ids)
            reply.send(answer)

        message = ob.InsertOrderRequest(
            order_book_id=target.book_id,
            side=request.side,
            price=units_to_price(price),
            quantity=request.quantity,
            on_behalf_of_username=user,
        )
        try:
            feed.send(message, ob.InsertOrderResponse, answered, sent_on)
        except BaseException:
            risk.release(reservation)
            raise

    @handles(ex.CancelOrderRequest)
    def cancel_order(self, reply: Reply, request: ex.CancelOrderRequest) -> None:
        user = cast(str, reply.conn.user)
        rejection = self.risk.count_request(user, monotonic())
        if rejection is not None:
            reply.error(rejection.message)
            return
        feed = self.feed
        if feed.up:
            target = self._cancel_target(user, request.instrument_symbol, request.order_id)
            if not isinstance(target, str):
                self._send_cancel(reply.defer(), request, target)
                return
        # The client may know of the order (its InsertOrderResponse) before the feed applied it.
        reply.defer_async(lambda later: self._cancel_after_barrier(later, request, user))

    async def _cancel_after_barrier(self, reply: Reply, request: ex.CancelOrderRequest, user: str) -> None:
        """A cancel the mirror refused (or could not decide): decided again after the feed's barrier."""
        try:
            await self.feed.barrier()
        except LinkError as exc:
            reply.error(str(exc))
            return
        target = self._cancel_target(user, request.instrument_symbol, request.order_id)
        if isinstance(target, str):
            reply.error(target)
            return
        self._send_cancel(reply.defer(), request, target)

    def _send_cancel(self, reply: Reply, request: ex.CancelOrderRequest, target: MirrorBook) -> None:
        def answered(response: ob.CancelOrderResponse | LinkError) -> None:
            if isinstance(response, LinkError):
                reply.error(str(response))
            elif response.error_message:
                reply.error(response.error_message)
            else:
                reply.send(ex.CancelOrderResponse(request_id=request.request_id))

        feed = self.feed
        message = ob.CancelOrderRequest(order_book_id=target.book_id, order_id=request.order_id)
        feed.send(message, ob.CancelOrderResponse, answered, feed.connections)

    # risk_limits -------------------------------------------------------------

    @handles(rl.SetUserRiskLimitsRequest)
    def set_user_risk_limits(self, reply: Reply, request: rl.SetUserRiskLimitsRequest) -> None:
        limits = user_limits(request.user_risk_limits)
        error = user_limits_error(limits)
        if error is not None:
            reply.error(error)
            return
        self.risk.set_user_limits(cast(str, reply.conn.user), limits)
        reply.send(rl.SetUserRiskLimitsResponse(request_id=request.request_id))

    @handles(rl.GetUserRiskLimitsRequest)
    def get_user_risk_limits(self, reply: Reply, request: rl.GetUserRiskLimitsRequest) -> None:
        response = rl.GetUserRiskLimitsResponse(request_id=request.request_id)
        limits = self.risk.user_limits(cast(str, reply.conn.user))
        if limits is not None:
            response.user_risk_limits.CopyFrom(user_limits_message(limits))
        reply.send(response)

    @handles(rl.SetInstrumentRiskLimitsRequest)
    async def set_instrument_risk_limits(
        self, reply: Reply, request: rl.SetInstrumentRiskLimitsRequest
    ) -> None:
        limits = instrument_limits(request.instrument_risk_limits)
        if isinstance(limits, str):
            reply.error(limits)
            return
        symbol = request.instrument_symbol
        try:
            await self._settle(symbol)
        except LinkError as exc:
            reply.error(str(exc))
            return
        if self.feed.mirror.book_by_symbol(symbol) is None:
            reply.error(unknown_instrument(symbol))
            return
        self.risk.set_instrument_limits(cast(str, reply.conn.user), symbol, limits)
        reply.send(rl.SetInstrumentRiskLimitsResponse(request_id=request.request_id))

    @handles(rl.GetInstrumentRiskLimitsRequest)
    def get_instrument_risk_limits(self, reply: Reply, request: rl.GetInstrumentRiskLimitsRequest) -> None:
        response = rl.GetInstrumentRiskLimitsResponse(request_id=request.request_id)
        by_instrument = response.risk_limits_by_instrument
        for symbol, limits in self.risk.instrument_limits(cast(str, reply.conn.user)).items():
            by_instrument[symbol].CopyFrom(instrument_limits_message(limits))
        reply.send(response)


def main() -> None:
    sys.exit(run_component(GatewayComponent))
