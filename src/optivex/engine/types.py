"""Engine data types: ids, prices and quantities, sides, orders, fills, book descriptions, errors.

Everything here is plain data of integers. The ``NewType``s below tell them
apart for the type checker only (at run time each is a plain ``int``): a
``Price`` is an int of 0.0001 "units" (see ``optivex.units``), a
``Quantity`` a count, ``Timestamp`` int nanoseconds, and the ids are the
engine's global, increasing numbers. The engine's validating entry points
(``Exchange.create_book``, ``insert``, ``cancel``) take plain ints: that is
where outside values become these types.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Final, NamedTuple, NewType, TypeAlias

Price = NewType("Price", int)
"""A price in units of 0.0001 (also a tick size): 0 < price <= ``units.MAX_UNITS`` once validated."""
Quantity = NewType("Quantity", int)
"""A quantity of an order or a trade: 1 .. 2**31-1 once validated (0 only as a remaining quantity)."""
OrderId = NewType("OrderId", int)
"""An order id: global to the exchange, from 1, strictly increasing in arrival order."""
TradeId = NewType("TradeId", int)
"""A trade id: global to the exchange, from 1, strictly increasing."""
BookId = NewType("BookId", int)
"""An order book id: from 1, increasing."""
Timestamp = NewType("Timestamp", int)
"""Nanoseconds since the epoch; stored by the engine, never compared."""

BUY: Final = 0
"""The buy side, as a plain int (the hot path compares ints)."""
SELL: Final = 1
"""The sell side, as a plain int."""


GTC: Final = 0
"""Time in force good-till-cancelled: the rest of the order rests (the contract's only kind)."""
IOC: Final = 1
"""Time in force immediate-or-cancel: what does not trade at once is cancelled."""
FOK: Final = 2
"""Time in force fill-or-kill: the whole quantity trades at once, or the order is rejected."""
TIMES_IN_FORCE: Final = (GTC, IOC, FOK)
"""The valid time-in-force values (equal to the protobuf enum ``TimeInForce``)."""

STP_ALLOW: Final = 0
"""Self-trade prevention off: an order may trade with its owner's resting orders (the contract's rule)."""
STP_CANCEL_RESTING: Final = 1
"""Self-trade prevention: a resting order of the same owner met in matching is cancelled; matching goes on."""
STP_CANCEL_INCOMING: Final = 2
"""Self-trade prevention: matching stops at the first resting order of the same owner; the rest cancelled."""
SELF_TRADE_PREVENTIONS: Final = (STP_ALLOW, STP_CANCEL_RESTING, STP_CANCEL_INCOMING)
"""The valid self-trade prevention values (equal to the protobuf enum ``SelfTradePrevention``)."""


class Side(IntEnum):
    """The two sides, for readability; values equal ``BUY``/``SELL`` and the protobuf enum."""

    BUY = 0
    SELL = 1


class Order:
    """One limit order of one book.

    ``quantity`` is the original quantity; ``remaining`` what is still open:
    while the order rests it is the resting quantity, once fully filled it is
    0, and once cancelled it keeps the quantity that the cancel removed (so
    ``quantity - remaining`` is the traded quantity). Two extensions bend
    this: an amend down lowers ``quantity`` with ``remaining`` (the traded
    quantity stays ``quantity - remaining``), and a new order whose rest
    ``Books.place`` cancelled at once (IOC, STP_CANCEL_INCOMING) has
    ``remaining`` 0, that rest being ``Placement.cancelled`` (traded =
    ``quantity - remaining - cancelled``; ``traded`` below does not know it).

    The engine builds orders itself, in ``Books.insert`` (``Order()`` then plain
    stores: a Python ``__init__`` call costs more than the stores); use
    ``Order.create`` elsewhere.
    ``_prev``/``_next``/``_level`` belong to the book holding the order: its
    neighbours in the price level's FIFO (``None`` once the order left the
    book, so a dead order pins nothing) and that level (left stale: an empty
    level pins nothing either).
    """

    __slots__ = (
        "_level",
        "_next",
        "_prev",
        "book_id",
        "order_id",
        "owner",
        "price",
        "quantity",
        "remaining",
        "side",
        "timestamp",
    )

    order_id: OrderId
    book_id: BookId
    side: int
    price: Price
    quantity: Quantity
    remaining: Quantity
    owner: str
    timestamp: Timestamp
    _prev: Order | None
    _next: Order | None
    _level: Level | None

    @classmethod
    def create(
        cls,
        order_id: int,
        book_id: int,
        side: int,
        price: int,
        quantity: int,
        owner: str,
        timestamp: int,
        remaining: int | None = None,
    ) -> Order:
        """A new order outside any book (``remaining`` defaults to ``quantity``), from plain ints."""
        order = cls()
        order.order_id, order.book_id, order.side, order.owner = (
            OrderId(order_id),
            BookId(book_id),
            side,
            owner,
        )
        order.price, order.quantity, order.timestamp = Price(price), Quantity(quantity), Timestamp(timestamp)
        order.remaining = Quantity(quantity if remaining is None else remaining)
        order._prev = order._next = order._level = None
        return order

    @property
    def traded(self) -> Quantity:
        """Quantity traded so far (``quantity - remaining``; see above for an order placed IOC)."""
        return Quantity(self.quantity - self.remaining)

    def __repr__(self) -> str:
        return (
            f"Order(id={self.order_id}, book={self.book_id}, side={'BUY' if self.side == BUY else 'SELL'}, "
            f"price={self.price}, quantity={self.quantity}, remaining={self.remaining}, "
            f"owner={self.owner!r}, timestamp={self.timestamp})"
        )


class Level:
    """One price level of a book (internal to ``OrderBook``): a linked FIFO of its orders.

    ``head`` is the oldest order, ``tail`` the newest, both None when the level
    is empty. The level's total quantity is not kept (nothing on the hot path
    needs it): ``OrderBook.levels``/``best`` add it up when asked.
    """

    __slots__ = ("head", "tail")

    def __init__(self, order: Order) -> None:
        self.head: Order | None = order
        self.tail: Order | None = order


Fill: TypeAlias = tuple[TradeId, OrderId, str, Price, Quantity]
"""One trade caused by an incoming order, as a plain tuple (cheapest to build):
``(trade_id, maker_order_id, maker_owner, price, quantity)``.

``price`` is the resting (maker) order's price in units. The taker is the
order that ``insert`` returned alongside the fills; the aggressor side is its
side. Unpack it: ``trade_id, maker_id, maker_owner, price, qty = fill``.
"""

FILL_TRADE_ID: Final = 0
FILL_MAKER_ORDER_ID: Final = 1
FILL_MAKER_OWNER: Final = 2
FILL_PRICE: Final = 3
FILL_QUANTITY: Final = 4


class Placement(NamedTuple):
    """What ``Books.place`` did with an order.

    ``order`` is the new order; its ``remaining`` is what rests (0 if nothing
    rests: filled in full, or its rest cancelled at once). ``fills`` as
    ``insert``'s. ``self_cancelled``: the resting orders of the same owner
    that ``STP_CANCEL_RESTING`` removed, in matching order, each with
    ``remaining`` = the quantity the cancel removed. ``cancelled``: the
    quantity of the new order cancelled at once (the rest of an IOC, or
    what ``STP_CANCEL_INCOMING`` stopped), so that
    ``order.quantity == traded + order.remaining + cancelled`` (the traded
    quantity is ``order.quantity - order.remaining - cancelled``).
    """

    order: Order
    fills: Sequence[Fill]
    self_cancelled: list[Order]
    cancelled: Quantity


class Amendment(NamedTuple):
    """What ``Books.amend`` did.

    Reduced in place (same price, smaller quantity): ``order`` is the amended
    order itself (same id, priority and timestamp), ``replaced`` None,
    ``priority_kept`` True, no fills or cancels. Replaced (a larger quantity
    or a new price): ``replaced`` is the old order (removed from its book,
    ``remaining`` = what it had), ``order`` the new one (new id, at the back
    of its level), placed as by ``place(..., GTC, stp)`` with its
    ``fills``, ``self_cancelled`` and ``cancelled`` as in a ``Placement``.
    ``previous_remaining`` is the old order's open quantity before the amend.
    """

    order: Order
    replaced: Order | None
    priority_kept: bool
    previous_remaining: Quantity
    fills: Sequence[Fill]
    self_cancelled: list[Order]
    cancelled: Quantity


class BookInfo(NamedTuple):
    """One book of the day: its id, tick (units), instrument symbol (or None), creation time."""

    book_id: BookId
    tick: Price
    symbol: str | None
    timestamp: Timestamp


class Rejected(Exception):
    """A request the engine refused; ``message`` (also ``str(exc)``) is the human-readable reason.

    A rejected request changed nothing.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BookIntegrityError(Exception):
    """An invariant of a book (or of the exchange) does not hold: raised by ``check_integrity``.

    An exception, not an ``assert``: the checks must report under ``python -O`` too.
    """
