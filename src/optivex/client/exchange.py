"""`Exchange`: the SDK's blocking flavour, for scripts and simple bots.

One `SyncClient` per component (admin, info, the gateway) and no thread: what the exchange sends is
read while you call the SDK. Every call first reads what has arrived (books, trades, fills), so
`last_price_book` and the ``poll_*`` methods are always fresh; callbacks (``on_book``, ``on_trade``,
``on_fill`` ...) run inside those calls, in your thread. A bot that only reacts to callbacks lets the
SDK read with `wait(seconds)` or `run_forever()` rather than `time.sleep`.

A dropped connection is noticed on the next read: a ``ConnectionEvent("lost")`` goes to
``on_connection`` (and `poll_connection_events`), requests through it raise `ConnectionLost`, and the
SDK tries again at each call (0.05 s apart, doubling to 1 s): once connected it logs in, subscribes
again, takes the fresh snapshots as its books and the trades it missed from info, and reports
``ConnectionEvent("restored")``.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import Message

from optivex.client import state as core
from optivex.client.addresses import Addresses
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
from optivex.client.sync import SyncClient
from optivex.proto import info_pb2
from optivex.units import units_to_price

M = TypeVar("M", bound=Message)
T = TypeVar("T")

MAX_READS_PER_CALL = 64
"""Reads per connection in one call before it returns (a busy feed never holds a call for long)."""


class Exchange(ExchangeBase[SyncClient]):
    """A blocking connection to an Optivex exchange: admin, info and the gateway, logged in as one user.

    ``Exchange.connect("alice")`` (or ``with Exchange("alice") as exchange:``) connects to `optivex up`'s
    ports on 127.0.0.1; `addresses` or `config` (a deployment_config.json) say where else. The password
    defaults to the username (the users `optivex up` writes); admin is logged in as `admin_username`
    (default: the same user). `execution_reports` subscribes to my fills, cancels and amends.
    `timeout` bounds each request (and a subscription's wait for its snapshot). One thread at a time
    may use an Exchange (it has no lock); a bot with several threads gives each its own.
    """

    _stopping = False

    # lifecycle ----------------------------------------------------------------------

    @classmethod
    def connect(
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
    ) -> Exchange:
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
        return exchange.open()

    def open(self) -> Exchange:
        """Connect and log in to every component; a failure closes what was opened and raises (a
        closed exchange is not opened again: make a new one)."""
        if self.closed:
            raise RuntimeError("this exchange was closed; make a new one")
        if self.connected:
            return self
        try:
            for link in self._links.values():
                if link.client is None:
                    self._establish(link)
        except BaseException:
            self.close()
            raise
        self._dispatch()
        return self

    def close(self) -> None:
        """Close every connection (the SDK no longer reconnects)."""
        self.closed = True
        for link in self._links.values():
            if link.client is not None:
                link.client.close()
                link.client = None
            link.lost = link.lost or "closed by the client"

    def __enter__(self) -> Exchange:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # market data ----------------------------------------------------------------------

    def instruments(self) -> dict[str, Instrument]:
        """Every instrument of the day, by symbol: those info announced, after its barrier (so every
        one whose creation anyone was told of)."""
        call = core.barrier_call()
        self._request(call.component, call.request, call.expect)  # refused on purpose: a barrier
        return dict(self.market.instruments)

    def subscribe(self, symbol: str, depth_limit: int = 0) -> PriceBook:
        """Subscribe to an instrument's book and trades (UnknownInstrument if there is none); returns its
        snapshot. `depth_limit` > 0 shows the best N levels of each side only; subscribing again with
        another limit replaces it (the book returned may then be the last one of the old limit: the new
        snapshot follows). Trades are kept for `poll_new_trades` from the subscription on."""
        already = self.market.subscribed(symbol)
        book = self.market.book(symbol)
        if already and book is not None and self.market.depth_limit(symbol) == depth_limit:
            return book  # subscribed as asked: the book is up to date
        self.market.add_subscription(symbol, depth_limit)  # first: the snapshot may come in the same read
        try:
            self._run(core.subscribe_call(symbol, depth_limit))
        except BaseException:
            if not already:
                self.market.remove_subscription(symbol)
            raise
        book = self.wait_for(lambda: self.market.book(symbol), self.timeout)
        if book is None:
            raise ExchangeTimeout(f"no snapshot of {symbol} within {self.timeout:g} s")
        return book

    def unsubscribe(self, symbol: str) -> None:
        """End the subscription to an instrument (its book and unpolled trades are dropped)."""
        self._run(core.unsubscribe_call(symbol))
        self.market.remove_subscription(symbol)

    def last_price_book(self, symbol: str) -> PriceBook | None:
        """The instrument's book as info last published it (subscribing first if need be); None while
        info's connection is being restored."""
        self._pump(0.0)
        if not self.market.subscribed(symbol):
            return self.subscribe(symbol)
        return self.market.book(symbol)

    def poll_new_trades(self, symbol: str) -> list[Trade]:
        """The instrument's trades since the last poll, oldest first (subscribing first if need be)."""
        self._pump(0.0)
        if not self.market.subscribed(symbol):
            self.subscribe(symbol)
        return self.market.poll_trades(symbol)

    def trades(self, symbol: str, max_trades: int = 1000, before_trade_id: int = 0) -> list[Trade]:
        """The day's latest trades of an instrument (info's tape), oldest first."""
        return self._run(core.trades_call(symbol, max_trades, before_trade_id))

    # admin ----------------------------------------------------------------------------

    def create_instrument(
        self,
        symbol: str,
        tick_size: float = 0.01,
        *,
        description: str = "",
        currency: str = "",
        multiplier: float = 0.0,
    ) -> Instrument:
        """Create an instrument and its order book (admin); RequestRejected if the symbol is taken."""
        return self._run(core.create_instrument_call(symbol, tick_size, description, currency, multiplier))

    def get_or_create_instrument(self, symbol: str, tick_size: float = 0.01) -> Instrument:
        """The instrument of the day called `symbol`, created (with `tick_size`) if there is none yet;
        when another client creates it at the same moment, that one."""
        instrument = (self.instruments()).get(symbol)
        if instrument is not None:
            return instrument
        try:
            return self.create_instrument(symbol, tick_size)
        except RequestRejected:
            instrument = (self.instruments()).get(symbol)
            if instrument is None:
                raise
            return instrument

    def list_instruments(self) -> list[Instrument]:
        """Every instrument of the day, in creation order (admin's list, every page)."""
        out: list[Instrument] = []
        after = 0
        while True:
            page, after = self._run(core.list_instruments_call(after))
            out.extend(page)
            if not after:
                return out

    # orders -----------------------------------------------------------------------------

    def insert_order(
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
        return self._run(
            core.insert_call(symbol, side, price, quantity, time_in_force, self_trade_prevention)
        )

    def amend_order(
        self,
        symbol: str,
        order_id: int,
        quantity: int,
        price: float | None = None,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
    ) -> OrderResult:
        """Amend a resting order of mine to `quantity` open (at `price`; None: unchanged). A lower
        quantity at the same price keeps its id and priority; otherwise it goes on under a new id."""
        return self._run(core.amend_call(symbol, order_id, quantity, price, self_trade_prevention))

    def cancel_order(self, symbol: str, order_id: int) -> None:
        """Cancel a resting order of mine (OrderRejected if it no longer rests or is not mine)."""
        self._run(core.cancel_call(symbol, order_id))

    def cancel_all_orders(self, symbol: str = "") -> list[int]:
        """Cancel every resting order of mine (on `symbol`, or on every instrument); their ids."""
        return self._run(core.cancel_all_call(symbol))

    def open_orders(self, symbol: str = "") -> list[OpenOrder]:
        """My resting orders (on `symbol`, or on every instrument), by symbol then order id."""
        return self._run(core.open_orders_call(symbol))

    def set_self_trade_prevention(self, mode: SelfTradePrevention) -> None:
        """My self-trade prevention, for the orders that leave theirs at ALLOWED."""
        self._run(core.self_trade_prevention_call(mode))

    def set_user_risk_limits(
        self, max_outstanding_quantity: int = 0, message_rate: tuple[int, int] | None = None
    ) -> None:
        """Replace my user limits (0 / None: no limit); `message_rate` is (requests, window seconds)."""
        self._run(core.user_limits_call(max_outstanding_quantity, message_rate))

    def set_instrument_risk_limits(
        self,
        symbol: str,
        max_outstanding_quantity: int = 0,
        max_outstanding_amount: float = 0.0,
        order_quantity: tuple[int, int] | None = None,
        order_amount: tuple[int, int] | None = None,
    ) -> None:
        """Replace my limits on one instrument (0 / None: no limit); rolling ones as (limit, seconds)."""
        self._run(
            core.instrument_limits_call(
                symbol, max_outstanding_quantity, max_outstanding_amount, order_quantity, order_amount
            )
        )

    # account ----------------------------------------------------------------------------

    def poll_new_fills(self) -> list[Fill]:
        """The fills of my orders since the last poll, oldest first."""
        self._pump(0.0)
        return self.account.poll_fills()

    def poll_execution_reports(self) -> list[ExecutionReport]:
        """Every execution report (fills, cancels, amends of my orders) since the last poll, oldest first."""
        self._pump(0.0)
        return self.account.poll_reports()

    def positions(self, symbol: str = "") -> dict[str, Position]:
        """My positions of the day by symbol (the gateway's ledger: every instrument I traded)."""
        return self._run(core.positions_call(symbol))

    def cash(self) -> float:
        """My cash over every instrument: sells minus buys (price x quantity)."""
        return units_to_price(sum(p.cash_units for p in self.positions().values()))

    def pnl(self, valuations: Mapping[str, float] | None = None) -> float:
        """position x price + cash over my instruments, at each one's last trade price or at
        `valuations` (symbol -> price) for those it names; summed in exact units."""
        units = core.valuations_units(valuations)
        return units_to_price(core.pnl_units(self.positions().values(), units))

    # reading ---------------------------------------------------------------------------

    def poll_connection_events(self) -> list[ConnectionEvent]:
        """Connections lost, restored or failed to resubscribe since the last poll."""
        self._pump(0.0)
        return self._take_connection_events()

    def wait(self, seconds: float) -> None:
        """Read and handle what arrives for `seconds` (callbacks run meanwhile): a bot's sleep."""
        self._pump(seconds)

    def wait_for(self, condition: Callable[[], T | None], timeout: float) -> T | None:
        """Read until `condition()` is true (returns its value) or `timeout` seconds passed (None)."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(min(remaining, 0.05), stop_early=True)

    def run_forever(self) -> None:
        """Read and run the callbacks until `stop()` is called (or Ctrl-C)."""
        self._stopping = False
        while not self._stopping and not self.closed:
            self._pump(0.5, stop_early=True)

    def stop(self) -> None:
        """Make `run_forever` return (call it from a callback)."""
        self._stopping = True

    # internals -------------------------------------------------------------------------

    def _establish(self, link: Link[SyncClient]) -> None:
        """Connect and log in; after a loss, make the connection's subscriptions again."""
        host, port = link.address
        try:
            client = SyncClient(host, port, link.protocol, timeout=self.timeout)
        except OSError as exc:
            raise ConnectionLost(link.name, f"cannot connect to {host}:{port}: {exc}") from None
        try:
            client.login(link.username, link.password)
        except RequestFailed as exc:
            client.close()
            raise LoginRefused(str(exc), f"login to {link.name} as {link.username}") from None
        except (ConnectionClosed, OSError, RequestTimeout) as exc:
            client.close()
            raise ConnectionLost(link.name, f"login: {exc}") from None
        requests = self.market.resubscribe_requests() if link.name == "info" else []
        link.client = client
        self._drain(link)
        if link.name == "info":
            self._resubscribe(requests)
        elif link.name == "gateway" and self.account.wants_reports:
            self._run(core.subscribe_reports_call())
        if link.restored():
            self._notify_connection(ConnectionEvent(link.name, "restored"))

    def _resubscribe(self, requests: list[info_pb2.OrderBookSubscribeRequest]) -> None:
        """Subscribe again after a reconnection, then fill each subscription's trade gap from info."""
        for request in requests:
            symbol = request.instrument_symbol
            try:
                self._run(core.subscribe_call(symbol, request.depth_limit))
            except ConnectionLost:
                raise
            except OptivexError as exc:
                self.market.remove_subscription(symbol)
                self._notify_connection(ConnectionEvent("info", "failed", str(exc)))
                continue
            try:
                response = self._request(
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

    def _live(self, link: Link[SyncClient]) -> SyncClient:
        """The link's client, reconnecting first if it is down and an attempt is due."""
        if self.closed:
            raise ConnectionLost(link.name, "the exchange was closed")
        if link.client is None:
            self._retry(link)
        if link.client is None:
            raise ConnectionLost(link.name, f"{link.lost}; reconnecting")
        return link.client

    def _retry(self, link: Link[SyncClient]) -> None:
        """Try to reconnect a link that is down, if its next attempt is due."""
        if self.closed or time.monotonic() < link.retry_at:
            return
        try:
            self._establish(link)
        except (ConnectionLost, LoginRefused, ExchangeTimeout):
            if link.client is not None:
                link.client.close()
                link.client = None
            link.retried(time.monotonic())

    def _failed(self, link: Link[SyncClient], exc: BaseException) -> str:
        """The link's connection broke: drop it, tell the callbacks, try again at once; why it broke."""
        if link.client is not None:
            link.client.close()
            link.client = None
        reason = str(exc) or type(exc).__name__
        link.retry_at = 0.0
        self._lost(link, reason)
        return reason

    def _run(self, call: core.Call[M, T]) -> T:
        """Run one operation: its request, then its outcome (the result, or the typed exception)."""
        return call.outcome(self._request(call.component, call.request, call.expect))

    def _request(self, name: ComponentName, message: Message, expect: type[M]) -> M:
        """Send a request and wait for its answer, applying what arrived meanwhile. ConnectionLost if
        the connection is down or drops first; ExchangeTimeout if no answer comes in time."""
        link = self._links[name]
        client = self._live(link)
        try:
            return client.request(message, expect=expect)
        except RequestTimeout as exc:
            raise ExchangeTimeout(f"{name}: {exc}; it may or may not have been carried out") from None
        except (ConnectionClosed, OSError) as exc:
            reason = self._failed(link, exc)
            raise ConnectionLost(
                name, f"{reason}; the request may or may not have been carried out"
            ) from None
        finally:
            self._drain(link)
            self._dispatch()

    def _drain(self, link: Link[SyncClient]) -> None:
        """Apply the messages the link's client holds (they arrived during a request or a read)."""
        client = link.client
        if client is None:
            return
        pending = client.pending
        while pending:
            self._apply(link.name, pending.popleft())

    def _pump(self, timeout: float, stop_early: bool = False) -> None:
        """Read what arrives for up to `timeout` seconds (0: only what is there), apply it, run the
        callbacks, reconnect what is down when due. `stop_early`: return after the first reads."""
        deadline = time.monotonic() + timeout
        reads = 0
        links = self._links.values()
        while not self.closed:
            for link in links:
                if link.client is None:
                    self._retry(link)
            socks = {link.client.sock: link for link in links if link.client is not None}
            wait = max(0.0, deadline - time.monotonic())
            if len(socks) < len(self._links):
                retry_at = min(link.retry_at for link in links if link.client is None)
                wait = min(wait, max(0.0, retry_at - time.monotonic()))
            readable: list[Any] = []
            if socks:
                readable = select.select(list(socks), [], [], wait)[0]
            elif wait > 0:
                time.sleep(wait)
            for sock in readable:
                link = socks[sock]
                client = link.client
                if client is None:
                    continue
                try:
                    self._apply(link.name, client.receive(self.timeout))
                    self._drain(link)
                except (ConnectionClosed, OSError) as exc:
                    self._failed(link, exc)
                except TimeoutError:  # data came, then the rest of its frame not for a whole timeout
                    self._failed(link, ConnectionClosed(f"a frame stalled for {self.timeout:g} s"))
            self._dispatch()
            reads += 1
            if readable and stop_early:
                return
            if time.monotonic() >= deadline and (not readable or reads >= MAX_READS_PER_CALL):
                return
