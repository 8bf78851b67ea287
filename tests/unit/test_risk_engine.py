"""The risk engine against section 7, row by row, at each limit's exact boundary."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from optivex.risk import InstrumentLimits, Rejection, Reservation, RiskEngine, Rolling, UserLimits
from optivex.risk.engine import _COMPACT_AT

BOOK, OTHER_BOOK = 1, 2
SYMBOL, OTHER_SYMBOL = "ABC", "XYZ"
BOOKS = {SYMBOL: BOOK, OTHER_SYMBOL: OTHER_BOOK}
ONE = 10_000  # a price of 1.0 in units


class Trader:
    """One user's inserts on an engine, each placed and added the way the gateway does it."""

    def __init__(self, engine: RiskEngine, user: str = "alice") -> None:
        self.engine = engine
        self.user = user
        self.next_order_id = 1

    def check(self, quantity: int, price: int = ONE, symbol: str = SYMBOL, now: float = 0.0) -> Reservation:
        result = self.engine.check_insert(self.user, BOOKS[symbol], symbol, price, quantity, now)
        assert isinstance(result, Reservation), result
        return result

    def reject(self, quantity: int, price: int = ONE, symbol: str = SYMBOL, now: float = 0.0) -> Rejection:
        result = self.engine.check_insert(self.user, BOOKS[symbol], symbol, price, quantity, now)
        assert isinstance(result, Rejection), "accepted"
        return result

    def rest(self, quantity: int, price: int = ONE, symbol: str = SYMBOL, now: float = 0.0) -> int:
        """Check, place and add an order; returns its order id."""
        reservation = self.check(quantity, price, symbol, now)
        order_id = self.next_order_id
        self.next_order_id += 1
        self.engine.placed(reservation, order_id)
        self.engine.order_added(self.user, BOOKS[symbol], order_id, price, quantity)
        return order_id


# -- every row of the table: at the limit accepted, one unit over rejected ----------------


class Row:
    """A limit of section 7: ``fill`` brings the user to exactly the limit minus what ``last(t, 0)`` adds."""

    def __init__(
        self,
        field: str,
        where: str,
        limit: Callable[[int], tuple[UserLimits | None, InstrumentLimits | None]],
        fill: Callable[[Trader], None],
        last: Callable[[Trader, int], Reservation | Rejection],
    ) -> None:
        self.field = field
        self.where = where
        self.limit = limit
        self.fill = fill
        self.last = last


LIMIT_QUANTITY = 100
LIMIT_AMOUNT = 1000 * ONE  # 1000.0000
RESTING_AMOUNT = 95 * 95_000 + 5 * 12_345
LIMIT_ROLLING_AMOUNT = 200 * ONE
ACCEPTED_ROLLING_AMOUNT = 90 * 12_345
LIMITS = {
    "max_outstanding_quantity": LIMIT_QUANTITY,
    "max_outstanding_amount": LIMIT_AMOUNT,
    "order_quantity_rolling_limit": LIMIT_QUANTITY,
    "order_amount_rolling_limit": LIMIT_ROLLING_AMOUNT,
}


def _fill_user_quantity(t: Trader) -> None:
    t.rest(60, symbol=OTHER_SYMBOL)  # every instrument of the user counts
    t.rest(30)


def _fill_instrument_quantity(t: Trader) -> None:
    t.rest(1000, symbol=OTHER_SYMBOL)  # another instrument's orders do not count
    t.rest(60)
    t.rest(30)


def _fill_instrument_amount(t: Trader) -> None:
    t.rest(1000, 99 * ONE, symbol=OTHER_SYMBOL)
    t.rest(95, 95_000)
    t.rest(5, 12_345)


