"""Amends in the risk engine: each limit of section 7 at its exact boundary (accepted at the limit,
rejected one unit over naming the field), priority-keeping amends, and the reservation's lifecycle
(placed, released, settled, the feed's events early or late, the order book deciding otherwise than
the mirror predicted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from optivex.risk import InstrumentLimits, Rejection, Reservation, RiskEngine, Rolling, UserLimits

BOOK, OTHER_BOOK = 1, 2
SYMBOL, OTHER_SYMBOL = "ABC", "XYZ"
BOOKS = {SYMBOL: BOOK, OTHER_SYMBOL: OTHER_BOOK}
ONE = 10_000


class Resting(NamedTuple):
    order_id: int
    price: int
    remaining: int


class Trader:
    """One user's orders on an engine, inserted and amended the way the gateway does it."""

    def __init__(self, engine: RiskEngine, user: str = "alice") -> None:
        self.engine = engine
        self.user = user
        self.next_order_id = 1

    def new_id(self) -> int:
        order_id = self.next_order_id
        self.next_order_id += 1
        return order_id

    def rest(self, quantity: int, price: int = ONE, symbol: str = SYMBOL, now: float = 0.0) -> Resting:
        reservation = self.engine.check_insert(self.user, BOOKS[symbol], symbol, price, quantity, now)
        assert isinstance(reservation, Reservation), reservation
        order_id = self.new_id()
        self.engine.placed(reservation, order_id)
        self.engine.order_added(self.user, BOOKS[symbol], order_id, price, quantity)
        return Resting(order_id, price, quantity)

    def amend(
        self, order: Resting, price: int, quantity: int, symbol: str = SYMBOL, now: float = 0.0
    ) -> Reservation | Rejection:
        keeps = price == order.price and quantity < order.remaining
        return self.engine.check_amend(
            self.user,
            BOOKS[symbol],
            symbol,
            order.order_id,
            order.price,
            order.remaining,
            price,
            quantity,
            keeps,
            now,
        )

    def replace(
        self, order: Resting, price: int, quantity: int, symbol: str = SYMBOL, now: float = 0.0
    ) -> Resting:
        """Amend losing priority, then the response and the feed (old cancelled, new added)."""
        reservation = self.amend(order, price, quantity, symbol, now)
        assert isinstance(reservation, Reservation), reservation
        order_id = self.new_id()
        self.engine.placed(reservation, order_id)
        self.engine.order_reduced(self.user, BOOKS[symbol], order.price, order.remaining)
        self.engine.order_added(self.user, BOOKS[symbol], order_id, price, quantity)
        return Resting(order_id, price, quantity)


def _figures(engine: RiskEngine) -> tuple[tuple[int, int], tuple[int, int]]:
    return engine.outstanding("alice"), engine.outstanding("alice", BOOK)


# -- every outstanding and rolling row, for an amend that loses priority --------------------


class AmendRow(NamedTuple):
    """``setup`` rests orders and returns the one to amend; ``new(extra)`` the amended (price, quantity)
    that is exactly at the limit with extra 0."""

    field: str
    where: str
    limits: tuple[UserLimits | None, InstrumentLimits | None]
    setup: Callable[[Trader], Resting]
    new: Callable[[int], tuple[int, int]]
    now: float = 0.0


def _user_quantity(t: Trader) -> Resting:
    t.rest(60, symbol=OTHER_SYMBOL)  # every instrument counts for the user
    return t.rest(30)


def _instrument_quantity(t: Trader) -> Resting:
    t.rest(1000, symbol=OTHER_SYMBOL)  # another instrument's orders do not count
    t.rest(60)
    return t.rest(30)


def _instrument_amount(t: Trader) -> Resting:
    t.rest(1000, 99 * ONE, symbol=OTHER_SYMBOL)
    t.rest(95, 95_000)
    return t.rest(5, 12_345)


# 1000.0000 - 95 x 9.5 - 5 x 1.2345 + the amended order's own 5 x 1.2345
AMOUNT_HEADROOM = 1000 * ONE - 95 * 95_000


def _accepted(t: Trader, price: int) -> Resting:
    """90 lots accepted and gone (a fill, a cancel), then the order to amend: 1 lot at ``price``."""
    t.rest(10**6, symbol=OTHER_SYMBOL)
    t.rest(30, price)
    t.rest(60, price)
    t.engine.order_reduced(t.user, BOOK, price, 30)
    t.engine.order_reduced(t.user, BOOK, price, 60)
    return t.rest(1, price)


ROLLING_AMOUNT_HEADROOM = 200 * ONE - 91 * 12_345

