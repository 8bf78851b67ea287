"""BookMirror and feed.events with the Optivex extension events of issue 10: amends that keep priority,
replaces, cancel reasons, and the consistency rule extended to orders with ``cancels_remainder``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from optivex.feed.events import EVENT_CLASSES, apply_event, load_event
from optivex.feed.mirror import (
    BUY,
    SELL,
    BookMirror,
    Instrument,
    LevelChange,
    MirrorError,
    OrderAmended,
    OrderCancelled,
    OrderInserted,
)
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

IOC = common_pb2.IMMEDIATE_OR_CANCEL


def mirror_with_book() -> BookMirror:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 7, Instrument("ABC"))
    return mirror


def state(mirror: BookMirror, book_id: int = 1) -> tuple[object, ...]:
    book = mirror.book(book_id)
    assert book is not None
    orders = [(o.order_id, o.remaining, o.quantity) for o in book.resting_orders()]
    return (book.version, book.levels(BUY), book.levels(SELL), orders, book.consistent)


def test_existing_constructors_keep_working_with_defaults() -> None:
    level = LevelChange(BUY, 100, 1)
    inserted = OrderInserted(1, 1, True, 1, BUY, 100, 1, "a", 0, (), level)
    assert (inserted.replaces_order_id, inserted.cancels_remainder, inserted.time_in_force) == (0, False, 0)
    assert OrderCancelled(1, 1, True, 1, BUY, 100, 1, "a", 0, level).reason == 0


def test_amend_keeps_the_order_in_place_and_lowers_its_level() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 10)
    mirror.apply_order_inserted(2, 1, BUY, 1000, 3, "bob", 11)
    mirror.apply_order_inserted(3, 1, SELL, 900, 2, "carol", 12, [1])
    mirror.apply_trade(1, 1, 1, 3, 1000, 2, SELL, 12)  # order 1: 3 of 5 open
    change = mirror.apply_order_amended(1, 1, 1, 3, 20)
    assert change == OrderAmended(1, 5, True, 1, BUY, 1000, 1, 3, "alice", 20, LevelChange(BUY, 1000, 4))
    order = mirror.order(1)
    assert order is not None
    assert (order.remaining, order.quantity, order.timestamp) == (1, 3, 10)  # traded 2 still
    book = mirror.book(1)
    assert book is not None
    assert [o.order_id for o in book.resting_orders()] == [1, 2]  # priority kept
    assert book.levels(BUY) == [(1000, 4)]


@pytest.mark.parametrize(
    "apply",
    [
        lambda m: m.apply_order_amended(9, 1, 1, 5, 0),  # not resting
        lambda m: m.apply_order_amended(1, 2, 1, 5, 0),  # another book
        lambda m: m.apply_order_amended(1, 1, 1, 4, 0),  # previous quantity is not what is open
        lambda m: m.apply_order_amended(1, 1, 5, 5, 0),  # not a reduction
        lambda m: m.apply_order_amended(1, 1, 6, 5, 0),  # an increase
        lambda m: m.apply_order_amended(1, 1, 0, 5, 0),  # to nothing
        lambda m: m.apply_order_inserted(2, 1, SELL, 2000, 1, "", 0, (), 1),  # replaces a resting order
    ],
)
def test_impossible_extension_events_raise_and_change_nothing(apply: Callable[[BookMirror], object]) -> None:
    mirror = mirror_with_book()
    mirror.apply_book_created(2, 100, 0)
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 0)
    before = state(mirror)
    with pytest.raises(MirrorError):
        apply(mirror)
    assert state(mirror) == before and mirror.order(2) is None


def test_replace_names_the_replaced_order_and_cancel_reasons_pass_through() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "alice", 0)
    cancelled = mirror.apply_order_cancelled(1, 30, common_pb2.CANCEL_REPLACED)
    assert (cancelled.reason, cancelled.quantity, cancelled.consistent) == (
        common_pb2.CANCEL_REPLACED,
        5,
        True,
    )
    inserted = mirror.apply_order_inserted(2, 1, BUY, 1100, 7, "alice", 30, (), 1)
    assert (inserted.replaces_order_id, inserted.cancels_remainder, inserted.consistent) == (1, False, True)
    assert state(mirror)[1] == [(1100, 7)]


def test_cancels_remainder_keeps_the_book_inconsistent_until_the_cancel() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, SELL, 1000, 2, "alice", 0)
    inserted = mirror.apply_order_inserted(2, 1, BUY, 1100, 5, "bob", 5, [1], 0, True, IOC)
    assert (inserted.consistent, inserted.cancels_remainder, inserted.time_in_force) == (False, True, IOC)
    trade = mirror.apply_trade(1, 1, 2, 1, 1000, 2, BUY, 5)
    book = mirror.book(1)
    assert book is not None
    # every trade arrived, but 3 of the IOC rest at 1100 for now: the book is still not consistent
    assert not trade.consistent and not book.consistent and book.pending_cancels == {2}
    assert book.levels(BUY) == [(1100, 3)]
    cancelled = mirror.apply_order_cancelled(2, 5, common_pb2.CANCEL_IMMEDIATE_OR_CANCEL)
    assert cancelled.consistent and book.consistent and cancelled.quantity == 3
    assert cancelled.reason == common_pb2.CANCEL_IMMEDIATE_OR_CANCEL
    assert book.levels(BUY) == [] and book.levels(SELL) == [] and len(mirror) == 0


def test_cancels_remainder_traded_in_full_is_consistent_after_its_last_trade() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, SELL, 1000, 2, "alice", 0)
    mirror.apply_order_inserted(2, 1, SELL, 1000, 2, "alice", 0)
    inserted = mirror.apply_order_inserted(3, 1, BUY, 1000, 4, "bob", 5, [1, 2], 0, True, IOC)
    assert not inserted.consistent
    assert not mirror.apply_trade(1, 1, 3, 1, 1000, 2, BUY, 5).consistent
    last = mirror.apply_trade(2, 1, 3, 2, 1000, 2, BUY, 5)
    book = mirror.book(1)
    assert book is not None
    assert last.consistent and book.consistent and not book.pending_cancels and len(mirror) == 0


def test_cancels_remainder_without_trades_waits_for_its_cancel() -> None:
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, SELL, 1200, 2, "alice", 0)
    inserted = mirror.apply_order_inserted(2, 1, BUY, 1100, 5, "bob", 5, (), 0, True, IOC)
    assert not inserted.consistent and not mirror.consistent
    assert mirror.apply_order_cancelled(2, 5, common_pb2.CANCEL_IMMEDIATE_OR_CANCEL).consistent
    assert mirror.consistent


def test_another_book_stays_consistent() -> None:
    mirror = mirror_with_book()
    mirror.apply_book_created(2, 100, 0)
    mirror.apply_order_inserted(1, 1, BUY, 1000, 5, "bob", 5, (), 0, True, IOC)
    other = mirror.apply_order_inserted(2, 2, BUY, 1000, 5, "bob", 5)
    assert other.consistent and not mirror.consistent


def test_self_trade_cancels_before_the_insert_then_its_own() -> None:
    """The event order of an insert with CANCEL_INCOMING after a CANCEL_RESTING-like sequence: the
    resting order's cancel (reason SELF_TRADE), the insert, its trades, its own cancel."""
    mirror = mirror_with_book()
    mirror.apply_order_inserted(1, 1, SELL, 1000, 2, "alice", 0)
    mirror.apply_order_inserted(2, 1, SELL, 1000, 2, "bob", 0)
    mirror.apply_order_inserted(3, 1, SELL, 1100, 2, "alice", 0)
    first = mirror.apply_order_cancelled(1, 9, common_pb2.CANCEL_SELF_TRADE)
    assert first.consistent and first.reason == common_pb2.CANCEL_SELF_TRADE
    mirror.apply_order_inserted(4, 1, BUY, 1100, 5, "alice", 9, [1], 0, True)
    assert not mirror.apply_trade(1, 1, 4, 2, 1000, 2, BUY, 9).consistent
    last = mirror.apply_order_cancelled(4, 9, common_pb2.CANCEL_SELF_TRADE)
    assert last.consistent and last.quantity == 3
    assert state(mirror)[2] == [(1100, 2)]


