"""The engine's trader extensions: time in force, self-trade prevention, amend, mass cancel."""

from __future__ import annotations

import re

import pytest

from optivex.engine import (
    BUY,
    FOK,
    GTC,
    IOC,
    SELL,
    STP_ALLOW,
    STP_CANCEL_INCOMING,
    STP_CANCEL_RESTING,
    Exchange,
    NaiveOrderBook,
    Order,
    Placement,
    Rejected,
)
from optivex.units import INT32_MAX

Row = tuple[int, int, int, int, int, str, int]


def rows(orders: list[Order]) -> list[Row]:
    return [(o.order_id, o.side, o.price, o.quantity, o.remaining, o.owner, o.timestamp) for o in orders]


def snapshot(ex: Exchange) -> tuple[list[Row], int, int]:
    return rows(ex.resting_orders()), ex.last_order_id, ex.last_trade_id


@pytest.fixture
def ex() -> Exchange:
    ex = Exchange()
    ex.create_book(1, "A")  # book 1, tick 1
    ex.create_book(5, "B")  # book 2, tick 5
    return ex


def asks(ex: Exchange, *specs: tuple[int, int, str]) -> list[Order]:
    """Resting sells in book 1: (price, quantity, owner) each."""
    return [ex.insert(1, SELL, price, qty, owner, 1)[0] for price, qty, owner in specs]


def conserved(placed: Placement) -> bool:
    traded = sum(f[4] for f in placed.fills)
    return placed.order.quantity == traded + placed.order.remaining + placed.cancelled


# ---------------------------------------------------------------------- time in force


def test_place_gtc_allow_is_insert(ex: Exchange) -> None:
    other = Exchange()
    other.create_book(1, "A")
    other.create_book(5, "B")
    for e in (ex, other):
        asks(e, (10, 3, "bob"), (11, 4, "alice"))
    order, fills = other.insert(1, BUY, 11, 5, "alice", 7)
    placed = ex.place(1, BUY, 11, 5, "alice", 7)
    assert rows([placed.order]) == rows([order]) and list(placed.fills) == list(fills)
    assert placed.self_cancelled == [] and placed.cancelled == 0
    assert snapshot(ex) == snapshot(other)
    # Same errors, same wording.
    bad: list[tuple[int, int, int | None, int]] = [
        (9, BUY, 10, 1),
        (1, 3, 10, 1),
        (1, BUY, 0, 1),
        (1, BUY, None, 1),
        (1, BUY, 10, 0),
    ]
    for book_id, side, price, qty in bad:
        with pytest.raises(Rejected) as a:
            ex.place(book_id, side, price, qty, "alice", 1)
        with pytest.raises(Rejected) as b:
            ex.insert(book_id, side, price, qty, "alice", 1)
        assert a.value.message == b.value.message
    with pytest.raises(Rejected, match="not a multiple of the tick size"):
        ex.place(2, BUY, 12, 1, "alice", 1, IOC)


def test_ioc_trades_what_crosses_and_never_rests(ex: Exchange) -> None:
    asks(ex, (10, 3, "bob"), (12, 4, "bob"))
    placed = ex.place(1, BUY, 11, 5, "alice", 7, IOC)
    assert [(f[1], f[3], f[4]) for f in placed.fills] == [(1, 10, 3)]
    assert placed.order.remaining == 0 and placed.cancelled == 2 and conserved(placed)
    assert placed.order.order_id == 3 and ex.get_order(3) is None
    assert ex.book(1).levels(BUY) == [] and ex.book(1).levels(SELL) == [(12, 4)]
    ex.check_integrity()


def test_ioc_that_crosses_nothing_is_cancelled_whole(ex: Exchange) -> None:
    asks(ex, (12, 4, "bob"))
    ex.insert(1, BUY, 9, 1, "carol", 1)  # a level at the IOC's price: it must not join it
    placed = ex.place(1, BUY, 9, 5, "alice", 7, IOC)
    assert placed.fills == () and placed.cancelled == 5 and placed.order.remaining == 0
    assert placed.order.order_id == ex.last_order_id == 3  # accepted: an id is consumed
    assert ex.book(1).levels(BUY) == [(9, 1)]
    ex.check_integrity()