AMEND_ROWS = [
    AmendRow(
        "max_outstanding_quantity",
        "(user)",
        (UserLimits(max_outstanding_quantity=100), None),
        _user_quantity,
        lambda extra: (ONE + 1, 40 + extra),
    ),
    AmendRow(
        "max_outstanding_quantity",
        "(user)",
        (UserLimits(max_outstanding_quantity=100), None),
        _user_quantity,
        lambda extra: (ONE, 40 + extra),  # same price, more quantity: priority lost too
    ),
    AmendRow(
        "max_outstanding_quantity",
        "(instrument ABC)",
        (None, InstrumentLimits(max_outstanding_quantity=100)),
        _instrument_quantity,
        lambda extra: (2 * ONE, 40 + extra),
    ),
    AmendRow(
        "max_outstanding_amount",
        "(instrument ABC)",
        (None, InstrumentLimits(max_outstanding_amount=1000 * ONE)),
        _instrument_amount,
        lambda extra: (AMOUNT_HEADROOM + extra, 1),
    ),
    AmendRow(
        "max_outstanding_amount",
        "(instrument ABC)",
        (None, InstrumentLimits(max_outstanding_amount=1000 * ONE)),
        _instrument_amount,
        # 5 lots at a price whose amount lands exactly on the limit (AMOUNT_HEADROOM is a multiple of 5)
        lambda extra: (AMOUNT_HEADROOM // 5, 5) if not extra else (AMOUNT_HEADROOM // 5 + 1, 5),
    ),
    AmendRow(
        "order_quantity_rolling_limit",
        "(instrument ABC)",
        (None, InstrumentLimits(order_quantity=Rolling(100, 10.0))),
        lambda t: _accepted(t, ONE),
        lambda extra: (2 * ONE, 9 + extra),
        now=9.75,
    ),
    AmendRow(
        "order_amount_rolling_limit",
        "(instrument ABC)",
        (None, InstrumentLimits(order_amount=Rolling(200 * ONE, 10.0))),
        lambda t: _accepted(t, 12_345),
        lambda extra: (ROLLING_AMOUNT_HEADROOM + extra, 1),
        now=9.75,
    ),
]
IDS = [f"{r.field} {r.where} {i}" for i, r in enumerate(AMEND_ROWS)]


def _setup(row: AmendRow) -> tuple[Trader, Resting]:
    engine = RiskEngine()
    user_limits, instrument_limits = row.limits
    if user_limits is not None:
        engine.set_user_limits("alice", user_limits)
    if instrument_limits is not None:
        engine.set_instrument_limits("alice", SYMBOL, instrument_limits)
    trader = Trader(engine)
    return trader, row.setup(trader)


def test_amount_headroom_is_a_multiple_of_five() -> None:
    assert AMOUNT_HEADROOM % 5 == 0


@pytest.mark.parametrize("row", AMEND_ROWS, ids=IDS)
def test_amend_at_the_limit_is_accepted(row: AmendRow) -> None:
    trader, order = _setup(row)
    price, quantity = row.new(0)
    assert isinstance(trader.amend(order, price, quantity, now=row.now), Reservation)


@pytest.mark.parametrize("row", AMEND_ROWS, ids=IDS)
def test_amend_one_unit_over_is_rejected_naming_the_field(row: AmendRow) -> None:
    trader, order = _setup(row)
    before = _figures(trader.engine)
    price, quantity = row.new(1)
    rejection = trader.amend(order, price, quantity, now=row.now)
    assert isinstance(rejection, Rejection)
    assert rejection.field == row.field
    assert rejection.message.startswith(f"risk limit {row.field} breached: ")
    assert rejection.message.endswith(row.where)
    assert rejection.outstanding == row.field.startswith("max_outstanding")
    # Nothing changed: the amend at the limit still passes.
    assert _figures(trader.engine) == before
    price, quantity = row.new(0)
    assert isinstance(trader.amend(order, price, quantity, now=row.now), Reservation)


@pytest.mark.parametrize("row", AMEND_ROWS, ids=IDS)
def test_amend_with_limits_unset_or_zero_is_not_limited(row: AmendRow) -> None:
    for zero in (False, True):
        engine = RiskEngine()
        if zero:
            engine.set_user_limits("alice", UserLimits(0, Rolling(0, 0.0)))
            engine.set_instrument_limits(
                "alice", SYMBOL, InstrumentLimits(0, 0, Rolling(0, 0.0), Rolling(0, 0.0))
            )
        trader = Trader(engine)
        order = row.setup(trader)
        price, quantity = row.new(10**6)
        assert isinstance(trader.amend(order, price, quantity, now=row.now), Reservation)


def test_rolling_row_entries_at_the_window_boundary_no_longer_count() -> None:
    """The rolling rows' setup entries are made at 0: at 10 s (the window) they are gone."""
    row = AMEND_ROWS[5]
    trader, order = _setup(row)
    assert isinstance(trader.amend(order, 2 * ONE, 99, now=10.0), Reservation)


def test_amend_rejection_messages_give_the_figures() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_user_limits("alice", UserLimits(max_outstanding_quantity=100))
    order = trader.rest(30)
    trader.rest(70)
    assert trader.amend(order, ONE, 31) == Rejection(
        "max_outstanding_quantity",
        "risk limit max_outstanding_quantity breached: 100 resting - 30 amended + 31 new > 100 (user)",
        True,
    )
    engine.set_user_limits("alice", UserLimits())
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_amount=100 * ONE))
    rejection = trader.amend(order, ONE + 1, 30)
    assert isinstance(rejection, Rejection)
    assert rejection.message == (
        "risk limit max_outstanding_amount breached: 100.0000 resting - 30.0000 amended + 30.0030 new"
        " > 100.0000 (instrument ABC)"
    )
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(130, 2.0)))
    rejection = trader.amend(order, 2 * ONE, 31)
    assert isinstance(rejection, Rejection)
    assert rejection.message == (
        "risk limit order_quantity_rolling_limit breached: 100 accepted in the last 2 s + 31 new > 130"
        " (instrument ABC)"
    )