def _fill_accepted(t: Trader, price: int) -> None:
    """Accept 90 lots here in two orders, then fill one and cancel the other: accepted still counts."""
    t.rest(10**6, symbol=OTHER_SYMBOL)
    t.rest(30, price)
    t.rest(60, price)
    t.engine.order_reduced(t.user, BOOK, price, 30)
    t.engine.order_reduced(t.user, BOOK, price, 60)
    assert t.engine.outstanding(t.user, BOOK) == (0, 0)


def _last_quantity(t: Trader, extra: int) -> Reservation | Rejection:
    """10 lots (the headroom) + extra, at 5 s (every entry of the fill, made at 0, in the window)."""
    return t.engine.check_insert(t.user, BOOK, SYMBOL, ONE, 10 + extra, 5.0)


def _last_amount(headroom: int) -> Callable[[Trader, int], Reservation | Rejection]:
    """One lot priced at the amount headroom + extra units: one unit over is one unit of amount over."""
    return lambda t, extra: t.engine.check_insert(t.user, BOOK, SYMBOL, headroom + extra, 1, 5.0)


ROWS = [
    Row(
        "max_outstanding_quantity",
        "(user)",
        lambda v: (UserLimits(max_outstanding_quantity=v), None),
        _fill_user_quantity,
        _last_quantity,
    ),
    Row(
        "max_outstanding_quantity",
        "(instrument ABC)",
        lambda v: (None, InstrumentLimits(max_outstanding_quantity=v)),
        _fill_instrument_quantity,
        _last_quantity,
    ),
    Row(
        "max_outstanding_amount",
        "(instrument ABC)",
        lambda v: (None, InstrumentLimits(max_outstanding_amount=v)),
        _fill_instrument_amount,
        _last_amount(LIMIT_AMOUNT - RESTING_AMOUNT),
    ),
    Row(
        "order_quantity_rolling_limit",
        "(instrument ABC)",
        lambda v: (None, InstrumentLimits(order_quantity=Rolling(v, 10.0))),
        lambda t: _fill_accepted(t, ONE),
        _last_quantity,
    ),
    Row(
        "order_amount_rolling_limit",
        "(instrument ABC)",
        lambda v: (None, InstrumentLimits(order_amount=Rolling(v, 10.0))),
        lambda t: _fill_accepted(t, 12_345),
        _last_amount(LIMIT_ROLLING_AMOUNT - ACCEPTED_ROLLING_AMOUNT),
    ),
]


def _apply(engine: RiskEngine, row: Row, value: int) -> None:
    user_limits, instrument_limits = row.limit(value)
    if user_limits is not None:
        engine.set_user_limits("alice", user_limits)
    if instrument_limits is not None:
        engine.set_instrument_limits("alice", SYMBOL, instrument_limits)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.field} {r.where}" for r in ROWS])
def test_at_the_limit_is_accepted(row: Row) -> None:
    trader = Trader(RiskEngine())
    _apply(trader.engine, row, LIMITS[row.field])
    row.fill(trader)
    assert isinstance(row.last(trader, 0), Reservation)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.field} {r.where}" for r in ROWS])
def test_one_unit_over_is_rejected_naming_the_field(row: Row) -> None:
    trader = Trader(RiskEngine())
    _apply(trader.engine, row, LIMITS[row.field])
    row.fill(trader)
    before = (trader.engine.outstanding("alice"), trader.engine.outstanding("alice", BOOK))
    rejection = row.last(trader, 1)
    assert isinstance(rejection, Rejection)
    assert rejection.field == row.field
    assert f"risk limit {row.field} breached" in rejection.message
    assert rejection.message.endswith(row.where)
    assert rejection.outstanding == row.field.startswith("max_outstanding")
    # A rejection changes nothing: the same request at the limit still passes.
    assert (trader.engine.outstanding("alice"), trader.engine.outstanding("alice", BOOK)) == before
    assert isinstance(row.last(trader, 0), Reservation)


