"""How a component follows the order book: a pure mirror and the asyncio follower that feeds it.

- ``mirror``: ``BookMirror``, the books, resting orders (with owners) and level
  totals rebuilt from the order book's events; pure, integers inside.
- ``follower``: ``Feed``, which connects, logs in, applies the login replay and
  the live events to a mirror, reconnects with a fresh replay, and offers
  ``barrier()``.
"""

from optivex.feed.mirror import (
    BookCreated,
    BookMirror,
    Change,
    Instrument,
    LevelChange,
    MirrorBook,
    MirrorError,
    MirrorOrder,
    OrderAmended,
    OrderCancelled,
    OrderInserted,
    TradeApplied,
)

__all__ = [
    "BookCreated",
    "BookMirror",
    "Change",
    "Instrument",
    "LevelChange",
    "MirrorBook",
    "MirrorError",
    "MirrorOrder",
    "OrderAmended",
    "OrderCancelled",
    "OrderInserted",
    "TradeApplied",
]
