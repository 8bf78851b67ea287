"""The order_book protocol over the matching engine (section 3 of the contract).

Requests are translated to calls on `engine.Exchange`; its results become
the response to the requester and then events to every logged-in connection,
each event encoded once. No login is needed to send requests (authRequired
is false), but only logged-in connections receive events: on login they get
the state of the day first (books, then resting orders in priority order).
Each trade is also kept in its book's tape (orderbook/tape.py), which the
TradesRequest extension pages through.
The ListBooksRequest extension pages through the day's books (admin lists
instruments from it).

The trader extensions of issue 10 (proto/order_book.proto): an insert with a
time in force or self-trade prevention (``Exchange.place``; a plain insert
keeps the ``Exchange.insert`` fast path, one test away), AmendOrderRequest
(``Exchange.amend``) and CancelOrdersRequest (``Exchange.cancel_orders``).
Their events use contract messages only, in an order a contract-only client
can rebuild the book from, except OnOrderAmended (an amend that kept
priority), sent only to connections that logged in with
``extension_events``; every other connection gets its contract form (a
cancel, reason CANCEL_AMENDED, then the order inserted again with its new
quantity).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from time import time_ns

from optivex.app.component import Component, Reply, handles
from optivex.app.config import ComponentConfig
from optivex.app.users import User
from optivex.engine import BUY, IOC, STP_CANCEL_INCOMING, BookInfo, Exchange, Fill, Order, Rejected
from optivex.engine.book import order_error
from optivex.instruments import MAX_USERNAME, instrument_error, tick_size_error
from optivex.net import Connection
from optivex.orderbook.replay import SNAPSHOT_ORDER_BUDGET, ReplaySnapshots
from optivex.orderbook.stream import ReplayStream
from optivex.orderbook.tape import Tape, TapeTrade, page_error
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.units import price_to_units, tick_to_units, units_to_price
from optivex.wire import MAX_FRAME_LENGTH, encode_frame

USERNAME_TOO_LONG = f"on_behalf_of_username longer than {MAX_USERNAME} characters"
MASS_CANCEL_REASONS = (common_pb2.CANCEL_MASS, common_pb2.CANCEL_DISCONNECT)
"""The reasons a CancelOrdersRequest may give."""

MAX_BOOKS_PER_RESPONSE = 1_000
"""Books in one ListBooksResponse: a full page (short instruments) keeps matching waiting about 1.5 ms."""
MAX_BOOKS_BYTES = 1_000_000
"""Bytes of entries in one ListBooksResponse: with its other fields it stays below one frame
(``wire.MAX_FRAME_LENGTH``, 1 MiB). About 235 books whose instruments have every field at its largest."""
_ENTRY_OVERHEAD = 4
"""An entry's tag and length prefix inside the response (1 + at most 3 bytes for a length < 2 MiB)."""
assert MAX_BOOKS_BYTES + 64 < MAX_FRAME_LENGTH


def on_trade(make: Callable[..., pb.OnTrade], book_id: int, trade: TapeTrade) -> pb.OnTrade:
    """The OnTrade of a trade of `book_id`, made by `make`: the class, or a repeated field's ``add``."""
    trade_id, timestamp, buyer, seller, price, quantity, side = trade
    return make(
        trade_id=trade_id,
        order_book_id=book_id,
        timestamp=timestamp,
        buy_order_id=buyer,
        sell_order_id=seller,
        price=units_to_price(price),
        quantity=quantity,
        aggressor_side=side,
    )