@pytest.mark.parametrize("setting", ["unset", "zero"])
@pytest.mark.parametrize("row", ROWS, ids=[f"{r.field} {r.where}" for r in ROWS])
def test_unset_or_zero_is_no_limit(row: Row, setting: str) -> None:
    trader = Trader(RiskEngine())
    if setting == "zero":
        _apply(trader.engine, row, 0)
    row.fill(trader)
    assert isinstance(row.last(trader, 10**9), Reservation)


def test_rejection_messages_give_the_figures() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_amount=1000 * ONE))
    trader.rest(100, 95_000)
    assert trader.reject(100, ONE).message == (
        "risk limit max_outstanding_amount breached: 950.0000 resting + 100.0000 new > 1000.0000"
        " (instrument ABC)"
    )
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_quantity=120))
    assert trader.reject(21).message == (
        "risk limit max_outstanding_quantity breached: 100 resting + 21 new > 120 (instrument ABC)"
    )
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(150, 2.0)))
    assert trader.reject(51).message == (
        "risk limit order_quantity_rolling_limit breached: 100 accepted in the last 2 s + 51 new > 150"
        " (instrument ABC)"
    )
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_amount=Rolling(960 * ONE, 1.5)))
    assert trader.reject(1, 10 * ONE + 1).message == (
        "risk limit order_amount_rolling_limit breached: 950.0000 accepted in the last 1.5 s + 10.0001 new"
        " > 960.0000 (instrument ABC)"
    )
    engine.set_user_limits("alice", UserLimits(100, Rolling(1, 3.0)))
    assert trader.reject(1).message == (
        "risk limit max_outstanding_quantity breached: 100 resting + 1 new > 100 (user)"
    )
    assert engine.count_request("alice", 0.0) is None
    rejection = engine.count_request("alice", 0.0)
    assert rejection == Rejection(
        "message_rate_rolling_limit",
        "risk limit message_rate_rolling_limit breached: 1 requests in the last 3 s, limit 1 (user)",
        False,
    )


# -- message rate -------------------------------------------------------------------------


def test_message_rate_at_the_limit_and_one_over() -> None:
    engine = RiskEngine()
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(3, 1.0)))
    assert [engine.count_request("alice", 0.1 * i) for i in range(3)] == [None, None, None]
    rejection = engine.count_request("alice", 0.5)
    assert rejection is not None
    assert rejection.field == "message_rate_rolling_limit"
    assert "message_rate_rolling_limit" in rejection.message
    assert not rejection.outstanding
    # Other users have their own count.
    assert engine.count_request("bob", 0.5) is None


@pytest.mark.parametrize("limits", [None, UserLimits(), UserLimits(message_rate=Rolling(0, 0.0))])
def test_message_rate_unset_or_zero_is_no_limit(limits: UserLimits | None) -> None:
    engine = RiskEngine()
    if limits is not None:
        engine.set_user_limits("alice", limits)
    assert all(engine.count_request("alice", 0.0) is None for _ in range(1000))


def test_message_rate_window_boundary() -> None:
    """A request counts while its age is less than the window: at age == window it no longer does."""
    engine = RiskEngine()
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(1, 10.0)))
    assert engine.count_request("alice", 100.0) is None
    assert engine.count_request("alice", math.nextafter(110.0, 0.0)) is not None
    assert engine.count_request("alice", 110.0) is None


def test_rate_rejected_requests_do_not_count_every_other_does() -> None:
    engine = RiskEngine()
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(2, 10.0)))
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_quantity=1))
    trader = Trader(engine)
    # An insert that a risk limit then rejects still counted: it passed the rate.
    assert engine.count_request("alice", 0.0) is None
    trader.reject(5, now=0.0)
    assert engine.count_request("alice", 1.0) is None  # e.g. a cancel
    assert engine.count_request("alice", 5.0) is not None  # rejected: does not count
    # At 10 the first has aged out; had the rejected one at 5 counted, this would be rejected.
    assert engine.count_request("alice", 10.0) is None
    assert engine.count_request("alice", 10.5) is not None  # 1.0 and 10.0 count
    assert engine.count_request("alice", 11.0) is None  # 1.0 aged out


