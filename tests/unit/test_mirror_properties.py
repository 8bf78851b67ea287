"""The mirror against the real engine: random operations on an Exchange, its results turned into the
order book's events exactly as the order-book component builds them, fed to a BookMirror through
feed.events; at every consistent point the mirror's levels and resting orders equal the engine's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optivex.engine import BUY, SELL, Exchange, Fill, Order, Rejected
from optivex.feed.events import apply_event, load_event
from optivex.feed.mirror import BookMirror, MirrorBook
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.units import units_to_price

TICKS = (1, 5, 100)
OWNERS = ("alice", "bob", "")


@dataclass(frozen=True)
class Create:
    tick: int
    named: bool


@dataclass(frozen=True)
class Insert:
    book: int
    """Index into the books; past the last one: an unknown book."""
    side: int
    ticks: int
    """Price in ticks; <= 0 is invalid."""
    off_grid: bool
    """One unit off the tick grid (invalid where the tick is > 1)."""
    quantity: int
    owner: str


@dataclass(frozen=True)
class Cancel:
    book: int
    pick: int
    """< 35: one of the orders issued so far (resting or not); else an unknown id."""


Op = Create | Insert | Cancel


def _pick(n: int, choices: Sequence[int]) -> tuple[int, int]:
    """One of `choices` from the low digits of `n`, and what is left of `n`."""
    n, i = divmod(n, len(choices))
    return choices[i], n


BOOK_PICKS = (0, 0, 0, 1, 1, 2, 3)
SIDES = (BUY, BUY, BUY, SELL, SELL, SELL, 2)  # 2: an invalid side
QUANTITIES = (1, 2, 3, 5, 8, 13, 0)  # 0: invalid


def decode(n: int) -> Op:
    """An operation from one integer (hypothesis draws one int per operation: cheap to generate)."""
    n, kind = divmod(n, 7)
    if kind == 0:
        tick, n = _pick(n, TICKS)
        return Create(tick, bool(n % 2))
    book, n = _pick(n, BOOK_PICKS)
    if kind <= 2:
        return Cancel(book, n % 41)
    side, n = _pick(n, SIDES)
    ticks, n = _pick(n, range(-1, 11))
    off_grid, n = _pick(n, (0, 0, 0, 0, 1))
    quantity, n = _pick(n, QUANTITIES)
    owner = OWNERS[n % len(OWNERS)]
    return Insert(book, side, ticks, bool(off_grid), quantity, owner)


create_op = st.builds(Create, st.sampled_from(TICKS), st.booleans())
operations = st.lists(st.integers(0, 2**24).map(decode), min_size=20, max_size=80)
"""Two books exist before the first operation (see the test); more are created on the way."""


def book_created(exchange: Exchange, book_id: int, instruments: dict[int, common_pb2.Instrument]) -> Message:
    """As OrderBookComponent._book_created."""
    info = exchange.book_info(book_id)
    event = pb.OnOrderBookCreated(
        order_book_id=info.book_id, tick_size=units_to_price(info.tick), timestamp=info.timestamp
    )
    if book_id in instruments:
        event.instrument.CopyFrom(instruments[book_id])
    return event


def insert_events(order: Order, fills: Sequence[Fill], timestamp: int) -> list[Message]:
    """As OrderBookComponent.insert_order: OnOrderInserted (full quantity, trade ids), then OnTrades."""
    side = order.side
    inserted = pb.OnOrderInserted(
        order_id=order.order_id,
        order_book_id=order.book_id,
        timestamp=timestamp,
        side=side,  # type: ignore[arg-type]
        price=units_to_price(order.price),
        quantity=order.quantity,
        username=order.owner,
    )
    if fills:
        inserted.trade_ids.extend(f[0] for f in fills)
    events: list[Message] = [inserted]
    for trade_id, maker_id, _, price, quantity in fills:
        buyer, seller = (order.order_id, maker_id) if side == BUY else (maker_id, order.order_id)
        events.append(
            pb.OnTrade(
                trade_id=trade_id,
                order_book_id=order.book_id,
                timestamp=timestamp,
                buy_order_id=buyer,
                sell_order_id=seller,
                price=units_to_price(price),
                quantity=quantity,
                aggressor_side=side,  # type: ignore[arg-type]
            )
        )
    return events


def replay(exchange: Exchange, instruments: dict[int, common_pb2.Instrument]) -> list[Message]:
    """As OrderBookComponent.on_login: every book, then every resting order with its remaining quantity."""
    events: list[Message] = [book_created(exchange, b.book_id, instruments) for b in exchange.books()]
    events.extend(
        pb.OnOrderInserted(
            order_id=o.order_id,
            order_book_id=o.book_id,
            timestamp=o.timestamp,
            side=o.side,  # type: ignore[arg-type]
            price=units_to_price(o.price),
            quantity=o.remaining,
            username=o.owner,
        )
        for o in exchange.resting_orders()
    )
    return events


@dataclass
class Step:
    """What one operation did: the book it concerned, the events the order book sent for it, the fills."""

    op: Op
    book_id: int
    clock: int
    events: list[Message]
    fills: Sequence[Fill] = ()
    symbol: str | None = None
    """The new book's symbol (Create only)."""