def test_amend_checks_in_section_7s_order() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(10)
    engine.set_user_limits("alice", UserLimits(max_outstanding_quantity=10))
    engine.set_instrument_limits(
        "alice", SYMBOL, InstrumentLimits(10, 10 * ONE, Rolling(10, 5.0), Rolling(10 * ONE, 5.0))
    )
    fields = [
        "max_outstanding_quantity",
        "max_outstanding_quantity",
        "max_outstanding_amount",
        "order_quantity_rolling_limit",
        "order_amount_rolling_limit",
    ]
    wheres = ["(user)"] + ["(instrument ABC)"] * 4
    for step, (field, where) in enumerate(zip(fields, wheres, strict=True)):
        rejection = trader.amend(order, 2 * ONE, 11)
        assert isinstance(rejection, Rejection)
        assert (rejection.field, rejection.message.endswith(where)) == (field, True), step
        # Lift the limit just breached; the next one is breached next.
        if step == 0:
            engine.set_user_limits("alice", UserLimits())
        else:
            limits = [
                InstrumentLimits(0, 10 * ONE, Rolling(10, 5.0), Rolling(10 * ONE, 5.0)),
                InstrumentLimits(0, 0, Rolling(10, 5.0), Rolling(10 * ONE, 5.0)),
                InstrumentLimits(0, 0, None, Rolling(10 * ONE, 5.0)),
                InstrumentLimits(),
            ][step - 1]
            engine.set_instrument_limits("alice", SYMBOL, limits)
    assert isinstance(trader.amend(order, 2 * ONE, 11), Reservation)


# -- keeping priority ----------------------------------------------------------------------


def test_keeping_priority_always_passes_and_adds_nothing() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(50)
    trader.rest(50)
    # Limits lowered below what rests and what was accepted: every check would be breached.
    engine.set_user_limits("alice", UserLimits(max_outstanding_quantity=10))
    engine.set_instrument_limits(
        "alice", SYMBOL, InstrumentLimits(10, ONE, Rolling(10, 5.0), Rolling(ONE, 5.0))
    )
    before = _figures(engine)
    reservation = trader.amend(order, ONE, 49, now=1.0)
    assert isinstance(reservation, Reservation)
    assert _figures(engine) == before  # it reserves nothing: the feed's OrderAmended lowers
    engine.placed(reservation, order.order_id)
    assert _figures(engine) == before
    engine.order_reduced("alice", BOOK, ONE, 50 - 49)
    assert _figures(engine) == ((99, 99 * ONE), (99, 99 * ONE))


def test_keeping_priority_adds_nothing_to_the_rolling_windows() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(100, 10.0)))
    order = trader.rest(60)
    reservation = trader.amend(order, ONE, 10)
    assert isinstance(reservation, Reservation)
    engine.placed(reservation, order.order_id)
    engine.order_reduced("alice", BOOK, ONE, 50)
    # 60 accepted; the amend added nothing: 40 more fit exactly.
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 40, 1.0), Reservation)


def test_losing_priority_counts_the_whole_new_quantity_in_the_rolling_windows() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(100, 10.0)))
    order = trader.rest(30)
    trader.replace(order, ONE + 1, 30)  # a price change of the same quantity: 30 more accepted
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 41, 1.0), Rejection)
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 40, 1.0), Reservation)


