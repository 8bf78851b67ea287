"""The info protocol (section 5 of the contract): instruments, books and trades, from the order book's feed.

Info follows the order book (``Follows("order_book")``: a feed with a mirror,
``optivex.feed``) and keeps no state of its own beyond it: ``info.market``
turns the mirror's changes into what to publish, ``info.fanout`` sends it to
subscribers. Any number of info processes can follow one order book.

- After a successful login: one OnInstrument per known instrument, then one
  for each instrument created later (only books that have an instrument).
- OrderBookSubscribeRequest: the feed's barrier first (so "unknown
  instrument" is never answered for an instrument whose creation a client
  has seen confirmed, section 4, and the snapshot reflects every change any
  client had been told of); then the response, at once the snapshot (its
  timestamp: the order book's timestamp of the change that made it what it
  is, the book's creation while it is unchanged), then a message whenever
  what it shows changes. Subscribing again gets a fresh snapshot.
- Optivex extensions: OrderBookSubscribeRequest.depth_limit (PRICE_DEPTH_BOOK
  shows the best N levels of each side, updated only when those change) and
  OrderBookUnsubscribeRequest; a connection's subscribes and unsubscribes
  take effect in the order it sent them (``_in_turn``).
- OnTrade once per trade to each connection subscribed to the instrument
  (whatever its kinds), before the book update it caused.
- While the order book is unreachable a subscription waits up to
  ``dependents.LINK_WAIT`` for it and is answered "order book unavailable;
  the request was not carried out" (the framework's unavailable rule).
- After the order book restarted (a new day: the feed's reset): instruments
  of the new day are announced (OnInstrument, new order_book_id and
  created_timestamp), a subscription whose symbol exists in the new day gets
  the new book's state (if what it shows differs from what it last got), and
  one whose symbol no longer exists ends, without a message.

Coalescing: trades and instruments go out as each event is applied; book
messages at the end of the event-loop turn in which the book changed, but at
most once per publication interval (``publish_interval``: ``_settle``, ``info.market``'s settle),
and at each feed barrier. So a burst of changes costs one top, one depth, one
encoding and one write per subscriber per interval, not per change: under
load the cost of fan-out is bounded by subscribers / interval, whatever the
rate of changes. Section 5 allows it ("conflated under load"); a change
that comes after a quiet interval is published at once.

Slow readers: info's connections pause above ``INFO_PAUSE_ABOVE`` unsent
bytes (net.Connection's high-water mark), and while paused their book
messages are conflated (``info.fanout``); trades always go and count against
``maxUnsentBytes``, past which the connection is dropped (logged).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import cast

from optivex.app.component import Component, Reply, handles
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError, Unavailable
from optivex.app.users import User
from optivex.feed.follower import Feed, Follows
from optivex.feed.mirror import BookMirror, Change
from optivex.info.fanout import KIND_NAMES, KINDS, PRICE_DEPTH_BOOK, TOP_OF_BOOK, Fanout, best_levels
from optivex.info.market import (
    MAX_DEPTH_LEVELS,
    BookView,
    Delisted,
    Depth,
    DepthUpdate,
    Listed,
    Market,
    Publication,
    Top,
    TopUpdate,
    Trade,
)
from optivex.logsafe import loggable
from optivex.net import Connection
from optivex.orderbook.tape import page_error
from optivex.proto import common_pb2
from optivex.proto import info_pb2 as pb
from optivex.proto import order_book_pb2 as ob
from optivex.units import units_to_price
from optivex.wire import encode_frame

TRADES_ATTEMPTS = 3
"""Times a TradesRequest is asked of the order book when the feed reconnected (a new day) meanwhile,
before it is answered 'order book unavailable'."""
PUBLISH_INTERVAL = 0.001
"""Seconds between two publications of book messages under load, at least (1,000 per second at most)."""
PUBLISH_INTERVAL_PER_SUBSCRIBER = 0.00004
"""Seconds the interval grows by per subscribed connection: a publication costs one socket write per
subscriber (about 10 us here), so fan-out writes stay near 25,000 per second, a quarter of a core,
however many subscribe (20 subscribers: 1 ms; 100: 4 ms; 1,000: 40 ms)."""
MAX_PUBLISH_INTERVAL = 0.05
"""Seconds between two publications under load, at most, however many subscribe."""


def publish_interval(subscribers: int) -> float:
    """Seconds between two publications of book messages while changes keep coming.

    Each adds at most this much lag, and only under load: a change after a quiet interval goes at once.
    """
    return min(MAX_PUBLISH_INTERVAL, max(PUBLISH_INTERVAL, subscribers * PUBLISH_INTERVAL_PER_SUBSCRIBER))


INFO_PAUSE_ABOVE = 64 * 1024
"""Unsent bytes above which an info connection counts as backed up (its transport's high-water mark):
its book messages are conflated, and its requests not read, until it drains below a quarter of it."""


def encode_instrument(listed: Listed) -> bytes:
    i = listed.instrument
    message = pb.OnInstrument(
        instrument=common_pb2.Instrument(
            symbol=i.symbol, description=i.description, currency=i.currency, multiplier=i.multiplier
        ),
        created_timestamp=listed.created_timestamp,
        tick_size=units_to_price(listed.tick),
        order_book_id=listed.book_id,
    )
    return encode_frame(pb.ON_INSTRUMENT, message.SerializeToString())


def encode_top(symbol: str, timestamp: int, top: Top) -> bytes:
    message = pb.OnTopOfBook(instrument_symbol=symbol, timestamp=timestamp)
    if top.bid is not None:
        message.best_bid.price = units_to_price(top.bid[0])
        message.best_bid.quantity = top.bid[1]
    if top.ask is not None:
        message.best_ask.price = units_to_price(top.ask[0])
        message.best_ask.quantity = top.ask[1]
    return encode_frame(pb.ON_TOP_OF_BOOK, message.SerializeToString())


def encode_depth(symbol: str, timestamp: int, depth: Depth) -> bytes:
    message = pb.OnPriceDepthBook(instrument_symbol=symbol, timestamp=timestamp)
    bids, asks = message.bids, message.asks
    for price, quantity in depth.bids:
        bids.add(price=units_to_price(price), quantity=quantity)
    for price, quantity in depth.asks:
        asks.add(price=units_to_price(price), quantity=quantity)
    return encode_frame(pb.ON_PRICE_DEPTH_BOOK, message.SerializeToString())


def encode_trade(trade: Trade) -> bytes:
    message = pb.OnTrade(
        trade_id=trade.trade_id,
        instrument_symbol=trade.symbol,
        timestamp=trade.timestamp,
        price=units_to_price(trade.price),
        quantity=trade.quantity,
        aggressor_side=trade.aggressor_side,  # type: ignore[arg-type]  # stubs want the enum wrapper
    )
    return encode_frame(pb.ON_TRADE, message.SerializeToString())


def snapshot(view: BookView, kind: int, limit: int = 0) -> tuple[Top | Depth, bytes]:
    """The state a new subscription of `kind` (with depth limit `limit`) shows, and its frame."""
    if kind == TOP_OF_BOOK:
        return view.top, encode_top(view.symbol, view.top_timestamp, view.top)
    depth = best_levels(view.depth, limit)
    return depth, encode_depth(view.symbol, view.depth_timestamp, depth)


class InfoComponent(Component):
    """Public market data: instruments, top of book, price depth and trades."""

    name = "info"
    protocols = ("info",)
    dependencies = (Follows("order_book"),)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.feed = cast(Feed, self.links["order_book"])
        self.market = Market()
        self.fanout = Fanout()
        self._settled_at = 0.0
        """Loop time of the last publication of book messages."""
        self._changing: dict[Connection, asyncio.Future[None]] = {}
        """Per connection, the completion of its latest subscribe/unsubscribe in progress (``_in_turn``)."""
        self._settle_scheduled = False

    def make_connection(self) -> Connection:
        conn = Connection(
            self,
            self.log,
            max_unsent=self._max_unsent,
            pause_above=INFO_PAUSE_ABOVE,
            busy_poll=self._busy_poll,
        )
        conn.on_drain = partial(self.fanout.drained, conn)
        return conn

    # the feed (FeedListener) ---------------------------------------------

    def feed_reset(self, mirror: BookMirror) -> None:
        self._publish(self.market.reset(mirror))

    def feed_changed(self, change: Change) -> None:
        market = self.market
        publications = market.apply(change)
        if publications:
            self._publish(publications)
        if not self._settle_scheduled and market.unsettled:
            self._settle_scheduled = True
            loop = asyncio.get_running_loop()
            wait = self._settled_at + publish_interval(len(self.fanout.subscribers)) - loop.time()
            if wait > 0:
                loop.call_later(wait, self._settle)
            else:
                loop.call_soon(self._settle)

    def feed_settled(self) -> None:
        """A barrier's response: publish the books now, so its waiter's snapshot shows every change before."""
        self._publish(self.market.settle())

    def feed_lost(self) -> None:
        """Nothing to tell subscribers: they keep the last state, and requests meet the unavailable rule."""

    def _settle(self) -> None:
        """Every changed book's new state, one message each (see "Coalescing" in the module docstring)."""
        self._settle_scheduled = False
        self._settled_at = asyncio.get_running_loop().time()
        self._publish(self.market.settle())

    def _publish(self, publications: list[Publication]) -> None:
        fanout = self.fanout
        for p in publications:
            if type(p) is TopUpdate:
                if fanout.wants(p.symbol, TOP_OF_BOOK):
                    fanout.book(p.symbol, TOP_OF_BOOK, p.top, encode_top(p.symbol, p.timestamp, p.top))
            elif type(p) is DepthUpdate:
                if fanout.wants(p.symbol, PRICE_DEPTH_BOOK):
                    # one frame per depth limit whose shown levels changed (fanout.depth)
                    fanout.depth(p.symbol, p.depth, partial(encode_depth, p.symbol, p.timestamp))
            elif type(p) is Trade:
                if fanout.has_members(p.symbol):
                    fanout.trade(p.symbol, encode_trade(p))
            elif type(p) is Listed:
                self.broadcast_frames((encode_instrument(p),))
            elif type(p) is Delisted:
                fanout.drop_symbol(p.symbol)

    # clients ---------------------------------------------------------------

    async def before_login_state(self) -> None:
        """Every instrument confirmed to anyone is in the login's OnInstrument burst (section 4)."""
        await self.feed.barrier()

    def on_login(self, conn: Connection) -> None:
        frames = [encode_instrument(view.listed) for view in self.market.views()]
        if frames:
            conn.send(b"".join(frames))

    def on_disconnect(self, conn: Connection) -> None:
        conn.on_drain = None
        self.fanout.remove(conn)

    @handles(pb.OrderBookSubscribeRequest)
    async def subscribe(self, reply: Reply, request: pb.OrderBookSubscribeRequest) -> None:
        kind = int(request.subscription_type)
        if kind not in KINDS:
            reply.error(f"unknown subscription type {kind}")
            return
        limit = request.depth_limit
        if limit < 0:
            reply.error(f"depth_limit {limit} is negative (0: every level, N > 0: the best N levels)")
            return
        if limit and kind != PRICE_DEPTH_BOOK:
            reply.error(f"depth_limit {limit} applies to PRICE_DEPTH_BOOK only")
            return
        if limit >= MAX_DEPTH_LEVELS:
            limit = 0  # a depth never shows more levels: the same subscription as every level
        conn = reply.conn
        earlier, done = self._in_turn(conn)
        try:
            try:
                await self.feed.barrier()
            except LinkError as exc:
                reply.error(str(exc))
                return
            if earlier is not None and not earlier.done():
                await asyncio.wait((earlier,))
            symbol = request.instrument_symbol
            view = self.market.view(symbol)
            if view is None:
                reply.error(f"unknown instrument {loggable(symbol)}")
                return
            reply.send(pb.OrderBookSubscribeResponse(request_id=request.request_id))
            if not conn.closed:
                state, frame = snapshot(view, kind, limit)
                self.fanout.subscribe(conn, symbol, kind, state, frame, limit)
        finally:
            self._turn_done(conn, done)

    @handles(pb.OrderBookUnsubscribeRequest)
    async def unsubscribe(self, reply: Reply, request: pb.OrderBookUnsubscribeRequest) -> None:
        """End one subscription: nothing more of it is sent after the response (Optivex extension)."""
        conn = reply.conn
        earlier, done = self._in_turn(conn)
        try:
            if earlier is not None and not earlier.done():
                await asyncio.wait((earlier,))
            kind = int(request.subscription_type)
            if kind not in KINDS:
                reply.error(f"unknown subscription type {kind}")
                return
            symbol = request.instrument_symbol
            if not self.fanout.unsubscribe(conn, symbol, kind):
                reply.error(f"not subscribed to {loggable(symbol)} {KIND_NAMES[kind]}")
                return
            reply.send(pb.OrderBookUnsubscribeResponse(request_id=request.request_id))
        finally:
            self._turn_done(conn, done)

    def _in_turn(self, conn: Connection) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """A subscribe/unsubscribe of `conn` starts: (the completion of its previous one still in
        progress, or None; this one's, for ``_turn_done``).

        Their effects are applied in the order the connection sent them (a subscribe waits for the
        feed's barrier, so an unsubscribe sent right after it would otherwise find nothing to end);
        called before the handler's first await, so in the order the requests were dispatched.
        """
        earlier = self._changing.get(conn)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changing[conn] = done
        return earlier, done

    def _turn_done(self, conn: Connection, done: asyncio.Future[None]) -> None:
        done.set_result(None)
        if self._changing.get(conn) is done:
            del self._changing[conn]

    @handles(pb.TradesRequest)
    async def trades(self, reply: Reply, request: pb.TradesRequest) -> None:
        """The day's trades of an instrument so far, asked of the order book (Optivex extension).

        Info keeps no trades: after the feed's barrier (so "unknown instrument" follows section 4's
        rule) the order book's TradesRequest goes over the feed's own connection, whose response
        comes after the events of every trade in it: info has published each of them already, and
        any later one reaches a subscription made before (subscribe/unsubscribe turns of the
        connection are waited for, so a pipelined subscribe is in place before the order book is
        asked). The book id is the one the feed's mirror holds for the symbol on that same
        connection; if the feed reconnected meanwhile (a new day), it is asked again.
        """
        error = page_error(request.before_trade_id, request.max_trades)
        if error:
            reply.error(error)
            return
        conn = reply.conn
        symbol = request.instrument_symbol
        feed = self.feed
        earlier, done = self._in_turn(conn)
        try:
            answer: ob.TradesResponse | None = None
            try:
                for _ in range(TRADES_ATTEMPTS):
                    await feed.barrier()
                    if earlier is not None and not earlier.done():
                        await asyncio.wait((earlier,))
                    connection = feed.connections
                    view = self.market.view(symbol)
                    if view is None:
                        reply.error(f"unknown instrument {loggable(symbol)}")
                        return
                    asked = ob.TradesRequest(
                        order_book_id=view.listed.book_id,
                        before_trade_id=request.before_trade_id,
                        max_trades=request.max_trades,
                    )
                    response = await feed.request(asked, ob.TradesResponse)
                    if feed.connections == connection:
                        answer = response
                        break
            except LinkError as exc:
                reply.error(str(exc))
                return
            if answer is None:
                reply.error(str(Unavailable(feed.target)))
                return
            if answer.error_message:
                reply.error(answer.error_message)
                return
            message = pb.TradesResponse(
                request_id=request.request_id, more=answer.more, truncated=answer.truncated
            )
            add = message.trades.add
            for t in answer.trades:
                add(
                    trade_id=t.trade_id,
                    instrument_symbol=symbol,
                    timestamp=t.timestamp,
                    price=t.price,
                    quantity=t.quantity,
                    aggressor_side=t.aggressor_side,
                )
            reply.send(message)
        finally:
            self._turn_done(conn, done)
