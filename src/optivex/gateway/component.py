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

The trader extensions (execution.proto 50-69, risk_limits.proto 70-73), each
used only by a client that asks for it; a plain insert or cancel pays for them
two field reads and two dict tests, a feed change one dict test:

- Insert: time_in_force and self_trade_prevention (0: the user's setting,
  ``SetSelfTradePrevention``) are forwarded; the response carries the order
  book's resting_quantity and cancelled_quantity.
- Amend: decided like a cancel (ownership from the mirror, a refusal only
  after the barrier), checked by ``RiskEngine.check_amend`` (the old order
  replaced by the new) and reserved like an insert.
- CancelAllOrders: the order book's CancelOrdersRequest (the user, the book or
  0 for all, reason CANCEL_MASS); one request for the message rate.
- Execution reports (``gateway.reports``): per connection, from the feed's
  changes; a requester's own response comes first (the order book answers
  before it sends the request's events, and ``Link.send``'s callback runs as
  the response is read).
- Cancel-on-disconnect (``gateway.disconnect``): the ids of a connection's
  insert and amend responses; when it closes, one CancelOrdersRequest of them
  (reason CANCEL_DISCONNECT), and each later response of an insert in flight
  cancelled as it comes. Not sent if the order book's day changed meanwhile.
- GetOpenOrders from the mirror, GetPositions from ``optivex.ledger.Ledger``
  (fed by every TradeApplied), both after the feed's barrier (they see every
  change any client was told of). The message rate counts only requests that
  change orders (insert, cancel, amend, mass cancel), not queries and
  subscriptions.
