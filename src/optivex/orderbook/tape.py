"""The day's trades of each order book, kept for the TradesRequest extension (pure).

A late joiner (info's TradesRequest, proto/info.proto) must be able to draw
the tape: the trades of an instrument so far today. The order book is the
one place that sees every trade, so it keeps them, and followers (info, any
number of them) ask it rather than keep state of their own.

Per book a ``Tape`` holds the most recent ``TRADES_KEPT_PER_BOOK`` trades,
oldest first, each a plain tuple of ints (``TapeTrade``); older ones are
dropped as new ones come (a bounded deque), and the tape remembers the
book's first trade id so that it can tell a reader that the day had older
trades than those kept (``Page.truncated``). Trade ids are strictly
increasing within a book (the engine numbers trades across all books).

Cost: recording is one ``deque.extend`` per insert that traded (about
0.1-0.2 us a trade); memory is about 120 bytes a kept trade (the tuple; its
ints are shared with the engine's fill), so at most about 12 MB per book.
A restart is a new day: the component starts with no tapes.

Reading (``Tape.page``): the latest ``max_trades`` trades with an id below
``before_trade_id`` (0: no bound), oldest first, at most
``MAX_TRADES_PER_RESPONSE``; ``more`` says older kept trades exist (ask
again with ``before_trade_id`` = the first id returned).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from itertools import islice
from operator import itemgetter
from typing import NamedTuple, TypeAlias

TRADES_KEPT_PER_BOOK = 100_000
"""Most recent trades kept per book (about 12 MB at most); older ones are dropped, and answers say so."""
MAX_TRADES_PER_RESPONSE = 1_000
"""Trades in one TradesResponse at most (a larger or unset max_trades is capped to it). Building a
response costs the order book about 1.3 us a trade (protobuf), time its matching waits: 1.3 ms for a
full page, 13 ms for 10,000, hence the cap (page back for more). 1,000 trades with every field at its
largest encode to 69 KB here, 73 KB in info's answer, far under wire.MAX_FRAME_LENGTH (1 MiB; at most
14,000 would fit): tests/unit/test_tape.py checks it."""

TapeTrade: TypeAlias = tuple[int, int, int, int, int, int, int]
"""``(trade_id, timestamp, buy_order_id, sell_order_id, price_units, quantity, aggressor_side)``."""


class Page(NamedTuple):
    """One answer: trades oldest first, whether older kept ones exist, whether older ones were dropped."""

    trades: list[TapeTrade]
    more: bool
    """Older trades (below the first one returned) are kept: page back with before_trade_id = its id."""
    truncated: bool
    """``more`` is False, yet the day had older trades below ``before_trade_id`` that are no longer
    kept (past TRADES_KEPT_PER_BOOK)."""


def page_error(before_trade_id: int, max_trades: int) -> str:
    """The error_message for invalid paging arguments, or '' when they are valid."""
    if before_trade_id < 0:
        return f"invalid before_trade_id {before_trade_id}: it must be >= 0 (0: no bound)"
    if max_trades < 0:
        return f"invalid max_trades {max_trades}: it must be >= 0 (0: up to {MAX_TRADES_PER_RESPONSE})"
    return ""


class Tape:
    """The kept trades of one book; see the module docstring."""

    __slots__ = ("first_trade_id", "trades")

    def __init__(self, kept: int = TRADES_KEPT_PER_BOOK) -> None:
        self.trades: deque[TapeTrade] = deque(maxlen=kept)
        """The kept trades, oldest first (the oldest dropped when full)."""
        self.first_trade_id = 0
        """The book's first trade id of the day (0 before it); a later oldest kept one: some dropped."""

    def record(self, trades: Sequence[TapeTrade]) -> None:
        """Append one insert's trades (ids increasing, above every trade kept)."""
        if not self.first_trade_id and trades:
            self.first_trade_id = trades[0][0]
        self.trades.extend(trades)

    @property
    def dropped(self) -> bool:
        """Whether older trades of the day were dropped (the tape no longer starts at the first)."""
        kept = self.trades
        return bool(kept) and kept[0][0] != self.first_trade_id

    def page(self, before_trade_id: int = 0, max_trades: int = 0) -> Page:
        """The latest trades below ``before_trade_id`` (0: no bound), at most ``max_trades`` (0 or more
        than MAX_TRADES_PER_RESPONSE: MAX_TRADES_PER_RESPONSE), oldest first.

        Arguments must be valid (``page_error``).
        """
        limit = MAX_TRADES_PER_RESPONSE if not max_trades else min(max_trades, MAX_TRADES_PER_RESPONSE)
        kept = self.trades
        end = len(kept) if before_trade_id == 0 else bisect_left(kept, before_trade_id, key=itemgetter(0))
        start = max(0, end - limit)
        trades = list(islice(kept, start, end))
        more = start > 0
        truncated = (
            not more and self.dropped and (before_trade_id == 0 or self.first_trade_id < before_trade_id)
        )
        return Page(trades, more, truncated)