class OrderBookComponent(Component):
    """Owns every order book of the day and matches orders by price-time priority."""

    name = "order-book"
    protocols = ("order_book",)
    default_auth_required = False
    default_busy_poll_microseconds = 200  # every order's round trip goes through here

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.exchange = Exchange()
        self.instruments: dict[int, common_pb2.Instrument] = {}
        self.replays = ReplaySnapshots(self.exchange)
        """The snapshots of the login replays in progress (fills and cancels are reported to it)."""
        self.tapes: dict[int, Tape] = {}
        """book id -> its kept trades of the day (the TradesRequest extension, orderbook/tape.py)."""
        self._extension_events: set[Connection] = set()
        """Logged-in connections whose LoginRequest had extension_events (they get OnOrderAmended)."""

    @handles(pb.CreateOrderBookRequest)
    def create_order_book(self, reply: Reply, request: pb.CreateOrderBookRequest) -> None:
        tick = tick_to_units(request.tick_size)
        if tick is None:
            reply.error(tick_size_error(request.tick_size))
            return
        instrument = request.instrument if request.HasField("instrument") else None
        if instrument is not None:
            i = instrument
            error = instrument_error(i.symbol, i.description, i.currency, i.multiplier)
            if error:
                reply.error(error)
                return
        try:
            book = self.exchange.create_book(tick, instrument.symbol if instrument else None, time_ns())
        except Rejected as exc:
            reply.error(str(exc))
            return
        reply.send(
            pb.CreateOrderBookResponse(
                request_id=request.request_id, order_book_id=book.book_id, timestamp=book.timestamp
            )
        )
        self.tapes[book.book_id] = Tape()
        if instrument is not None:
            self.instruments[book.book_id] = instrument
            self.log.info(
                "book %d created for %s, tick %s", book.book_id, instrument.symbol, request.tick_size
            )
        else:
            self.log.info("book %d created, tick %s", book.book_id, request.tick_size)
        self.broadcast(self._book_created(book.book_id, book.tick, book.timestamp))

    @handles(pb.InsertOrderRequest)
    def insert_order(self, reply: Reply, request: pb.InsertOrderRequest) -> None:
        timestamp = time_ns()
        if len(request.on_behalf_of_username) > MAX_USERNAME:
            reply.error(USERNAME_TOO_LONG)
            return
        if request.time_in_force or request.self_trade_prevention:  # the extensions: off the fast path
            self._place(reply, request, timestamp)
            return
        try:
            order, fills = self.exchange.insert(
                request.order_book_id,
                request.side,
                price_to_units(request.price),
                request.quantity,
                request.on_behalf_of_username,
                timestamp,
            )
        except Rejected as exc:
            reply.error(str(exc))
            return
        order_id = order.order_id
        trades: Sequence[TapeTrade] = ()
        if fills:
            if self.replays.in_progress:
                self.replays.note_fills(fills)
            side = order.side
            if side == BUY:
                trades = [(f[0], timestamp, order_id, f[1], f[3], f[4], side) for f in fills]
            else:
                trades = [(f[0], timestamp, f[1], order_id, f[3], f[4], side) for f in fills]
            self.tapes[order.book_id].record(trades)
        # Most orders trade nothing: a repeated field passed to the constructor,
        # even empty, costs about 1 us a message, so trade ids are added only when there are some.
        trade_ids = [fill[0] for fill in fills] if fills else None
        response = pb.InsertOrderResponse(
            request_id=request.request_id,
            order_id=order_id,
            timestamp=timestamp,
            traded_quantity=order.quantity - order.remaining,
            resting_quantity=order.remaining,
        )
        if trade_ids:
            response.trade_ids.extend(trade_ids)
        reply.send(response)
        if not self.subscribers:
            return
        book_id = order.book_id
        side = order.side
        inserted = pb.OnOrderInserted(
            order_id=order_id,
            order_book_id=book_id,
            timestamp=timestamp,
            side=side,  # type: ignore[arg-type]  # stubs want the enum wrapper; ints are fine
            price=units_to_price(order.price),
            quantity=order.quantity,
            username=order.owner,
        )
        if trade_ids:
            inserted.trade_ids.extend(trade_ids)
        events = [encode_frame(pb.ON_ORDER_INSERTED, inserted.SerializeToString())]
        for trade in trades:
            events.append(encode_frame(pb.ON_TRADE, on_trade(pb.OnTrade, book_id, trade).SerializeToString()))
        self.broadcast_frames(events)

    def _place(self, reply: Reply, request: pb.InsertOrderRequest, timestamp: int) -> None:
        """An insert with a time in force or self-trade prevention (``Exchange.place``).

        Events: an OnOrderCancelled (CANCEL_SELF_TRADE) per resting order that
        self-trade prevention removed, OnOrderInserted (``cancels_remainder``
        when the rest does not rest), its OnTrades, then its own
        OnOrderCancelled if some of it was cancelled at once.
        """
        tif = request.time_in_force
        stp = request.self_trade_prevention
        try:
            order, fills, self_cancelled, cancelled = self.exchange.place(
                request.order_book_id,
                request.side,
                price_to_units(request.price),
                request.quantity,
                request.on_behalf_of_username,
                timestamp,
                tif,
                stp,
            )
        except Rejected as exc:
            reply.error(str(exc))
            return
        trades = self._record(order, fills, timestamp)
        if self_cancelled:
            self.replays.note_cancel()
        response = pb.InsertOrderResponse(
            request_id=request.request_id,
            order_id=order.order_id,
            timestamp=timestamp,
            traded_quantity=order.quantity - order.remaining - cancelled,
            resting_quantity=order.remaining,
            cancelled_quantity=cancelled,
        )
        if fills:
            response.trade_ids.extend(fill[0] for fill in fills)
        reply.send(response)
        if self.subscribers:
            events: list[bytes] = []
            self._placed_events(events, order, fills, trades, self_cancelled, cancelled, tif, stp, timestamp)
            self.broadcast_frames(events)

    @handles(pb.AmendOrderRequest)
    def amend_order(self, reply: Reply, request: pb.AmendOrderRequest) -> None:
        """Amend a resting order (proto/order_book.proto): reduced in place, or replaced by a new order.

        Kept priority: OnOrderAmended to extension_events connections, its
        contract form to the others. Replaced: OnOrderCancelled of the old
        order (CANCEL_REPLACED), then the new order's events as an insert's.
        """
        timestamp = time_ns()
        username = request.on_behalf_of_username
        if len(username) > MAX_USERNAME:
            reply.error(USERNAME_TOO_LONG)
            return
        price: int | None = None
        if request.price != 0:  # 0: unchanged
            price = price_to_units(request.price)
            if price is None:
                try:
                    self.exchange.book(request.order_book_id)  # an unknown book is said first
                    reply.error(order_error(BUY, None, 1, 1) or "invalid price")
                except Rejected as exc:
                    reply.error(str(exc))
                return
        stp = request.self_trade_prevention
        try:
            amendment = self.exchange.amend(
                request.order_book_id,
                request.order_id,
                price,
                request.quantity,
                timestamp,
                username or None,
                stp,
            )
        except Rejected as exc:
            reply.error(str(exc))
            return
        order = amendment.order
        replaced = amendment.replaced
        if replaced is None:
            self.replays.note_amend(order.order_id, amendment.previous_remaining)
            reply.send(
                pb.AmendOrderResponse(
                    request_id=request.request_id,
                    order_id=order.order_id,
                    timestamp=timestamp,
                    priority_kept=True,
                    resting_quantity=order.remaining,
                )
            )
            if self.subscribers:
                self._broadcast_amended(order, amendment.previous_remaining, timestamp)
            return
        fills = amendment.fills
        cancelled = amendment.cancelled
        self_cancelled = amendment.self_cancelled
        self.replays.note_cancel()
        trades = self._record(order, fills, timestamp)
        response = pb.AmendOrderResponse(
            request_id=request.request_id,
            order_id=order.order_id,
            timestamp=timestamp,
            traded_quantity=order.quantity - order.remaining - cancelled,
            resting_quantity=order.remaining,
            cancelled_quantity=cancelled,
        )
        if fills:
            response.trade_ids.extend(fill[0] for fill in fills)
        reply.send(response)
        if self.subscribers:
            events = [self._cancelled_frame(replaced.order_id, timestamp, common_pb2.CANCEL_REPLACED)]
            self._placed_events(
                events, order, fills, trades, self_cancelled, cancelled, 0, stp, timestamp, replaced.order_id
            )
            self.broadcast_frames(events)

    @handles(pb.CancelOrdersRequest)
    def cancel_orders(self, reply: Reply, request: pb.CancelOrdersRequest) -> None:
        """Cancel many resting orders of one user (proto/order_book.proto); an OnOrderCancelled each."""
        timestamp = time_ns()
        username = request.on_behalf_of_username
        reason = request.reason
        if not username:
            reply.error("on_behalf_of_username is required: whose orders to cancel")
            return
        if len(username) > MAX_USERNAME:
            reply.error(USERNAME_TOO_LONG)
            return
        if reason not in MASS_CANCEL_REASONS:
            reply.error(f"invalid reason {reason}: it must be CANCEL_MASS (3) or CANCEL_DISCONNECT (4)")
            return
        negative = [order_id for order_id in request.order_ids if order_id < 0]
        if negative:
            reply.error(f"invalid order id {negative[0]}: it must be > 0")
            return
        try:
            orders = self.exchange.cancel_orders(
                username, request.order_book_id, list(request.order_ids) or None
            )
        except Rejected as exc:
            reply.error(str(exc))
            return
        response = pb.CancelOrdersResponse(request_id=request.request_id)
        if orders:
            self.replays.note_cancel()
            response.cancelled_order_ids.extend(order.order_id for order in orders)
        reply.send(response)
        if orders and self.subscribers:
            frame = self._cancelled_frame
            self.broadcast_frames([frame(order.order_id, timestamp, reason) for order in orders])

    def _record(self, order: Order, fills: Sequence[Fill], timestamp: int) -> Sequence[TapeTrade]:
        """The tape entries of an order's fills, recorded in its book's tape (and told to the replays)."""
        if not fills:
            return ()
        if self.replays.in_progress:
            self.replays.note_fills(fills)
        order_id = order.order_id
        side = order.side
        if side == BUY:
            trades = [(f[0], timestamp, order_id, f[1], f[3], f[4], side) for f in fills]
        else:
            trades = [(f[0], timestamp, f[1], order_id, f[3], f[4], side) for f in fills]
        self.tapes[order.book_id].record(trades)
        return trades

    def _placed_events(
        self,
        events: list[bytes],
        order: Order,
        fills: Sequence[Fill],
        trades: Sequence[TapeTrade],
        self_cancelled: Sequence[Order],
        cancelled: int,
        tif: int,
        stp: int,
        timestamp: int,
        replaces_order_id: int = 0,
    ) -> None:
        """Append the events of an order placed by ``Exchange.place`` (or an amend's replacement)."""
        frame = self._cancelled_frame
        for resting in self_cancelled:
            events.append(frame(resting.order_id, timestamp, common_pb2.CANCEL_SELF_TRADE))
        book_id = order.book_id
        inserted = pb.OnOrderInserted(
            order_id=order.order_id,
            order_book_id=book_id,
            timestamp=timestamp,
            side=order.side,  # type: ignore[arg-type]  # stubs want the enum wrapper; ints are fine
            price=units_to_price(order.price),
            quantity=order.quantity,
            username=order.owner,
            time_in_force=tif,  # type: ignore[arg-type]
            replaces_order_id=replaces_order_id,
            cancels_remainder=bool(cancelled) or tif == IOC,
        )
        if fills:
            inserted.trade_ids.extend(fill[0] for fill in fills)
        events.append(encode_frame(pb.ON_ORDER_INSERTED, inserted.SerializeToString()))
        for trade in trades:
            events.append(encode_frame(pb.ON_TRADE, on_trade(pb.OnTrade, book_id, trade).SerializeToString()))
        if cancelled:
            events.append(frame(order.order_id, timestamp, self._remainder_reason(order, tif, stp)))

    def _remainder_reason(self, order: Order, tif: int, stp: int) -> int:
        """Why the rest of a placed order was cancelled at once: self-trade prevention or IOC.

        An IOC order with CANCEL_INCOMING may be cancelled for either: it was
        stopped by an order of its owner exactly when the opposite side still
        crosses its price (matching ends only there or when nothing crosses).
        """
        if stp != STP_CANCEL_INCOMING or not order.owner:
            return common_pb2.CANCEL_IMMEDIATE_OR_CANCEL
        if tif != IOC:
            return common_pb2.CANCEL_SELF_TRADE
        best = self.exchange.book(order.book_id).best(1 - order.side)
        if best is None:
            return common_pb2.CANCEL_IMMEDIATE_OR_CANCEL
        crosses = best[0] <= order.price if order.side == BUY else best[0] >= order.price
        return common_pb2.CANCEL_SELF_TRADE if crosses else common_pb2.CANCEL_IMMEDIATE_OR_CANCEL

    def _broadcast_amended(self, order: Order, previous: int, timestamp: int) -> None:
        """An amend that kept priority: OnOrderAmended to extension_events connections, the contract form
        (OnOrderCancelled CANCEL_AMENDED, then OnOrderInserted of the same order, new quantity, its
        original timestamp, no trades) to the others."""
        extended = self._extension_events
        amended = b""
        contract = b""
        for conn in self.subscribers:
            if conn in extended:
                if not amended:
                    amended = self.encode(
                        pb.OnOrderAmended(
                            order_id=order.order_id,
                            order_book_id=order.book_id,
                            timestamp=timestamp,
                            quantity=order.remaining,
                            previous_quantity=previous,
                        )
                    )
                conn.send(amended)
            else:
                if not contract:
                    inserted = pb.OnOrderInserted(
                        order_id=order.order_id,
                        order_book_id=order.book_id,
                        timestamp=order.timestamp,
                        side=order.side,  # type: ignore[arg-type]
                        price=units_to_price(order.price),
                        quantity=order.remaining,
                        username=order.owner,
                    )
                    contract = self._cancelled_frame(
                        order.order_id, timestamp, common_pb2.CANCEL_AMENDED
                    ) + encode_frame(pb.ON_ORDER_INSERTED, inserted.SerializeToString())
                conn.send(contract)

    @staticmethod
    def _cancelled_frame(order_id: int, timestamp: int, reason: int) -> bytes:
        cancelled = pb.OnOrderCancelled(
            order_id=order_id,
            cancellation_timestamp=timestamp,
            reason=reason,  # type: ignore[arg-type]  # stubs want the enum wrapper; ints are fine
        )
        return encode_frame(pb.ON_ORDER_CANCELLED, cancelled.SerializeToString())

    @handles(pb.CancelOrderRequest)
    def cancel_order(self, reply: Reply, request: pb.CancelOrderRequest) -> None:
        timestamp = time_ns()
        try:
            self.exchange.cancel(request.order_book_id, request.order_id, timestamp)
        except Rejected as exc:
            reply.error(str(exc))
            return
        self.replays.note_cancel()
        reply.send(pb.CancelOrderResponse(request_id=request.request_id))
        self.broadcast(pb.OnOrderCancelled(order_id=request.order_id, cancellation_timestamp=timestamp))

    @handles(pb.BarrierRequest)
    def barrier(self, reply: Reply, request: pb.BarrierRequest) -> None:
        """Answer after everything queued for this connection before the request (proto/order_book.proto).

        A login replay in progress included: the response is queued behind it (net.Connection.stream).
        """
        reply.send(pb.BarrierResponse(request_id=request.request_id))

    @handles(pb.TradesRequest)
    def trades(self, reply: Reply, request: pb.TradesRequest) -> None:
        """The latest kept trades of a book below before_trade_id, oldest first (orderbook/tape.py)."""
        tape = self.tapes.get(request.order_book_id)
        if tape is None:
            reply.error(f"unknown order book {request.order_book_id}")
            return
        error = page_error(request.before_trade_id, request.max_trades)
        if error:
            reply.error(error)
            return
        page = tape.page(request.before_trade_id, request.max_trades)
        response = pb.TradesResponse(request_id=request.request_id, more=page.more, truncated=page.truncated)
        book_id = request.order_book_id
        add = response.trades.add
        for trade in page.trades:
            on_trade(add, book_id, trade)
        reply.send(response)

    @handles(pb.ListBooksRequest)
    def list_books(self, reply: Reply, request: pb.ListBooksRequest) -> None:
        """The books after after_order_book_id, in id order, as many as fit (proto/order_book.proto)."""
        after = request.after_order_book_id
        if after < 0:
            reply.error(f"after_order_book_id {after} is negative")
            return
        response = pb.ListBooksResponse(request_id=request.request_id)
        books = response.books
        add = books.add  # built in place: a copy into the response would cost as much again
        size = 0
        for book_id in range(after + 1, after + MAX_BOOKS_PER_RESPONSE + 2):
            try:
                book = self.exchange.book_info(book_id)
            except Rejected:  # past the last book of the day
                break
            if len(books) == MAX_BOOKS_PER_RESPONSE:
                response.more = True
                break
            size += self._book_created(book_id, book.tick, book.timestamp, add).ByteSize() + _ENTRY_OVERHEAD
            if size > MAX_BOOKS_BYTES:
                del books[-1]
                response.more = True
                break
        reply.send(response)

    def _login(self, reply: Reply, request: common_pb2.LoginRequest) -> None:
        """The framework's login, noting whether the connection asked for the extension events."""
        conn = reply.conn
        super()._login(reply, request)
        if request.extension_events and conn in self.subscribers:
            self._extension_events.add(conn)
        else:
            self._extension_events.discard(conn)

    def on_disconnect(self, conn: Connection) -> None:
        """Forget the connection's extension_events flag."""
        self._extension_events.discard(conn)

    def on_login(self, conn: Connection) -> None:
        """Stream the state at login (books, then resting orders) as the client drains it, then live events.

        The snapshot is taken now (replay.py); the frames are encoded a slice
        at a time by net's stream scheduler. Beyond the snapshot budget
        (SNAPSHOT_ORDER_BUDGET resting orders held by distinct replays in
        progress) the connection is closed, to log in again later.
        """
        replay = self.replays.take()
        if replay is None:
            conn.close(
                f"login replay refused: the replays in progress hold {self.replays.held_orders} "
                f"resting orders (budget {SNAPSHOT_ORDER_BUDGET}); log in again later"
            )
            return
        if replay.done:
            replay.close()
            return
        conn.stream(ReplayStream(replay, self._encode_book))

    def _encode_book(self, book: BookInfo) -> bytes:
        return self.encode(self._book_created(book.book_id, book.tick, book.timestamp))

    def _book_created(
        self,
        book_id: int,
        tick: int,
        timestamp: int,
        make: Callable[..., pb.OnOrderBookCreated] = pb.OnOrderBookCreated,
    ) -> pb.OnOrderBookCreated:
        """The OnOrderBookCreated of a book, made by `make`: the class, or a repeated field's ``add``."""
        event = make(order_book_id=book_id, tick_size=units_to_price(tick), timestamp=timestamp)
        instrument = self.instruments.get(book_id)
        if instrument is not None:
            event.instrument.CopyFrom(instrument)
        return event
