"""The SDK's core without I/O: requests built from typed arguments, answers and events turned into state.

Both flavours (`Exchange`, blocking; `AsyncExchange`, asyncio) are thin shells around this module and
the `ClientSession` of their clients: they move bytes, it decides.

- Operations: each ``*_call`` function gives a `Call`: the request of one operation (built by the
  ``*_request`` functions, its price rounded to 0.0001 exactly as the exchange rounds it), the
  component it goes to, the class of its answer, and its `outcome`: the result (``*_of`` functions
  turn answers into `model` data) or the typed exception of the answer's error_message (`check`,
  `errors.rejection`). The flavours only send the request and await the answer.
- `MarketState`: what info told this connection: the instruments of the day, each subscribed
  book (info publishes whole books, so each OnPriceDepthBook replaces the last: a snapshot after a
  subscription, updates after), and the trades of the subscribed instruments, buffered until polled.
  After a reconnection it says what to subscribe to again and merges the trades missed meanwhile
  (info's TradesRequest) with the live ones by trade_id.
- `AccountState`: the execution reports (fills, cancels, amends) of the user, buffered until polled.
- `pnl_units`: position x valuation + cash over positions, in exact integer units.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from google.protobuf.message import Message

from optivex.client.errors import rejection
from optivex.client.model import (
    CancelReason,
    ComponentName,
    ExecutionReport,
    Fill,
    Instrument,
    OpenOrder,
    OrderAmended,
    OrderCancelled,
    OrderResult,
    Position,
    PriceBook,
    PriceLevel,
    SelfTradePrevention,
    Side,
    TimeInForce,
    Trade,
    side_of,
)
from optivex.proto import admin_pb2, common_pb2, info_pb2, risk_limits_pb2
from optivex.proto import execution_pb2 as ex
from optivex.units import amount_to_units, price_to_units, units_to_price

DEFAULT_MAX_BUFFERED = 100_000
"""Trades per instrument, and fills, kept until polled; beyond, the oldest go (counted in `dropped`)."""
BACKFILL_TRADES = 1000
"""Trades asked of info after a reconnection, to fill the gap (the most info answers at once)."""


def wire_price(price: float) -> float:
    """`price` rounded to 0.0001 as the exchange rounds it (ValueError if not finite or too large)."""
    units = price_to_units(price)
    if units is None:
        raise ValueError(f"price {price!r} is not finite, or too large for a price")
    return units_to_price(units)


def units_of(price: float) -> int:
    """Units of a price received from the exchange (always representable)."""
    units = price_to_units(price)
    return 0 if units is None else units


# requests -------------------------------------------------------------------


def create_instrument_request(
    symbol: str, tick_size: float, description: str = "", currency: str = "", multiplier: float = 0.0
) -> admin_pb2.CreateInstrumentRequest:
    return admin_pb2.CreateInstrumentRequest(
        instrument=common_pb2.Instrument(
            symbol=symbol, description=description, currency=currency, multiplier=multiplier
        ),
        tick_size=tick_size,
    )


def insert_request(
    symbol: str,
    side: Side,
    price: float,
    quantity: int,
    time_in_force: TimeInForce = TimeInForce.GOOD_TILL_CANCEL,
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
) -> ex.InsertOrderRequest:
    return ex.InsertOrderRequest(
        instrument_symbol=symbol,
        side=cast(common_pb2.Side, int(side)),
        price=wire_price(price),
        quantity=quantity,
        time_in_force=cast(common_pb2.TimeInForce, int(time_in_force)),
        self_trade_prevention=cast(common_pb2.SelfTradePrevention, int(self_trade_prevention)),
    )


def amend_request(
    symbol: str,
    order_id: int,
    quantity: int,
    price: float | None = None,
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
) -> ex.AmendOrderRequest:
    return ex.AmendOrderRequest(
        instrument_symbol=symbol,
        order_id=order_id,
        quantity=quantity,
        price=0.0 if price is None else wire_price(price),
        self_trade_prevention=cast(common_pb2.SelfTradePrevention, int(self_trade_prevention)),
    )


def subscribe_request(symbol: str, depth_limit: int = 0) -> info_pb2.OrderBookSubscribeRequest:
    return info_pb2.OrderBookSubscribeRequest(
        instrument_symbol=symbol, subscription_type=info_pb2.PRICE_DEPTH_BOOK, depth_limit=depth_limit
    )


def unsubscribe_request(symbol: str) -> info_pb2.OrderBookUnsubscribeRequest:
    return info_pb2.OrderBookUnsubscribeRequest(
        instrument_symbol=symbol, subscription_type=info_pb2.PRICE_DEPTH_BOOK
    )


def rolling(limit: tuple[int, int] | None) -> risk_limits_pb2.RollingWindowLimit | None:
    """(limit, window_in_seconds) as the proto's RollingWindowLimit; None: no limit."""
    if limit is None:
        return None
    return risk_limits_pb2.RollingWindowLimit(limit=limit[0], window_in_seconds=limit[1])