def test_requests_before_the_limit_was_set_count() -> None:
    engine = RiskEngine()
    for i in range(5):
        assert engine.count_request("alice", float(i)) is None
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(5, 10.0)))
    assert engine.count_request("alice", 5.0) is not None
    # Widening the window brings older requests back into it; narrowing drops them.
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(3, 1.5)))
    assert engine.count_request("alice", 5.0) is None  # only 4.0 counts
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(6, 30.0)))
    assert engine.count_request("alice", 6.0) is not None  # 0, 1, 2, 3, 4 and 5 (not the rejected 5)


def test_history_bounds_what_a_later_limit_sees() -> None:
    engine = RiskEngine(history=5.0)
    assert engine.count_request("alice", 0.0) is None
    assert engine.count_request("alice", 4.0) is None
    assert engine.count_request("alice", 6.0) is None  # 0.0 is past the 5 s history now
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(3, 60.0)))
    assert engine.count_request("alice", 6.0) is None  # 4.0 and 6.0 seen: 2 < 3
    assert engine.count_request("alice", 6.0) is not None


def test_long_runs_compact_and_stay_exact() -> None:
    engine = RiskEngine(history=1.0)
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(10**6, 2.0)))
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(10**9, 3.0)))
    trader = Trader(engine)
    step = 1 / 1024  # exact in binary: ages are exact
    count = 10 * _COMPACT_AT
    for i in range(count):
        now = i * step
        assert engine.count_request("alice", now) is None
        reservation = trader.check(1, now=now)
        if i % 2:
            engine.release(reservation)
    now = count * step
    # Requests of age < 2 s: the last 2047 (age 2048 * step == 2 no longer counts); accepted
    # orders of age < 3 s: of the last 3071, those not released (even i): 1535.
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(2047, 2.0)))
    assert engine.count_request("alice", now) is not None
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(2048, 2.0)))
    assert engine.count_request("alice", now) is None
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(1536, 3.0)))
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 1, now), Reservation)
    assert isinstance(engine.check_insert("alice", BOOK, SYMBOL, ONE, 1, now), Rejection)
    log = engine._instruments[("alice", SYMBOL)].quantities
    assert log.base > 0
    assert len(log.times) < count


# -- rolling windows of accepted orders ---------------------------------------------------


@pytest.mark.parametrize("field", ["order_quantity", "order_amount"])
def test_rolling_window_boundary(field: str) -> None:
    engine = RiskEngine()
    if field == "order_amount":
        limits = InstrumentLimits(order_amount=Rolling(100 * ONE, 10.0))
    else:
        limits = InstrumentLimits(order_quantity=Rolling(100, 10.0))
    engine.set_instrument_limits("alice", SYMBOL, limits)
    trader = Trader(engine)
    trader.rest(100, now=100.0)
    trader.reject(1, now=math.nextafter(110.0, 0.0))
    trader.check(100, now=110.0)


def test_rolling_windows_are_per_instrument_and_per_user() -> None:
    engine = RiskEngine()
    limits = InstrumentLimits(order_quantity=Rolling(10, 5.0))
    engine.set_instrument_limits("alice", SYMBOL, limits)
    engine.set_instrument_limits("bob", SYMBOL, limits)
    alice, bob = Trader(engine), Trader(engine, "bob")
    alice.rest(10)
    alice.rest(10**6, symbol=OTHER_SYMBOL)
    bob.check(10)
    assert alice.reject(1).field == "order_quantity_rolling_limit"


def test_orders_accepted_before_the_limit_was_set_count() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    trader.rest(60, now=1.0)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(100, 10.0)))
    trader.reject(41, now=2.0)
    trader.check(40, now=2.0)


# -- order of checks ------------------------------------------------------------------------