def event_frames() -> list[pb.OnOrderBookCreated | pb.OnOrderInserted | pb.OnTrade | pb.OnOrderCancelled]:
    return [
        pb.OnOrderBookCreated(order_book_id=1, tick_size=0.01),
        pb.OnOrderInserted(
            order_id=1, order_book_id=1, side=common_pb2.BUY, price=10.0, quantity=5, username="a"
        ),
    ]


def test_events_carry_the_extension_fields_into_the_changes() -> None:
    mirror = BookMirror()
    for event in event_frames():
        apply_event(mirror, event)
    amended = apply_event(
        mirror, pb.OnOrderAmended(order_id=1, order_book_id=1, timestamp=4, quantity=2, previous_quantity=5)
    )
    assert amended == OrderAmended(1, 2, True, 1, BUY, 100_000, 2, 5, "a", 4, LevelChange(BUY, 100_000, 2))
    cancelled = apply_event(
        mirror, pb.OnOrderCancelled(order_id=1, cancellation_timestamp=5, reason=common_pb2.CANCEL_REPLACED)
    )
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason == common_pb2.CANCEL_REPLACED
    inserted = apply_event(
        mirror,
        pb.OnOrderInserted(
            order_id=2,
            order_book_id=1,
            side=common_pb2.SELL,
            price=11.0,
            quantity=3,
            username="a",
            time_in_force=IOC,
            replaces_order_id=1,
            cancels_remainder=True,
        ),
    )
    assert isinstance(inserted, OrderInserted)
    assert (inserted.replaces_order_id, inserted.cancels_remainder, inserted.time_in_force) == (1, True, IOC)
    assert not inserted.consistent
    assert EVENT_CLASSES[pb.ON_ORDER_AMENDED] is pb.OnOrderAmended


def test_loading_keeps_the_remainder_rule() -> None:
    """``load_event`` (the replay's fast path, also used for the live events before the barrier) must
    not lose cancels_remainder: the book stays inconsistent until the cancel is loaded too."""
    mirror = BookMirror()
    for event in event_frames():
        load_event(mirror, event)
    load_event(
        mirror,
        pb.OnOrderInserted(
            order_id=2, order_book_id=1, side=common_pb2.BUY, price=9.0, quantity=3, cancels_remainder=True
        ),
    )
    assert not mirror.consistent
    load_event(mirror, pb.OnOrderAmended(order_id=1, order_book_id=1, quantity=4, previous_quantity=5))
    load_event(mirror, pb.OnOrderCancelled(order_id=2, reason=common_pb2.CANCEL_IMMEDIATE_OR_CANCEL))
    assert mirror.consistent and state(mirror)[1] == [(100_000, 4)]
