"""Order book rules, on the fast book and on the naive oracle alike."""

from __future__ import annotations

import random
from heapq import heappush

import pytest

from optivex.engine import BUY, SELL, BookIntegrityError, Fill, NaiveOrderBook, Order, OrderBook
from optivex.engine.types import Level

Book = OrderBook | NaiveOrderBook


class Driver:
    """Drives the fast book (it allocates ids) or the naive one (given the same ids); checks every call."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.next_order_id = 1
        self.next_trade_id = 1

    def insert(self, side: int, price: int, quantity: int, owner: str = "alice") -> tuple[Order, list[Fill]]:
        order_id = self.next_order_id
        ts = 1000 + order_id
        if isinstance(self.book, OrderBook):
            order, fills = self.book.insert(side, price, quantity, owner, ts)
        else:
            order, fills = self.book.insert(order_id, side, price, quantity, owner, ts, self.next_trade_id)
        assert order.order_id == order_id
        assert [f[0] for f in fills] == list(range(self.next_trade_id, self.next_trade_id + len(fills)))
        self.next_order_id += 1
        self.next_trade_id += len(fills)
        self.book.check_integrity()
        return order, list(fills)

    def cancel(self, order_id: int) -> Order | None:
        order = self.book.cancel(order_id)
        self.book.check_integrity()
        return order

    def ids(self) -> list[tuple[int, int]]:
        return [(o.order_id, o.remaining) for o in self.book.resting_orders()]


@pytest.fixture(params=["fast", "naive"])
def d(request: pytest.FixtureRequest) -> Driver:
    return Driver(OrderBook(7, 1) if request.param == "fast" else NaiveOrderBook(7, 1))


def test_empty_book(d: Driver) -> None:
    assert d.book.best(BUY) is None and d.book.best(SELL) is None
    assert d.book.levels(BUY) == [] and d.book.levels(SELL) == []
    assert d.book.resting_orders() == []
    assert len(d.book) == 0


def test_passive_orders_rest_without_fills(d: Driver) -> None:
    bid, fills = d.insert(BUY, 100, 5)
    assert fills == [] and bid.remaining == 5 and bid.quantity == 5
    assert bid.book_id == 7 and bid.side == BUY and bid.price == 100 and bid.owner == "alice"
    _, fills = d.insert(SELL, 101, 3)
    assert fills == []
    assert d.book.best(BUY) == (100, 5) and d.book.best(SELL) == (101, 3)
    assert len(d.book) == 2


def test_buy_fills_at_resting_price(d: Driver) -> None:
    ask, _ = d.insert(SELL, 100, 5, "bob")
    order, fills = d.insert(BUY, 105, 5)
    assert fills == [(1, ask.order_id, "bob", 100, 5)]
    assert order.remaining == 0 and ask.remaining == 0
    assert d.book.resting_orders() == []


def test_sell_fills_at_resting_price(d: Driver) -> None:
    bid, _ = d.insert(BUY, 100, 5, "bob")
    order, fills = d.insert(SELL, 90, 2)
    assert fills == [(1, bid.order_id, "bob", 100, 2)]
    assert order.remaining == 0 and bid.remaining == 3
    assert d.book.levels(BUY) == [(100, 3)]


def test_partial_fill_of_incoming_rests_remainder(d: Driver) -> None:
    d.insert(SELL, 100, 3)
    order, fills = d.insert(BUY, 100, 10)
    assert [f[4] for f in fills] == [3]
    assert order.remaining == 7
    assert d.book.best(BUY) == (100, 7) and d.book.best(SELL) is None
    assert d.ids() == [(order.order_id, 7)]


def test_no_trade_when_prices_do_not_cross(d: Driver) -> None:
    d.insert(SELL, 101, 3)
    _, fills = d.insert(BUY, 100, 3)
    assert fills == []
    d.insert(BUY, 99, 1)
    _, fills = d.insert(SELL, 101, 1)
    assert fills == []
    assert d.book.levels(BUY) == [(100, 3), (99, 1)]
    assert d.book.levels(SELL) == [(101, 4)]


def test_price_priority_then_time_priority(d: Driver) -> None:
    a1, _ = d.insert(SELL, 102, 1, "a1")
    a2, _ = d.insert(SELL, 101, 1, "a2")
    a3, _ = d.insert(SELL, 101, 1, "a3")
    a4, _ = d.insert(SELL, 100, 1, "a4")
    _, fills = d.insert(BUY, 102, 4)
    assert [(f[1], f[3]) for f in fills] == [
        (a4.order_id, 100),
        (a2.order_id, 101),
        (a3.order_id, 101),
        (a1.order_id, 102),
    ]
    assert [f[0] for f in fills] == [1, 2, 3, 4]


def test_sell_sweeps_bids_best_first(d: Driver) -> None:
    b1, _ = d.insert(BUY, 98, 2)
    b2, _ = d.insert(BUY, 100, 2)
    b3, _ = d.insert(BUY, 99, 2)
    b4, _ = d.insert(BUY, 100, 2)
    order, fills = d.insert(SELL, 99, 7)
    assert [(f[1], f[3], f[4]) for f in fills] == [
        (b2.order_id, 100, 2),
        (b4.order_id, 100, 2),
        (b3.order_id, 99, 2),
    ]
    # b1 at 98 is below the limit: the remainder rests as the best ask
    assert order.remaining == 1
    assert d.book.levels(BUY) == [(98, 2)] and d.book.levels(SELL) == [(99, 1)]
    assert b1.remaining == 2


def test_sweep_several_levels_with_partial_last(d: Driver) -> None:
    asks = [d.insert(SELL, p, 10)[0] for p in (100, 101, 102, 103)]
    order, fills = d.insert(BUY, 102, 25)
    assert [(f[1], f[3], f[4]) for f in fills] == [
        (asks[0].order_id, 100, 10),
        (asks[1].order_id, 101, 10),
        (asks[2].order_id, 102, 5),
    ]
    assert order.remaining == 0
    assert d.book.levels(SELL) == [(102, 5), (103, 10)]
    assert asks[2].remaining == 5


def test_fifo_within_a_level_survives_partial_fills(d: Driver) -> None:
    first, _ = d.insert(BUY, 100, 5)
    second, _ = d.insert(BUY, 100, 5)
    _, fills = d.insert(SELL, 100, 3)
    assert [f[1] for f in fills] == [first.order_id]
    # the partially filled order keeps its place at the front
    _, fills = d.insert(SELL, 100, 4)
    assert [(f[1], f[4]) for f in fills] == [(first.order_id, 2), (second.order_id, 2)]
    assert d.ids() == [(second.order_id, 3)]


def test_self_trade_is_allowed(d: Driver) -> None:
    ask, _ = d.insert(SELL, 100, 5, "carol")
    _, fills = d.insert(BUY, 100, 5, "carol")
    assert fills == [(1, ask.order_id, "carol", 100, 5)]


def test_trade_ids_are_consecutive_across_inserts(d: Driver) -> None:
    for p in (100, 101, 102, 103):
        d.insert(SELL, p, 1)
    _, fills = d.insert(BUY, 100, 1)
    assert [f[0] for f in fills] == [1]
    _, fills = d.insert(BUY, 110, 3)
    assert [f[0] for f in fills] == [2, 3, 4]
    assert d.next_trade_id == 5


def test_cancel(d: Driver) -> None:
    o1, _ = d.insert(BUY, 100, 5)
    o2, _ = d.insert(BUY, 100, 6)
    o3, _ = d.insert(BUY, 100, 7)
    cancelled = d.cancel(o2.order_id)
    assert cancelled is o2 and cancelled.remaining == 6
    assert d.book.levels(BUY) == [(100, 12)]
    assert d.ids() == [(o1.order_id, 5), (o3.order_id, 7)]
    assert d.cancel(o2.order_id) is None  # no longer resting
    assert d.cancel(999) is None  # never existed
    assert d.cancel(o1.order_id) is o1
    assert d.cancel(o3.order_id) is o3
    assert d.book.levels(BUY) == [] and d.book.best(BUY) is None and len(d.book) == 0


def test_cancel_of_filled_and_partially_filled_orders(d: Driver) -> None:
    a1, _ = d.insert(SELL, 100, 2)
    a2, _ = d.insert(SELL, 100, 5)
    d.insert(BUY, 100, 4)
    assert d.cancel(a1.order_id) is None  # filled
    got = d.cancel(a2.order_id)
    assert got is a2 and got.remaining == 3 and got.quantity == 5 and got.traded == 2
    assert d.book.best(SELL) is None


def test_cancel_head_middle_tail_and_reuse_of_level(d: Driver) -> None:
    orders = [d.insert(SELL, 100, q)[0] for q in (1, 2, 3, 4)]
    d.cancel(orders[0].order_id)  # head
    d.cancel(orders[3].order_id)  # tail
    assert d.ids() == [(orders[1].order_id, 2), (orders[2].order_id, 3)]
    d.cancel(orders[1].order_id)
    d.cancel(orders[2].order_id)
    assert d.book.levels(SELL) == []
    again, _ = d.insert(SELL, 100, 9)
    more, _ = d.insert(SELL, 100, 1)
    assert d.ids() == [(again.order_id, 9), (more.order_id, 1)]
    _, fills = d.insert(BUY, 100, 10)
    assert [f[1] for f in fills] == [again.order_id, more.order_id]


def test_cancel_best_level_moves_best_price(d: Driver) -> None:
    best, _ = d.insert(BUY, 105, 1)
    d.insert(BUY, 103, 1)
    mid, _ = d.insert(BUY, 104, 1)
    d.cancel(mid.order_id)  # an empty level below the top
    d.cancel(best.order_id)
    assert d.book.best(BUY) == (103, 1)
    _, fills = d.insert(SELL, 103, 1)
    assert len(fills) == 1 and fills[0][3] == 103


def test_resting_orders_priority_order(d: Driver) -> None:
    b1, _ = d.insert(BUY, 99, 1)
    a1, _ = d.insert(SELL, 102, 1)
    b2, _ = d.insert(BUY, 100, 2)
    a2, _ = d.insert(SELL, 101, 2)
    b3, _ = d.insert(BUY, 100, 3)
    a3, _ = d.insert(SELL, 102, 3)
    assert [o.order_id for o in d.book.resting_orders()] == [
        b2.order_id,
        b3.order_id,
        b1.order_id,
        a2.order_id,
        a1.order_id,
        a3.order_id,
    ]
    assert d.book.levels(BUY) == [(100, 5), (99, 1)]
    assert d.book.levels(SELL) == [(101, 2), (102, 4)]


def test_large_prices(d: Driver) -> None:
    top = 2**53 - 1
    d.insert(SELL, top, 1)
    _, fills = d.insert(BUY, top, 1)
    assert fills[0][3] == top
    d.insert(BUY, 1, 1)
    _, fills = d.insert(SELL, 1, 1)
    assert fills[0][3] == 1


# ---------------------------------------------------------------- fast book only


def test_fast_book_memory_stays_bounded() -> None:
    """Churn over ever new prices must not grow the heaps and level dicts without bound."""
    book = OrderBook(1, 1)
    rng = random.Random(3)
    live: list[Order] = []
    for i in range(20_000):
        side = rng.choice((BUY, SELL))
        base = 1_000_000 + (i // 50)  # the market drifts: prices never seen before keep coming
        price = base - rng.randint(1, 40) if side == BUY else base + rng.randint(1, 40)
        order, _ = book.insert(side, price, 1, "x", 0)
        live.append(order)
        if len(live) > 60:
            victim = live.pop(rng.randrange(len(live)))
            book.cancel(victim.order_id)
    book.check_integrity()
    assert len(book._bid_heap) < 400 and len(book._ask_heap) < 400
    assert len(book._bid_levels) < 400 and len(book._ask_levels) < 400


def test_fast_book_links_of_dead_orders_are_cleared() -> None:
    d = Driver(OrderBook())
    a, _ = d.insert(SELL, 100, 1)
    b, _ = d.insert(SELL, 100, 1)
    c, _ = d.insert(SELL, 100, 1)
    d.cancel(b.order_id)
    assert b._prev is None and b._next is None
    d.insert(BUY, 100, 1)
    assert a._prev is None and a._next is None
    assert c._prev is None and c._next is None  # now the head
    e, _ = d.insert(SELL, 100, 1)
    f, _ = d.insert(SELL, 100, 2)
    d.insert(BUY, 100, 3)  # fills c and e, half of f
    for dead in (c, e):
        assert dead._prev is None and dead._next is None
    assert f._prev is None and f.remaining == 1  # the head now


def test_fast_book_empty_level_at_the_top_is_skipped() -> None:
    """A cancel leaves an emptied best level in place: matching drops it, queries never show it."""
    d = Driver(OrderBook())
    best, _ = d.insert(SELL, 100, 1)
    nxt, _ = d.insert(SELL, 101, 2)
    d.cancel(best.order_id)
    book = d.book
    assert isinstance(book, OrderBook)
    assert book._ask_heap[0] == 100 and book._ask_levels[100].head is None  # left in place
    assert book.best(SELL) == (101, 2) and book.levels(SELL) == [(101, 2)]
    _, fills = d.insert(BUY, 100, 1)  # "may cross": matching drops the empty level, the order rests
    assert fills == [] and book.best(BUY) == (100, 1)
    assert 100 not in book._ask_levels and book._ask_heap[0] == 101
    _, fills = d.insert(BUY, 101, 3)
    assert [(f[1], f[3], f[4]) for f in fills] == [(nxt.order_id, 101, 2)]
    assert book.best(BUY) == (101, 1) and book.best(SELL) is None


def test_fast_book_integrity_check_catches_corruption() -> None:
    d = Driver(OrderBook())
    o, _ = d.insert(BUY, 100, 5)
    d.insert(SELL, 101, 5)
    book = d.book
    assert isinstance(book, OrderBook)
    level = book._bid_levels[-100]
    level.tail = None
    with pytest.raises(BookIntegrityError, match="tail"):
        book.check_integrity()
    level.tail = o
    o.price = 102  # type: ignore[assignment]  # on the wrong level, and the book looks crossed
    with pytest.raises(BookIntegrityError):
        book.check_integrity()
    o.price = 100  # type: ignore[assignment]
    book.check_integrity()
    book._orders.pop(o.order_id)
    with pytest.raises(BookIntegrityError, match="order table"):
        book.check_integrity()


def test_fast_book_integrity_check_catches_crossed_levels() -> None:
    """An empty level left at a crossing price (the hot path relies on there being none) is reported."""
    book = OrderBook(1, 1)
    o, _ = book.insert(BUY, 100, 1, "a", 0)
    book.insert(SELL, 105, 1, "a", 0)
    assert book.cancel(o.order_id) is o  # the bid level at 100 stays, empty
    book.check_integrity()
    empty = Level(o)  # forge an empty ask level at the empty bid's price
    empty.head = empty.tail = None
    book._ask_levels[100] = empty
    heappush(book._ask_heap, 100)
    with pytest.raises(BookIntegrityError, match="levels cross"):
        book.check_integrity()


def test_naive_book_integrity_check_catches_corruption() -> None:
    book = NaiveOrderBook(1, 1)
    bid, _ = book.insert(1, BUY, 100, 5, "a", 0, 1)
    book.insert(2, SELL, 101, 5, "a", 0, 1)
    book.check_integrity()
    bid.remaining = 0  # type: ignore[assignment]
    with pytest.raises(BookIntegrityError, match="bad resting order"):
        book.check_integrity()
