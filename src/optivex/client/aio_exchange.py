"""`AsyncExchange`: the SDK's asyncio flavour, for bots that do several things at once.

One `AsyncClient` per component (admin, info, the gateway). Events are applied as they arrive, in
the event loop, and the callbacks (``on_book``, ``on_trade``, ``on_fill`` ...; plain functions, run
in the loop: they must not block) run at once; `last_price_book` and the ``poll_*`` methods read the
state without waiting; `wait_for(condition)` waits until the state says what you want.

A task watches each connection. When one drops, a ``ConnectionEvent("lost")`` goes to
``on_connection`` (and `poll_connection_events`), requests through it raise `ConnectionLost`, and the
task reconnects (0.05 s apart, doubling to 1 s): it logs in, subscribes again, takes the fresh
snapshots as its books and the trades it missed from info, then reports
``ConnectionEvent("restored")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import Message

from optivex.client import state as core
from optivex.client.addresses import Addresses
from optivex.client.aio import AsyncClient
from optivex.client.base import DEFAULT_TIMEOUT, ExchangeBase, Link
from optivex.client.errors import (
    ConnectionLost,
    ExchangeTimeout,
    LoginRefused,
    OptivexError,
    RequestRejected,
)
from optivex.client.model import (
    ComponentName,
    ConnectionEvent,
    ExecutionReport,
    Fill,
    Instrument,
    OpenOrder,
    OrderResult,
    Position,
    PriceBook,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
)
from optivex.client.session import ConnectionClosed, RequestFailed, RequestTimeout
from optivex.proto import info_pb2
from optivex.units import units_to_price

M = TypeVar("M", bound=Message)
T = TypeVar("T")


class AsyncExchange(ExchangeBase[AsyncClient]):
    """An asyncio connection to an Optivex exchange: admin, info and the gateway, logged in as one user.

    ``exchange = await AsyncExchange.connect("alice")`` (or ``async with AsyncExchange("alice") as
    exchange:``); the settings are those of `Exchange`.
    """

    _watchers: dict[ComponentName, asyncio.Task[None]] | None = None
    """The task watching (and reconnecting) each connection, once open."""
    _changed: asyncio.Event | None = None
    """Set (and replaced) when an event was applied, for `wait_for`; None while nobody waits."""

    # lifecycle ----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        username: str = "alice",
        password: str | None = None,
        *,
        addresses: Addresses | None = None,
        config: str | Path | None = None,
        admin_username: str | None = None,
        admin_password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        execution_reports: bool = True,
        max_buffered: int = core.DEFAULT_MAX_BUFFERED,
    ) -> AsyncExchange:
        """Connect and log in to info, the gateway and admin (ConnectionLost / LoginRefused if not);
        the arguments are the constructor's."""
        exchange = cls(
            username,
            password,
            addresses=addresses,
            config=config,
            admin_username=admin_username,
            admin_password=admin_password,
            timeout=timeout,
            execution_reports=execution_reports,
            max_buffered=max_buffered,
        )
        return await exchange.open()

    async def open(self) -> AsyncExchange:
        """Connect and log in to every component; a failure closes what was opened and raises (a
        closed exchange is not opened again: make a new one)."""
        if self.closed:
            raise RuntimeError("this exchange was closed; make a new one")
        if self.connected:
            return self
        if self._watchers is None:
            self._watchers = {}
        try:
            for link in self._links.values():
                if link.client is None:
                    await self._establish(link)
        except BaseException:
            await self.close()
            raise
        for name, link in self._links.items():
            if name not in self._watchers:
                self._watchers[name] = asyncio.create_task(self._watch(link), name=f"optivex sdk {name}")
        self._dispatch()
        return self

    async def close(self) -> None:
        """Close every connection (the SDK no longer reconnects)."""
        self.closed = True
        watchers = list((self._watchers or {}).values())
        for task in watchers:
            task.cancel()
        for link in self._links.values():
            client = link.client
            if client is not None:
                client.close()
                await asyncio.wait((client.closed,))
                link.client = None
            link.lost = link.lost or "closed by the client"
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._signal()

    async def __aenter__(self) -> AsyncExchange:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # market data ----------------------------------------------------------------------

    async def instruments(self) -> dict[str, Instrument]:
        """Every instrument of the day, by symbol: those info announced, after its barrier (so every
        one whose creation anyone was told of)."""
        call = core.barrier_call()
        await self._request(call.component, call.request, call.expect)  # refused on purpose: a barrier
        return dict(self.market.instruments)

    async def subscribe(self, symbol: str, depth_limit: int = 0) -> PriceBook:
        """Subscribe to an instrument's book and trades (UnknownInstrument if there is none); returns its
        snapshot. `depth_limit` > 0 shows the best N levels of each side only; subscribing again with
        another limit replaces it (the book returned may then be the last one of the old limit: the new
        snapshot follows). Trades are kept for `poll_new_trades` from the subscription on."""
        already = self.market.subscribed(symbol)
        book = self.market.book(symbol)
        if already and book is not None and self.market.depth_limit(symbol) == depth_limit:
            return book  # subscribed as asked: the book is up to date
        self.market.add_subscription(symbol, depth_limit)
        try:
            await self._run(core.subscribe_call(symbol, depth_limit))
        except BaseException:
            if not already:
                self.market.remove_subscription(symbol)
            raise
        book = await self.wait_for(lambda: self.market.book(symbol), self.timeout)
        if book is None:
            raise ExchangeTimeout(f"no snapshot of {symbol} within {self.timeout:g} s")
        return book

    async def unsubscribe(self, symbol: str) -> None:
        """End the subscription to an instrument (its book and unpolled trades are dropped)."""
        await self._run(core.unsubscribe_call(symbol))
        self.market.remove_subscription(symbol)

    def last_price_book(self, symbol: str) -> PriceBook | None:
        """The instrument's book as info last published it; None unless subscribed (`subscribe`) and
        while info's connection is being restored."""
        return self.market.book(symbol)

    def poll_new_trades(self, symbol: str) -> list[Trade]:
        """The subscribed instrument's trades since the last poll, oldest first."""
        return self.market.poll_trades(symbol)

    async def trades(self, symbol: str, max_trades: int = 1000, before_trade_id: int = 0) -> list[Trade]:
        """The day's latest trades of an instrument (info's tape), oldest first."""
        return await self._run(core.trades_call(symbol, max_trades, before_trade_id))

    # admin ----------------------------------------------------------------------------

    async def create_instrument(
        self,
        symbol: str,
        tick_size: float = 0.01,
        *,
        description: str = "",
        currency: str = "",
        multiplier: float = 0.0,
    ) -> Instrument:
        """Create an instrument and its order book (admin); RequestRejected if the symbol is taken."""
        return await self._run(
            core.create_instrument_call(symbol, tick_size, description, currency, multiplier)
        )

    async def get_or_create_instrument(self, symbol: str, tick_size: float = 0.01) -> Instrument:
        """The instrument of the day called `symbol`, created (with `tick_size`) if there is none yet;
        when another client creates it at the same moment, that one."""
        instrument = (await self.instruments()).get(symbol)
        if instrument is not None:
            return instrument
        try:
            return await self.create_instrument(symbol, tick_size)
        except RequestRejected:
            instrument = (await self.instruments()).get(symbol)
            if instrument is None:
                raise
            return instrument

    async def list_instruments(self) -> list[Instrument]:
        """Every instrument of the day, in creation order (admin's list, every page)."""
        out: list[Instrument] = []
        after = 0
        while True:
            page, after = await self._run(core.list_instruments_call(after))
            out.extend(page)
            if not after:
                return out

    # orders -----------------------------------------------------------------------------

    async def insert_order(
        self,
        symbol: str,
        side: Side,
        price: float,
        quantity: int,
        time_in_force: TimeInForce = TimeInForce.GOOD_TILL_CANCEL,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
    ) -> OrderResult:
        """Insert an order: a limit order, or IMMEDIATE_OR_CANCEL / FILL_OR_KILL. Refused: OrderRejected,
        RiskLimitBreached or UnknownInstrument, with the exchange's message."""
        return await self._run(
            core.insert_call(symbol, side, price, quantity, time_in_force, self_trade_prevention)
        )

    async def amend_order(
        self,
        symbol: str,
        order_id: int,
        quantity: int,
        price: float | None = None,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
    ) -> OrderResult:
        """Amend a resting order of mine to `quantity` open (at `price`; None: unchanged). A lower
        quantity at the same price keeps its id and priority; otherwise it goes on under a new id."""
        return await self._run(core.amend_call(symbol, order_id, quantity, price, self_trade_prevention))

    async def cancel_order(self, symbol: str, order_id: int) -> None:
        """Cancel a resting order of mine (OrderRejected if it no longer rests or is not mine)."""
        await self._run(core.cancel_call(symbol, order_id))

    async def cancel_all_orders(self, symbol: str = "") -> list[int]:
        """Cancel every resting order of mine (on `symbol`, or on every instrument); their ids."""
        return await self._run(core.cancel_all_call(symbol))

    async def open_orders(self, symbol: str = "") -> list[OpenOrder]:
        """My resting orders (on `symbol`, or on every instrument), by symbol then order id."""
        return await self._run(core.open_orders_call(symbol))

    async def set_self_trade_prevention(self, mode: SelfTradePrevention) -> None:
        """My self-trade prevention, for the orders that leave theirs at ALLOWED."""
        await self._run(core.self_trade_prevention_call(mode))

    async def set_user_risk_limits(
        self, max_outstanding_quantity: int = 0, message_rate: tuple[int, int] | None = None
    ) -> None:
        """Replace my user limits (0 / None: no limit); `message_rate` is (requests, window seconds)."""
        await self._run(core.user_limits_call(max_outstanding_quantity, message_rate))

    async def set_instrument_risk_limits(
        self,
        symbol: str,
        max_outstanding_quantity: int = 0,
        max_outstanding_amount: float = 0.0,
        order_quantity: tuple[int, int] | None = None,
        order_amount: tuple[int, int] | None = None,
    ) -> None:
        """Replace my limits on one instrument (0 / None: no limit); rolling ones as (limit, seconds)."""
        await self._run(
            core.instrument_limits_call(
                symbol, max_outstanding_quantity, max_outstanding_amount, order_quantity, order_amount
            )
        )

    # account ----------------------------------------------------------------------------

    def poll_new_fills(self) -> list[Fill]:
        """The fills of my orders since the last poll, oldest first."""
        return self.account.poll_fills()

    def poll_execution_reports(self) -> list[ExecutionReport]:
        """Every execution report (fills, cancels, amends of my orders) since the last poll, oldest first."""
        return self.account.poll_reports()

    async def positions(self, symbol: str = "") -> dict[str, Position]:
        """My positions of the day by symbol (the gateway's ledger: every instrument I traded)."""
        return await self._run(core.positions_call(symbol))

    async def cash(self) -> float:
        """My cash over every instrument: sells minus buys (price x quantity)."""
        return units_to_price(sum(p.cash_units for p in (await self.positions()).values()))

    async def pnl(self, valuations: Mapping[str, float] | None = None) -> float:
        """position x price + cash over my instruments, at each one's last trade price or at
        `valuations` (symbol -> price) for those it names; summed in exact units."""
        units = core.valuations_units(valuations)
        return units_to_price(core.pnl_units((await self.positions()).values(), units))

    # waiting ---------------------------------------------------------------------------

    def poll_connection_events(self) -> list[ConnectionEvent]:
        """Connections lost, restored or failed to resubscribe since the last poll."""
        return self._take_connection_events()

    async def wait_for(self, condition: Callable[[], T | None], timeout: float | None = None) -> T | None:
        """Wait until `condition()` is true (returns its value; checked after each event applied) or
        `timeout` seconds passed (None then)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            value = condition()
            if value:
                return value
            if self.closed:
                return None
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                value = condition()
                return value if value else None

    def _signal(self) -> None:
        """Wake the `wait_for` callers: the state changed."""
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    # internals -------------------------------------------------------------------------

    def _received(self, name: ComponentName, message: Message) -> None:
        """An event of a component's connection (its client's on_message)."""
        self._apply(name, message)
        self._dispatch()
        self._signal()

    async def _establish(self, link: Link[AsyncClient]) -> None:
        """Connect and log in; after a loss, make the connection's subscriptions again."""
        host, port = link.address
        requests = self.market.resubscribe_requests() if link.name == "info" else []
        try:
            client = await AsyncClient.connect(
                host,
                port,
                link.protocol,
                functools.partial(self._received, link.name),
                request_timeout=self.timeout,
            )
        except OSError as exc:
            raise ConnectionLost(link.name, f"cannot connect to {host}:{port}: {exc}") from None
        try:
            await client.login(link.username, link.password)
        except RequestFailed as exc:
            client.close()
            raise LoginRefused(str(exc), f"login to {link.name} as {link.username}") from None
        except (ConnectionClosed, RequestTimeout) as exc:
            client.close()
            raise ConnectionLost(link.name, f"login: {exc}") from None
        link.client = client
        if link.name == "info":
            await self._resubscribe(requests)
        elif link.name == "gateway" and self.account.wants_reports:
            await self._run(core.subscribe_reports_call())
        if link.restored():
            self._notify_connection(ConnectionEvent(link.name, "restored"))
            self._dispatch()
            self._signal()

    async def _resubscribe(self, requests: list[info_pb2.OrderBookSubscribeRequest]) -> None:
        """Subscribe again after a reconnection, then fill each subscription's trade gap from info."""
        for request in requests:
            symbol = request.instrument_symbol
            try:
                await self._run(core.subscribe_call(symbol, request.depth_limit))
            except ConnectionLost:
                raise
            except OptivexError as exc:
                self.market.remove_subscription(symbol)
                self._notify_connection(ConnectionEvent("info", "failed", str(exc)))
                continue
            try:
                response = await self._request(
                    "info", self.market.backfill_request(symbol), info_pb2.TradesResponse
                )
                core.check(response, f"trades of {symbol}")
            except ConnectionLost:
                raise
            except OptivexError:
                self.market.end_gap(symbol)
                continue
            for trade in self.market.backfill(symbol, response):
                self._outbox.append(("Trade", trade))
            self._dispatch()

    async def _watch(self, link: Link[AsyncClient]) -> None:
        """Wait for the link's connection to drop, then reconnect it (until the exchange closes)."""
        while not self.closed:
            client = link.client
            if client is not None:
                await asyncio.wait((client.closed,))  # not `await client.closed`: a cancel would cancel it
                if self.closed:
                    return
                try:
                    await client.receive()  # with on_message set, it only raises why the connection closed
                    reason = "closed"
                except ConnectionClosed as exc:
                    reason = str(exc)
                self._lost(link, reason)
                self._dispatch()
                self._signal()
            loop = asyncio.get_running_loop()
            delay = link.retry_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._establish(link)
            except (ConnectionLost, LoginRefused, ExchangeTimeout):
                if link.client is not None:
                    link.client.close()
                    link.client = None
                link.retried(loop.time())

    async def _run(self, call: core.Call[M, T]) -> T:
        """Run one operation: its request, then its outcome (the result, or the typed exception)."""
        return call.outcome(await self._request(call.component, call.request, call.expect))

    async def _request(self, name: ComponentName, message: Message, expect: type[M]) -> M:
        """Send a request and await its answer. ConnectionLost if the connection is down or drops
        first; ExchangeTimeout if no answer comes in time."""
        link = self._links[name]
        client = link.client
        if self.closed:
            raise ConnectionLost(name, "the exchange was closed")
        if client is None:
            raise ConnectionLost(name, f"{link.lost}; reconnecting")
        try:
            return await client.request(message, expect=expect)
        except RequestTimeout as exc:
            raise ExchangeTimeout(f"{name}: {exc}; it may or may not have been carried out") from None
        except ConnectionClosed as exc:
            raise ConnectionLost(name, f"{exc}; the request may or may not have been carried out") from None
