"""The order book's own account of a day, to hold info's streams against.

A logged-in order_book connection receives every event of the day (section 3 of the contract).
`OrderBookDay` applies them to a `BookMirror` (the rules info's feed follows) and keeps, for each
instrument, its trades and every consistent state its book went through, as info shows it (top of
book, price depth, prices as doubles). Info may skip states (conflation) but never invent or reorder
them: `assert_follows` checks a subscriber's book messages against that list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import Message

from optivex.feed.events import apply_event
from optivex.feed.mirror import BUY, SELL, BookMirror, MirrorBook
from optivex.proto import info_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.units import units_to_price

from .helpers import Exchange, until_barrier
from .test_info import Depth, Top

S = TypeVar("S")


def shown_by(book: MirrorBook) -> tuple[Top, Depth]:
    """What a top-of-book and a depth subscription show of a mirrored book."""
    bids = [(units_to_price(price), quantity) for price, quantity in book.levels(BUY)]
    asks = [(units_to_price(price), quantity) for price, quantity in book.levels(SELL)]
    return (bids[0] if bids else None, asks[0] if asks else None), (bids, asks)


class OrderBookDay:
    """The day as the order book told it to a connection that logged in before anything happened."""

    def __init__(self, exchange: Exchange, login: str = "day watcher") -> None:
        self.client = exchange.order_book(login)
        self.mirror = BookMirror()
        self.tops: dict[str, list[tuple[Top, int]]] = {}
        """Per symbol, each consistent top of book in order (consecutive repeats once), with how many
        of the symbol's trades came before it."""
        self.depths: dict[str, list[tuple[Depth, int]]] = {}
        """The same for the price depth."""
        self.trades: dict[str, list[ob.OnTrade]] = {}
        """Per symbol, its trades in matching order."""

    def catch_up(self, states: bool = True) -> OrderBookDay:
        """Apply every event the order book sent this connection before it answered a barrier.

        With `states` False only each book's state at the end is recorded, not every state on the way
        (a set-up of thousands of orders on one book would cost a copy of the book per order).
        """
        mirror = self.mirror
        touched: dict[str, MirrorBook] = {}
        for event in until_barrier(self.client):
            change = apply_event(mirror, event)
            if change is None:
                continue
            book = mirror.book(change.book_id)
            assert book is not None
            symbol = book.symbol
            if symbol is None:
                continue
            trades = self.trades.setdefault(symbol, [])
            if isinstance(event, ob.OnTrade):
                trades.append(event)
            if not states:
                touched[symbol] = book
            elif book.consistent:
                self._record(symbol, book)
        for symbol, book in touched.items():
            assert book.consistent, f"{symbol} is in the middle of a sweep after a barrier"
            self._record(symbol, book)
        return self

    def _record(self, symbol: str, book: MirrorBook) -> None:
        top, depth = shown_by(book)
        trades = len(self.trades.get(symbol, ()))
        _append_new(self.tops.setdefault(symbol, []), top, trades)
        _append_new(self.depths.setdefault(symbol, []), depth, trades)

    def top(self, symbol: str) -> Top:
        """The top of book as it is now (as of the last `catch_up`)."""
        return self.tops[symbol][-1][0]

    def depth(self, symbol: str) -> Depth:
        return self.depths[symbol][-1][0]

    def trade_ids(self, symbol: str) -> list[int]:
        return [t.trade_id for t in self.trades.get(symbol, [])]


def _append_new(states: list[tuple[S, int]], state: S, trades: int) -> None:
    if not states or states[-1][0] != state:
        states.append((state, trades))


def assert_follows(shown: Sequence[tuple[S, int]], states: Sequence[tuple[S, int]], what: str) -> None:
    """Each state a subscriber was shown (with how many of the symbol's trades it had received before
    it) is one of the book's consistent `states`, in the book's order, and came after the trades that
    led to it: states may be skipped (conflation), never invented, reordered or shown early."""
    j = 0
    for i, (state, received) in enumerate(shown):
        while j < len(states) and states[j][0] != state:
            j += 1
        assert j < len(states), f"{what}: message {i} shows {state}, not a later state of the book"
        assert received >= states[j][1], (
            f"{what}: message {i} shows a state after {states[j][1]} trades, only {received} received"
        )


def book_states(
    messages: Sequence[Message],
    symbol: str,
    kind: type[info_pb2.OnTopOfBook] | type[info_pb2.OnPriceDepthBook],
) -> list[tuple[Message, int]]:
    """A subscriber's book messages of one symbol and type, each with the count of the symbol's
    OnTrade messages it had received before it."""
    trades = 0
    out: list[tuple[Message, int]] = []
    for message in messages:
        if isinstance(message, info_pb2.OnTrade) and message.instrument_symbol == symbol:
            trades += 1
        elif isinstance(message, kind) and message.instrument_symbol == symbol:
            out.append((message, trades))
    return out
