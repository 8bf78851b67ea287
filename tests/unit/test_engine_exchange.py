"""Exchange: books, ids, validation and the errors of every request."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any, NoReturn

import pytest

from optivex.engine import (
    BUY,
    SELL,
    BookId,
    BookInfo,
    BookIntegrityError,
    Books,
    Exchange,
    Order,
    OrderBook,
    Price,
    Rejected,
    Side,
    Timestamp,
    valid_symbol,
)

TS = 1_700_000_000_000_000_000


def snapshot(ex: Exchange) -> tuple[object, ...]:
    """Everything observable, to check that a rejected request changed nothing."""
    return (
        ex.books(),
        [
            (o.order_id, o.book_id, o.side, o.price, o.quantity, o.remaining, o.owner)
            for o in ex.resting_orders()
        ],
        ex.last_order_id,
        ex.last_trade_id,
        [(ex.book(b.book_id).levels(BUY), ex.book(b.book_id).levels(SELL)) for b in ex.books()],
    )


@pytest.fixture
def ex() -> Exchange:
    ex = Exchange()
    ex.create_book(100, "AAA", TS)  # tick 0.01
    ex.create_book(1, None, TS + 1)  # tick 0.0001
    return ex


# ---------------------------------------------------------------- books


def test_create_book_ids_and_info() -> None:
    ex = Exchange()
    first = ex.create_book(100, "ABC", 5)
    second = ex.create_book(2500, None, 6)
    assert first == BookInfo(BookId(1), Price(100), "ABC", Timestamp(5))
    assert second == BookInfo(BookId(2), Price(2500), None, Timestamp(6))
    assert ex.books() == [first, second]
    assert ex.book_info(2) == second
    assert ex.find_symbol("ABC") == first and ex.find_symbol("nope") is None
    assert ex.book(1).tick == 100 and ex.book(1).book_id == 1


@pytest.mark.parametrize("tick", [0, -1, -100])
def test_create_book_rejects_bad_tick(tick: int) -> None:
    ex = Exchange()
    with pytest.raises(Rejected, match="tick"):
        ex.create_book(tick, None, 0)
    assert ex.books() == []
    assert ex.create_book(1).book_id == 1  # no id was consumed


def test_create_book_rejects_bad_or_used_symbol() -> None:
    ex = Exchange()
    ex.create_book(1, "X.Y-z_9", 0)
    with pytest.raises(Rejected, match=r"instrument symbol 'X\.Y-z_9' already exists"):
        ex.create_book(1, "X.Y-z_9", 0)
    with pytest.raises(Rejected, match="invalid instrument symbol"):
        ex.create_book(1, "bad symbol", 0)
    with pytest.raises(Rejected, match="invalid instrument symbol"):
        ex.create_book(1, "", 0)
    assert [b.book_id for b in ex.books()] == [1]
    assert ex.create_book(1, "x.y-z_9", 0).book_id == 2  # symbols are case-sensitive


@pytest.mark.parametrize(
    ("symbol", "ok"),
    [
        ("A", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("", False),
        ("AB C", False),
        ("ABC\n", False),
        ("ÄBC", False),
        ("a/b", False),
        ("0.1_-Z", True),
        (None, False),
        (5, False),
    ],
)
def test_valid_symbol(symbol: object, ok: bool) -> None:
    assert valid_symbol(symbol) is ok


def test_unknown_book_queries(ex: Exchange) -> None:
    with pytest.raises(Rejected, match="unknown order book 3"):
        ex.book(3)
    with pytest.raises(Rejected, match="unknown order book 0"):
        ex.book_info(0)


# ---------------------------------------------------------------- insert


def test_insert_and_match(ex: Exchange) -> None:
    ask, fills = ex.insert(1, SELL, 10_000, 5, "bob", TS)
    assert fills == () and ask.order_id == 1 and ask.book_id == 1 and ask.timestamp == TS
    bid, fills = ex.insert(1, BUY, 10_100, 7, "alice", TS + 1)
    assert list(fills) == [(1, 1, "bob", 10_000, 5)]
    assert bid.order_id == 2 and bid.remaining == 2 and bid.traded == 5
    assert ex.last_order_id == 2 and ex.last_trade_id == 1
    assert ex.book(1).best(BUY) == (10_100, 2)


def test_side_enum_is_accepted(ex: Exchange) -> None:
    ex.insert(1, Side.SELL, 100, 1, "a", TS)
    _, fills = ex.insert(1, Side.BUY, 100, 1, "b", TS)
    assert len(fills) == 1


def test_ids_are_global_and_strictly_increasing_across_books(ex: Exchange) -> None:
    o1, _ = ex.insert(1, SELL, 100, 1, "a", TS)
    o2, _ = ex.insert(2, SELL, 7, 1, "a", TS)
    o3, f3 = ex.insert(2, BUY, 7, 1, "b", TS)
    o4, _ = ex.insert(1, SELL, 200, 2, "a", TS)
    o5, f5 = ex.insert(1, BUY, 200, 3, "b", TS)
    assert [o.order_id for o in (o1, o2, o3, o4, o5)] == [1, 2, 3, 4, 5]
    assert [f[0] for f in f3] == [1]
    assert [f[0] for f in f5] == [2, 3]
    assert ex.last_trade_id == 3
    ex.insert(1, BUY, 100, 1, "a", TS)
    # Of resting orders only: 2 and 4 traded away, 6 rests in book 1, 7 was never issued.
    assert ex.book_of_order(6) == 1 and ex.book_of_order(2) is None and ex.book_of_order(4) is None
    assert ex.book_of_order(7) is None


@pytest.mark.parametrize(
    ("book_id", "side", "price", "quantity", "message"),
    [
        (3, BUY, 100, 1, "unknown order book 3"),
        (0, BUY, 100, 1, "unknown order book 0"),
        (-1, BUY, 100, 1, "unknown order book -1"),
        (1, 2, 100, 1, "invalid side 2"),
        (1, -1, 100, 1, "invalid side -1"),
        (1, BUY, None, 1, "invalid price"),
        (1, BUY, 0, 1, "invalid price 0.0: it must be > 0"),
        (1, SELL, -100, 1, "invalid price -0.01: it must be > 0"),
        (1, BUY, 150, 1, r"invalid price 0.015: not a multiple of the tick size 0.01"),
        (1, BUY, 2**60, 1, "invalid price"),
        (1, BUY, 100, 0, "invalid quantity 0"),
        (1, BUY, 100, -5, "invalid quantity -5"),
        (1, BUY, 100, 2**31, "invalid quantity 2147483648"),
    ],
)
def test_insert_rejections_change_nothing(
    ex: Exchange, book_id: int, side: int, price: int | None, quantity: int, message: str
) -> None:
    ex.insert(1, SELL, 100, 3, "a", TS)
    ex.insert(1, BUY, 100, 1, "b", TS)
    before = snapshot(ex)
    with pytest.raises(Rejected, match=message):
        ex.insert(book_id, side, price, quantity, "c", TS)
    assert snapshot(ex) == before
    order, _ = ex.insert(1, BUY, 100, 1, "c", TS)
    assert order.order_id == 3  # no id was consumed by the rejection
    ex.check_integrity()


@pytest.mark.parametrize(
    ("side", "quantity", "message"),
    [
        (BUY, 0, "invalid quantity 0"),
        (BUY, -5, "invalid quantity -5"),
        (BUY, 2**31, "invalid quantity 2147483648"),
        (2, 1, "invalid side 2"),
        (-1, 1, "invalid side -1"),
    ],
)
def test_insert_rejections_at_an_existing_level(ex: Exchange, side: int, quantity: int, message: str) -> None:
    """The inline path (an order joining a level that exists) still rejects a bad quantity or side."""
    ex.insert(1, BUY, 5_000, 1, "a", TS)
    ex.insert(1, SELL, 6_000, 1, "a", TS)
    before = snapshot(ex)
    with pytest.raises(Rejected, match=message):
        ex.insert(1, side, 5_000 if side != -1 else 6_000, quantity, "c", TS)
    assert snapshot(ex) == before
    order, _ = ex.insert(1, BUY, 5_000, 2, "c", TS)
    assert order.order_id == 3 and ex.book(1).levels(BUY) == [(5_000, 3)]
    ex.check_integrity()


def test_insert_accepts_the_extremes(ex: Exchange) -> None:
    big, _ = ex.insert(2, SELL, 2**53 - 1, 2**31 - 1, "a", TS)
    assert big.remaining == 2**31 - 1
    small, fills = ex.insert(2, BUY, 2**53 - 1, 1, "b", TS)
    assert fills and small.remaining == 0


def test_rejected_message_attribute() -> None:
    err = Rejected("why")
    assert err.message == "why" and str(err) == "why"


# ---------------------------------------------------------------- cancel


def test_cancel_returns_the_order(ex: Exchange) -> None:
    order, _ = ex.insert(1, BUY, 100, 5, "a", TS)
    ex.insert(1, SELL, 100, 2, "b", TS)
    got = ex.cancel(1, order.order_id, TS)
    assert got is order and got.remaining == 3
    assert ex.resting_orders() == []
    assert ex.get_order(order.order_id) is None


def test_cancel_errors_change_nothing(ex: Exchange) -> None:
    resting, _ = ex.insert(1, BUY, 100, 5, "a", TS)
    other_book, _ = ex.insert(2, BUY, 100, 5, "a", TS)
    filled, _ = ex.insert(1, SELL, 300, 1, "a", TS)
    ex.insert(1, BUY, 300, 1, "b", TS)
    cancelled, _ = ex.insert(1, SELL, 400, 1, "a", TS)
    ex.cancel(1, cancelled.order_id, TS)
    dead_elsewhere, _ = ex.insert(2, SELL, 500, 1, "a", TS)
    ex.cancel(2, dead_elsewhere.order_id, TS)
    before = snapshot(ex)
    cases: list[tuple[int, Any, str]] = [  # Any: ids of the wrong type too
        (9, resting.order_id, "unknown order book 9"),
        (1, 0, "unknown order 0"),
        (1, -3, "unknown order -3"),
        (1, 1000, "unknown order 1000"),
        (1, other_book.order_id, f"order {other_book.order_id} belongs to order book 2, not 1"),
        # A dead order's book is no longer known: "not resting in this book" (see Books._cancel_error).
        (1, dead_elsewhere.order_id, f"order {dead_elsewhere.order_id} is no longer resting in order book 1"),
        (2, resting.order_id, f"order {resting.order_id} belongs to order book 1, not 2"),
        (1, filled.order_id, f"order {filled.order_id} is no longer resting in order book 1"),
        (1, cancelled.order_id, "no longer resting"),
        (9, 1000, "unknown order book 9"),  # the book is checked first
        (1, ex.last_order_id + 1, f"unknown order {ex.last_order_id + 1}"),
        (1, "7", "unknown order '7'|unknown order 7"),
        (1, [1], r"unknown order \[1\]"),
    ]
    for book_id, order_id, message in cases:
        with pytest.raises(Rejected, match=message):
            ex.cancel(book_id, order_id, TS)
        assert snapshot(ex) == before
    assert ex.cancel(1, resting.order_id, TS) is resting
    assert ex.cancel(2, other_book.order_id, TS) is other_book


def test_cancel_unknown_order_in_empty_exchange() -> None:
    ex = Exchange()
    ex.create_book(1)
    with pytest.raises(Rejected, match="unknown order 1"):
        ex.cancel(1, 1, 0)


# ---------------------------------------------------------------- queries and replay


def test_resting_orders_replay_order(ex: Exchange) -> None:
    ex.create_book(5, "CCC", TS)
    placed: list[Order] = []
    for book_id, side, price in [
        (3, SELL, 105),
        (1, BUY, 100),
        (2, SELL, 9),
        (1, SELL, 400),
        (1, BUY, 200),
        (3, BUY, 5),
        (1, BUY, 200),
        (2, BUY, 3),
        (1, SELL, 400),
        (1, SELL, 300),
    ]:
        placed.append(ex.insert(book_id, side, price, 1, "u", TS + len(placed))[0])
    ids = [o.order_id for o in ex.resting_orders()]
    # book 1: bids 200 (5, 7), 100 (2); asks 300 (10), 400 (4, 9); then book 2, then book 3
    assert ids == [5, 7, 2, 10, 4, 9, 8, 3, 6, 1]
    assert [o.timestamp for o in ex.resting_orders()][:3] == [TS + 4, TS + 6, TS + 1]
    assert ex.get_order(7) is placed[6]


def test_resting_unordered_is_every_resting_order(ex: Exchange) -> None:
    for book_id, side, price in [(1, SELL, 400), (2, BUY, 3), (1, BUY, 200), (1, SELL, 400), (2, SELL, 3)]:
        ex.insert(book_id, side, price, 1, "u", TS)
    resting = ex.resting_orders()
    assert len(resting) == 3 and ex.resting_count() == 3
    assert sorted(ex.resting_unordered(), key=lambda o: o.order_id) == sorted(
        resting, key=lambda o: o.order_id
    )


def test_remaining_quantities_in_replay(ex: Exchange) -> None:
    ex.insert(1, SELL, 100, 10, "a", TS)
    ex.insert(1, BUY, 100, 4, "b", TS)
    (order,) = ex.resting_orders()
    assert order.quantity == 10 and order.remaining == 6


def test_many_books_many_orders_keep_integrity() -> None:
    ex = Exchange()
    for _ in range(5):
        ex.create_book(1)
    n = 0
    for round_ in range(40):
        for book_id in range(1, 6):
            n += 1
            side = BUY if (n + round_) % 2 else SELL
            ex.insert(book_id, side, 100 + (n * 7) % 11, 1 + n % 4, f"u{n % 3}", n)
    ex.check_integrity()
    assert ex.last_order_id == 200
    for info in ex.books():
        book = ex.book(info.book_id)
        bid, ask = book.best(BUY), book.best(SELL)
        assert bid is None or ask is None or bid[0] < ask[0]


# ---------------------------------------------------------------- the one hot path


def _fail(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("the slow path ran")


def test_common_insert_and_cancel_take_the_fast_path(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    """An order joining an existing level without crossing, and a cancel, never reach the slow code."""
    ex.insert(1, BUY, 5_000, 1, "a", TS)  # opens the levels: the slow path
    ex.insert(1, SELL, 6_000, 1, "a", TS)
    slow: list[tuple[str, Callable[..., object]]] = [
        ("_valid_book", Books._valid_book),
        ("_cancel_error", Books._cancel_error),
    ]
    for name, _ in slow:
        monkeypatch.setattr(Books, name, _fail)
    monkeypatch.setattr(OrderBook, "_place", _fail)
    bid, fills = ex.insert(1, BUY, 5_000, 2, "b", TS)
    ask, _ = ex.insert(1, Side.SELL, 6_000, 3, "c", TS)
    assert fills == () and bid.order_id == 3 and ask.order_id == 4
    assert ex.cancel(1, bid.order_id, TS) is bid
    assert ex.cancel(1, 1, TS).order_id == 1
    monkeypatch.undo()
    ex.check_integrity()
    assert ex.book(1).levels(BUY) == [] and ex.book(1).levels(SELL) == [(6_000, 4)]


def test_everything_else_takes_the_validating_path(ex: Exchange, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a level, crossing, and every invalid insert go through Books._valid_book."""
    calls: list[int] = []
    valid_book = Books._valid_book

    def counting(self: Books, book_id: int, side: int, price: int | None, quantity: int) -> OrderBook:
        calls.append(book_id)
        return valid_book(self, book_id, side, price, quantity)

    monkeypatch.setattr(Books, "_valid_book", counting)
    ex.insert(1, BUY, 5_000, 1, "a", TS)  # opens a level
    ex.insert(1, BUY, 5_000, 1, "a", TS)  # joins it: fast
    ex.insert(1, SELL, 5_000, 1, "a", TS)  # crosses
    bad: list[tuple[int, int, int | None, int]] = [(3, BUY, 100, 1), (1, BUY, 5_000, 0), (1, 7, 5_000, 1)]
    for book_id, side, price, quantity in [*bad, (1, BUY, None, 1)]:
        with pytest.raises(Rejected):
            ex.insert(book_id, side, price, quantity, "a", TS)
    assert len(calls) == 6