def test_order_of_checks() -> None:
    """Rate first, then the user limit, then the instrument's in the table's order."""
    engine = RiskEngine()
    trader = Trader(engine)
    trader.rest(50, 2 * ONE)
    engine.set_user_limits("alice", UserLimits(50, Rolling(1, 10.0)))
    every = InstrumentLimits(50, 100 * ONE, Rolling(50, 10.0), Rolling(100 * ONE, 10.0))
    engine.set_instrument_limits("alice", SYMBOL, every)
    assert engine.count_request("alice", 0.0) is None
    rate = engine.count_request("alice", 0.0)
    assert rate is not None and rate.field == "message_rate_rolling_limit"
    expected = [
        ("max_outstanding_quantity", "(user)"),
        ("max_outstanding_quantity", "(instrument ABC)"),
        ("max_outstanding_amount", "(instrument ABC)"),
        ("order_quantity_rolling_limit", "(instrument ABC)"),
        ("order_amount_rolling_limit", "(instrument ABC)"),
    ]
    lifted = [
        every._replace(max_outstanding_quantity=0),
        every._replace(max_outstanding_quantity=0, max_outstanding_amount=0),
        every._replace(max_outstanding_quantity=0, max_outstanding_amount=0, order_quantity=None),
        InstrumentLimits(),
    ]
    for i, (field, where) in enumerate(expected):
        rejection = trader.reject(1)
        assert (rejection.field, rejection.message.endswith(where)) == (field, True)
        # Lift the breached limit: the next one answers.
        if i == 0:
            engine.set_user_limits("alice", UserLimits(0, Rolling(1, 10.0)))
        else:
            engine.set_instrument_limits("alice", SYMBOL, lifted[i - 1])
    trader.check(1)


# -- Set replaces the whole message -----------------------------------------------------------


def test_set_user_limits_replaces_the_whole_message() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    engine.set_user_limits("alice", UserLimits(10, Rolling(1, 10.0)))
    engine.set_user_limits("alice", UserLimits(max_outstanding_quantity=20))
    assert engine.user_limits("alice") == UserLimits(20)
    assert all(engine.count_request("alice", 0.0) is None for _ in range(5))
    engine.set_user_limits("alice", UserLimits(message_rate=Rolling(100, 1.0)))
    trader.check(10**6)


def test_set_instrument_limits_replaces_the_whole_message_of_that_instrument() -> None:
    engine = RiskEngine()
    trader = Trader(engine)
    every = InstrumentLimits(10, 10 * ONE, Rolling(10, 10.0), Rolling(10 * ONE, 10.0))
    engine.set_instrument_limits("alice", SYMBOL, every)
    engine.set_instrument_limits("alice", OTHER_SYMBOL, every)
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_amount=10**6 * ONE))
    trader.rest(1000)
    trader.rest(1000)
    assert trader.reject(11, symbol=OTHER_SYMBOL).field == "max_outstanding_quantity"
    assert engine.instrument_limits("alice")[SYMBOL] == InstrumentLimits(max_outstanding_amount=10**6 * ONE)


# -- reservations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits",
    [
        InstrumentLimits(max_outstanding_quantity=100),
        InstrumentLimits(max_outstanding_amount=100 * ONE),
        InstrumentLimits(order_quantity=Rolling(100, 10.0)),
        InstrumentLimits(order_amount=Rolling(100 * ONE, 10.0)),
    ],
)
def test_two_checks_before_any_event_cannot_both_slip_under_one_limit(limits: InstrumentLimits) -> None:
    engine = RiskEngine()
    engine.set_instrument_limits("alice", SYMBOL, limits)
    trader = Trader(engine)
    trader.check(60)
    trader.reject(60)
    trader.check(40)


def test_two_checks_cannot_slip_under_the_user_limit() -> None:
    engine = RiskEngine()
    engine.set_user_limits("alice", UserLimits(100))
    trader = Trader(engine)
    trader.check(60)
    trader.reject(60, symbol=OTHER_SYMBOL)


