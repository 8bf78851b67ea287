"""BookMirror: books, levels with running totals, owners, versions and section 3's consistency rule."""

from __future__ import annotations

import pytest

from optivex.feed.mirror import (
    BUY,
    SELL,
    BookCreated,
    BookMirror,
    Instrument,
    LevelChange,
    MirrorError,
    OrderCancelled,
    OrderInserted,
    TradeApplied,
)


def mirror_with_book(symbol: str | None = "ABC") -> BookMirror:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 7, Instrument(symbol, "d", "EUR", 10.0) if symbol else None)
    return mirror


def test_book_created_with_its_instrument() -> None:
    mirror = BookMirror()
    change = mirror.apply_book_created(1, 100, 7, Instrument("ABC", "A B C", "EUR", 10.0))
    assert change == BookCreated(1, 0, True, 100, 7, Instrument("ABC", "A B C", "EUR", 10.0))
    book = mirror.book(1)
    assert book is not None
    assert (book.symbol, book.tick, book.timestamp, book.version, book.consistent) == ("ABC", 100, 7, 0, True)
    assert mirror.book_by_symbol("ABC") is book
    assert mirror.book_by_symbol("abc") is None
    mirror.apply_book_created(2, 1, 8)
    assert [b.book_id for b in mirror.books()] == [1, 2]
    assert mirror.book(2) is not None and mirror.book(2).symbol is None  # type: ignore[union-attr]


def test_levels_keep_running_totals_best_first() -> None:
    mirror = mirror_with_book()
    for oid, side, price, qty in [(1, BUY, 900, 5), (2, BUY, 1000, 3), (3, BUY, 900, 2), (4, SELL, 1200, 4)]:
        mirror.apply_order_inserted(oid, 1, side, price, qty, "alice", 0)
    mirror.apply_order_inserted(5, 1, SELL, 1100, 1, "bob", 0)
    book = mirror.book(1)
    assert book is not None
    assert book.levels(BUY) == [(1000, 3), (900, 7)]
    assert book.levels(SELL) == [(1100, 1), (1200, 4)]
    assert (book.best_bid(), book.best_ask()) == ((1000, 3), (1100, 1))
    assert book.level_total(BUY, 900) == 7 and book.level_total(BUY, 950) == 0
    assert book.version == 5
    change = mirror.apply_order_cancelled(1, 99)
    assert change == OrderCancelled(1, 6, True, 1, BUY, 900, 5, "alice", 99, LevelChange(BUY, 900, 2))
    mirror.apply_order_cancelled(3, 100)
    assert book.levels(BUY) == [(1000, 3)]
    assert mirror.order(3) is None


def test_owners_and_lookup() -> None:
    mirror = mirror_with_book()
    mirror.apply_book_created(2, 1, 0)
    mirror.apply_order_inserted(1, 1, BUY, 900, 5, "alice", 11)
    mirror.apply_order_inserted(2, 2, SELL, 5, 1, "alice", 12)
    mirror.apply_order_inserted(3, 1, SELL, 1000, 1, "bob", 13)
    assert [o.order_id for o in mirror.orders_of("alice")] == [1, 2]
    assert [o.order_id for o in mirror.orders_of("alice", 2)] == [2]
    assert mirror.orders_of("carol") == [] and mirror.orders_of("alice", 9) == []
    order = mirror.order(3)
    assert order is not None
    assert (order.book_id, order.side, order.price, order.remaining, order.owner, order.timestamp) == (
        1,
        SELL,
        1000,
        1,
        "bob",
        13,
    )
    book = mirror.book(1)
    assert book is not None and sorted(book.owners()) == ["alice", "bob"] and len(book) == 2
    assert len(mirror) == 3


def test_insert_that_trades_is_consistent_once_all_its_trades_arrived() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, SELL, 1000, 2, "alice", 0)
    mirror.apply_order_inserted(2, 1, SELL, 1100, 2, "bob", 0)
    inserted = mirror.apply_order_inserted(3, 1, BUY, 1100, 5, "carol", 5, [1, 2])
    assert isinstance(inserted, OrderInserted)
    assert (inserted.consistent, inserted.trade_ids, inserted.level) == (
        False,
        (1, 2),
        LevelChange(BUY, 1100, 5),
    )
    book = mirror.book(1)
    assert book is not None and not book.consistent and book.pending_trades == {1, 2}
    assert not mirror.consistent
    first = mirror.apply_trade(1, 1, 3, 1, 1000, 2, BUY, 5)
    assert first == TradeApplied(
        1, 4, False, 1, 1000, 2, 3, 1, "carol", "alice", BUY, 5,
        (LevelChange(BUY, 1100, 3), LevelChange(SELL, 1000, 0)),
    )  # fmt: skip
    second = mirror.apply_trade(2, 1, 3, 2, 1100, 2, BUY, 5)
    assert second.consistent and book.consistent and mirror.consistent
    assert book.levels(BUY) == [(1100, 1)] and book.levels(SELL) == []
    assert mirror.order(1) is None and mirror.order(2) is None
    remaining = mirror.order(3)
    assert remaining is not None and (remaining.quantity, remaining.remaining) == (5, 1)
    assert book.version == 5