- A new day (the feed's fresh mirror lacks a book of the old one, or has it
  with another creation timestamp: the order book restarted) clears the
  positions and the cancel-on-disconnect ids. A reconnection on the same day
  keeps them; fills and cancels while the link was down are not seen (the
  mirror's replay has the resting orders, not what happened to the others),
  so neither reported nor in the positions.

Early events. The order book's response comes before the order's events on
the feed's connection, and Link.send's callback runs as the response is
read, so ``RiskEngine.placed`` normally comes before the OnOrderInserted of
that order; the engine copes with either order (``placed`` finds an order it
already counts). If the feed reconnected between the send and the response,
the reservation is settled instead (``RiskEngine.settled``: the new
connection's replay counts the order; its rolling-window entries stay).
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic
from typing import cast

from google.protobuf.message import Message

from optivex.app.component import Component, Reply, handles
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError
from optivex.app.users import User
from optivex.engine.book import order_error
from optivex.engine.types import BUY
from optivex.feed.follower import Feed, Follows
from optivex.feed.mirror import (
    BookMirror,
    Change,
    MirrorBook,
    MirrorOrder,
    OrderAmended,
    OrderCancelled,
    OrderInserted,
    TradeApplied,
)
from optivex.gateway.disconnect import CancelOnDisconnect
from optivex.gateway.reports import ExecutionReports
from optivex.ledger import Ledger, PositionFigures
from optivex.logsafe import loggable
from optivex.net import Connection
from optivex.proto import common_pb2
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
    INT32_MAX,
    UNITS_PER_ONE,
    amount_to_units,
    price_to_units,
    units_to_price,
)
from optivex.wire import MAX_FRAME_LENGTH


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
        return f"max_outstanding_amount must be a finite number >= 0, not {message.max_outstanding_amount!r}"
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


TIMES_IN_FORCE = (common_pb2.GOOD_TILL_CANCEL, common_pb2.IMMEDIATE_OR_CANCEL, common_pb2.FILL_OR_KILL)
SELF_TRADE_PREVENTIONS = (
    common_pb2.SELF_TRADE_ALLOWED,
    common_pb2.CANCEL_RESTING,
    common_pb2.CANCEL_INCOMING,
)
COD_ATTEMPTS = 30
"""Times a cancel-on-disconnect waits for the order book's link (LINK_WAIT each) before it gives up."""


SAME_FIELDS = (
    (ob.InsertOrderResponse, ex.InsertOrderResponse),
    (ob.AmendOrderResponse, ex.AmendOrderResponse),
    (ob.CancelOrderResponse, ex.CancelOrderResponse),
)
"""Order book responses whose encoding is the execution response's (same field numbers and types): the
gateway answers with the order book's message itself, the client's request_id set (``Reply.relay``;
unit test: test_gateway)."""


def time_in_force_error(time_in_force: int) -> str | None:
    if time_in_force in TIMES_IN_FORCE:
        return None
    return (
        f"invalid time_in_force {time_in_force}: it must be GOOD_TILL_CANCEL, IMMEDIATE_OR_CANCEL "
        "or FILL_OR_KILL"
    )


def self_trade_prevention_error(self_trade_prevention: int) -> str | None:
    if self_trade_prevention in SELF_TRADE_PREVENTIONS:
        return None
    return (
        f"invalid self_trade_prevention {self_trade_prevention}: it must be SELF_TRADE_ALLOWED, "
        "CANCEL_RESTING or CANCEL_INCOMING"
    )


def amend_error(price: int | None, quantity: int, tick: int) -> str | None:
    """Why an amend's new price (units; None = unchanged) or quantity is invalid in a book of `tick`,
    in the order book's insert wording, or None."""
    if price is None:
        if 0 < quantity <= INT32_MAX:
            return None
        return f"invalid quantity {quantity}: it must be between 1 and {INT32_MAX}"
    return order_error(BUY, price, quantity, tick)


def open_orders_response(
    request_id: int, mirror: BookMirror, user: str, book: MirrorBook | None
) -> ex.GetOpenOrdersResponse:
    """The resting orders of `user` in `book` (every book with an instrument when None), by symbol then
    order id."""
    if book is None:
        books = sorted((b for b in mirror.books() if b.symbol is not None), key=lambda b: cast(str, b.symbol))
    else:
        books = [book]
    response = ex.GetOpenOrdersResponse(request_id=request_id)
    orders = response.orders
    for b in books:
        symbol = b.symbol
        for o in b.orders_of(user):
            orders.add(
                order_id=o.order_id,
                instrument_symbol=symbol,
                side=cast(common_pb2.Side, o.side),
                price=units_to_price(o.price),
                quantity=o.quantity,
                remaining_quantity=o.remaining,
                timestamp=o.timestamp,
            )
    return response


def position_message(symbol: str, figures: PositionFigures) -> ex.Position:
    """A ledger's figures as the protocol's Position (amounts from units x quantity to doubles)."""
    return ex.Position(
        instrument_symbol=symbol,
        position=figures.position,
        cash=units_to_price(figures.cash),
        bought_quantity=figures.bought,
        sold_quantity=figures.sold,
        traded_volume=figures.volume,
        realised_pnl=units_to_price(figures.realised_pnl),
        last_trade_price=units_to_price(figures.last_price),
    )


def positions_response(
    request_id: int, ledger: Ledger, user: str, book: MirrorBook | None
) -> ex.GetPositionsResponse:
    """The positions of `user`: on `book`'s instrument (all zero, with the instrument's last trade
    price, where the user has no fill today), or on every instrument it filled on when None."""
    response = ex.GetPositionsResponse(request_id=request_id)
    if book is None:
        response.positions.extend(position_message(s, f) for s, f in ledger.positions(user).items())
        return response
    symbol = cast(str, book.symbol)
    figures = ledger.position(user, symbol) or PositionFigures(0, 0, 0, 0, 0, 0, ledger.last_price(symbol))
    response.positions.append(position_message(symbol, figures))
    return response


def too_large(response: Message) -> str | None:
    """An error for a response that would not fit in one frame (wire.MAX_FRAME_LENGTH), or None."""
    size = response.ByteSize()
    if size + 4 <= MAX_FRAME_LENGTH:
        return None
    return f"the answer ({size} bytes) does not fit in one frame; ask for one instrument at a time"


class GatewayComponent(Component):
    """Trading by symbol for logged-in users, within their risk limits."""

    name = "gateway"
    protocols = ("execution", "risk_limits")
    dependencies = (Follows("order_book"),)
    # Each order's round trip passes through here twice (client to order book and back): polling after
    # a read picks the order book's response up without a wake-up from epoll (README: busy polling).
    default_busy_poll_microseconds = 200

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.feed = cast(Feed, self.links["order_book"])
        self.risk = RiskEngine()
        self.reports = ExecutionReports()
        self._reported = self.reports.by_user
        """Users with a subscribed connection: empty, the feed's changes make no report (one dict test)."""
        self._cod: dict[Connection, CancelOnDisconnect] = {}
        """Connections with cancel-on-disconnect enabled (empty: the insert path pays one dict test)."""
        self._stp: dict[str, int] = {}
        """Each user's self-trade prevention, for those who set one other than SELF_TRADE_ALLOWED."""
        self.ledger = Ledger()
        self._day = 0
        """Bumped when the feed's fresh mirror is a new day (the order book restarted)."""
        self._books_before: dict[int, int] | None = None
        """The books (id -> creation timestamp) of the mirror the feed lost, to tell a new day."""
        self._cod_tasks: set[asyncio.Task[None]] = set()

    async def stop(self) -> None:
        for task in list(self._cod_tasks):
            task.cancel()

    # the feed (FeedListener): the engine's outstanding figures, positions, reports ---

    def feed_reset(self, mirror: BookMirror) -> None:
        self.risk.reset(
            (o.owner, o.book_id, o.price, o.remaining)
            for book in mirror.books()
            for o in book.resting_orders()
        )
        before = self._books_before
        self._books_before = None
        if before is not None and any(
            (book := mirror.book(book_id)) is None or book.timestamp != timestamp
            for book_id, timestamp in before.items()
        ):
            # A new day: yesterday's positions and order ids mean nothing today.
            self._day += 1
            self.ledger.clear()
            for state in self._cod.values():
                state.ids.clear()
                state.day = self._day
        self.reports.reset()

    def feed_changed(self, change: Change) -> None:
        kind = type(change)
        # Annotated, not cast(): this runs for every event of the order book.
        if kind is OrderInserted:
            i: OrderInserted = change  # type: ignore[assignment]
            self.risk.order_added(i.owner, i.book_id, i.order_id, i.price, i.quantity)
        elif kind is TradeApplied:
            t: TradeApplied = change  # type: ignore[assignment]
            buy, sell = t.levels  # each order's own price: levels[0] the buy order's, levels[1] the sell's
            self.risk.order_reduced(t.buy_owner, t.book_id, buy.price, t.quantity)
            self.risk.order_reduced(t.sell_owner, t.book_id, sell.price, t.quantity)
            book = self.feed.mirror.book(t.book_id)
            if book is not None and book.symbol is not None:
                self.ledger.trade_applied(book.symbol, t.price, t.quantity, t.buy_owner, t.sell_owner)
        elif kind is OrderCancelled:
            c: OrderCancelled = change  # type: ignore[assignment]
            self.risk.order_reduced(c.owner, c.book_id, c.price, c.quantity)
        elif kind is OrderAmended:
            a: OrderAmended = change  # type: ignore[assignment]
            self.risk.order_reduced(a.owner, a.book_id, a.price, a.previous_quantity - a.quantity)
        if self._reported:
            self.reports.changed(change, self.feed.mirror)

    def feed_lost(self) -> None:
        """Requests in flight fail and release; the next replay resets the figures. The books are noted
        so that the next replay tells a new day (the order book restarted) from a reconnection."""
        self._books_before = {book.book_id: book.timestamp for book in self.feed.mirror.books()}

    # connections -------------------------------------------------------------

    def on_disconnect(self, conn: Connection) -> None:
        if self._reported:
            self.reports.unsubscribe(conn, conn.user)
        state = self._cod.pop(conn, None) if self._cod else None
        if state is not None:
            ids = state.closed()
            if ids:
                self._cancel_on_disconnect(state, ids)

    def _cancel_on_disconnect(self, state: CancelOnDisconnect, ids: list[int]) -> None:
        """Cancel `ids` (orders of a connection that closed), unless a new day began since they were
        collected: at once while the link is up, else once it is up again."""
        feed = self.feed
        if state.day != self._day:
            return
        if feed.up:
            self._send_cancel_on_disconnect(state, ids)
            return
        task = asyncio.get_running_loop().create_task(self._cancel_on_disconnect_later(state, ids))
        self._cod_tasks.add(task)
        task.add_done_callback(self._cod_tasks.discard)

    async def _cancel_on_disconnect_later(self, state: CancelOnDisconnect, ids: list[int]) -> None:
        for _ in range(COD_ATTEMPTS):
            try:
                await self.feed.wait_up()
            except LinkError:
                await asyncio.sleep(0.1)
                continue
            # Up, and its fresh mirror applied (feed_reset runs as the link comes up): is it still that day?
            if state.day == self._day:
                self._send_cancel_on_disconnect(state, ids)
            return
        self.log.warning(
            "cancel-on-disconnect of %d orders of %s not sent: the order book stayed unreachable",
            len(ids),
            loggable(state.user),
        )

    def _send_cancel_on_disconnect(self, state: CancelOnDisconnect, ids: list[int]) -> None:
        user = state.user

        def answered(response: ob.CancelOrdersResponse | LinkError) -> None:
            error = str(response) if isinstance(response, LinkError) else response.error_message
            if error:
                self.log.warning(
                    "cancel-on-disconnect of %d orders of %s failed: %s", len(ids), loggable(user), error
                )

        message = ob.CancelOrdersRequest(
            on_behalf_of_username=user, order_ids=ids, reason=common_pb2.CANCEL_DISCONNECT
        )
        self.feed.send(message, ob.CancelOrdersResponse, answered, self.feed.connections)

    def _placed_by(self, state: CancelOnDisconnect, order_id: int) -> None:
        """An insert or amend of a connection with cancel-on-disconnect left `order_id` resting."""
        mirror = self.feed.mirror
        if state.placed(order_id, lambda i: mirror.order(i) is not None):
            self._cancel_on_disconnect(state, [order_id])

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
    #
    # The extensions cost the plain insert two field reads and two dict tests (self._stp, self._cod:
    # empty while nobody uses them); time in force and self-trade prevention are validated only when
    # set.

    @handles(ex.InsertOrderRequest)
    def insert_order(self, reply: Reply, request: ex.InsertOrderRequest) -> None:
        # Annotated, not cast(): on the hot path a cast is a function call like any other.
        user: str = reply.conn.user  # type: ignore[assignment]  # logged in: the route requires it
        risk = self.risk
        now = monotonic()
        rejection = risk.count_request(user, now)
        if rejection is not None:
            reply.error(rejection.message)
            return
        time_in_force = request.time_in_force
        self_trade_prevention = request.self_trade_prevention
        if time_in_force or self_trade_prevention:
            error = time_in_force_error(time_in_force) or self_trade_prevention_error(self_trade_prevention)
            if error:
                reply.error(error)
                return
        if not self_trade_prevention and self._stp:
            self_trade_prevention = self._stp.get(user, 0)  # type: ignore[assignment]
        # Taken now: if the connection closes before the order is placed, its (closed) state still
        # cancels the order once placed.
        cod = self._cod.get(reply.conn) if self._cod else None
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
            checked = risk.check_insert(user, book.book_id, symbol, price, request.quantity, now)
            if not isinstance(checked, Rejection):
                self._send_insert(
                    reply.defer(),
                    request,
                    user,
                    book,
                    price,
                    checked,
                    time_in_force,
                    self_trade_prevention,
                    cod,
                )
                return
            if not checked.outstanding:
                reply.error(checked.message)
                return
            # Maybe stale: fills and cancels any client was told of may not have reached the feed yet.
        stp = int(self_trade_prevention)
        reply.defer_async(lambda later: self._insert_after_barrier(later, request, user, price, stp, cod))

    async def _insert_after_barrier(
        self,
        reply: Reply,
        request: ex.InsertOrderRequest,
        user: str,
        price: int | None,
        stp: int,
        cod: CancelOnDisconnect | None,
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
        self._send_insert(
            reply.defer(), request, user, target, price, checked, request.time_in_force, stp, cod
        )

    def _send_insert(
        self,
        reply: Reply,
        request: ex.InsertOrderRequest,
        user: str,
        target: MirrorBook,
        price: int,
        reservation: Reservation,
        time_in_force: int,
        self_trade_prevention: int,
        cod: CancelOnDisconnect | None,
    ) -> None:
        """Send a checked, reserved insert on the connection whose mirror decided it; answer from its
        response. `cod`: the requesting connection's cancel-on-disconnect state, if it enabled it."""
        feed = self.feed
        sent_on = feed.connections
        risk = self.risk

        def answered(response: ob.InsertOrderResponse | LinkError) -> None:
            # A LinkError otherwise. Tested this way round: an isinstance that fails on a protobuf
            # message costs an attribute lookup through the message.
            if not isinstance(response, ob.InsertOrderResponse):
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
            reply.relay(response)  # the order book's response itself (SAME_FIELDS)
            if cod is not None and response.resting_quantity:
                self._placed_by(cod, response.order_id)

        # Fields set one by one: cheaper than keyword arguments.
        message = ob.InsertOrderRequest()
        message.order_book_id = target.book_id
        message.side = request.side
        message.price = units_to_price(price)
        message.quantity = request.quantity
        message.on_behalf_of_username = user
        if time_in_force:
            message.time_in_force = time_in_force  # type: ignore[assignment]
        if self_trade_prevention:
            message.self_trade_prevention = self_trade_prevention  # type: ignore[assignment]
        try:
            feed.send(message, ob.InsertOrderResponse, answered, sent_on)
        except BaseException:
            risk.release(reservation)
            raise

    @handles(ex.CancelOrderRequest)
    def cancel_order(self, reply: Reply, request: ex.CancelOrderRequest) -> None:
        user: str = reply.conn.user  # type: ignore[assignment]  # logged in: the route requires it
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
            if not isinstance(response, ob.CancelOrderResponse):  # a LinkError (see _send_insert)
                reply.error(str(response))
            elif response.error_message:
                reply.error(response.error_message)
            else:
                reply.relay(response)  # the order book's response itself (SAME_FIELDS)

        feed = self.feed
        message = ob.CancelOrderRequest(order_book_id=target.book_id, order_id=request.order_id)
        feed.send(message, ob.CancelOrderResponse, answered, feed.connections)

    # amend: like a cancel (the mirror decides ownership, refusals after the barrier), risk-checked
    # like an insert (RiskEngine.check_amend).

    @handles(ex.AmendOrderRequest)
    def amend_order(self, reply: Reply, request: ex.AmendOrderRequest) -> None:
        user = cast(str, reply.conn.user)
        rejection = self.risk.count_request(user, monotonic())
        if rejection is not None:
            reply.error(rejection.message)
            return
        stp = int(request.self_trade_prevention)
        error = self_trade_prevention_error(stp)
        if error:
            reply.error(error)
            return
        if not stp:
            stp = self._stp.get(user, 0)
        price = None  # 0: unchanged
        if request.price != 0:
            price = price_to_units(request.price)
            if price is None:  # not representable: invalid whatever the book
                reply.error(cast(str, order_error(BUY, None, request.quantity, 1)))
                return
        cod = self._cod.get(reply.conn) if self._cod else None  # taken now: see insert_order
        if self.feed.up and self._amend(reply, request, user, price, stp, cod, settled=False):
            return

        async def after_barrier(later: Reply) -> None:
            try:
                await self.feed.barrier()
            except LinkError as exc:
                later.error(str(exc))
                return
            self._amend(later, request, user, price, stp, cod, settled=True)

        reply.defer_async(after_barrier)

    def _amend(
        self,
        reply: Reply,
        request: ex.AmendOrderRequest,
        user: str,
        price: int | None,
        stp: int,
        cod: CancelOnDisconnect | None,
        settled: bool,
    ) -> bool:
        """Decide an amend on the mirror: answered or sent (True), or False when the mirror refuses it and
        it is not `settled` (after the feed's barrier), so only the barrier can tell."""
        mirror = self.feed.mirror
        symbol = request.instrument_symbol
        book = mirror.book_by_symbol(symbol)
        if book is None:
            if settled:
                reply.error(unknown_instrument(symbol))
            return settled
        quantity = request.quantity
        error = amend_error(price, quantity, book.tick)
        if error:
            reply.error(error)
            return True
        order_id = request.order_id
        error = cancel_error(mirror, user, book, symbol, order_id)
        if error:
            if settled:
                reply.error(error)
            return settled
        order = cast(MirrorOrder, mirror.order(order_id))
        new_price = order.price if price is None else price
        keeps_priority = new_price == order.price and quantity < order.remaining
        checked = self.risk.check_amend(
            user,
            book.book_id,
            symbol,
            order_id,
            order.price,
            order.remaining,
            new_price,
            quantity,
            keeps_priority,
            monotonic(),
        )
        if isinstance(checked, Rejection):
            if settled or not checked.outstanding:
                reply.error(checked.message)
                return True
            return False
        self._send_amend(reply.defer(), request, user, book, price, stp, checked, cod)
        return True

    def _send_amend(
        self,
        reply: Reply,
        request: ex.AmendOrderRequest,
        user: str,
        target: MirrorBook,
        price: int | None,
        stp: int,
        reservation: Reservation,
        cod: CancelOnDisconnect | None,
    ) -> None:
        feed = self.feed
        sent_on = feed.connections
        risk = self.risk
        old_order_id = request.order_id

        def answered(response: ob.AmendOrderResponse | LinkError) -> None:
            if not isinstance(response, ob.AmendOrderResponse):  # a LinkError (see _send_insert)
                risk.release(reservation)
                reply.error(str(response))
                return
            if response.error_message:
                risk.release(reservation)
                reply.error(response.error_message)
                return
            new_order_id = response.order_id
            if feed.connections == sent_on:
                risk.placed(reservation, new_order_id)
            else:
                risk.settled(reservation, new_order_id)
            if not response.priority_kept:
                self.reports.replaced(user, old_order_id, new_order_id)
                for state in self._cod.values():
                    if state.user == user:
                        state.replaced(old_order_id, new_order_id)
            reply.relay(response)  # the order book's response itself (SAME_FIELDS)
            if cod is not None and response.resting_quantity:
                self._placed_by(cod, new_order_id)

        message = ob.AmendOrderRequest(
            order_book_id=target.book_id,
            order_id=old_order_id,
            price=0.0 if price is None else units_to_price(price),
            quantity=request.quantity,
            on_behalf_of_username=user,
            self_trade_prevention=cast(common_pb2.SelfTradePrevention, stp),
        )
        try:
            feed.send(message, ob.AmendOrderResponse, answered, sent_on)
        except BaseException:
            risk.release(reservation)
            raise

    @handles(ex.CancelAllOrdersRequest)
    def cancel_all_orders(self, reply: Reply, request: ex.CancelAllOrdersRequest) -> None:
        user = cast(str, reply.conn.user)
        rejection = self.risk.count_request(user, monotonic())
        if rejection is not None:
            reply.error(rejection.message)
            return
        symbol = request.instrument_symbol
        feed = self.feed
        if not symbol:
            self._send_cancel_all(reply.defer(), request, user, 0, None)
            return
        book = feed.mirror.book_by_symbol(symbol) if feed.up else None
        if book is not None:
            self._send_cancel_all(reply.defer(), request, user, book.book_id, feed.connections)
            return

        async def after_barrier(later: Reply) -> None:
            try:
                await feed.barrier()
            except LinkError as exc:
                later.error(str(exc))
                return
            target = feed.mirror.book_by_symbol(symbol)
            if target is None:
                later.error(unknown_instrument(symbol))
                return
            self._send_cancel_all(later.defer(), request, user, target.book_id, feed.connections)

        reply.defer_async(after_barrier)

    def _send_cancel_all(
        self,
        reply: Reply,
        request: ex.CancelAllOrdersRequest,
        user: str,
        book_id: int,
        connection: int | None,
    ) -> None:
        """CancelOrdersRequest for every order of `user` (in `book_id`, or all books when 0); a book id
        from the mirror goes out on that mirror's `connection` only."""

        def answered(response: ob.CancelOrdersResponse | LinkError) -> None:
            if isinstance(response, LinkError):
                reply.error(str(response))
            elif response.error_message:
                reply.error(response.error_message)
            else:
                ids = response.cancelled_order_ids
                answer = ex.CancelAllOrdersResponse(request_id=request.request_id, cancelled_count=len(ids))
                answer.cancelled_order_ids.extend(ids)
                reply.send(answer)

        message = ob.CancelOrdersRequest(
            on_behalf_of_username=user, order_book_id=book_id, reason=common_pb2.CANCEL_MASS
        )
        self.feed.send(message, ob.CancelOrdersResponse, answered, connection)

    # execution: subscriptions and queries -------------------------------------

    @handles(ex.SubscribeExecutionReportsRequest)
    def subscribe_execution_reports(self, reply: Reply, request: ex.SubscribeExecutionReportsRequest) -> None:
        if not self.reports.subscribe(reply.conn, cast(str, reply.conn.user)):
            reply.error("execution reports are already subscribed on this connection")
            return
        reply.send(ex.SubscribeExecutionReportsResponse(request_id=request.request_id))

    @handles(ex.EnableCancelOnDisconnectRequest)
    def enable_cancel_on_disconnect(self, reply: Reply, request: ex.EnableCancelOnDisconnectRequest) -> None:
        conn = reply.conn
        if conn in self._cod:
            reply.error("cancel-on-disconnect is already enabled on this connection")
            return
        self._cod[conn] = CancelOnDisconnect(cast(str, conn.user), self._day)
        reply.send(ex.EnableCancelOnDisconnectResponse(request_id=request.request_id))

    async def _query_book(self, symbol: str) -> MirrorBook | str | None:
        """After the feed's barrier (a query sees every change any client was told of): the book of
        `symbol`, None for every book (an empty symbol), or the error that answers the query."""
        try:
            await self.feed.barrier()
        except LinkError as exc:
            return str(exc)
        if not symbol:
            return None
        book = self.feed.mirror.book_by_symbol(symbol)
        return unknown_instrument(symbol) if book is None else book

    @handles(ex.GetOpenOrdersRequest)
    async def get_open_orders(self, reply: Reply, request: ex.GetOpenOrdersRequest) -> None:
        book = await self._query_book(request.instrument_symbol)
        if isinstance(book, str):
            reply.error(book)
            return
        response = open_orders_response(request.request_id, self.feed.mirror, cast(str, reply.user), book)
        error = too_large(response)
        if error:
            reply.error(error)
            return
        reply.send(response)

    @handles(ex.GetPositionsRequest)
    async def get_positions(self, reply: Reply, request: ex.GetPositionsRequest) -> None:
        book = await self._query_book(request.instrument_symbol)
        if isinstance(book, str):
            reply.error(book)
            return
        response = positions_response(request.request_id, self.ledger, cast(str, reply.user), book)
        error = too_large(response)
        if error:
            reply.error(error)
            return
        reply.send(response)

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

    @handles(rl.SetSelfTradePreventionRequest)
    def set_self_trade_prevention(self, reply: Reply, request: rl.SetSelfTradePreventionRequest) -> None:
        stp = int(request.self_trade_prevention)
        error = self_trade_prevention_error(stp)
        if error:
            reply.error(error)
            return
        user = cast(str, reply.conn.user)
        if stp:
            self._stp[user] = stp
        else:
            self._stp.pop(user, None)  # the default: the insert path's dict stays empty
        reply.send(rl.SetSelfTradePreventionResponse(request_id=request.request_id))

    @handles(rl.GetSelfTradePreventionRequest)
    def get_self_trade_prevention(self, reply: Reply, request: rl.GetSelfTradePreventionRequest) -> None:
        stp = self._stp.get(cast(str, reply.conn.user), 0)
        reply.send(
            rl.GetSelfTradePreventionResponse(
                request_id=request.request_id,
                self_trade_prevention=cast(common_pb2.SelfTradePrevention, stp),
            )
        )