def test_placed_and_added_moves_the_reservation_into_outstanding_without_double_counting() -> None:
    engine = RiskEngine()
    reservation = engine.check_insert("alice", BOOK, SYMBOL, 12_345, 10, 0.0)
    assert isinstance(reservation, Reservation)
    figures = (10, 123_450)
    assert engine.outstanding("alice") == engine.outstanding("alice", BOOK) == figures
    engine.placed(reservation, 7)
    assert engine.outstanding("alice") == engine.outstanding("alice", BOOK) == figures
    engine.order_added("alice", BOOK, 7, 12_345, 10)
    assert engine.outstanding("alice") == engine.outstanding("alice", BOOK) == figures
    # The order's own events now drive it; releasing the used reservation changes nothing.
    engine.release(reservation)
    assert engine.outstanding("alice", BOOK) == figures
    engine.order_reduced("alice", BOOK, 12_345, 4)
    assert engine.outstanding("alice", BOOK) == (6, 74_070)


def test_order_added_before_placed_is_not_double_counted() -> None:
    """The feed may show OnOrderInserted before the gateway names the order id."""
    engine = RiskEngine()
    reservation = engine.check_insert("alice", BOOK, SYMBOL, ONE, 10, 0.0)
    assert isinstance(reservation, Reservation)
    engine.order_added("alice", BOOK, 7, ONE, 10)
    engine.order_reduced("alice", BOOK, ONE, 3)
    engine.placed(reservation, 7)
    assert engine.outstanding("alice") == engine.outstanding("alice", BOOK) == (7, 7 * ONE)
    assert engine._users["alice"].early == set()


def test_early_orders_are_forgotten_once_nothing_is_pending() -> None:
    engine = RiskEngine()
    reservation = engine.check_insert("alice", BOOK, SYMBOL, ONE, 10, 0.0)
    assert isinstance(reservation, Reservation)
    engine.order_added("alice", BOOK, 3, ONE, 5)  # an order sent some other way
    engine.release(reservation)
    assert engine._users["alice"].early == set()
    assert engine.outstanding("alice") == (5, 5 * ONE)
    engine.order_added("alice", BOOK, 4, ONE, 5)
    assert engine._users["alice"].early == set()


def test_release_undoes_outstanding_and_rolling_entries() -> None:
    engine = RiskEngine()
    engine.set_instrument_limits(
        "alice", SYMBOL, InstrumentLimits(100, 100 * ONE, Rolling(100, 10.0), Rolling(100 * ONE, 10.0))
    )
    trader = Trader(engine)
    first = trader.check(60)
    second = trader.check(40)
    engine.release(first)
    assert engine.outstanding("alice") == engine.outstanding("alice", BOOK) == (40, 40 * ONE)
    engine.release(first)  # twice: nothing more
    assert engine.outstanding("alice", BOOK) == (40, 40 * ONE)
    trader.check(60)
    engine.placed(second, 9)
    engine.release(second)  # refused after all (e.g. the request failed)
    assert engine.outstanding("alice", BOOK) == (60, 60 * ONE)
    trader.check(40)
    trader.reject(1)


def test_release_after_the_window_moved_on() -> None:
    engine = RiskEngine()
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(order_quantity=Rolling(100, 1.0)))
    trader = Trader(engine)
    old = trader.check(100, now=0.0)
    trader.check(100, now=1.0)
    engine.release(old)  # already out of the window: the running total must not drop
    trader.reject(1, now=1.5)


def test_fills_at_the_resting_orders_price_reduce_amount_exactly() -> None:
    engine = RiskEngine()
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_amount=10 * 12_345))
    trader = Trader(engine)
    trader.rest(10, 12_345)
    trader.reject(1, 1)
    # Filled 3 by another user's aggressive order at its own (better) price: the resting
    # order's price is what leaves the amount.
    engine.order_reduced("alice", BOOK, 12_345, 3)
    assert engine.outstanding("alice", BOOK) == (7, 7 * 12_345)
    trader.check(3, 12_345)
    trader.reject(1, 1)


