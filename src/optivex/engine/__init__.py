"""The matching engine: pure Python, integer prices (units), no I/O and no clock.

``Exchange`` holds every book of the day and validates requests; it is a
``Books``, whose ``insert``/``cancel`` are the one hot path of every book;
``OrderBook`` is one fast price-time book; ``NaiveOrderBook`` a slow obvious
one used as a test oracle. ``check_integrity`` raises ``BookIntegrityError``.
The trader extensions (off the hot path): ``Books.place`` (time in force
``GTC``/``IOC``/``FOK``, self-trade prevention ``STP_*``) returning a
``Placement``, ``Books.amend`` returning an ``Amendment``, and
``Books.cancel_orders`` (mass cancel).
"""

from optivex.engine.book import Books, OrderBook
from optivex.engine.exchange import Exchange, valid_symbol
from optivex.engine.naive import NaiveOrderBook
from optivex.engine.types import (
    BUY,
    FILL_MAKER_ORDER_ID,
    FILL_MAKER_OWNER,
    FILL_PRICE,
    FILL_QUANTITY,
    FILL_TRADE_ID,
    FOK,
    GTC,
    IOC,
    SELF_TRADE_PREVENTIONS,
    SELL,
    STP_ALLOW,
    STP_CANCEL_INCOMING,
    STP_CANCEL_RESTING,
    TIMES_IN_FORCE,
    Amendment,
    BookId,
    BookInfo,
    BookIntegrityError,
    Fill,
    Order,
    OrderId,
    Placement,
    Price,
    Quantity,
    Rejected,
    Side,
    Timestamp,
    TradeId,
)

__all__ = [
    "BUY",
    "FILL_MAKER_ORDER_ID",
    "FILL_MAKER_OWNER",
    "FILL_PRICE",
    "FILL_QUANTITY",
    "FILL_TRADE_ID",
    "FOK",
    "GTC",
    "IOC",
    "SELF_TRADE_PREVENTIONS",
    "SELL",
    "STP_ALLOW",
    "STP_CANCEL_INCOMING",
    "STP_CANCEL_RESTING",
    "TIMES_IN_FORCE",
    "Amendment",
    "BookId",
    "BookInfo",
    "BookIntegrityError",
    "Books",
    "Exchange",
    "Fill",
    "NaiveOrderBook",
    "Order",
    "OrderBook",
    "OrderId",
    "Placement",
    "Price",
    "Quantity",
    "Rejected",
    "Side",
    "Timestamp",
    "TradeId",
    "valid_symbol",
]
