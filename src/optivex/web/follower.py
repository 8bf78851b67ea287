"""Following info for the web page: one AsyncClient, its messages into `web.market.Market`.

On each connection: log in, take the login's OnInstrument burst (ended by a
barrier: a request answered after everything info sent before it, here an
unsubscribe of a subscription not held, refused at no cost), forget the
instruments info no longer has, and for each instrument subscribe to
PRICE_DEPTH_BOOK (with the page's depth limit) and, once subscribed, ask
for the trades it missed (TradesRequest): every trade is then in that
answer, live, or both, and the market merges them by trade_id. Instruments
created later are followed the same way as they are announced. A request
that times out, or meets info's "order book unavailable", is asked again
every 2 s on the same connection; one refused as "unknown instrument" (info
no longer has it: a new day) takes the instrument off the page.

When the connection is lost (info restarts) it connects again, after
0.1 s, then doubling to at most 2 s while info stays away; the page shows
"reconnecting" meanwhile and keeps the last state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from optivex.client import AsyncClient, ConnectionClosed, RequestFailed, RequestTimeout
from optivex.proto import info_pb2 as pb
from optivex.units import price_to_units, tick_to_units
from optivex.web.market import Level, Listed, Listing, Market, Trade

RETRY_FIRST = 0.1
RETRY_MAX = 2.0
"""Seconds between attempts to reach info: the first, then doubling up to this."""
REQUEST_TIMEOUT = 10.0


def levels(prices: Any) -> list[Level]:
    """PriceLevels as (units, quantity); a price that has no units (never sent by info) is skipped."""
    out: list[Level] = []
    for level in prices:
        units = price_to_units(level.price)
        if units is not None:
            out.append((units, level.quantity))
    return out


def trade_of(message: pb.OnTrade) -> Trade | None:
    units = price_to_units(message.price)
    if units is None:
        return None
    return Trade(message.trade_id, message.timestamp, units, message.quantity, int(message.aggressor_side))


class InfoFollower:
    """Keeps `market` following info at `host:port`, logged in as `username`, until `stop()`."""

    def __init__(
        self, market: Market, host: str, port: int, username: str, password: str, log: logging.Logger
    ) -> None:
        self.market = market
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.log = log
        self.on_change: list[Callable[[], None]] = []
        """Called (no arguments) after each change of the market."""
        self._client: AsyncClient | None = None
        self._announced: set[str] | None = None
        """The symbols of this connection's login burst, until its barrier (then None)."""
        self._task: asyncio.Task[None] | None = None
        self._failing: set[str] = set()
        """Symbols whose last subscribe or trades request failed (and is asked again)."""

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            self._client.close()

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def _run(self) -> None:
        delay = RETRY_FIRST
        down_logged = False
        while True:
            try:
                await self._session()
                delay = RETRY_FIRST
                down_logged = False
                self.log.warning("lost info at %s:%d; reconnecting", self.host, self.port)
            except (OSError, ConnectionClosed, RequestTimeout) as exc:
                if not down_logged:
                    self.log.warning("cannot reach info at %s:%d (%s); retrying", self.host, self.port, exc)
                    down_logged = True
            except RequestFailed as exc:  # a refused login: the operator's to fix; keep trying slowly
                if not down_logged:
                    self.log.error("info refused the login of %r: %s; retrying", self.username, exc)
                    down_logged = True
                delay = RETRY_MAX
            finally:
                self._client = None
                self._announced = None
                self.market.set_connected(False)
                self._changed()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _session(self) -> None:
        """One connection, from connect to its loss."""
        client = await AsyncClient.connect(
            self.host, self.port, "info", self._message, self.log, request_timeout=REQUEST_TIMEOUT
        )
        try:
            self._client = client
            self._announced = set()
            await client.login(self.username, self.password)
            await client.request(  # the barrier: answered (with an error) after the login's instruments
                pb.OrderBookUnsubscribeRequest(instrument_symbol="", subscription_type=pb.TOP_OF_BOOK)
            )
            announced, self._announced = self._announced, None
            self.market.retain(announced)
            self.market.set_connected(True)
            self._changed()
            self.log.info(
                "following info at %s:%d as %r: %d instruments",
                self.host,
                self.port,
                self.username,
                len(self.market.instruments),
            )
            await client.closed
        finally:
            client.close()

    # info's messages -----------------------------------------------------------

    def _message(self, message: Message) -> None:
        market = self.market
        kind = type(message)
        if kind is pb.OnPriceDepthBook:
            market.book(message.instrument_symbol, levels(message.bids), levels(message.asks))  # type: ignore[attr-defined]
        elif kind is pb.OnTrade:
            trade = trade_of(message)  # type: ignore[arg-type]
            if trade is not None:
                market.trade(message.instrument_symbol, trade)  # type: ignore[attr-defined]
        elif kind is pb.OnInstrument:
            self._listed(message)  # type: ignore[arg-type]
        else:
            return  # a response sent without waiting (none here), or a top of book (never subscribed)
        self._changed()

    def _listed(self, message: pb.OnInstrument) -> None:
        tick = tick_to_units(message.tick_size)
        symbol = message.instrument.symbol
        if tick is None:
            self.log.warning(
                "instrument %r has a tick size without units (%r); not shown", symbol, message.tick_size
            )
            return
        if self._announced is not None:
            self._announced.add(symbol)
        listing = Listing(symbol, message.order_book_id, tick, message.created_timestamp)
        outcome = self.market.listed(listing)
        if outcome is Listed.HIDDEN:
            return
        if outcome is Listed.NEW_DAY:
            self.log.info("a new day at the order book (%r is listed anew)", symbol)
        self._subscribe(symbol)

    def _subscribe(self, symbol: str) -> None:
        client = self._client
        if client is None:
            return
        request = pb.OrderBookSubscribeRequest(
            instrument_symbol=symbol,
            subscription_type=pb.PRICE_DEPTH_BOOK,
            depth_limit=self.market.depth,
        )
        with contextlib.suppress(ConnectionClosed):  # the session ends; the next one subscribes again
            client.request_callback(request, lambda result: self._subscribed(client, symbol, result))

    def _subscribed(self, client: AsyncClient, symbol: str, result: Any) -> None:
        if self._failed(client, symbol, result, "subscribe to", self._subscribe):
            return
        self._ask_trades(symbol)

    def _ask_trades(self, symbol: str) -> None:
        client = self._client
        if client is None:
            return
        request = pb.TradesRequest(instrument_symbol=symbol, max_trades=self.market.trades_kept)
        with contextlib.suppress(ConnectionClosed):
            client.request_callback(request, lambda answer: self._trades(client, symbol, answer))

    def _trades(self, client: AsyncClient, symbol: str, result: Any) -> None:
        if self._failed(client, symbol, result, "load the trades of", self._ask_trades):
            return
        assert isinstance(result, pb.TradesResponse)
        trades = [t for t in map(trade_of, result.trades) if t is not None]
        self.market.trades_loaded(symbol, trades)
        self._changed()

    def _failed(
        self, client: AsyncClient, symbol: str, result: Any, what: str, again: Callable[[str], None]
    ) -> bool:
        """Whether a request about `symbol` failed; if so, what follows is taken care of.

        A closed connection: nothing (the next session starts afresh). A timeout, or info's order book
        unavailable: asked again after RETRY_MAX seconds, on the same connection while the symbol is
        still shown. An unknown instrument: info no longer has it (a new day): it leaves the page.
        """
        if isinstance(result, ConnectionClosed):
            return True
        error = str(result) if isinstance(result, BaseException) else result.error_message
        if not error:
            self._failing.discard(symbol)
            return False
        if isinstance(result, pb.OrderBookSubscribeResponse | pb.TradesResponse) and error.startswith(
            "unknown instrument"
        ):
            self.log.info("%r is no longer known to info: %s", symbol, error)
            self.market.forget(symbol)
            self._changed()
            return True
        if symbol not in self._failing:  # logged once until it succeeds (the order book may be down long)
            self._failing.add(symbol)
            self.log.warning("cannot %s %r: %s; asking again every %g s", what, symbol, error, RETRY_MAX)

        def retry() -> None:
            if client is self._client and symbol in self.market.instruments:
                again(symbol)

        asyncio.get_running_loop().call_later(RETRY_MAX, retry)
        return True