def test_cancels_from_any_connection_lower_outstanding() -> None:
    engine = RiskEngine()
    engine.set_user_limits("alice", UserLimits(100))
    trader = Trader(engine)
    trader.rest(100)
    trader.reject(1)
    engine.order_reduced("alice", BOOK, ONE, 100)
    trader.check(100)


def test_reset_drops_placed_reservations_and_recomputes() -> None:
    engine = RiskEngine()
    engine.set_instrument_limits("alice", SYMBOL, InstrumentLimits(max_outstanding_quantity=100))
    trader = Trader(engine)
    trader.rest(30)  # order 1
    placed = trader.check(20)
    engine.placed(placed, 2)  # the feed has not shown order 2
    pending = trader.check(10)  # still in flight
    engine.order_added("bob", BOOK, 5, ONE, 1000)
    assert engine.outstanding("alice", BOOK) == (60, 60 * ONE)
    # The fresh mirror: order 1 partly filled, order 2 resting, bob's order cancelled.
    engine.reset([("alice", BOOK, ONE, 25), ("alice", BOOK, ONE, 20), ("carol", OTHER_BOOK, 2 * ONE, 4)])
    assert engine.outstanding("alice", BOOK) == (55, 55 * ONE)
    assert engine.outstanding("alice") == (55, 55 * ONE)
    assert engine.outstanding("bob") == engine.outstanding("bob", BOOK) == (0, 0)
    assert engine.outstanding("carol", OTHER_BOOK) == (4, 8 * ONE)
    engine.release(pending)
    assert engine.outstanding("alice", BOOK) == (45, 45 * ONE)
    engine.release(placed)  # dropped by the reset: nothing to undo
    assert engine.outstanding("alice", BOOK) == (45, 45 * ONE)
    trader.check(55)
    trader.reject(1)


def test_settled_keeps_the_rolling_entries_of_an_order_the_fresh_mirror_counts() -> None:
    """The feed was reset while the insert was in flight and the order book accepted it."""
    engine = RiskEngine()
    engine.set_instrument_limits(
        "alice", SYMBOL, InstrumentLimits(120, 0, Rolling(100, 10.0), Rolling(100 * ONE, 10.0))
    )
    trader = Trader(engine)
    reservation = trader.check(60)
    engine.reset([("alice", BOOK, ONE, 60)])  # the replay has the order already
    assert engine.outstanding("alice", BOOK) == (120, 120 * ONE)  # the reservation still counts
    engine.settled(reservation)
    assert engine.outstanding("alice", BOOK) == (60, 60 * ONE)
    engine.settled(reservation)
    engine.release(reservation)  # no longer counted: nothing to undo
    assert engine.outstanding("alice", BOOK) == (60, 60 * ONE)
    assert trader.reject(41).field == "order_quantity_rolling_limit"
    trader.check(40)


def test_amounts_beyond_64_bits_stay_exact() -> None:
    engine = RiskEngine()
    huge_price, huge_quantity = 2**53 - 1, 2**31 - 1
    engine.set_instrument_limits(
        "alice", SYMBOL, InstrumentLimits(order_amount=Rolling(3 * huge_price * huge_quantity, 5.0))
    )
    trader = Trader(engine)
    trader.check(1, 7, now=0.0)
    trader.check(huge_quantity, huge_price, now=1.0)
    trader.check(huge_quantity, huge_price, now=2.0)
    trader.reject(huge_quantity, huge_price, now=3.0)
    # At 5 the first (7) has aged out and nothing else: 2 huge amounts; the headroom is exact.
    trader.check(huge_quantity, huge_price - 7, now=5.0)
    trader.check(1, 7 * huge_quantity, now=5.0)
    trader.reject(1, 1, now=5.0)
