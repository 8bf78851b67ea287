"""The risk engine against a deliberately simple model that recomputes every figure from the day's history.

Random sequences of limit Sets, inserts (checked, then refused, placed, or placed and added,
possibly several in flight at once), fills, cancels, orders from elsewhere, feed resets and
time advancing. The model keeps every counted request, every accepted order and every live
order, and on each check sums over all of them (entries of age < window): the engine's
accept/reject decision, the breached field and the outstanding figures must equal the
model's at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optivex.risk import InstrumentLimits, Rejection, Reservation, RiskEngine, Rolling, UserLimits

USERS = ("alice", "bob")
BOOKS = {"ABC": 1, "XYZ": 2}
# Multiples of 0.25 s: sums are exact, so ages land exactly on the windows' boundaries.
WINDOWS = (0.5, 1.0, 2.0, 5.0)
STEPS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
PRICES = (1, 5_000, 10_000, 12_345)


@dataclass
class Entry:
    """An accepted order as the model remembers it for the rolling windows."""

    time: float
    user: str
    symbol: str
    quantity: int
    amount: int
    refused: bool = False


@dataclass
class Flight:
    """An accepted insert not yet on the feed: pending (in flight) or placed (id known)."""

    reservation: Reservation
    entry: Entry
    price: int
    order_id: int = 0


@dataclass
class Order:
    user: str
    book: int
    price: int
    remaining: int


@dataclass
class Model:
    user_limits: dict[str, UserLimits] = field(default_factory=dict)
    instrument_limits: dict[tuple[str, str], InstrumentLimits] = field(default_factory=dict)
    requests: list[tuple[float, str]] = field(default_factory=list)
    accepted: list[Entry] = field(default_factory=list)
    orders: dict[int, Order] = field(default_factory=dict)
    flights: list[Flight] = field(default_factory=list)

    def outstanding(self, user: str, book: int | None = None) -> tuple[int, int]:
        quantity = amount = 0
        for order in self.orders.values():
            if order.user == user and book in (None, order.book):
                quantity += order.remaining
                amount += order.price * order.remaining
        for flight in self.flights:
            entry = flight.entry
            if entry.user == user and book in (None, BOOKS[entry.symbol]):
                quantity += entry.quantity
                amount += entry.amount
        return quantity, amount

    def count_request(self, user: str, now: float) -> str | None:
        limits = self.user_limits.get(user)
        rate = limits.message_rate if limits is not None else None
        if rate is not None and rate.limit > 0:
            sent = sum(1 for time, who in self.requests if who == user and now - time < rate.window)
            if sent >= rate.limit:
                return "message_rate_rolling_limit"
        self.requests.append((now, user))
        return None

    def _accepted(self, user: str, symbol: str, now: float, window: float) -> tuple[int, int]:
        quantity = amount = 0
        for entry in self.accepted:
            if (
                entry.user == user
                and entry.symbol == symbol
                and not entry.refused
                and now - entry.time < window
            ):
                quantity += entry.quantity
                amount += entry.amount
        return quantity, amount

    def check_insert(self, user: str, symbol: str, price: int, quantity: int, now: float) -> str | None:
        amount = price * quantity
        user_limits = self.user_limits.get(user, UserLimits())
        maximum = user_limits.max_outstanding_quantity
        if maximum and self.outstanding(user)[0] + quantity > maximum:
            return "max_outstanding_quantity"
        limits = self.instrument_limits.get((user, symbol), InstrumentLimits())
        resting_quantity, resting_amount = self.outstanding(user, BOOKS[symbol])
        if limits.max_outstanding_quantity and resting_quantity + quantity > limits.max_outstanding_quantity:
            return "max_outstanding_quantity"
        if limits.max_outstanding_amount and resting_amount + amount > limits.max_outstanding_amount:
            return "max_outstanding_amount"
        rolling = limits.order_quantity
        if (
            rolling
            and rolling.limit
            and self._accepted(user, symbol, now, rolling.window)[0] + quantity > rolling.limit
        ):
            return "order_quantity_rolling_limit"
        rolling = limits.order_amount
        if (
            rolling
            and rolling.limit
            and self._accepted(user, symbol, now, rolling.window)[1] + amount > rolling.limit
        ):
            return "order_amount_rolling_limit"
        return None


class SetUser(NamedTuple):
    user: str
    limits: UserLimits


class SetInstrument(NamedTuple):
    user: str
    symbol: str
    limits: InstrumentLimits


class Insert(NamedTuple):
    user: str
    symbol: str
    price: int
    quantity: int


class Resolve(NamedTuple):
    """An insert in flight is refused (released), placed, placed and added, or added once placed."""

    pick: int
    action: str


class Fill(NamedTuple):
    pick: int
    quantity: int


class Cancel(NamedTuple):
    pick: int


class Foreign(NamedTuple):
    """An order the feed shows that did not pass this engine (another gateway, a direct client)."""

    user: str
    symbol: str
    price: int
    quantity: int


class Advance(NamedTuple):
    step: float


class Reset(NamedTuple):
    """The feed reconnects; with ``in_flight_accepted`` the inserts in flight reached the order book
    (the fresh mirror has them: the gateway settles their reservations), otherwise they stay in flight."""

    in_flight_accepted: bool


Op = SetUser | SetInstrument | Insert | Resolve | Fill | Cancel | Foreign | Advance | Reset


def _rolling(limits: tuple[int, ...]) -> st.SearchStrategy[Rolling | None]:
    return st.none() | st.builds(Rolling, st.sampled_from(limits), st.sampled_from(WINDOWS))


# Mostly one user and one instrument, so that limits, inserts and releases meet often.
users = st.sampled_from(("alice", "alice", "alice", "bob"))
symbols = st.sampled_from(("ABC", "ABC", "ABC", "XYZ"))
quantities = st.integers(1, 20)
user_limits = st.builds(UserLimits, st.sampled_from((0, 20, 40, 60)), _rolling((0, 3, 10)))
instrument_limits = st.builds(
    InstrumentLimits,
    st.sampled_from((0, 10, 20, 40)),
    # Reachable exactly: 5_000 * 10, 12_345 * 10, ...
    st.sampled_from((0, 50_000, 123_450, 200_000)),
    _rolling((0, 10, 30, 45)),
    _rolling((0, 100_000, 246_900)),
)
prices = st.sampled_from(PRICES)
# Weighted: each strategy appears as often as its weight (one_of alone does not weigh evenly).
WEIGHTED: list[tuple[int, st.SearchStrategy[Op]]] = [
    (2, st.builds(SetUser, users, user_limits)),
    (3, st.builds(SetInstrument, users, symbols, instrument_limits)),
    (8, st.builds(Insert, users, symbols, prices, quantities)),
    (3, st.builds(Resolve, st.integers(0, 10), st.sampled_from(("refuse", "place", "place_add", "add")))),
    (3, st.builds(Resolve, st.integers(0, 10), st.sampled_from(("refuse", "place_add")))),
    (2, st.builds(Fill, st.integers(0, 20), quantities)),
    (2, st.builds(Cancel, st.integers(0, 20))),
    (1, st.builds(Foreign, users, symbols, prices, quantities)),
    (4, st.builds(Advance, st.sampled_from(STEPS))),
    (1, st.builds(Reset, st.booleans())),
]
operation: st.SearchStrategy[Op] = st.sampled_from(
    [strategy for weight, strategy in WEIGHTED for _ in range(weight)]
).flatmap(lambda strategy: strategy)
# Most examples start with limits on alice's ABC, then run random operations.
first_limits: st.SearchStrategy[list[Op]] = st.lists(
    st.builds(SetInstrument, st.just("alice"), st.just("ABC"), instrument_limits), max_size=1
)
scenario = st.tuples(first_limits, st.lists(operation, min_size=20, max_size=120)).map(
    lambda t: [*t[0], *t[1]]
)


def _decision(result: Reservation | Rejection | None) -> str | None:
    return result.field if isinstance(result, Rejection) else None


class Run:
    """The engine and the model side by side."""

    def __init__(self) -> None:
        self.engine = RiskEngine()
        self.model = Model()
        self.now = 0.0
        self.next_order_id = 1

    def request(self, user: str) -> bool:
        """The message rate for one execution request; True if it passed (then it counted)."""
        expected = self.model.count_request(user, self.now)
        assert _decision(self.engine.count_request(user, self.now)) == expected
        return expected is None

    def apply(self, op: Op) -> None:
        engine, model = self.engine, self.model
        if isinstance(op, SetUser):
            engine.set_user_limits(op.user, op.limits)
            model.user_limits[op.user] = op.limits
        elif isinstance(op, SetInstrument):
            engine.set_instrument_limits(op.user, op.symbol, op.limits)
            model.instrument_limits[(op.user, op.symbol)] = op.limits
        elif isinstance(op, Insert):
            if not self.request(op.user):
                return
            expected = model.check_insert(op.user, op.symbol, op.price, op.quantity, self.now)
            result = engine.check_insert(
                op.user, BOOKS[op.symbol], op.symbol, op.price, op.quantity, self.now
            )
            assert _decision(result) == expected, (op, self.now)
            if isinstance(result, Rejection):
                assert result.outstanding == result.field.startswith("max_outstanding")
            else:
                entry = Entry(self.now, op.user, op.symbol, op.quantity, op.price * op.quantity)
                model.accepted.append(entry)
                model.flights.append(Flight(result, entry, op.price))
        elif isinstance(op, Resolve):
            self.resolve(op)
        elif isinstance(op, Fill | Cancel):
            if not model.orders:
                return
            order_id = sorted(model.orders)[op.pick % len(model.orders)]
            order = model.orders[order_id]
            if isinstance(op, Cancel):
                if not self.request(order.user):
                    return
                quantity = order.remaining
            else:
                quantity = min(op.quantity, order.remaining)
            engine.order_reduced(order.user, order.book, order.price, quantity)
            order.remaining -= quantity
            if not order.remaining:
                del model.orders[order_id]
        elif isinstance(op, Foreign):
            engine.order_added(op.user, BOOKS[op.symbol], self.next_order_id, op.price, op.quantity)
            model.orders[self.next_order_id] = Order(op.user, BOOKS[op.symbol], op.price, op.quantity)
            self.next_order_id += 1
        elif isinstance(op, Advance):
            self.now += op.step
        else:
            # The fresh mirror has every live order, placed ones included.
            for flight in [f for f in model.flights if f.order_id]:
                self.settle(flight)
            in_flight = list(model.flights) if op.in_flight_accepted else []
            for flight in in_flight:
                flight.order_id = self.next_order_id
                self.next_order_id += 1
                self.settle(flight)
            engine.reset((o.user, o.book, o.price, o.remaining) for o in model.orders.values())
            for flight in in_flight:
                engine.settled(flight.reservation)

    def resolve(self, op: Resolve) -> None:
        flights = self.model.flights
        if not flights:
            return
        flight = flights[op.pick % len(flights)]
        if op.action == "refuse":
            self.engine.release(flight.reservation)
            flight.entry.refused = True
            flights.remove(flight)
            return
        if not flight.order_id and op.action != "add":
            flight.order_id = self.next_order_id
            self.next_order_id += 1
            self.engine.placed(flight.reservation, flight.order_id)
        if flight.order_id and op.action in ("place_add", "add"):
            entry = flight.entry
            self.engine.order_added(
                entry.user, BOOKS[entry.symbol], flight.order_id, flight.price, entry.quantity
            )
            self.settle(flight)

    def settle(self, flight: Flight) -> None:
        """The order is on the feed now: a live order of the model."""
        entry = flight.entry
        self.model.flights.remove(flight)
        self.model.orders[flight.order_id] = Order(
            entry.user, BOOKS[entry.symbol], flight.price, entry.quantity
        )

    def check_outstanding(self) -> None:
        for user in USERS:
            assert self.engine.outstanding(user) == self.model.outstanding(user)
            for book in BOOKS.values():
                assert self.engine.outstanding(user, book) == self.model.outstanding(user, book)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_engine_agrees_with_the_full_history_model(ops: list[Op]) -> None:
    run = Run()
    for op in ops:
        run.apply(op)
        run.check_outstanding()
