"""The live terminal views: `optivex book SYMBOL` (a depth ladder and the last trades, redrawn in place)
and `optivex trades [SYMBOL]` (the trade tape, a line per trade).

Both are one info connection read in one thread. The book view keeps only the latest book info sent
(info publishes whole books) and the last trades; it redraws at most `MAX_REDRAWS` times a second
however fast the book moves (`Pacer`): after a redraw it does not read for the rest of the slot, so
what arrives meanwhile piles up in the socket and is read in a few large reads, and only the last
book of the batch is drawn. When info's socket to it backs up, info itself conflates the books
(only the latest state is kept): the view never falls behind.
"""

from __future__ import annotations

import argparse
import collections
import select
import sys
import textwrap
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from google.protobuf.message import Message
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from optivex.client import SyncClient
from optivex.client import state as core
from optivex.client.session import ConnectionClosed, ProtocolViolation
from optivex.proto import common_pb2, info_pb2
from optivex.tools.common import (
    UNREACHABLE,
    CliError,
    SubParsers,
    add_connection_options,
    component_address,
    connect,
    non_negative_int,
    positive_int,
    request,
)
from optivex.tools.messages import format_message
from optivex.units import price_to_units, units_to_price

_Show = Callable[[Iterable[info_pb2.OnTrade]], None]

MAX_REDRAWS = 10
"""Redraws per second at most."""
IDLE_REFRESH = 1.0
"""Seconds after which a quiet view redraws anyway (its rate and clock)."""
MAX_READS = 256
"""Reads in one batch before the view draws (a flood never starves the screen)."""


class Pacer:
    """When a view may redraw: at once when it has been quiet, else not before 1/`per_second` after
    the last redraw (pure: the caller gives the time)."""

    def __init__(self, per_second: int = MAX_REDRAWS) -> None:
        self.interval = 1.0 / per_second
        self.next_at = 0.0

    def wait(self, now: float) -> float:
        """Seconds until a redraw is allowed (0: now)."""
        return max(0.0, self.next_at - now)

    def drawn(self, now: float) -> None:
        self.next_at = now + self.interval