def user_limits_request(
    max_outstanding_quantity: int = 0, message_rate: tuple[int, int] | None = None
) -> risk_limits_pb2.SetUserRiskLimitsRequest:
    return risk_limits_pb2.SetUserRiskLimitsRequest(
        user_risk_limits=risk_limits_pb2.UserRiskLimits(
            max_outstanding_quantity=max_outstanding_quantity,
            message_rate_rolling_limit=rolling(message_rate),
        )
    )


def instrument_limits_request(
    symbol: str,
    max_outstanding_quantity: int = 0,
    max_outstanding_amount: float = 0.0,
    order_quantity: tuple[int, int] | None = None,
    order_amount: tuple[int, int] | None = None,
) -> risk_limits_pb2.SetInstrumentRiskLimitsRequest:
    return risk_limits_pb2.SetInstrumentRiskLimitsRequest(
        instrument_symbol=symbol,
        instrument_risk_limits=risk_limits_pb2.InstrumentRiskLimits(
            max_outstanding_quantity=max_outstanding_quantity,
            max_outstanding_amount=max_outstanding_amount,
            order_quantity_rolling_limit=rolling(order_quantity),
            order_amount_rolling_limit=rolling(order_amount),
        ),
    )


# answers ----------------------------------------------------------------------


def check(response: Message, request: str, order: bool = False) -> None:
    """Raise the typed exception of an answer's error_message, if it has one."""
    error: str = getattr(response, "error_message", "")
    if error:
        raise rejection(error, request, order)


def describe_insert(request: ex.InsertOrderRequest) -> str:
    side = Side(request.side).name
    extra = "" if request.time_in_force == 0 else f" {TimeInForce(request.time_in_force).name}"
    return f"insert {side} {request.quantity} {request.instrument_symbol} @ {request.price!r}{extra}"


def order_result(response: ex.InsertOrderResponse | ex.AmendOrderResponse) -> OrderResult:
    return OrderResult(
        order_id=response.order_id,
        timestamp=response.timestamp,
        trade_ids=tuple(response.trade_ids),
        traded_quantity=response.traded_quantity,
        resting_quantity=response.resting_quantity,
        cancelled_quantity=response.cancelled_quantity,
        priority_kept=isinstance(response, ex.AmendOrderResponse) and response.priority_kept,
    )


def open_orders_of(response: ex.GetOpenOrdersResponse) -> list[OpenOrder]:
    return [
        OpenOrder(
            order_id=o.order_id,
            symbol=o.instrument_symbol,
            side=side_of(o.side),
            price_units=units_of(o.price),
            quantity=o.quantity,
            remaining_quantity=o.remaining_quantity,
            timestamp=o.timestamp,
        )
        for o in response.orders
    ]


def positions_of(response: ex.GetPositionsResponse) -> dict[str, Position]:
    return {
        p.instrument_symbol: Position(
            symbol=p.instrument_symbol,
            position=p.position,
            cash_units=units_of(p.cash),
            bought_quantity=p.bought_quantity,
            sold_quantity=p.sold_quantity,
            traded_volume=p.traded_volume,
            realised_pnl_units=units_of(p.realised_pnl),
            last_trade_price_units=units_of(p.last_trade_price),
        )
        for p in response.positions
    }


def instrument_of(message: info_pb2.OnInstrument) -> Instrument:
    return Instrument(
        symbol=message.instrument.symbol,
        tick_units=units_of(message.tick_size),
        order_book_id=message.order_book_id,
        created_timestamp=message.created_timestamp,
        description=message.instrument.description,
        currency=message.instrument.currency,
        multiplier=message.instrument.multiplier,
    )