def test_keeps_priority_must_match_the_amend() -> None:
    engine = RiskEngine()
    for old_price, old, new_price, new, keeps in [
        (ONE, 10, ONE, 5, False),
        (ONE, 10, ONE, 10, True),
        (ONE, 10, ONE, 11, True),
        (ONE, 10, ONE + 1, 5, True),
    ]:
        with pytest.raises(ValueError, match="keeps_priority"):
            engine.check_amend("alice", BOOK, SYMBOL, 1, old_price, old, new_price, new, keeps, 0.0)


# -- the reservation's lifecycle -------------------------------------------------------------


def test_replace_moves_the_reservation_into_outstanding_without_double_counting() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(10)
    reservation = trader.amend(order, 2 * ONE, 20)
    assert isinstance(reservation, Reservation)
    # In flight the old order still counts and the new one is reserved: an overestimate, never under.
    assert _figures(engine) == ((30, 50 * ONE), (30, 50 * ONE))
    engine.placed(reservation, 2)
    assert _figures(engine) == ((30, 50 * ONE), (30, 50 * ONE))
    engine.order_reduced("alice", BOOK, ONE, 10)  # OnOrderCancelled(old, CANCEL_REPLACED)
    engine.order_added("alice", BOOK, 2, 2 * ONE, 20)  # OnOrderInserted(new, replaces old)
    assert _figures(engine) == ((20, 40 * ONE), (20, 40 * ONE))
    engine.order_reduced("alice", BOOK, 2 * ONE, 5)  # the new order trades at once
    assert _figures(engine) == ((15, 30 * ONE), (15, 30 * ONE))


def test_replace_seen_on_the_feed_before_the_response() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(10)
    reservation = trader.amend(order, 2 * ONE, 20)
    assert isinstance(reservation, Reservation)
    engine.order_reduced("alice", BOOK, ONE, 10)
    engine.order_added("alice", BOOK, 2, 2 * ONE, 20)
    assert _figures(engine) == ((40, 80 * ONE), (40, 80 * ONE))
    engine.placed(reservation, 2)
    assert _figures(engine) == ((20, 40 * ONE), (20, 40 * ONE))


def test_release_of_a_replace_undoes_its_reservation_and_rolling_entries() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(50, 10.0)))
    order = trader.rest(10)
    before = _figures(engine)
    reservation = trader.amend(order, 2 * ONE, 40)
    assert isinstance(reservation, Reservation)
    assert isinstance(trader.amend(order, 2 * ONE, 1), Rejection)  # 10 + 40 accepted: full
    engine.release(reservation)
    engine.release(reservation)  # twice: nothing more
    assert _figures(engine) == before
    assert isinstance(trader.amend(order, 2 * ONE, 40), Reservation)


def test_two_replacing_amends_cannot_both_slip_under_one_limit() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    first, second = trader.rest(45), trader.rest(45)
    engine.set_user_limits("alice", UserLimits(max_outstanding_quantity=100))
    assert isinstance(trader.amend(first, ONE, 55), Reservation)  # 90 - 45 + 55 = 100
    # The first is in flight: its 55 count, and so does the old 45 until the feed shows it gone.
    assert isinstance(trader.amend(second, ONE, 46), Rejection)


def test_kept_priority_although_checked_as_replaced_drops_the_reservation() -> None:
    """Defensive: the response keeps the id (no new order will be added): nothing stays reserved."""
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(50, 10.0)))
    order = trader.rest(10)
    before = _figures(engine)
    reservation = trader.amend(order, ONE, 40)
    assert isinstance(reservation, Reservation)
    engine.placed(reservation, order.order_id)
    assert _figures(engine) == before
    # Its rolling entries are gone too: 40 more fit.
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 40, 1.0), Reservation)


@pytest.mark.parametrize("resolve", ["placed", "settled"])
def test_replaced_although_checked_as_keeping_priority_counts_in_the_windows_from_the_check(
    resolve: str,
) -> None:
    """A fill the mirror had not shown: 10 rest (mirror), 4 of them filled, amend to 8 keeps in the
    mirror's eyes; the order book sees 6 left, so 8 is more: a replacement with a new id."""
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(30, 10.0)))
    order = trader.rest(10, now=0.0)
    reservation = trader.amend(order, ONE, 8, now=1.0)
    assert isinstance(reservation, Reservation)
    engine.order_reduced("alice", BOOK, ONE, 4)  # the fill, on the feed
    if resolve == "placed":
        engine.placed(reservation, 2)
        engine.order_reduced("alice", BOOK, ONE, 6)
        engine.order_added("alice", BOOK, 2, ONE, 8)
    else:
        engine.reset([("alice", BOOK, ONE, 8)])
        engine.settled(reservation, 2)
    assert _figures(engine) == ((8, 8 * ONE), (8, 8 * ONE))
    # 10 at 0 s and 8 at 1 s accepted: 12 more fit at 9.75 s, not 13.
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 13, 9.75), Rejection)
    # At 10.5 s the first 10 are out of the window, the amend's 8 (made at 1 s) still in.
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 23, 10.5), Rejection)
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 22, 10.5), Reservation)