class Rate:
    """Events per second over the last second (pure: the caller gives the time)."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()

    def add(self, now: float, count: int = 1) -> None:
        self._times.extend([now] * count)

    def per_second(self, now: float) -> int:
        times = self._times
        while times and times[0] <= now - 1.0:
            times.popleft()
        return len(times)


def clock(timestamp_ns: int) -> str:
    """A timestamp of the exchange (ns since the epoch) as UTC HH:MM:SS.mmm."""
    moment = datetime.fromtimestamp(timestamp_ns / 1e9, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def decimals_of(tick_size: float | None) -> int:
    """Decimals a price on this tick needs (2 while the tick is unknown)."""
    units = price_to_units(tick_size) if tick_size else None
    if not units:
        return 2
    decimals = 4
    while decimals > 0 and units % 10 == 0:
        units //= 10
        decimals -= 1
    return decimals


def _price(value: float, decimals: int = 4) -> str:
    """A price of the exchange with `decimals` decimals (exactly: through its units)."""
    units = price_to_units(value) or 0
    return f"{units_to_price(units):.{decimals}f}"


class BookView:
    """What `optivex book` shows of one instrument: its latest book and last trades (pure)."""

    def __init__(self, symbol: str, depth: int, trades: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.tick_size: float | None = None
        self.book: info_pb2.OnPriceDepthBook | None = None
        self.trades: collections.deque[info_pb2.OnTrade] = collections.deque(maxlen=trades)
        self.max_trades = trades
        self.rate = Rate()
        self.books_received = 0
        self.note = ""

    def apply(self, message: Message, now: float) -> bool:
        """Take one message of info; whether it changes what the view shows."""
        if isinstance(message, info_pb2.OnPriceDepthBook):
            if message.instrument_symbol != self.symbol:
                return False
            self.book = message
            self.books_received += 1
            self.rate.add(now)
            return True
        if isinstance(message, info_pb2.OnTrade):
            if message.instrument_symbol != self.symbol:
                return False
            self.trades.append(message)
            return True
        if isinstance(message, info_pb2.OnInstrument) and message.instrument.symbol == self.symbol:
            self.tick_size = message.tick_size
            return True
        return False

    def add_history(self, trades: Iterable[info_pb2.OnTrade]) -> None:
        """Trades of the tape from before the subscription, oldest first (those already seen skipped)."""
        seen = {t.trade_id for t in self.trades}
        merged = [t for t in trades if t.trade_id not in seen] + list(self.trades)
        merged.sort(key=lambda t: t.trade_id)
        self.trades.clear()
        self.trades.extend(merged[-self.max_trades :])

    def render(self, now: float) -> RenderableType:
        """The ladder (asks above, bids below, `depth` rows each, padded) and the last trades."""
        book = self.book
        d = decimals_of(self.tick_size)
        bids = list(book.bids[: self.depth]) if book is not None else []
        asks = list(book.asks[: self.depth]) if book is not None else []
        header = Text()
        header.append(f" {self.symbol} ", style="bold reverse")
        if self.tick_size is not None:
            header.append(f"  tick {_price(self.tick_size, d)}")
        if bids and asks:
            spread = units_to_price(
                (price_to_units(asks[0].price) or 0) - (price_to_units(bids[0].price) or 0)
            )
            header.append(f"  spread {_price(spread, d)}")
        if self.trades:
            last = self.trades[-1]
            header.append(f"  last {_price(last.price, d)} x {last.quantity}", style="bold")
        header.append(f"  book {clock(book.timestamp) if book is not None and book.timestamp else '-'}")
        header.append(f"  {self.rate.per_second(now)} updates/s")
        if self.note:
            header.append(f"  {self.note}", style="bold red")

        # One Text of fixed-width lines (not rich Tables): a frame renders in about a millisecond, and
        # its height never changes, so that each redraw overwrites the last one exactly.
        body = Text()
        body.append(f"\n{'bid qty':>8}  {'price':>12}  {'ask qty':<8}\n")
        blank = " " * 34 + "\n"
        for _ in range(self.depth - len(asks)):
            body.append(blank)
        for level in reversed(asks):
            body.append(" " * 10)
            body.append(f"{_price(level.price, d):>12}", style="red")
            body.append(f"  {level.quantity:<8}\n", style="red")
        for level in bids:
            body.append(f"{level.quantity:>8}  ", style="green")
            body.append(f"{_price(level.price, d):>12}", style="green")
            body.append(" " * 10 + "\n")
        for _ in range(self.depth - len(bids)):
            body.append(blank)
        body.append("\nLast trades\n", style="bold")
        body.append(f"{'time (UTC)':<12}  {'aggressor':<9}  {'quantity':>8}  {'price':>12}  {'trade':>8}")
        shown = list(self.trades)[::-1]
        for trade in shown:
            buy = trade.aggressor_side == common_pb2.BUY
            body.append(f"\n{clock(trade.timestamp):<12}  ")
            body.append(f"{'BUY' if buy else 'SELL':<9}", style="green" if buy else "red")
            body.append(f"  {trade.quantity:>8}  {_price(trade.price, d):>12}  {trade.trade_id:>8}")
        body.append("\n" * (self.max_trades - len(shown)))
        return Group(header, body)


class InfoReader:
    """Reads what info sends on a logged-in client, without blocking once the socket is empty."""

    def __init__(self, client: SyncClient, where: str) -> None:
        self.client = client
        self.where = where

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for data; whether some came."""
        if self.client.pending:
            return True
        return bool(select.select([self.client.sock], [], [], timeout)[0])

    def read_available(self, max_reads: int = MAX_READS) -> list[Message]:
        """Every message that has arrived (at most `max_reads` reads of the socket)."""
        client = self.client
        out: list[Message] = []
        reads = 0
        try:
            while reads < max_reads and (client.pending or select.select([client.sock], [], [], 0)[0]):
                if not client.pending:
                    out.append(client.receive())
                    reads += 1
                out.extend(client.pending)
                client.pending.clear()
        except (ConnectionClosed, ProtocolViolation, OSError) as exc:
            raise CliError(f"{self.where}: connection lost ({exc})", UNREACHABLE) from None
        except TimeoutError:
            raise CliError(f"{self.where}: a message stalled mid-frame", UNREACHABLE) from None
        return out