def listed_instrument_of(entry: admin_pb2.ListedInstrument) -> Instrument:
    return Instrument(
        symbol=entry.instrument.symbol,
        tick_units=units_of(entry.tick_size),
        order_book_id=entry.order_book_id,
        created_timestamp=entry.created_timestamp,
        description=entry.instrument.description,
        currency=entry.instrument.currency,
        multiplier=entry.instrument.multiplier,
    )


def trade_of(message: info_pb2.OnTrade) -> Trade:
    return Trade(
        trade_id=message.trade_id,
        symbol=message.instrument_symbol,
        timestamp=message.timestamp,
        price_units=units_of(message.price),
        quantity=message.quantity,
        aggressor_side=side_of(message.aggressor_side),
    )


def _levels(levels: Iterable[info_pb2.PriceLevel]) -> tuple[PriceLevel, ...]:
    return tuple(PriceLevel(units_of(level.price), level.quantity) for level in levels)


def book_of(message: info_pb2.OnPriceDepthBook) -> PriceBook:
    return PriceBook(
        symbol=message.instrument_symbol,
        timestamp=message.timestamp,
        bids=_levels(message.bids),
        asks=_levels(message.asks),
    )


def report_of(message: Message) -> ExecutionReport | None:
    """The execution report a gateway event is, or None (not a report)."""
    if isinstance(message, ex.OnFill):
        return Fill(
            order_id=message.order_id,
            trade_id=message.trade_id,
            symbol=message.instrument_symbol,
            side=side_of(message.side),
            price_units=units_of(message.price),
            quantity=message.quantity,
            remaining_quantity=message.remaining_quantity,
            aggressor=message.aggressor,
            timestamp=message.timestamp,
        )
    if isinstance(message, ex.OnOrderCancelled):
        return OrderCancelled(
            order_id=message.order_id,
            symbol=message.instrument_symbol,
            cancelled_quantity=message.cancelled_quantity,
            reason=CancelReason(message.reason),
            timestamp=message.timestamp,
            replaced_by_order_id=message.replaced_by_order_id,
        )
    if isinstance(message, ex.OnOrderAmended):
        return OrderAmended(
            order_id=message.order_id,
            symbol=message.instrument_symbol,
            price_units=units_of(message.price),
            quantity=message.quantity,
            priority_kept=message.priority_kept,
            previous_order_id=message.previous_order_id,
            timestamp=message.timestamp,
        )
    return None


def pnl_units(positions: Iterable[Position], valuations: Mapping[str, int] | None = None) -> int:
    """Sum of position x valuation + cash, in units: at each instrument's last trade price, or at
    `valuations` (symbol -> price units) for the symbols it names."""
    total = 0
    for position in positions:
        price = None if valuations is None else valuations.get(position.symbol)
        total += position.value_units(price)
    return total


def valuations_units(valuations: Mapping[str, float] | None) -> dict[str, int] | None:
    """Float valuations to exact units (ValueError for a price that is not finite)."""
    if valuations is None:
        return None
    out: dict[str, int] = {}
    for symbol, price in valuations.items():
        units = amount_to_units(abs(price))
        if units is None:
            raise ValueError(f"valuation of {symbol} is not a finite price: {price!r}")
        out[symbol] = units if price >= 0 else -units
    return out


# operations: one request each, from arguments to result -------------------------------

R = TypeVar("R")
A = TypeVar("A", bound=Message)


@dataclass(frozen=True, slots=True)
class Call(Generic[A, R]):
    """One operation's request: where it goes, what answers it, how the answer becomes its result.

    Both flavours run every operation this way (send `request` to `component`, await an `expect`),
    then hand the answer to `outcome`: the typed exception of its error, or the result.
    """

    component: ComponentName
    request: Message
    expect: type[A]
    what: str
    result: Callable[[A], R]
    order: bool = False

    def outcome(self, response: A) -> R:
        check(response, self.what, self.order)
        return self.result(response)


def _none(response: Message) -> None:
    return None