# ---------------------------------------------------------------- integrity checks


def test_exchange_integrity_check_reports_a_corrupted_table(ex: Exchange) -> None:
    order, _ = ex.insert(1, BUY, 100, 5, "a", TS)
    ex.check_integrity()
    ex._index.pop(order.order_id)
    with pytest.raises(BookIntegrityError):
        ex.check_integrity()
    ex._index[order.order_id] = order
    ex.check_integrity()
    ex._index[99] = order
    with pytest.raises(BookIntegrityError, match="order table"):
        ex.check_integrity()


_CORRUPT = """
from optivex.engine import BUY, BookIntegrityError, Exchange, NaiveOrderBook, OrderBook
assert False, "asserts are on"
ex = Exchange()
ex.create_book(1)
order, _ = ex.insert(1, BUY, 100, 5, "a", 0)
book = ex.book(1)
book._bid_levels[-100].tail = None
reported = []
for check in (book.check_integrity, ex.check_integrity):
    try:
        check()
    except BookIntegrityError as exc:
        reported.append(str(exc))
naive = NaiveOrderBook(1, 1)
naive.insert(1, BUY, 100, 5, "a", 0, 1)[0].remaining = 0
try:
    naive.check_integrity()
except BookIntegrityError as exc:
    reported.append(str(exc))
for line in reported:
    print(line)
"""