class EngineDay:
    """Runs generated operations on a real Exchange and builds the order book's events for each, as the
    component does (the shared driver of the property tests that follow the order book)."""

    def __init__(self) -> None:
        self.exchange = Exchange()
        self.instruments: dict[int, common_pb2.Instrument] = {}
        self.issued: list[int] = []
        self.clock = 1_000

    def run(self, op: Op) -> Step | None:
        """Carry out `op`; None when the engine rejected it (nothing was sent)."""
        self.clock += 1
        clock = self.clock
        exchange = self.exchange
        if isinstance(op, Create):
            symbol = f"S{len(exchange.books()) + 1}" if op.named else None
            info = exchange.create_book(op.tick, symbol, clock)
            if symbol is not None:
                self.instruments[info.book_id] = common_pb2.Instrument(symbol=symbol, currency="EUR")
            event = book_created(exchange, info.book_id, self.instruments)
            return Step(op, info.book_id, clock, [event], symbol=symbol)
        books = exchange.books()
        known = op.book < len(books)
        book_id = books[op.book].book_id if known else op.book + 1
        if isinstance(op, Insert):
            price = op.ticks * (books[op.book].tick if known else 1) + (1 if op.off_grid else 0)
            try:
                order, fills = exchange.insert(book_id, op.side, price, op.quantity, op.owner, clock)
            except Rejected:
                return None
            self.issued.append(order.order_id)
            return Step(op, book_id, clock, insert_events(order, fills, clock), fills)
        issued = self.issued
        order_id = issued[op.pick % len(issued)] if issued and op.pick < 35 else op.pick + 1000
        try:
            exchange.cancel(book_id, order_id, clock)
        except Rejected:
            return None
        return Step(
            op, book_id, clock, [pb.OnOrderCancelled(order_id=order_id, cancellation_timestamp=clock)]
        )


def check_book(exchange: Exchange, mine: MirrorBook) -> None:
    book = exchange.book(mine.book_id)
    assert mine.consistent and not mine.pending_trades
    for side in (0, 1):
        assert mine.levels(side) == book.levels(side)
        assert mine.best(side) == book.best(side)
    expected = [(o.order_id, o.side, o.price, o.remaining, o.owner) for o in book.resting_orders()]
    assert [(o.order_id, o.side, o.price, o.remaining, o.owner) for o in mine.resting_orders()] == expected
    for owner in OWNERS:
        assert [o.order_id for o in mine.orders_of(owner)] == sorted(
            o.order_id for o in book.resting_orders() if o.owner == owner
        )


def check_all(exchange: Exchange, mirror: BookMirror) -> None:
    assert [b.book_id for b in mirror.books()] == [b.book_id for b in exchange.books()]
    for mine in mirror.books():
        check_book(exchange, mine)
    assert len(mirror) == len(exchange.resting_orders())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(create_op, min_size=2, max_size=2), operations)
def test_mirror_follows_the_engine(first: list[Create], ops: list[Op]) -> None:
    day = EngineDay()
    exchange = day.exchange
    mirror = BookMirror()
    for op in [*first, *ops]:
        step = day.run(op)
        if step is None:
            continue
        if isinstance(op, Create):
            [event] = step.events
            change = apply_event(mirror, event)
            assert change is not None and change.book_id == step.book_id
            created = mirror.book(step.book_id)
            assert created is not None and created.symbol == step.symbol
            if step.symbol is not None:
                assert mirror.book_by_symbol(step.symbol) is created
            continue
        mine = mirror.book(step.book_id)
        assert mine is not None
        version = mine.version
        last = len(step.events) - 1
        for i, event in enumerate(step.events):
            change = apply_event(mirror, event)
            assert change is not None and change.book_id == step.book_id
            assert change.version == version + i + 1
            # Consistent only once the insert's last trade has arrived (section 3).
            assert change.consistent == (i == last)
            assert mine.consistent == (i == last)
        check_book(exchange, mine)
    check_all(exchange, mirror)
    # A follower that logs in now rebuilds the same state from the replay.
    fresh = BookMirror()
    for event in replay(exchange, day.instruments):
        load_event(fresh, event)
    check_all(exchange, fresh)
    for book in fresh.books():
        live = mirror.book(book.book_id)
        assert live is not None and live.instrument == book.instrument