def test_ioc_filled_in_full_cancels_nothing(ex: Exchange) -> None:
    asks(ex, (10, 3, "bob"), (11, 4, "bob"))
    placed = ex.place(1, BUY, 11, 5, "alice", 7, IOC)
    assert [f[4] for f in placed.fills] == [3, 2] and placed.cancelled == 0 and conserved(placed)
    assert ex.book(1).levels(SELL) == [(11, 2)]


def test_fok_fills_in_full_across_levels(ex: Exchange) -> None:
    asks(ex, (10, 3, "bob"), (11, 4, "carol"), (12, 9, "bob"))
    placed = ex.place(1, BUY, 11, 7, "alice", 7, FOK)
    assert [(f[3], f[4]) for f in placed.fills] == [(10, 3), (11, 4)]
    assert placed.order.remaining == 0 and placed.cancelled == 0 and conserved(placed)
    assert ex.book(1).levels(SELL) == [(12, 9)]
    ex.check_integrity()


def test_fok_that_cannot_fill_changes_nothing(ex: Exchange) -> None:
    asks(ex, (10, 3, "bob"), (11, 4, "carol"), (12, 9, "bob"))
    before = snapshot(ex)
    with pytest.raises(Rejected) as exc:
        ex.place(1, BUY, 11, 8, "alice", 7, FOK)
    assert exc.value.message == "FOK order cannot be filled in full: 7 of 8 available at 0.0011 or better"
    assert snapshot(ex) == before
    with pytest.raises(Rejected, match=re.escape("0 of 1 available at 0.0009 or better")):
        ex.place(1, BUY, 9, 1, "alice", 7, FOK)
    with pytest.raises(Rejected, match=re.escape("0 of 1 available at 0.0025 or better")):
        ex.place(2, SELL, 25, 1, "alice", 7, FOK)  # an empty book
    assert snapshot(ex) == before


def test_fok_sell_side_and_empty_levels(ex: Exchange) -> None:
    bids = [ex.insert(1, BUY, p, 2, "bob", 1)[0] for p in (8, 9, 10)]
    ex.cancel(1, bids[2].order_id)  # leaves an empty level at the top
    with pytest.raises(Rejected, match=re.escape("4 of 5 available at 0.0008 or better")):
        ex.place(1, SELL, 8, 5, "alice", 1, FOK)
    placed = ex.place(1, SELL, 8, 4, "alice", 1, FOK)
    assert [(f[1], f[3], f[4]) for f in placed.fills] == [(2, 9, 2), (1, 8, 2)]
    assert ex.resting_count() == 0
    ex.check_integrity()


def test_fok_with_cancel_resting_does_not_count_own_orders(ex: Exchange) -> None:
    asks(ex, (10, 3, "alice"), (10, 2, "bob"), (11, 4, "alice"), (11, 1, "carol"))
    before = snapshot(ex)
    with pytest.raises(Rejected) as exc:
        ex.place(1, BUY, 11, 4, "alice", 7, FOK, STP_CANCEL_RESTING)
    assert exc.value.message == (
        "FOK order cannot be filled in full: 3 of 4 available at 0.0011 or better"
        " (orders of the same owner not counted)"
    )
    assert snapshot(ex) == before
    placed = ex.place(1, BUY, 11, 3, "alice", 7, FOK, STP_CANCEL_RESTING)
    assert [(f[1], f[4]) for f in placed.fills] == [(2, 2), (4, 1)]
    assert [(o.order_id, o.remaining) for o in placed.self_cancelled] == [(1, 3), (3, 4)]
    assert placed.cancelled == 0 and conserved(placed) and ex.resting_count() == 0
    ex.check_integrity()