def create_instrument_call(
    symbol: str, tick_size: float, description: str = "", currency: str = "", multiplier: float = 0.0
) -> Call[admin_pb2.CreateInstrumentResponse, Instrument]:
    def result(response: admin_pb2.CreateInstrumentResponse) -> Instrument:
        return Instrument(
            symbol=symbol,
            tick_units=units_of(tick_size),
            order_book_id=response.order_book_id,
            created_timestamp=response.created_timestamp,
            description=description,
            currency=currency,
            multiplier=multiplier,
        )

    request = create_instrument_request(symbol, tick_size, description, currency, multiplier)
    return Call("admin", request, admin_pb2.CreateInstrumentResponse, f"create {symbol}", result)


def list_instruments_call(
    after_order_book_id: int = 0,
) -> Call[admin_pb2.ListInstrumentsResponse, tuple[list[Instrument], int]]:
    """One page of admin's list: (its instruments, the id to ask after for the next page, 0: none)."""

    def result(response: admin_pb2.ListInstrumentsResponse) -> tuple[list[Instrument], int]:
        page = [listed_instrument_of(entry) for entry in response.instruments]
        more = response.more and bool(page)
        return page, page[-1].order_book_id if more else 0

    request = admin_pb2.ListInstrumentsRequest(after_order_book_id=after_order_book_id)
    return Call("admin", request, admin_pb2.ListInstrumentsResponse, "list instruments", result)


def subscribe_call(symbol: str, depth_limit: int = 0) -> Call[info_pb2.OrderBookSubscribeResponse, None]:
    request = subscribe_request(symbol, depth_limit)
    return Call("info", request, info_pb2.OrderBookSubscribeResponse, f"subscribe {symbol}", _none)


def unsubscribe_call(symbol: str) -> Call[info_pb2.OrderBookUnsubscribeResponse, None]:
    request = unsubscribe_request(symbol)
    return Call("info", request, info_pb2.OrderBookUnsubscribeResponse, f"unsubscribe {symbol}", _none)


def trades_call(
    symbol: str, max_trades: int = 1000, before_trade_id: int = 0
) -> Call[info_pb2.TradesResponse, list[Trade]]:
    request = info_pb2.TradesRequest(
        instrument_symbol=symbol, max_trades=max_trades, before_trade_id=before_trade_id
    )

    def result(response: info_pb2.TradesResponse) -> list[Trade]:
        return [trade_of(t) for t in response.trades]

    return Call("info", request, info_pb2.TradesResponse, f"trades of {symbol}", result)


def insert_call(
    symbol: str,
    side: Side,
    price: float,
    quantity: int,
    time_in_force: TimeInForce = TimeInForce.GOOD_TILL_CANCEL,
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
) -> Call[ex.InsertOrderResponse, OrderResult]:
    request = insert_request(symbol, side, price, quantity, time_in_force, self_trade_prevention)
    return Call("gateway", request, ex.InsertOrderResponse, describe_insert(request), order_result, True)


def amend_call(
    symbol: str,
    order_id: int,
    quantity: int,
    price: float | None = None,
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.ALLOWED,
) -> Call[ex.AmendOrderResponse, OrderResult]:
    request = amend_request(symbol, order_id, quantity, price, self_trade_prevention)
    return Call("gateway", request, ex.AmendOrderResponse, f"amend order {order_id}", order_result, True)


def cancel_call(symbol: str, order_id: int) -> Call[ex.CancelOrderResponse, None]:
    request = ex.CancelOrderRequest(instrument_symbol=symbol, order_id=order_id)
    return Call("gateway", request, ex.CancelOrderResponse, f"cancel order {order_id}", _none, True)


def cancel_all_call(symbol: str = "") -> Call[ex.CancelAllOrdersResponse, list[int]]:
    def result(response: ex.CancelAllOrdersResponse) -> list[int]:
        return list(response.cancelled_order_ids)

    request = ex.CancelAllOrdersRequest(instrument_symbol=symbol)
    what = f"cancel all orders{' of ' + symbol if symbol else ''}"
    return Call("gateway", request, ex.CancelAllOrdersResponse, what, result, True)


def open_orders_call(symbol: str = "") -> Call[ex.GetOpenOrdersResponse, list[OpenOrder]]:
    request = ex.GetOpenOrdersRequest(instrument_symbol=symbol)
    return Call("gateway", request, ex.GetOpenOrdersResponse, "open orders", open_orders_of)


