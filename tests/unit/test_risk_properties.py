"""The risk engine against a deliberately simple model that recomputes every figure from the day's history.

Random sequences of limit Sets, inserts and amends (checked, then refused, placed, placed and
added, or added before placed, possibly several in flight at once; an amend's outcome is the
order book's, from the order as it is when the amend reaches it, which may differ from what the
mirror predicted at the check), fills (some the gateway sees only after the check), cancels,
orders from elsewhere, feed resets and time advancing. The model keeps every counted request,
every accepted order and every live order, and on each check sums over all of them (entries
of age < window): the engine's accept/reject decision, the breached field and the outstanding
figures must equal the model's at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from hypothesis import HealthCheck, event, given, settings
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
    """An accepted insert or amend whose reservation still counts.

    Pending (in flight), placed (``order_id`` known, the feed not shown yet), or ``added``
    (the feed showed it before the response). ``replaces``: the amended order's id (0 for an
    insert); ``keeps``: checked as keeping priority (reserves nothing). ``outcome``: the order
    book's, once the request reached it ("inserted", "kept", "replaced").
    """

    reservation: Reservation
    entry: Entry
    user: str
    symbol: str
    price: int
    quantity: int
    replaces: int = 0
    keeps: bool = False
    order_id: int = 0
    outcome: str = ""
    old_remaining: int = 0
    added: bool = False

    def reserved(self) -> tuple[int, int]:
        return (0, 0) if self.keeps else (self.quantity, self.price * self.quantity)


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
            if flight.user == user and book in (None, BOOKS[flight.symbol]):
                reserved_quantity, reserved_amount = flight.reserved()
                quantity += reserved_quantity
                amount += reserved_amount
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

    def rolling(self, user: str, symbol: str, now: float) -> tuple[int, int]:
        """What the rolling checks see now: accepted quantity and amount within the windows that apply."""
        limits = self.instrument_limits.get((user, symbol), InstrumentLimits())
        figures = []
        for index, rolling in enumerate((limits.order_quantity, limits.order_amount)):
            window = rolling.window if rolling is not None and rolling.limit > 0 else 0.0
            figures.append(self._accepted(user, symbol, now, window)[index])
        return figures[0], figures[1]

    def check_insert(
        self, user: str, symbol: str, price: int, quantity: int, now: float, old: Order | None = None
    ) -> str | None:
        """The breached field for a new order (an amend's replacement of ``old``), None if none."""
        amount = price * quantity
        old_quantity, old_amount = (0, 0) if old is None else (old.remaining, old.price * old.remaining)
        user_limits = self.user_limits.get(user, UserLimits())
        maximum = user_limits.max_outstanding_quantity
        if maximum and self.outstanding(user)[0] - old_quantity + quantity > maximum:
            return "max_outstanding_quantity"
        limits = self.instrument_limits.get((user, symbol), InstrumentLimits())
        resting_quantity, resting_amount = self.outstanding(user, BOOKS[symbol])
        maximum = limits.max_outstanding_quantity
        if maximum and resting_quantity - old_quantity + quantity > maximum:
            return "max_outstanding_quantity"
        maximum = limits.max_outstanding_amount
        if maximum and resting_amount - old_amount + amount > maximum:
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


class Amend(NamedTuple):
    """An amend of a live order: a new price (None: unchanged) and a new quantity."""

    pick: int
    price: int | None
    quantity: int


class Resolve(NamedTuple):
    """A request in flight is refused (released), placed, placed and added, added once placed,
    shown on the feed before its response ("early"), or, for an amend, reaches the order book
    after a fill of the amended order that the gateway had not seen at the check ("fill_first")."""

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


Op = SetUser | SetInstrument | Insert | Amend | Resolve | Fill | Cancel | Foreign | Advance | Reset


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
    (6, st.builds(Amend, st.integers(0, 20), st.none() | prices, quantities)),
    (2, st.builds(Resolve, st.integers(0, 10), st.just("fill_first"))),
    (
        3,
        st.builds(
            Resolve,
            st.integers(0, 10),
            st.sampled_from(("refuse", "place", "place_add", "add", "early", "fill_first")),
        ),
    ),
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
        # Orders an amend has reached at the order book whose feed events are not shown yet.
        self.frozen: dict[int, Flight] = {}

    def request(self, user: str) -> bool:
        """The message rate for one execution request; True if it passed (then it counted)."""
        expected = self.model.count_request(user, self.now)
        assert _decision(self.engine.count_request(user, self.now)) == expected
        return expected is None

    def live(self, pick: int) -> int | None:
        """A live order the feed showed and no amend is being applied to, by ``pick``; None if none."""
        ids = sorted(i for i in self.model.orders if i not in self.frozen)
        return ids[pick % len(ids)] if ids else None

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
                model.flights.append(Flight(result, entry, op.user, op.symbol, op.price, op.quantity))
        elif isinstance(op, Amend):
            self.amend(op)
        elif isinstance(op, Resolve):
            self.resolve(op)
        elif isinstance(op, Fill | Cancel):
            order_id = self.live(op.pick)
            if order_id is None:
                return
            order = model.orders[order_id]
            if isinstance(op, Cancel):
                if not self.request(order.user):
                    return
                quantity = order.remaining
            else:
                quantity = min(op.quantity, order.remaining)
            self.reduce(order_id, quantity)
        elif isinstance(op, Foreign):
            engine.order_added(op.user, BOOKS[op.symbol], self.next_order_id, op.price, op.quantity)
            model.orders[self.next_order_id] = Order(op.user, BOOKS[op.symbol], op.price, op.quantity)
            self.next_order_id += 1
        elif isinstance(op, Advance):
            self.now += op.step
        else:
            self.reset(op)

    def reduce(self, order_id: int, quantity: int) -> None:
        """A fill or cancel of a live order, on the feed."""
        order = self.model.orders[order_id]
        self.engine.order_reduced(order.user, order.book, order.price, quantity)
        order.remaining -= quantity
        if not order.remaining:
            del self.model.orders[order_id]

    def amend(self, op: Amend) -> None:
        model = self.model
        order_id = self.live(op.pick)
        if order_id is None:
            return
        old = model.orders[order_id]
        symbol = next(s for s, b in BOOKS.items() if b == old.book)
        price = old.price if op.price is None else op.price
        if price == old.price and op.quantity == old.remaining:
            return  # changes nothing: the gateway refuses it before any check
        if not self.request(old.user):
            return
        keeps = price == old.price and op.quantity < old.remaining
        expected = None if keeps else model.check_insert(old.user, symbol, price, op.quantity, self.now, old)
        result = self.engine.check_amend(
            old.user,
            old.book,
            symbol,
            order_id,
            old.price,
            old.remaining,
            price,
            op.quantity,
            keeps,
            self.now,
        )
        assert _decision(result) == expected, (op, self.now)
        if isinstance(result, Rejection):
            event(f"amend rejected: {result.field}")
            assert result.outstanding == result.field.startswith("max_outstanding")
            return
        counted = (0, 0) if keeps else (op.quantity, price * op.quantity)
        entry = Entry(self.now, old.user, symbol, *counted)
        model.accepted.append(entry)
        model.flights.append(Flight(result, entry, old.user, symbol, price, op.quantity, order_id, keeps))

    def reach(self, flight: Flight) -> bool:
        """The request reaches the order book: decide its outcome; False if the order book refuses it."""
        if not flight.replaces:
            flight.outcome = "inserted"
            flight.order_id = self.next_order_id
            self.next_order_id += 1
            return True
        previous = self.frozen.get(flight.replaces)
        if previous is not None:
            # Another amend of that order got there first: its events come first on the feed.
            self.show(previous)
            self.model.flights.remove(previous)
        old = self.model.orders.get(flight.replaces)
        if old is None:
            return False  # filled or cancelled meanwhile: not resting
        remaining = old.remaining
        if flight.price == old.price and flight.quantity == remaining:
            return False  # changes nothing (a fill the mirror had not shown)
        flight.old_remaining = remaining
        if flight.price == old.price and flight.quantity < remaining:
            assert flight.keeps
            flight.outcome = "kept"
            flight.order_id = flight.replaces
            event("amend kept priority")
        else:
            # The mirror's remaining is never below the order book's: a replacement predicted stays one.
            assert flight.keeps or flight.price != old.price or flight.quantity > remaining
            flight.outcome = "replaced"
            flight.order_id = self.next_order_id
            self.next_order_id += 1
            event("amend replaced")
            if flight.keeps:
                event("amend checked as keeping, replaced after all")
        self.frozen[flight.replaces] = flight
        return True

    def show(self, flight: Flight, feed: bool = True) -> None:
        """The feed shows the outcome (with ``feed`` False: only the model, as a fresh mirror has it)."""
        engine, model = self.engine, self.model
        book = BOOKS[flight.symbol]
        if flight.replaces:
            del self.frozen[flight.replaces]
            old = model.orders[flight.replaces]
            if flight.outcome == "kept":
                if feed:
                    engine.order_reduced(old.user, book, old.price, old.remaining - flight.quantity)
                old.remaining = flight.quantity
                return
            if feed:
                engine.order_reduced(old.user, book, old.price, old.remaining)
            del model.orders[flight.replaces]
        if feed:
            engine.order_added(flight.user, book, flight.order_id, flight.price, flight.quantity)
        model.orders[flight.order_id] = Order(flight.user, book, flight.price, flight.quantity)

    def refuse(self, flight: Flight) -> None:
        self.engine.release(flight.reservation)
        flight.entry.refused = True
        self.model.flights.remove(flight)

    def resolve(self, op: Resolve) -> None:
        model = self.model
        if not model.flights:
            return
        flight = model.flights[op.pick % len(model.flights)]
        action = op.action
        if action == "refuse":
            if flight.outcome:
                action = "place_add"  # the order book has it already: only its events can follow
            else:
                self.refuse(flight)
                return
        if action == "fill_first":
            old = model.orders.get(flight.replaces)
            if flight.outcome or old is None or flight.replaces in self.frozen:
                return
            self.reduce(flight.replaces, (old.remaining + 1) // 2)
            action = "place"
        if not flight.outcome:
            if action == "add":
                return  # nothing to add before the response
            if not self.reach(flight):
                self.refuse(flight)
                return
            if action == "early":
                event("shown before the response")
                self.show(flight)
                flight.added = True
                return
            self.placed(flight)
            if action == "place":
                return
        elif flight.added:
            # The feed showed it: the response now.
            self.placed(flight)
            return
        if action in ("place_add", "add", "early"):
            self.show(flight)
            model.flights.remove(flight)

    def placed(self, flight: Flight) -> None:
        """The response: its reservation stops counting at once when no order of its own is to come on
        the feed (shown already; or none: a kept priority, or the replacement of an amend checked as
        keeping priority, which reserved nothing); otherwise it counts until the feed shows the order."""
        self.engine.placed(flight.reservation, flight.order_id)
        self.late_count(flight)
        if flight.added:
            self.model.flights.remove(flight)
            flight.added = False
        # A keeping flight stays listed (reserving nothing) until the feed shows its events.

    def late_count(self, flight: Flight) -> None:
        """An amend checked as keeping priority that the order book replaced: once the response tells,
        its whole new order counts in the rolling windows, as of the check."""
        if flight.keeps and flight.outcome == "replaced":
            flight.entry.quantity = flight.quantity
            flight.entry.amount = flight.price * flight.quantity

    def reset(self, op: Reset) -> None:
        """The feed reconnects: the fresh mirror has every order the order book has."""
        engine, model = self.engine, self.model
        for flight in list(self.frozen.values()):
            self.show(flight, feed=False)
        settle: list[Flight] = []
        for flight in list(model.flights):
            if flight.outcome and not flight.added:
                model.flights.remove(flight)  # placed: the mirror has its order
            elif flight.added:
                settle.append(flight)  # pending, but the mirror has its order
            elif op.in_flight_accepted:
                if self.reach(flight):
                    self.show(flight, feed=False)
                    settle.append(flight)
                else:
                    self.refuse(flight)
        engine.reset((o.user, o.book, o.price, o.remaining) for o in model.orders.values())
        for flight in settle:
            engine.settled(flight.reservation, flight.order_id)
            self.late_count(flight)
            model.flights.remove(flight)

    def check_outstanding(self) -> None:
        for user in USERS:
            assert self.engine.outstanding(user) == self.model.outstanding(user)
            for book in BOOKS.values():
                assert self.engine.outstanding(user, book) == self.model.outstanding(user, book)
            for symbol in BOOKS:
                assert self.engine.accepted(user, symbol, self.now) == self.model.rolling(
                    user, symbol, self.now
                )


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_engine_agrees_with_the_full_history_model(ops: list[Op]) -> None:
    run = Run()
    for op in ops:
        run.apply(op)
        run.check_outstanding()
