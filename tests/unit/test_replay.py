"""Login replay snapshots (orderbook/replay.py): a slice shows the state at login, whatever happened since."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optivex.engine import BUY, SELL, Exchange, Order, Rejected
from optivex.orderbook.replay import Replay, ReplaySnapshots

Row = tuple[int, int, int, int, int, str, int]


def _row(order: Order, remaining: int) -> Row:
    return (order.order_id, order.book_id, order.side, order.price, remaining, order.owner, order.timestamp)


def _state(exchange: Exchange) -> tuple[list[int], list[Row]]:
    """Book ids and resting orders (with their remaining now), in replay order."""
    return [b.book_id for b in exchange.books()], [_row(o, o.remaining) for o in exchange.resting_orders()]


def _read(replay: Replay, step: int) -> tuple[list[int], list[Row]]:
    books: list[int] = []
    orders: list[Row] = []
    while not replay.done:
        replay.prepare(step)
        books += [b.book_id for b in replay.next_books(step)]
        orders += [_row(o, r) for o, r in replay.next_orders(step)]
    return books, orders


class _Day:
    """An exchange driven as the component drives it: fills and cancels reported to the snapshots."""

    def __init__(self, books: int = 2) -> None:
        self.exchange = Exchange()
        self.snapshots = ReplaySnapshots(self.exchange)
        for _ in range(books):
            self.exchange.create_book(1)
        self.clock = 0

    def insert(self, book: int, side: int, price: int, quantity: int) -> None:
        self.clock += 1
        _, fills = self.exchange.insert(book, side, price, quantity, f"u{self.clock % 3}", self.clock)
        if fills and self.snapshots.in_progress:
            self.snapshots.note_fills(fills)

    def cancel(self, book: int, order_id: int) -> None:
        try:
            self.exchange.cancel(book, order_id)
        except Rejected:
            return
        self.snapshots.note_cancel()


def test_a_slice_shows_remaining_at_login_after_partial_and_full_fills_and_cancels() -> None:
    day = _Day(books=1)
    day.insert(1, SELL, 10, 5)  # order 1
    day.insert(1, SELL, 10, 3)  # order 2
    day.insert(1, SELL, 11, 4)  # order 3
    day.insert(1, BUY, 9, 2)  # order 4
    expected = _state(day.exchange)
    replay = day.snapshots.take()
    assert replay is not None
    day.insert(1, BUY, 10, 6)  # fills order 1 in full, order 2 partly (3 -> 2)
    day.insert(1, BUY, 10, 1)  # order 2 again (2 -> 1): the first value is kept
    day.cancel(1, 3)
    day.insert(1, SELL, 8, 2)  # fills order 4 in full
    assert _read(replay, 1) == expected
    replay.close()
    assert not day.snapshots.in_progress and day.snapshots.held_orders == 0


def test_logins_at_one_state_share_a_snapshot_and_a_change_makes_a_new_one() -> None:
    day = _Day(books=1)
    day.insert(1, SELL, 10, 5)
    first, second = day.snapshots.take(), day.snapshots.take()
    assert first is not None and second is not None
    assert first.snapshot is second.snapshot
    assert day.snapshots.held_orders == 1
    day.cancel(1, 1)
    third = day.snapshots.take()
    assert third is not None and third.snapshot is not first.snapshot
    assert not third.done and third.next_orders(5) == []  # nothing rests: only the book
    assert [b.book_id for b in third.next_books(5)] == [1] and not third.done
    assert third.prepare() and third.done
    first.close()
    first.close()  # closing twice counts once
    assert day.snapshots.held_orders == 1
    second.close()
    third.close()
    assert day.snapshots.held_orders == 0 and not day.snapshots.in_progress


def test_the_order_budget_refuses_a_new_distinct_snapshot_but_shares_an_existing_one() -> None:
    exchange = Exchange()
    exchange.create_book(1)
    snapshots = ReplaySnapshots(exchange, order_budget=3)
    for price in (10, 11, 12):
        exchange.insert(1, SELL, price, 1, "a", 0)
    held = snapshots.take()
    assert held is not None
    assert snapshots.take() is not None  # same state: shared, costs nothing
    exchange.insert(1, SELL, 13, 1, "a", 0)
    assert snapshots.take() is None
    held.close()
    assert snapshots.held_orders == 3  # the second reader still holds the first snapshot


def test_books_come_before_orders_and_slices_respect_their_limit() -> None:
    day = _Day(books=3)
    for book in (1, 2, 3):
        for price in range(1, 6):
            day.insert(book, SELL, 100 + price, 1)
    replay = day.snapshots.take()
    assert replay is not None
    assert not replay.prepare(10) and replay.prepare(5)  # 15 orders, grouped 10 at a time
    assert replay.next_orders(10) == []  # books first
    assert [b.book_id for b in replay.next_books(2)] == [1, 2]
    assert replay.next_orders(10) == []
    assert [b.book_id for b in replay.next_books(2)] == [3]
    sizes = []
    while not replay.done:
        sizes.append(len(replay.next_orders(4)))
    assert sizes == [4, 4, 4, 3]


_op = st.one_of(
    st.tuples(
        st.just("insert"),
        st.integers(1, 2),
        st.sampled_from((BUY, SELL)),
        st.integers(95, 105),
        st.integers(1, 6),
    ),
    st.tuples(st.just("cancel"), st.integers(1, 2), st.integers(1, 60)),
    st.tuples(st.just("login")),
    st.tuples(st.just("slice"), st.integers(0, 7), st.integers(1, 5)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=120))
def test_streamed_replays_equal_the_state_at_their_login(ops: list[tuple[object, ...]]) -> None:
    """Random inserts, cancels and fills interleaved with logins and slices of their replays."""
    day = _Day()
    readers: list[tuple[Replay, tuple[list[int], list[Row]], list[int], list[Row]]] = []
    for op in ops:
        if op[0] == "insert":
            _, book, side, price, quantity = op
            day.insert(int(book), int(side), int(price), int(quantity))  # type: ignore[call-overload]
        elif op[0] == "cancel":
            _, book, order_id = op
            day.cancel(int(book), int(order_id))  # type: ignore[call-overload]
        elif op[0] == "login":
            replay = day.snapshots.take()
            assert replay is not None
            readers.append((replay, _state(day.exchange), [], []))
        elif readers:
            _, index, step = op
            replay, _, books, orders = readers[int(index) % len(readers)]  # type: ignore[call-overload]
            replay.prepare(int(step))  # type: ignore[call-overload]
            books += [b.book_id for b in replay.next_books(int(step))]  # type: ignore[call-overload]
            orders += [_row(o, r) for o, r in replay.next_orders(int(step))]  # type: ignore[call-overload]
    day.exchange.check_integrity()
    for replay, expected, books, orders in readers:
        rest_books, rest_orders = _read(replay, 3)
        assert (books + rest_books, orders + rest_orders) == expected
        replay.close()
    assert not day.snapshots.in_progress and day.snapshots.held_orders == 0


def test_levels_are_in_time_priority_even_when_the_engine_table_is_not() -> None:
    day = _Day(books=2)
    for _ in range(3):
        day.insert(1, SELL, 10, 1)  # orders 1, 2, 3 at one level
    day.cancel(2, 1)  # refused (order of another book): the engine's table moves order 1 to its end
    expected = _state(day.exchange)
    replay = day.snapshots.take()
    assert replay is not None
    assert _read(replay, 2) == expected
    assert [row[0] for row in expected[1]] == [1, 2, 3]