def positions_call(symbol: str = "") -> Call[ex.GetPositionsResponse, dict[str, Position]]:
    request = ex.GetPositionsRequest(instrument_symbol=symbol)
    return Call("gateway", request, ex.GetPositionsResponse, "positions", positions_of)


def subscribe_reports_call() -> Call[ex.SubscribeExecutionReportsResponse, None]:
    request = ex.SubscribeExecutionReportsRequest()
    what = "subscribe to execution reports"
    return Call("gateway", request, ex.SubscribeExecutionReportsResponse, what, _none)


def self_trade_prevention_call(
    mode: SelfTradePrevention,
) -> Call[risk_limits_pb2.SetSelfTradePreventionResponse, None]:
    request = risk_limits_pb2.SetSelfTradePreventionRequest(
        self_trade_prevention=cast(common_pb2.SelfTradePrevention, int(mode))
    )
    what = "set self-trade prevention"
    return Call("gateway", request, risk_limits_pb2.SetSelfTradePreventionResponse, what, _none)


def user_limits_call(
    max_outstanding_quantity: int = 0, message_rate: tuple[int, int] | None = None
) -> Call[risk_limits_pb2.SetUserRiskLimitsResponse, None]:
    request = user_limits_request(max_outstanding_quantity, message_rate)
    what = "set user risk limits"
    return Call("gateway", request, risk_limits_pb2.SetUserRiskLimitsResponse, what, _none)


def instrument_limits_call(
    symbol: str,
    max_outstanding_quantity: int = 0,
    max_outstanding_amount: float = 0.0,
    order_quantity: tuple[int, int] | None = None,
    order_amount: tuple[int, int] | None = None,
) -> Call[risk_limits_pb2.SetInstrumentRiskLimitsResponse, None]:
    request = instrument_limits_request(
        symbol, max_outstanding_quantity, max_outstanding_amount, order_quantity, order_amount
    )
    what = f"set risk limits of {symbol}"
    return Call("gateway", request, risk_limits_pb2.SetInstrumentRiskLimitsResponse, what, _none)


def barrier_call() -> Call[info_pb2.OrderBookSubscribeResponse, None]:
    """Info's barrier: a subscription to the empty symbol, which no instrument has. Info answers a
    subscription after its feed's barrier, having sent every instrument (and book) the order book had
    reported before, so its (refused) answer comes after each one whose creation anyone was told of.
    It changes nothing; its error is the point, and ignored."""
    request = info_pb2.OrderBookSubscribeRequest(instrument_symbol="", subscription_type=info_pb2.TOP_OF_BOOK)
    return Call("info", request, info_pb2.OrderBookSubscribeResponse, "barrier", _none)


# state ----------------------------------------------------------------------------


MarketUpdate = Instrument | PriceBook | Trade
"""What an info message changed, for the callbacks."""


@dataclass(slots=True)
class _Symbol:
    """What the SDK keeps of one subscribed instrument."""

    depth_limit: int
    book: PriceBook | None = None
    trades: collections.deque[Trade] = field(default_factory=collections.deque)
    last_trade_id: int = 0
    gap_from: int | None = None
    """After a reconnection until the backfill came: the last trade id before the gap."""
    seen_in_gap: set[int] = field(default_factory=set)


