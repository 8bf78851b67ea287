"""What the web page shows, and what each browser still lacks of it: pure, integers inside.

No asyncio, no protobuf, no clock. The follower of info (``web.follower``)
turns info's messages into calls on ``Market``: ``listed`` (OnInstrument),
``book`` (OnPriceDepthBook, prices in units), ``trade`` (OnTrade),
``trades_loaded`` (a TradesResponse: the trades a late joiner missed),
``retain`` (after a reconnection, the instruments info still has) and
``set_connected``. Every change bumps ``Market.version``.

A browser is a ``Viewer``: what it was last sent. ``Market.update(viewer)``
is the JSON text of everything that changed since (None when nothing did),
so a browser that is sent one update every 100 ms gets the latest state of
each book however many changes it had meanwhile: coalescing is a property
of the diff, nothing is queued per browser. Book and trade fragments are
encoded once and shared by every viewer.

Messages (compact JSON; prices are strings with the instrument's decimals):

- ``{"t":"s", ...}``: a snapshot, which replaces whatever the browser
  holds: the first message, and whenever instruments disappeared (a
  reconnection to info, a new day);
- ``{"t":"u", ...}``: an update: instruments added or changed.

Both carry ``"c"`` (connected to info), ``"h"`` (instruments beyond
``max_instruments``, not shown) and ``"i"``: symbol -> entry, where an
entry holds ``"l"`` (listing: order_book_id, tick, decimals) when the
instrument is new to the browser, ``"b"`` (the book: ``{"b":[[price,qty],...],
"a":[...]}``, best first) when it changed, and ``"tr"`` (trades, oldest
first, each ``[trade_id, ms since the epoch, price, quantity, "B"|"S"]``
for the aggressor) with ``"r": true`` when they replace the browser's tape
rather than extend it.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from optivex.units import UNITS_PER_ONE

DEFAULT_DEPTH = 10
"""Levels per side a book shows (the info subscription's depth_limit)."""
DEFAULT_TRADES_KEPT = 50
"""Trades per instrument kept and shown (the latest)."""
DEFAULT_MAX_INSTRUMENTS = 100
"""Instruments shown; later ones are counted, not followed."""

BUY = 0
SELL = 1
"""common.proto's Side values."""

Level = tuple[int, int]
"""(price in units, quantity)."""


class Trade(NamedTuple):
    trade_id: int
    timestamp: int
    """Nanoseconds since the epoch (the order book's clock)."""
    price: int
    quantity: int
    aggressor_side: int


class Listing(NamedTuple):
    symbol: str
    order_book_id: int
    tick: int
    """Tick size in units."""
    created_timestamp: int


class Listed(Enum):
    """What an OnInstrument meant."""

    NEW = "new"
    """A new instrument: subscribe to it."""
    SAME = "same"
    """Known already (a reconnection's login burst): subscribe again, as on a fresh connection."""
    NEW_DAY = "new day"
    """The order book started a new day (a symbol or book id came again, otherwise than before):
    every earlier instrument is forgotten; subscribe to this one."""
    HIDDEN = "hidden"
    """Beyond max_instruments: not followed."""


def decimals_of(tick: int) -> int:
    """Decimals a price of this tick needs (0 to 4): tick 500 (0.05) -> 2."""
    decimals = 4
    while decimals and tick % 10 == 0:
        tick //= 10
        decimals -= 1
    return decimals


def format_price(units: int, decimals: int) -> str:
    """Exact decimal text of a price in units with `decimals` decimals (all 4 if it needs them)."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), UNITS_PER_ONE)
    digits = f"{fraction:04d}"
    if digits[decimals:].strip("0"):  # off the tick's grid: every decimal
        decimals = 4
    return f"{sign}{whole}.{digits[:decimals]}" if decimals else f"{sign}{whole}"


@dataclass
class Instrument:
    """One instrument's state, and when it last changed (market versions)."""

    listing: Listing
    decimals: int
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    trades: list[Trade] = field(default_factory=list)
    """The latest trades, by trade_id (matching order)."""
    trade_texts: list[str] = field(default_factory=list)
    """Each trade's JSON, parallel to `trades`."""
    changed: int = 0
    book_changed: int = 0
    tape_epoch: int = 0
    """Bumped when the tape changed otherwise than by new trades at its end: viewers get it whole."""
    _listing_text: str = ""
    _book_text: str = ""
    _book_text_version: int = -1

    def listing_text(self) -> str:
        if not self._listing_text:
            self._listing_text = json.dumps(
                {"id": self.listing.order_book_id, "tick": self.listing.tick, "d": self.decimals},
                separators=(",", ":"),
            )
        return self._listing_text

    def book_text(self) -> str:
        """The book's JSON, encoded once per change."""
        if self._book_text_version != self.book_changed:
            d = self.decimals
            bids = ",".join(f'["{format_price(p, d)}",{q}]' for p, q in self.bids)
            asks = ",".join(f'["{format_price(p, d)}",{q}]' for p, q in self.asks)
            self._book_text = f'{{"b":[{bids}],"a":[{asks}]}}'
            self._book_text_version = self.book_changed
        return self._book_text

    def trade_text(self, trade: Trade) -> str:
        side = "B" if trade.aggressor_side == BUY else "S" if trade.aggressor_side == SELL else "?"
        return (
            f'[{trade.trade_id},{trade.timestamp // 1_000_000},"{format_price(trade.price, self.decimals)}",'
            f'{trade.quantity},"{side}"]'
        )


@dataclass
class Viewer:
    """What one browser was last sent."""

    seen: int = -1
    """The market version of its last message (-1: nothing yet: a snapshot is due)."""
    layout: int = -1
    """The market's layout at its last message (instruments removed since: a snapshot is due)."""
    tapes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """symbol -> (tape epoch, last trade_id) it was sent."""


class Market:
    """Every followed instrument's book and latest trades, and the diff each viewer lacks."""

    def __init__(
        self,
        depth: int = DEFAULT_DEPTH,
        trades_kept: int = DEFAULT_TRADES_KEPT,
        max_instruments: int = DEFAULT_MAX_INSTRUMENTS,
    ) -> None:
        if depth < 1 or trades_kept < 1 or max_instruments < 1:
            raise ValueError("depth, trades_kept and max_instruments must be at least 1")
        self.depth = depth
        self.trades_kept = trades_kept
        self.max_instruments = max_instruments
        self.version = 0
        self.layout = 0
        """Bumped when instruments are removed (viewers then get a snapshot)."""
        self.connected = False
        self.instruments: OrderedDict[str, Instrument] = OrderedDict()
        """By symbol, the least recently changed first."""
        self.hidden: set[str] = set()
        """Symbols beyond max_instruments."""
        self._by_book_id: dict[int, str] = {}

    def _bump(self, instrument: Instrument | None = None) -> int:
        self.version += 1
        if instrument is not None:
            instrument.changed = self.version
            self.instruments.move_to_end(instrument.listing.symbol)
        return self.version

    # info's messages --------------------------------------------------------

    def listed(self, listing: Listing) -> Listed:
        """An OnInstrument: what it means (see Listed)."""
        symbol = listing.symbol
        known = self.instruments.get(symbol)
        if known is not None and known.listing == listing:
            return Listed.SAME
        other = self._by_book_id.get(listing.order_book_id)
        new_day = (known is not None) or (other is not None and other != symbol)
        if new_day:
            self.forget_all()
        elif symbol in self.hidden:
            return Listed.HIDDEN
        if len(self.instruments) >= self.max_instruments:
            self.hidden.add(symbol)
            self._bump()
            return Listed.HIDDEN
        instrument = Instrument(listing, decimals_of(listing.tick))
        self.instruments[symbol] = instrument
        self._by_book_id[listing.order_book_id] = symbol
        self._bump(instrument)
        return Listed.NEW_DAY if new_day else Listed.NEW

    def book(self, symbol: str, bids: list[Level], asks: list[Level]) -> None:
        """A book's new depth (best first; only the best `depth` levels are kept)."""
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return
        new_bids, new_asks = tuple(bids[: self.depth]), tuple(asks[: self.depth])
        if new_bids == instrument.bids and new_asks == instrument.asks:
            return
        instrument.bids, instrument.asks = new_bids, new_asks
        instrument.book_changed = self._bump(instrument)

    def trade(self, symbol: str, trade: Trade) -> None:
        """A live trade."""
        instrument = self.instruments.get(symbol)
        if instrument is not None and self._add_trades(instrument, (trade,)):
            self._bump(instrument)

    def trades_loaded(self, symbol: str, trades: list[Trade]) -> None:
        """The trades asked for (a TradesResponse), merged with those that came live, by trade_id."""
        instrument = self.instruments.get(symbol)
        if instrument is not None and self._add_trades(instrument, trades):
            self._bump(instrument)

    def _add_trades(self, instrument: Instrument, trades: tuple[Trade, ...] | list[Trade]) -> bool:
        """Merge trades into the tape; whether it changed. Appending keeps the epoch; inserting bumps it."""
        tape, texts = instrument.trades, instrument.trade_texts
        appended_only = True
        changed = False
        for trade in trades:
            last = tape[-1].trade_id if tape else 0
            if trade.trade_id > last:
                tape.append(trade)
                texts.append(instrument.trade_text(trade))
                changed = True
                continue
            ids = [t.trade_id for t in tape]
            at = bisect.bisect_left(ids, trade.trade_id)
            if at < len(tape) and tape[at].trade_id == trade.trade_id:
                continue  # came live and in the answer
            if at == 0 and len(tape) >= self.trades_kept:
                continue  # older than everything kept
            tape.insert(at, trade)
            texts.insert(at, instrument.trade_text(trade))
            appended_only = False
            changed = True
        excess = len(tape) - self.trades_kept
        if excess > 0:
            del tape[:excess]
            del texts[:excess]
        if not appended_only:
            instrument.tape_epoch += 1
        return changed

    def retain(self, symbols: set[str]) -> None:
        """After a reconnection's login burst: forget the instruments info no longer has."""
        gone = [s for s in self.instruments if s not in symbols]
        hidden_gone = self.hidden - symbols
        for symbol in gone:
            self._forget(symbol)
        self.hidden -= hidden_gone
        if gone or hidden_gone:
            self.layout += 1
            self._bump()

    def forget(self, symbol: str) -> None:
        """An instrument info no longer knows (a subscription refused as unknown): it leaves the page."""
        if symbol in self.instruments:
            self._forget(symbol)
            self.layout += 1
            self._bump()

    def forget_all(self) -> None:
        for symbol in list(self.instruments):
            self._forget(symbol)
        self.hidden.clear()
        self.layout += 1
        self._bump()

    def _forget(self, symbol: str) -> None:
        instrument = self.instruments.pop(symbol)
        self._by_book_id.pop(instrument.listing.order_book_id, None)

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self._bump()

    # viewers ----------------------------------------------------------------

    def update(self, viewer: Viewer) -> str | None:
        """The JSON message of what `viewer` lacks (None: nothing), and `viewer` marked as sent it."""
        if viewer.seen == self.version:
            return None
        snapshot = viewer.seen < 0 or viewer.layout != self.layout
        if snapshot:
            viewer.tapes.clear()
            changed: list[Instrument] = list(self.instruments.values())
        else:
            changed = []
            for instrument in reversed(self.instruments.values()):
                if instrument.changed <= viewer.seen:
                    break
                changed.append(instrument)
            changed.reverse()
        entries = [f"{json.dumps(i.listing.symbol)}:{self._entry(i, viewer)}" for i in changed]
        viewer.seen = self.version
        viewer.layout = self.layout
        return (
            f'{{"t":"{"s" if snapshot else "u"}","c":{"true" if self.connected else "false"},'
            f'"h":{len(self.hidden)},"i":{{{",".join(entries)}}}}}'
        )

    def _entry(self, instrument: Instrument, viewer: Viewer) -> str:
        symbol = instrument.listing.symbol
        sent = viewer.tapes.get(symbol)
        parts = []
        if sent is None:
            parts.append(f'"l":{instrument.listing_text()}')
        if sent is None or instrument.book_changed > viewer.seen:
            parts.append(f'"b":{instrument.book_text()}')
        tape = instrument.trades
        last_id = tape[-1].trade_id if tape else 0
        if sent is None or sent[0] != instrument.tape_epoch:
            parts.append(f'"r":true,"tr":[{",".join(instrument.trade_texts)}]')
        elif last_id > sent[1]:
            ids = [t.trade_id for t in tape]
            start = bisect.bisect_right(ids, sent[1])
            parts.append(f'"tr":[{",".join(instrument.trade_texts[start:])}]')
        viewer.tapes[symbol] = (instrument.tape_epoch, last_id)
        return f"{{{','.join(parts)}}}"