def test_fok_with_cancel_incoming_stops_at_the_first_own_order(ex: Exchange) -> None:
    asks(ex, (10, 2, "bob"), (11, 3, "alice"), (11, 5, "carol"))
    with pytest.raises(Rejected) as exc:
        ex.place(1, BUY, 11, 3, "alice", 7, FOK, STP_CANCEL_INCOMING)
    assert exc.value.message == (
        "FOK order cannot be filled in full: 2 of 3 available at 0.0011 or better"
        " before the first order of the same owner"
    )
    placed = ex.place(1, BUY, 11, 2, "alice", 7, FOK, STP_CANCEL_INCOMING)
    assert [(f[1], f[4]) for f in placed.fills] == [(1, 2)] and placed.cancelled == 0
    assert placed.self_cancelled == [] and ex.book(1).levels(SELL) == [(11, 8)]


def test_invalid_time_in_force_and_stp(ex: Exchange) -> None:
    before = snapshot(ex)
    with pytest.raises(Rejected, match="invalid time in force 3: it must be GTC, IOC or FOK"):
        ex.place(1, BUY, 10, 1, "alice", 1, 3)
    with pytest.raises(Rejected, match="invalid self-trade prevention -1: it must be ALLOW"):
        ex.place(1, BUY, 10, 1, "alice", 1, GTC, -1)
    with pytest.raises(Rejected, match="invalid self-trade prevention 3"):
        ex.place(1, BUY, 10, 1, "", 1, IOC, 3)
    assert snapshot(ex) == before


# ---------------------------------------------------------------------- self-trade prevention


def test_stp_cancel_resting_removes_own_orders_and_goes_on(ex: Exchange) -> None:
    mine = asks(ex, (10, 3, "alice"), (10, 2, "bob"), (11, 4, "alice"), (12, 1, "bob"))
    placed = ex.place(1, BUY, 12, 4, "alice", 7, GTC, STP_CANCEL_RESTING)
    assert [(f[1], f[2], f[3], f[4]) for f in placed.fills] == [(2, "bob", 10, 2), (4, "bob", 12, 1)]
    assert placed.self_cancelled == [mine[0], mine[2]]
    assert [o.remaining for o in placed.self_cancelled] == [3, 4]
    assert ex.get_order(1) is None and ex.get_order(3) is None
    # The rest rests at 12 (every crossing level was removed on the way).
    assert placed.order.remaining == 1 and placed.cancelled == 0 and conserved(placed)
    assert ex.book(1).levels(BUY) == [(12, 1)] and ex.book(1).levels(SELL) == []
    ex.check_integrity()


def test_stp_cancel_resting_stops_once_filled(ex: Exchange) -> None:
    asks(ex, (10, 2, "bob"), (10, 3, "alice"))
    placed = ex.place(1, BUY, 10, 2, "alice", 7, IOC, STP_CANCEL_RESTING)
    assert [f[4] for f in placed.fills] == [2] and placed.self_cancelled == []
    assert ex.book(1).levels(SELL) == [(10, 3)]  # never met: it stays


def test_stp_cancel_incoming_stops_matching_and_cancels_the_rest(ex: Exchange) -> None:
    asks(ex, (10, 2, "bob"), (11, 3, "alice"), (11, 5, "carol"))
    placed = ex.place(1, BUY, 12, 6, "alice", 7, GTC, STP_CANCEL_INCOMING)
    assert [(f[1], f[4]) for f in placed.fills] == [(1, 2)]
    assert placed.self_cancelled == [] and placed.cancelled == 4 and placed.order.remaining == 0
    assert conserved(placed) and ex.get_order(placed.order.order_id) is None
    assert ex.book(1).levels(SELL) == [(11, 8)] and ex.book(1).levels(BUY) == []
    ex.check_integrity()


def test_stp_cancel_incoming_without_own_orders_rests_as_gtc(ex: Exchange) -> None:
    asks(ex, (10, 2, "bob"))
    placed = ex.place(1, BUY, 10, 5, "alice", 7, GTC, STP_CANCEL_INCOMING)
    assert placed.cancelled == 0 and placed.order.remaining == 3
    assert ex.book(1).levels(BUY) == [(10, 3)]
    joined = ex.place(1, BUY, 10, 1, "alice", 8, GTC, STP_CANCEL_RESTING)  # joins the level
    assert ex.book(1).side_orders(BUY) == [placed.order, joined.order]
    ex.check_integrity()