def test_replaced_although_checked_as_keeping_with_the_feed_first() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(10)
    pending = engine.check_insert("alice", BOOK, SYMBOL, ONE, 1, 0.0)  # another insert in flight
    assert isinstance(pending, Reservation)
    reservation = trader.amend(order, ONE, 8)
    assert isinstance(reservation, Reservation)
    engine.order_reduced("alice", BOOK, ONE, 4)
    engine.order_reduced("alice", BOOK, ONE, 6)
    engine.order_added("alice", BOOK, 7, ONE, 8)
    engine.placed(reservation, 7)
    assert _figures(engine) == ((9, 9 * ONE), (9, 9 * ONE))
    # The other insert's order is not taken for the amend's: it still waits for its own.
    engine.placed(pending, 8)
    assert _figures(engine) == ((9, 9 * ONE), (9, 9 * ONE))
    engine.order_added("alice", BOOK, 8, ONE, 1)
    assert _figures(engine) == ((9, 9 * ONE), (9, 9 * ONE))


def test_settled_replace_keeps_its_rolling_entries() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(50, 10.0)))
    order = trader.rest(10)
    reservation = trader.amend(order, 2 * ONE, 20)
    assert isinstance(reservation, Reservation)
    engine.reset([("alice", BOOK, 2 * ONE, 20)])
    engine.settled(reservation, 2)
    assert _figures(engine) == ((20, 40 * ONE), (20, 40 * ONE))
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 21, 1.0), Rejection)
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 20, 1.0), Reservation)


def test_settled_kept_although_checked_as_replaced_drops_its_rolling_entries() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(50, 10.0)))
    order = trader.rest(10)
    reservation = trader.amend(order, ONE, 20)
    assert isinstance(reservation, Reservation)
    engine.reset([("alice", BOOK, ONE, 10)])
    engine.settled(reservation, order.order_id)
    assert _figures(engine) == ((10, 10 * ONE), (10, 10 * ONE))
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 40, 1.0), Reservation)


def test_keeping_amend_in_flight_over_a_reset_is_released_cleanly() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    order = trader.rest(10)
    reservation = trader.amend(order, ONE, 5)
    assert isinstance(reservation, Reservation)
    engine.reset([("alice", BOOK, ONE, 10)])
    engine.release(reservation)
    assert _figures(engine) == ((10, 10 * ONE), (10, 10 * ONE))


def test_amend_amounts_beyond_64_bits_stay_exact() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    big_price, big_quantity = 2**53 - 1, 2**31 - 1
    order = trader.rest(1)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_amount=Rolling(2**90, 10.0)))
    reservation = trader.amend(order, big_price, big_quantity)
    assert isinstance(reservation, Reservation)
    assert engine.outstanding("alice", BOOK) == (1 + big_quantity, ONE + big_price * big_quantity)
    # A keeping amend whose late amount does not fit 64 bits either.
    big = trader.rest(big_quantity, big_price)
    keeping = trader.amend(big, big_price, big_quantity - 1, now=1.0)
    assert isinstance(keeping, Reservation)
    engine.placed(keeping, 99)
    accepted = ONE + 2 * big_price * big_quantity + big_price * (big_quantity - 1)
    limit = 2**90
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, limit - accepted + 1, 1, 2.0), Rejection)
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, limit - accepted, 1, 2.0), Reservation)


def test_accepted_shows_what_the_rolling_checks_see() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    assert engine.accepted("alice", SYMBOL, 0.0) == (0, 0)
    order = trader.rest(10, now=0.0)
    assert engine.accepted("alice", SYMBOL, 0.0) == (0, 0)  # no rolling limit applies
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(100, 2.0)))
    trader.replace(order, 2 * ONE, 5, now=1.0)
    assert engine.accepted("alice", SYMBOL, 1.5) == (15, 0)
    assert engine.accepted("alice", SYMBOL, 2.0) == (5, 0)  # the first entry's age is the window
    assert engine.accepted("alice", SYMBOL, 3.0) == (0, 0)
