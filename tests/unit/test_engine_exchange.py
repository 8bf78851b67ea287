"""Exchange: books, ids, validation and the errors of every request."""

from __future__ import annotations

import pytest

from optivex.engine import BUY, SELL, BookInfo, Exchange, Order, Rejected, Side, valid_symbol

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
    assert first == BookInfo(1, 100, "ABC", 5)
    assert second == BookInfo(2, 2500, None, 6)
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
    assert ex.book_of_order(2) == 2 and ex.book_of_order(4) == 1 and ex.book_of_order(6) is None


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
    cases: list[tuple[int, int, str]] = [
        (9, resting.order_id, "unknown order book 9"),
        (1, 0, "unknown order 0"),
        (1, -3, "unknown order -3"),
        (1, 1000, "unknown order 1000"),
        (1, other_book.order_id, f"order {other_book.order_id} belongs to order book 2, not 1"),
        (1, dead_elsewhere.order_id, f"order {dead_elsewhere.order_id} belongs to order book 2, not 1"),
        (2, resting.order_id, f"order {resting.order_id} belongs to order book 1, not 2"),
        (1, filled.order_id, "no longer resting"),
        (1, cancelled.order_id, "no longer resting"),
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