def subscribe_book(client: SyncClient, symbol: str, depth: int) -> None:
    """Subscribe to SYMBOL's depth book (CliError with info's message if refused)."""
    call = core.subscribe_call(symbol, depth)
    response = request(client, call.request, call.expect, call.what)
    if response.error_message:
        raise CliError(f"{call.what}: {response.error_message}")


def add_book_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "book",
        help="watch one instrument's book live: a depth ladder and the last trades (info)",
        description=textwrap.fill(
            "Watch one instrument's book in the terminal: its depth ladder (asks above, bids below) "
            "and its last trades, redrawn in place at most 10 times a second however fast the book "
            "moves, until Ctrl-C (exit status 0). Unknown instrument: exit status 1; info not "
            "reachable or gone: 3.",
            width=78,
        ),
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument(
        "--depth", type=positive_int, default=10, metavar="N", help="price levels per side (default: 10)"
    )
    parser.add_argument(
        "--trades", type=non_negative_int, default=10, metavar="N", help="last trades shown (default: 10)"
    )
    add_connection_options(parser, "info")
    parser.set_defaults(handler=run_book)


def run_book(args: argparse.Namespace) -> int:
    """`optivex book`: the live view until Ctrl-C."""
    watch_book(args, args.symbol, args.depth, args.trades)
    return 0


def watch_book(args: argparse.Namespace, symbol: str, depth: int, trades: int) -> None:
    """Show SYMBOL's live book (CliError on a refusal or a lost connection; returns on Ctrl-C)."""
    host, port = component_address(args, "info")
    where = f"info at {host}:{port}"
    view = BookView(symbol, depth, trades)
    with connect(args, "info") as client:
        reader = InfoReader(client, where)
        subscribe_book(client, symbol, depth)
        history = request(
            client,
            info_pb2.TradesRequest(instrument_symbol=symbol, max_trades=max(trades, 1)),
            info_pb2.TradesResponse,
            f"trades of {symbol}",
        )
        now = time.monotonic()
        for message in reader.read_available():
            view.apply(message, now)
        view.add_history(history.trades)
        console = Console(highlight=False)
        if console.is_terminal:
            _live_loop(console, reader, view)
        else:
            _plain_loop(console, reader, view)


def _live_loop(console: Console, reader: InfoReader, view: BookView) -> None:
    pacer = Pacer()
    with Live(console=console, auto_refresh=False, transient=False, redirect_stdout=False) as live:
        try:
            dirty = True
            last_draw = 0.0
            while True:
                now = time.monotonic()
                if dirty or now - last_draw >= IDLE_REFRESH:
                    live.update(view.render(now), refresh=True)
                    # From the end of the redraw: frames are more than 1/MAX_REDRAWS s apart on the
                    # screen too, whatever each one took to render.
                    pacer.drawn(time.monotonic())
                    last_draw = now
                    dirty = False
                # The rest of the slot: not read, so that a flood piles up and is read in batches.
                pause = pacer.wait(time.monotonic())
                if pause:
                    time.sleep(pause)
                if not reader.wait(max(0.0, IDLE_REFRESH - (time.monotonic() - last_draw))):
                    continue
                now = time.monotonic()
                for message in reader.read_available():
                    dirty = view.apply(message, now) or dirty
        except KeyboardInterrupt:
            return
        except CliError as exc:
            view.note = str(exc)
            live.update(view.render(time.monotonic()), refresh=True)
            raise


def _plain_loop(console: Console, reader: InfoReader, view: BookView) -> None:
    """Not a terminal: the view printed anew at most once a second when it changed."""
    try:
        console.print(view.render(time.monotonic()))
        while True:
            time.sleep(1.0)
            if not reader.wait(0.0):
                continue
            now = time.monotonic()
            if any([view.apply(m, now) for m in reader.read_available()]):
                console.print(view.render(now))
    except KeyboardInterrupt:
        return