def test_integrity_checks_report_under_python_dash_o() -> None:
    """No assert: a corrupted book is reported with asserts compiled away (the script's own assert too)."""
    done = subprocess.run(
        [sys.executable, "-O", "-c", _CORRUPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["bad level tail", "bad level tail"], done.stdout
    assert len(lines) == 3 and lines[2].startswith("bad resting order Order(id=1,"), done.stdout


# ---------------------------------------------------------------- memory of the order table

TABLE_BOUND = 64 * 1024
"""Bytes the order table (or the engine) may still hold once nothing rests: a bounded amount."""


def _churn(ex: Exchange, orders: int) -> None:
    """``orders`` orders in and out of books 1 and 2, alternately, at most 100 resting; none at the end."""
    insert, cancel = ex.insert, ex.cancel
    live: list[tuple[int, int]] = []
    for i in range(orders):
        book_id = 1 + (i & 1)  # every order in another book than the previous one
        live.append((book_id, insert(book_id, BUY, 100, 1, "a", 0)[0].order_id))
        if len(live) > 100:
            cancel(*live.pop(0))
    while live:
        cancel(*live.pop())


def _two_books() -> Exchange:
    ex = Exchange()
    for book_id in (1, 2):  # open the levels: the churn then takes the hot path
        ex.create_book(1)
        ex.cancel(book_id, ex.insert(book_id, BUY, 100, 1, "a", 0)[0].order_id)
    return ex


def test_order_table_memory_follows_what_rests() -> None:
    """After a million orders in and out, nothing resting, the order table is small again."""
    ex = _two_books()
    _churn(ex, 1_000_000)
    assert ex.last_order_id == 1_000_002 and ex.resting_count() == 0
    assert sys.getsizeof(ex._index) < TABLE_BOUND
    # The errors stay right: exact for an id never issued, the documented rule for a dead order.
    with pytest.raises(Rejected, match="no longer resting in order book 2"):
        ex.cancel(2, 3)
    with pytest.raises(Rejected, match="no longer resting in order book 1"):
        ex.cancel(1, 4)  # it was placed in book 2
    with pytest.raises(Rejected, match="unknown order 1000003"):
        ex.cancel(2, 1_000_003)


def test_engine_keeps_nothing_of_orders_that_left() -> None:
    """tracemalloc: every block allocated during a churn and still alive after it (any table, any leak)."""
    ex = _two_books()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _churn(ex, 100_000)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ex.resting_count() == 0
    assert held < TABLE_BOUND, held


def test_order_table_is_freed_after_a_crowd_left() -> None:
    """100,000 resting orders cancelled: the next insert off the hot path rebuilds the table small."""
    ex = _two_books()
    ids = [ex.insert(1, BUY, 100, 1, "a", 0)[0].order_id for _ in range(100_000)]
    crowded = sys.getsizeof(ex._index)
    for order_id in ids:
        ex.cancel(1, order_id)
    assert (
        crowded > 2 * 1024 * 1024 and sys.getsizeof(ex._index) == crowded
    )  # dicts do not shrink by themselves
    kept, _ = ex.insert(2, SELL, 105, 1, "a", 0)  # opens a level: off the hot path
    assert sys.getsizeof(ex._index) < TABLE_BOUND
    assert ex.get_order(kept.order_id) is kept and ex.resting_count() == 1
    ex.check_integrity()