class MarketState:
    """Instruments, subscribed books and their trades, from info's messages (see the module docstring)."""

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self.instruments: dict[str, Instrument] = {}
        self._symbols: dict[str, _Symbol] = {}
        self.max_buffered = max_buffered
        self.dropped = 0
        """Trades dropped unpolled (a buffer held `max_buffered`)."""

    # subscriptions
    def subscribed(self, symbol: str) -> bool:
        return symbol in self._symbols

    def depth_limit(self, symbol: str) -> int:
        entry = self._symbols.get(symbol)
        return 0 if entry is None else entry.depth_limit

    def subscribed_symbols(self) -> list[str]:
        return list(self._symbols)

    def add_subscription(self, symbol: str, depth_limit: int) -> None:
        """Called once info accepted a subscription (its snapshot follows)."""
        entry = self._symbols.get(symbol)
        if entry is None:
            self._symbols[symbol] = _Symbol(depth_limit)
        else:
            entry.depth_limit = depth_limit

    def remove_subscription(self, symbol: str) -> None:
        self._symbols.pop(symbol, None)

    def connection_lost(self) -> None:
        """Info's connection dropped: no book is known until its snapshot comes again."""
        for entry in self._symbols.values():
            entry.book = None

    def resubscribe_requests(self) -> list[info_pb2.OrderBookSubscribeRequest]:
        """After a reconnection: the subscriptions to make again (the books wait for their snapshots)."""
        self.instruments.clear()
        requests = []
        for symbol, entry in self._symbols.items():
            entry.book = None
            entry.gap_from = entry.last_trade_id
            entry.seen_in_gap.clear()
            requests.append(subscribe_request(symbol, entry.depth_limit))
        return requests

    def backfill_request(self, symbol: str) -> info_pb2.TradesRequest:
        return info_pb2.TradesRequest(instrument_symbol=symbol, max_trades=BACKFILL_TRADES)

    def backfill(self, symbol: str, response: info_pb2.TradesResponse) -> list[Trade]:
        """The trades of a reconnection's gap: those after the last one seen before it, not seen live
        since (added to the buffer, in trade_id order, and returned for the callbacks)."""
        entry = self._symbols.get(symbol)
        if entry is None or entry.gap_from is None:
            return []
        start, seen = entry.gap_from, entry.seen_in_gap
        entry.gap_from = None
        missed = [trade_of(t) for t in response.trades if t.trade_id > start and t.trade_id not in seen]
        seen.clear()
        for trade in missed:
            self._buffer(entry, trade)
        return missed

    def end_gap(self, symbol: str) -> None:
        """A reconnection's backfill failed: live trades only from now on."""
        entry = self._symbols.get(symbol)
        if entry is not None:
            entry.gap_from = None
            entry.seen_in_gap.clear()

    # reading
    def book(self, symbol: str) -> PriceBook | None:
        entry = self._symbols.get(symbol)
        return None if entry is None else entry.book

    def poll_trades(self, symbol: str) -> list[Trade]:
        entry = self._symbols.get(symbol)
        if entry is None:
            return []
        trades = list(entry.trades)
        entry.trades.clear()
        return trades

    # info's messages
    def apply(self, message: Message) -> MarketUpdate | None:
        """Apply one info event; what it changed (None: nothing the SDK shows)."""
        if isinstance(message, info_pb2.OnPriceDepthBook):
            entry = self._symbols.get(message.instrument_symbol)
            if entry is None:
                return None
            entry.book = book_of(message)
            return entry.book
        if isinstance(message, info_pb2.OnTrade):
            entry = self._symbols.get(message.instrument_symbol)
            if entry is None:
                return None
            trade = trade_of(message)
            if entry.gap_from is not None:
                entry.seen_in_gap.add(trade.trade_id)
            self._buffer(entry, trade)
            return trade
        if isinstance(message, info_pb2.OnInstrument):
            instrument = instrument_of(message)
            self.instruments[instrument.symbol] = instrument
            return instrument
        return None

    def _buffer(self, entry: _Symbol, trade: Trade) -> None:
        if trade.trade_id > entry.last_trade_id:
            entry.last_trade_id = trade.trade_id
        if len(entry.trades) >= self.max_buffered:
            entry.trades.popleft()
            self.dropped += 1
        entry.trades.append(trade)


class AccountState:
    """The user's execution reports, buffered until polled."""

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self.wants_reports = False
        """Execution reports subscribed (made again after a reconnection)."""
        self._fills: collections.deque[Fill] = collections.deque()
        self._reports: collections.deque[ExecutionReport] = collections.deque()
        self.max_buffered = max_buffered
        self.dropped = 0

    def apply(self, message: Message) -> ExecutionReport | None:
        report = report_of(message)
        if report is None:
            return None
        if isinstance(report, Fill):
            if len(self._fills) >= self.max_buffered:
                self._fills.popleft()
                self.dropped += 1
            self._fills.append(report)
        if len(self._reports) >= self.max_buffered:
            self._reports.popleft()
        self._reports.append(report)
        return report

    def poll_fills(self) -> list[Fill]:
        fills = list(self._fills)
        self._fills.clear()
        return fills

    def poll_reports(self) -> list[ExecutionReport]:
        reports = list(self._reports)
        self._reports.clear()
        return reports
