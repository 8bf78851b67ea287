"""What the SDK hands its users: plain, immutable data in exact integers, floats only at the edge.

Prices, cash and PnL are kept as integers of 0.0001 (``*_units``, as
`optivex.units` does inside the exchange); each has a float property (its
``units / 10000`` double, so at most 4 decimals) for people. Enumerations
carry the proto's values, so ``Side.BUY == common_pb2.BUY``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from optivex.units import price_to_units, units_to_price


class Side(enum.IntEnum):
    """The side of an order (proto ``Side``)."""

    BUY = 0
    SELL = 1


class TimeInForce(enum.IntEnum):
    """How long an order may wait in the book (proto ``TimeInForce``)."""

    GOOD_TILL_CANCEL = 0
    IMMEDIATE_OR_CANCEL = 1
    FILL_OR_KILL = 2


class SelfTradePrevention(enum.IntEnum):
    """What an order does when it would trade with one of its user's (proto ``SelfTradePrevention``).

    ALLOWED on an order means "the user's setting" (`set_self_trade_prevention`).
    """

    ALLOWED = 0
    CANCEL_RESTING = 1
    CANCEL_INCOMING = 2


class CancelReason(enum.IntEnum):
    """Why an order left the book without trading (proto ``CancelReason``)."""

    REQUESTED = 0
    IMMEDIATE_OR_CANCEL = 1
    SELF_TRADE = 2
    MASS = 3
    DISCONNECT = 4
    REPLACED = 5
    AMENDED = 6


@dataclass(frozen=True, slots=True)
class Instrument:
    """An instrument of the day, as info announced it."""

    symbol: str
    tick_units: int
    order_book_id: int
    created_timestamp: int
    description: str = ""
    currency: str = ""
    multiplier: float = 0.0

    @property
    def tick_size(self) -> float:
        return units_to_price(self.tick_units)

    def to_tick(self, price: float, side: Side | None = None) -> float:
        """`price` on this instrument's tick: down for a BUY (never pay more), up for a SELL, to the
        nearest tick for None (ties down). Computed in units (ValueError if not a finite price)."""
        units = price_to_units(price)
        if units is None:
            raise ValueError(f"price {price!r} is not a finite price")
        tick = self.tick_units
        down = units - units % tick
        if units == down or side == Side.BUY:
            return units_to_price(down)
        if side == Side.SELL or units - down > tick // 2:
            return units_to_price(down + tick)
        return units_to_price(down)


@dataclass(frozen=True, slots=True)
class PriceLevel:
    """One price level of a book: its price and the total quantity resting there."""

    price_units: int
    quantity: int

    @property
    def price(self) -> float:
        return units_to_price(self.price_units)


@dataclass(frozen=True, slots=True)
class PriceBook:
    """An instrument's book as info last published it: bids best (highest) first, asks best (lowest) first."""

    symbol: str
    timestamp: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]

    @property
    def best_bid(self) -> PriceLevel | None:
        return self.bids[0] if self.bids else None

    @property
    def best_ask(self) -> PriceLevel | None:
        return self.asks[0] if self.asks else None

    @property
    def mid_units(self) -> int | None:
        """The mid between the best bid and ask, in units (rounded down); None unless both sides show."""
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price_units + self.asks[0].price_units) // 2

    @property
    def mid(self) -> float | None:
        units = self.mid_units
        return None if units is None else units_to_price(units)


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade on an instrument (anyone's), as info published it."""

    trade_id: int
    symbol: str
    timestamp: int
    price_units: int
    quantity: int
    aggressor_side: Side

    @property
    def price(self) -> float:
        return units_to_price(self.price_units)


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade of one of my orders (an execution report)."""

    order_id: int
    trade_id: int
    symbol: str
    side: Side
    price_units: int
    quantity: int
    remaining_quantity: int
    aggressor: bool
    timestamp: int

    @property
    def price(self) -> float:
        return units_to_price(self.price_units)


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """One of my orders left the book without trading (an execution report)."""

    order_id: int
    symbol: str
    cancelled_quantity: int
    reason: CancelReason
    timestamp: int
    replaced_by_order_id: int = 0


@dataclass(frozen=True, slots=True)
class OrderAmended:
    """One of my orders was amended (an execution report); `order_id` is its id now."""

    order_id: int
    symbol: str
    price_units: int
    quantity: int
    priority_kept: bool
    previous_order_id: int
    timestamp: int

    @property
    def price(self) -> float:
        return units_to_price(self.price_units)


ExecutionReport = Fill | OrderCancelled | OrderAmended
"""What the gateway reports of my orders once subscribed."""


@dataclass(frozen=True, slots=True)
class OrderResult:
    """The outcome of an accepted insert or amend.

    ``quantity == traded_quantity + resting_quantity + cancelled_quantity`` of the order (for an amend:
    of its new open quantity).
    """

    order_id: int
    timestamp: int
    trade_ids: tuple[int, ...]
    traded_quantity: int
    resting_quantity: int
    cancelled_quantity: int
    priority_kept: bool = False
    """Amends only: the order kept its id and time priority."""


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """One of my resting orders."""

    order_id: int
    symbol: str
    side: Side
    price_units: int
    quantity: int
    remaining_quantity: int
    timestamp: int

    @property
    def price(self) -> float:
        return units_to_price(self.price_units)


@dataclass(frozen=True, slots=True)
class Position:
    """My day on one instrument, from the gateway's ledger, in exact integers.

    ``cash_units`` is sells minus buys (price x quantity, in units); the value of the position at a
    price is ``position * price + cash`` (`value_units`).
    """

    symbol: str
    position: int
    cash_units: int
    bought_quantity: int
    sold_quantity: int
    traded_volume: int
    realised_pnl_units: int
    last_trade_price_units: int
    """The instrument's last trade price, anyone's (0: no trade yet)."""

    @property
    def cash(self) -> float:
        return units_to_price(self.cash_units)

    @property
    def realised_pnl(self) -> float:
        return units_to_price(self.realised_pnl_units)

    @property
    def last_trade_price(self) -> float:
        return units_to_price(self.last_trade_price_units)

    def value_units(self, price_units: int | None = None) -> int:
        """position x price + cash, in units; at the last trade price unless a price is given."""
        price = self.last_trade_price_units if price_units is None else price_units
        return self.position * price + self.cash_units


ComponentName = Literal["admin", "info", "gateway"]


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A connection of the SDK was lost, or restored (logged in again, resubscribed, books rebuilt).

    `kind` "lost": `detail` says why; requests through it raise ConnectionLost until it is restored.
    "restored": the SDK is logged in again; on info every subscription was made again and its books
    are the fresh snapshots; on the gateway the execution reports are subscribed again (fills made
    while it was away are not reported; `positions()` counts them, unless the gateway itself
    restarted: its ledger then starts empty). "failed": a restored connection could not
    resubscribe (`detail` says what; for example an instrument that no longer exists after the
    order book's restart).
    """

    component: ComponentName
    kind: Literal["lost", "restored", "failed"]
    detail: str = ""


def side_of(value: int) -> Side:
    """The Side of a proto side value."""
    return Side.SELL if value == Side.SELL else Side.BUY
