"""The matching engine: pure Python, integer prices (units), no I/O and no clock.

``Exchange`` holds every book of the day and validates requests; ``OrderBook``
is one fast price-time book; ``NaiveOrderBook`` a slow obvious one used as a
test oracle.
"""

from optivex.engine.book import OrderBook
from optivex.engine.exchange import Exchange, valid_symbol
from optivex.engine.naive import NaiveOrderBook
from optivex.engine.types import (
    BUY,
    FILL_MAKER_ORDER_ID,
    FILL_MAKER_OWNER,
    FILL_PRICE,
    FILL_QUANTITY,
    FILL_TRADE_ID,
    SELL,
    BookInfo,
    Fill,
    Order,
    Rejected,
    Side,
)

__all__ = [
    "BUY",
    "FILL_MAKER_ORDER_ID",
    "FILL_MAKER_OWNER",
    "FILL_PRICE",
    "FILL_QUANTITY",
    "FILL_TRADE_ID",
    "SELL",
    "BookInfo",
    "Exchange",
    "Fill",
    "NaiveOrderBook",
    "Order",
    "OrderBook",
    "Rejected",
    "Side",
    "valid_symbol",
]