# the trade tape ----------------------------------------------------------------


def add_trades_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "trades",
        help="the live trade tape: a line per trade, of one instrument or of all (info)",
        description=textwrap.fill(
            "Print each trade as it happens: of SYMBOL, or of every instrument (those created later "
            "too), after the last --history trades of each; until Ctrl-C (exit status 0). Unknown "
            "instrument: exit status 1; info not reachable or gone: 3.",
            width=78,
        ),
    )
    parser.add_argument("symbol", metavar="SYMBOL", nargs="?", default="", help="default: every instrument")
    parser.add_argument(
        "--history",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="trades of the day printed first, per instrument (default: 10)",
    )
    parser.add_argument(
        "--messages", action="store_true", help="print each trade as info's OnTrade message, every field"
    )
    add_connection_options(parser, "info")
    parser.set_defaults(handler=run_trades)


def trade_line(trade: info_pb2.OnTrade) -> str:
    """One line of the tape."""
    side = "BUY " if trade.aggressor_side == common_pb2.BUY else "SELL"
    return (
        f"{clock(trade.timestamp)}  {trade.instrument_symbol:<10} {side} {trade.quantity:>6} @ "
        f"{_price(trade.price, 2 if (price_to_units(trade.price) or 0) % 100 == 0 else 4):>10}  "
        f"trade {trade.trade_id}"
    )


def run_trades(args: argparse.Namespace) -> int:
    """`optivex trades`: the tape until Ctrl-C."""
    host, port = component_address(args, "info")
    where = f"info at {host}:{port}"
    wanted: str = args.symbol
    subscribed: set[str] = set()
    seen: dict[str, int] = {}

    def show(trades: Iterable[info_pb2.OnTrade]) -> None:
        lines = []
        for trade in trades:
            if trade.trade_id <= seen.get(trade.instrument_symbol, 0):
                continue  # a trade both in the history and live
            seen[trade.instrument_symbol] = trade.trade_id
            lines.append(format_message(trade) + "\n" if args.messages else trade_line(trade))
        if lines:
            print("\n".join(lines), flush=True)

    with connect(args, "info") as client:
        reader = InfoReader(client, where)
        try:
            if wanted:
                _subscribe_tape(client, wanted, args.history, show)
                subscribed.add(wanted)
            while True:
                messages = reader.read_available()
                for message in messages:
                    if isinstance(message, info_pb2.OnInstrument):
                        symbol = message.instrument.symbol
                        if not wanted and symbol not in subscribed:
                            subscribed.add(symbol)
                            _subscribe_tape(client, symbol, args.history, show)
                    elif isinstance(message, info_pb2.OnTrade):
                        show((message,))
                    elif isinstance(message, info_pb2.OrderBookSubscribeResponse) and message.error_message:
                        print(f"optivex trades: {message.error_message}", file=sys.stderr, flush=True)
                if not messages:
                    reader.wait(IDLE_REFRESH)
        except KeyboardInterrupt:
            return 0


def _subscribe_tape(client: SyncClient, symbol: str, history: int, show: _Show) -> None:
    """Subscribe to SYMBOL (top of book: its trades come with any subscription), print its history."""
    request_message = info_pb2.OrderBookSubscribeRequest(
        instrument_symbol=symbol, subscription_type=info_pb2.TOP_OF_BOOK
    )
    response = request(client, request_message, info_pb2.OrderBookSubscribeResponse, f"subscribe {symbol}")
    if response.error_message:
        raise CliError(f"subscribe {symbol}: {response.error_message}")
    live = [m for m in client.pending if isinstance(m, info_pb2.OnTrade)]
    if history:
        past = request(
            client,
            info_pb2.TradesRequest(instrument_symbol=symbol, max_trades=history),
            info_pb2.TradesResponse,
            f"trades of {symbol}",
        )
        show(sorted([*past.trades, *live], key=lambda t: t.trade_id))


COMMANDS = [add_book_command, add_trades_command]
"""The functions adding the live views' commands, in --help order."""