@pytest.mark.parametrize("stp", [STP_CANCEL_RESTING, STP_CANCEL_INCOMING])
def test_owner_empty_is_never_prevented(ex: Exchange, stp: int) -> None:
    asks(ex, (10, 2, ""), (11, 3, ""))
    placed = ex.place(1, BUY, 11, 4, "", 7, GTC, stp)
    assert [f[4] for f in placed.fills] == [2, 2] and placed.self_cancelled == [] and placed.cancelled == 0
    assert ex.book(1).levels(SELL) == [(11, 1)]


def test_stp_allow_trades_with_own_orders(ex: Exchange) -> None:
    asks(ex, (10, 2, "alice"))
    placed = ex.place(1, BUY, 10, 2, "alice", 7, IOC, STP_ALLOW)
    assert [(f[2], f[4]) for f in placed.fills] == [("alice", 2)]


def test_stp_on_the_sell_side(ex: Exchange) -> None:
    for price, owner in ((10, "bob"), (10, "alice"), (9, "bob")):
        ex.insert(1, BUY, price, 2, owner, 1)
    placed = ex.place(1, SELL, 9, 5, "alice", 7, IOC, STP_CANCEL_RESTING)
    assert [(f[1], f[3]) for f in placed.fills] == [(1, 10), (3, 9)]
    assert [o.order_id for o in placed.self_cancelled] == [2] and placed.cancelled == 1
    assert ex.resting_count() == 0
    ex.check_integrity()


# ---------------------------------------------------------------------- amend


def test_amend_down_keeps_id_priority_and_timestamp(ex: Exchange) -> None:
    first = ex.insert(1, SELL, 10, 5, "alice", 100)[0]
    second = ex.insert(1, SELL, 10, 5, "bob", 101)[0]
    ex.insert(1, BUY, 10, 1, "carol", 102)  # first: 4 left, 1 traded
    last = snapshot(ex)[1:]
    amended = ex.amend(1, first.order_id, None, 2, 200)
    assert amended.order is first and amended.replaced is None and amended.priority_kept
    assert amended.previous_remaining == 4 and amended.fills == () and amended.self_cancelled == []
    assert amended.cancelled == 0
    assert (first.order_id, first.remaining, first.quantity, first.timestamp) == (1, 2, 3, 100)
    assert first.traded == 1
    assert ex.book(1).side_orders(SELL) == [first, second] and snapshot(ex)[1:] == last
    # The same price given explicitly is the same amend.
    again = ex.amend(1, first.order_id, 10, 1, 201, owner="alice")
    assert again.priority_kept and first.remaining == 1 and first.quantity == 2
    fill = ex.insert(1, BUY, 10, 1, "carol", 103)[1]
    assert fill[0][1] == first.order_id  # still first in its level
    ex.check_integrity()


def test_amend_up_loses_priority(ex: Exchange) -> None:
    first = ex.insert(1, SELL, 10, 5, "alice", 100)[0]
    second = ex.insert(1, SELL, 10, 5, "bob", 101)[0]
    amended = ex.amend(1, first.order_id, None, 6, 200)
    new = amended.order
    assert amended.replaced is first and not amended.priority_kept and amended.previous_remaining == 5
    assert (new.order_id, new.side, new.price, new.quantity, new.remaining, new.owner, new.timestamp) == (
        3,
        SELL,
        10,
        6,
        6,
        "alice",
        200,
    )
    assert first.remaining == 5 and ex.get_order(first.order_id) is None
    assert ex.book(1).side_orders(SELL) == [second, new]
    ex.check_integrity()


def test_amend_to_a_new_price_may_trade(ex: Exchange) -> None:
    bid = ex.insert(1, BUY, 9, 3, "bob", 100)[0]
    ask = ex.insert(1, SELL, 12, 5, "alice", 101)[0]
    amended = ex.amend(1, ask.order_id, 9, 5, 200)
    assert [(f[1], f[3], f[4]) for f in amended.fills] == [(bid.order_id, 9, 3)]
    assert amended.order.order_id == 3 and amended.order.remaining == 2 and amended.cancelled == 0
    assert ex.book(1).levels(SELL) == [(9, 2)] and ex.book(1).levels(BUY) == []
    # A new price with a smaller quantity is a replace too.
    smaller = ex.amend(1, amended.order.order_id, 11, 1, 201)
    assert not smaller.priority_kept and smaller.order.order_id == 4 and smaller.previous_remaining == 2
    ex.check_integrity()