def test_fully_filled_aggressor_leaves_no_trace() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 0)
    mirror.apply_order_inserted(2, 1, SELL, 900, 5, "bob", 0, [1])
    mirror.apply_trade(1, 1, 1, 2, 1000, 5, SELL, 0)
    book = mirror.book(1)
    assert book is not None
    assert book.levels(BUY) == [] and book.levels(SELL) == [] and len(mirror) == 0
    assert mirror.orders_of("alice") == [] and book.owners() == []


@pytest.mark.parametrize(
    "apply",
    [
        lambda m: m.apply_book_created(1, 100, 0),  # twice
        lambda m: m.apply_book_created(2, 0, 0),  # invalid tick
        lambda m: m.apply_book_created(2, 1, 0, Instrument("ABC")),  # symbol taken
        lambda m: m.apply_order_inserted(9, 2, BUY, 100, 1, "", 0),  # unknown book
        lambda m: m.apply_order_inserted(1, 1, BUY, 100, 1, "", 0),  # order id twice
        lambda m: m.apply_order_inserted(9, 1, 2, 100, 1, "", 0),  # bad side
        lambda m: m.apply_order_inserted(9, 1, BUY, 100, 0, "", 0),  # bad quantity
        lambda m: m.apply_trade(5, 1, 1, 2, 100, 1, BUY, 0),  # trade nobody announced
        lambda m: m.apply_order_cancelled(42, 0),  # not resting
    ],
)
def test_impossible_events_raise_and_change_nothing(apply: object) -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 0)
    book = mirror.book(1)
    assert book is not None
    before = (book.version, book.levels(BUY), book.levels(SELL), len(mirror))
    with pytest.raises(MirrorError):
        apply(mirror)  # type: ignore[operator]
    assert (book.version, book.levels(BUY), book.levels(SELL), len(mirror)) == before


def test_trade_with_a_wrong_quantity_is_refused() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 0)
    mirror.apply_order_inserted(2, 1, SELL, 1000, 3, "bob", 0, [1])
    with pytest.raises(MirrorError):
        mirror.apply_trade(1, 1, 1, 2, 1000, 4, SELL, 0)
    with pytest.raises(MirrorError):
        mirror.apply_trade(1, 1, 2, 1, 1000, 3, SELL, 0)  # sides swapped
    mirror.apply_trade(1, 1, 1, 2, 1000, 3, SELL, 0)
    book = mirror.book(1)
    assert book is not None and book.consistent and book.levels(BUY) == [(1000, 2)]


def test_replay_orders_load_like_inserts() -> None:
    loaded = mirror_with_book()
    inserted = mirror_with_book()
    for mirror in (loaded, inserted):
        mirror.apply_book_created(2, 1, 0)
    for oid, book, side, price, qty, owner in [
        (1, 1, BUY, 900, 5, "a"),
        (2, 2, SELL, 7, 1, "b"),
        (3, 1, BUY, 900, 2, "a"),
    ]:
        loaded.load_order(oid, book, side, price, qty, owner, oid)
        inserted.apply_order_inserted(oid, book, side, price, qty, owner, oid)
    for book_id in (1, 2):
        a, b = loaded.book(book_id), inserted.book(book_id)
        assert a is not None and b is not None
        assert (a.levels(BUY), a.levels(SELL), a.version) == (b.levels(BUY), b.levels(SELL), b.version)
        assert [o.order_id for o in a.resting_orders()] == [o.order_id for o in b.resting_orders()]
    with pytest.raises(MirrorError):
        loaded.load_order(1, 1, BUY, 900, 5, "a", 0)
    with pytest.raises(MirrorError):
        loaded.load_order(9, 3, BUY, 900, 5, "a", 0)