def test_amend_with_stp(ex: Exchange) -> None:
    own_bid = ex.insert(1, BUY, 9, 3, "alice", 100)[0]
    ask = ex.insert(1, SELL, 12, 5, "alice", 101)[0]
    amended = ex.amend(1, ask.order_id, 9, 5, 200, stp=STP_CANCEL_RESTING)
    assert amended.fills == [] and amended.self_cancelled == [own_bid]
    assert ex.book(1).levels(SELL) == [(9, 5)]
    other = ex.insert(1, BUY, 8, 1, "alice", 102)[0]
    stopped = ex.amend(1, amended.order.order_id, 8, 4, 201, stp=STP_CANCEL_INCOMING)
    assert stopped.fills == [] and stopped.cancelled == 4 and stopped.order.remaining == 0
    assert ex.get_order(other.order_id) is other and ex.resting_count() == 1
    ex.check_integrity()


def test_amend_errors_change_nothing(ex: Exchange) -> None:
    order = ex.insert(1, SELL, 10, 5, "alice", 100)[0]
    b2 = ex.insert(2, SELL, 10, 5, "alice", 100)[0]
    filled = ex.insert(1, BUY, 3, 1, "bob", 1)[0]
    ex.insert(1, SELL, 3, 1, "carol", 1)
    before = snapshot(ex)
    cases: list[tuple[tuple[int, int, int | None, int], dict[str, object], str]] = [
        ((9, order.order_id, None, 1), {}, "unknown order book 9"),
        ((1, 99, None, 1), {}, "unknown order 99"),
        ((1, b2.order_id, None, 1), {}, f"order {b2.order_id} belongs to order book 2, not 1"),
        ((1, filled.order_id, None, 1), {}, f"order {filled.order_id} is no longer resting in order book 1"),
        ((1, order.order_id, None, 1), {"owner": "bob"}, f"order {order.order_id} is not an order of bob"),
        ((1, order.order_id, None, 5), {}, f"amend of order {order.order_id} changes nothing"),
        ((1, order.order_id, 10, 5), {"owner": "alice"}, "changes nothing"),
        ((1, order.order_id, 0, 5), {}, "invalid price 0.0: it must be > 0"),
        ((2, b2.order_id, 12, 5), {}, "invalid price 0.0012: not a multiple of the tick size 0.0005"),
        ((1, order.order_id, None, 0), {}, f"invalid quantity 0: it must be between 1 and {INT32_MAX}"),
        ((1, order.order_id, 11, INT32_MAX + 1), {}, "invalid quantity"),
        ((1, order.order_id, 11, 5), {"stp": 7}, "invalid self-trade prevention 7"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(Rejected) as exc:
            ex.amend(*args, 200, **kwargs)  # type: ignore[arg-type]
        assert message in exc.value.message, (args, exc.value.message)
        assert snapshot(ex) == before
    ex.check_integrity()


def test_amend_cancelled_order_is_not_resting(ex: Exchange) -> None:
    order = ex.insert(1, SELL, 10, 5, "alice", 100)[0]
    ex.cancel(1, order.order_id)
    with pytest.raises(Rejected, match="no longer resting in order book 1"):
        ex.amend(1, order.order_id, None, 1, 1)


# ---------------------------------------------------------------------- cancel_orders


def test_cancel_orders_of_one_owner_everywhere(ex: Exchange) -> None:
    a1 = ex.insert(1, SELL, 10, 5, "alice", 1)[0]
    b1 = ex.insert(1, SELL, 10, 4, "bob", 1)[0]
    a2 = ex.insert(2, BUY, 5, 3, "alice", 1)[0]
    a3 = ex.insert(1, BUY, 8, 2, "alice", 1)[0]
    ex.insert(1, BUY, 10, 1, "carol", 1)  # a1: 4 left
    last = snapshot(ex)[1:]
    got = ex.cancel_orders("alice")
    assert got == [a1, a2, a3] and [o.remaining for o in got] == [4, 3, 2]
    assert [o.order_id for o in ex.resting_orders()] == [b1.order_id]
    assert snapshot(ex)[1:] == last  # no id consumed
    assert ex.cancel_orders("alice") == []
    ex.check_integrity()


def test_cancel_orders_in_one_book(ex: Exchange) -> None:
    a1 = ex.insert(1, SELL, 10, 5, "alice", 1)[0]
    a2 = ex.insert(2, BUY, 5, 3, "alice", 1)[0]
    assert ex.cancel_orders("alice", 2) == [a2]
    assert ex.resting_orders() == [a1]
    assert ex.cancel_orders("alice", book_id=2) == []
    ex.check_integrity()


def test_cancel_orders_by_ids(ex: Exchange) -> None:
    a1 = ex.insert(1, SELL, 10, 5, "alice", 1)[0]
    b1 = ex.insert(1, SELL, 11, 4, "bob", 1)[0]
    a2 = ex.insert(2, BUY, 5, 3, "alice", 1)[0]
    a3 = ex.insert(1, BUY, 8, 2, "alice", 1)[0]
    gone = ex.insert(1, BUY, 7, 2, "alice", 1)[0]
    ex.cancel(1, gone.order_id)
    ids = [a3.order_id, b1.order_id, 99, gone.order_id, a1.order_id, a3.order_id, a2.order_id]
    assert ex.cancel_orders("alice", 1, ids) == [a1, a3]
    assert ex.cancel_orders("alice", 0, ids) == [a2]
    assert ex.resting_orders() == [b1]
    assert ex.cancel_orders("alice", 0, []) == []
    ex.check_integrity()


def test_cancel_orders_unknown_book(ex: Exchange) -> None:
    ex.insert(1, SELL, 10, 5, "alice", 1)
    before = snapshot(ex)
    for book_id in (3, -1):
        with pytest.raises(Rejected, match=f"unknown order book {book_id}"):
            ex.cancel_orders("alice", book_id)
        with pytest.raises(Rejected, match=f"unknown order book {book_id}"):
            ex.cancel_orders("alice", book_id, [1])
    assert snapshot(ex) == before


# ---------------------------------------------------------------------- the naive oracle


def test_naive_book_follows_the_same_rules() -> None:
    naive = NaiveOrderBook(1, 1)
    naive.insert(1, SELL, 10, 3, "alice", 1, 1)
    naive.insert(2, SELL, 10, 2, "bob", 1, 1)
    naive.insert(3, SELL, 11, 4, "alice", 1, 1)
    with pytest.raises(
        Rejected, match=re.escape("2 of 3 available at 0.0011 or better (orders of the same owner")
    ):
        naive.place(4, BUY, 11, 3, "alice", 1, 1, FOK, STP_CANCEL_RESTING)
    assert len(naive) == 3
    placed = naive.place(4, BUY, 11, 3, "alice", 1, 1, IOC, STP_CANCEL_RESTING)
    assert [(f[1], f[4]) for f in placed.fills] == [(2, 2)]
    assert [o.order_id for o in placed.self_cancelled] == [1, 3] and placed.cancelled == 1
    naive.insert(5, BUY, 9, 4, "carol", 1, 2)
    naive.insert(6, BUY, 9, 4, "dave", 1, 2)
    down = naive.amend(5, None, 1, 2, 7, 2)
    assert down.priority_kept and naive.side_orders(BUY)[0].order_id == 5
    up = naive.amend(5, None, 2, 2, 7, 2)
    assert up.order.order_id == 7 and [o.order_id for o in naive.side_orders(BUY)] == [6, 7]
    assert naive.cancel_orders("carol") == [up.order] and naive.cancel_orders("dave", [1, 6]) != []
    assert len(naive) == 0
    naive.check_integrity()
