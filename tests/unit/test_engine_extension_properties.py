"""Property tests of the trader extensions: the engine against the naive oracle on random mixes.

Random mixes of insert, place (random time in force and self-trade prevention),
amend, cancel and cancel_orders, over 2 owners and the owner "" and a small
price range so that orders cross, drive a ``Books`` (an ``Exchange``, and a
``Books`` of books that compact at once) and one naive book per book id.
Every answer and error must be the same, and the resting books equal, after
every step; plus the invariants: every book passes ``check_integrity``,
quantity is conserved per order (``quantity == traded + resting + cancelled``,
through amends), a FOK order trades in full or is rejected changing nothing,
an IOC order never rests, self-trade prevention never lets an owner trade
with itself, an amend down keeps the order's place, any other amend moves it
to the back of its level.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from optivex.engine import (
    BUY,
    FOK,
    GTC,
    IOC,
    SELL,
    STP_ALLOW,
    STP_CANCEL_INCOMING,
    STP_CANCEL_RESTING,
    Books,
    Exchange,
    Fill,
    NaiveOrderBook,
    Order,
    OrderBook,
    Placement,
    Rejected,
)
from optivex.units import INT32_MAX

SETTINGS = settings(
    max_examples=100,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TICKS = (1, 2)  # book ids 1, 2
PRICES = 8  # prices 1..PRICES ticks: orders cross often
sides = st.sampled_from([BUY, SELL])
owners = st.sampled_from(["alice", "bob", "alice", "bob", ""])
tifs = st.sampled_from([GTC, IOC, FOK])
stps = st.sampled_from([STP_ALLOW, STP_CANCEL_RESTING, STP_CANCEL_INCOMING])

View = tuple[int, int, int, int, int, int, str, int]


def view(orders: Sequence[Order | None]) -> list[View | None]:
    return [
        None
        if o is None
        else (o.order_id, o.book_id, o.side, o.price, o.quantity, o.remaining, o.owner, o.timestamp)
        for o in orders
    ]


class Accounts:
    """Per order: original quantity, reduced by amends, traded, cancelled; which orders rest."""

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.original: dict[int, int] = {}
        self.reduced: dict[int, int] = {}
        self.traded: dict[int, int] = {}
        self.cancelled: dict[int, int] = {}
        self.resting: set[int] = set()

    def new(self, order: Order) -> None:
        oid = order.order_id
        assert oid not in self.orders
        self.orders[oid] = order
        self.original[oid] = order.quantity
        self.reduced[oid] = self.traded[oid] = self.cancelled[oid] = 0

    def placed(self, placed: Placement) -> None:
        order = placed.order
        self.new(order)
        self.fills(order.order_id, placed.fills)
        for o in placed.self_cancelled:
            self.cancel(o)
        self.cancelled[order.order_id] += placed.cancelled
        if order.remaining:
            self.resting.add(order.order_id)

    def fills(self, taker: int, fills: Sequence[Fill]) -> None:
        for _, maker, _, _, qty in fills:
            assert qty > 0
            self.traded[taker] += qty
            self.traded[maker] += qty
            if self.orders[maker].remaining == 0:
                self.resting.discard(maker)

    def cancel(self, order: Order) -> None:
        assert order.order_id in self.resting
        self.cancelled[order.order_id] += order.remaining
        self.resting.discard(order.order_id)

    def check(self) -> None:
        for oid, order in self.orders.items():
            live = order.remaining if oid in self.resting else 0
            assert order.quantity == self.original[oid] - self.reduced[oid], order
            assert order.quantity == self.traded[oid] + live + self.cancelled[oid], order


class ExtensionMachine(RuleBasedStateMachine):
    """An ``Exchange`` and one naive book per book: same answers, same books, always."""

    def __init__(self) -> None:
        super().__init__()
        self.ex, self.fast = self.make_books()
        self.naive = {book_id: NaiveOrderBook(book_id, tick) for book_id, tick in enumerate(TICKS, start=1)}
        self.next_order_id = 1
        self.next_trade_id = 1
        self.book_of: dict[int, int] = {}
        self.acc = Accounts()
        self.clock = 0

    def make_books(self) -> tuple[Books, dict[int, OrderBook]]:
        ex = Exchange()
        for i, tick in enumerate(TICKS, start=1):
            ex.create_book(tick, f"S{i}")
        return ex, {i: ex.book(i) for i in range(1, len(TICKS) + 1)}

    def now(self) -> int:
        self.clock += 1
        return self.clock

    def ids(self) -> tuple[int, int]:
        return self.ex.last_order_id, self.ex.last_trade_id

    # ------------------------------------------------------------------ rules

    @rule(
        book_id=st.integers(1, len(TICKS)),
        side=sides,
        ticks=st.integers(1, PRICES),
        quantity=st.integers(1, 6),
        owner=owners,
    )
    def insert(self, book_id: int, side: int, ticks: int, quantity: int, owner: str) -> None:
        price = ticks * TICKS[book_id - 1]
        ts = self.now()
        order, fills = self.ex.insert(book_id, side, price, quantity, owner, ts)
        n_order, n_fills = self.naive[book_id].insert(
            self.next_order_id, side, price, quantity, owner, ts, self.next_trade_id
        )
        assert view([order]) == view([n_order]) and list(fills) == n_fills
        self.accept(Placement(order, fills, [], 0))  # type: ignore[arg-type]

    @rule(
        book_id=st.integers(1, len(TICKS)),
        side=sides,
        ticks=st.integers(1, PRICES),
        quantity=st.integers(1, 10),
        owner=owners,
        tif=tifs,
        stp=stps,
    )
    def place(
        self, book_id: int, side: int, ticks: int, quantity: int, owner: str, tif: int, stp: int
    ) -> None:
        price = ticks * TICKS[book_id - 1]
        ts = self.now()
        before = self.ids()
        resting_before = view(self.all_resting())
        try:
            placed = self.ex.place(book_id, side, price, quantity, owner, ts, tif, stp)
        except Rejected as exc:
            assert tif == FOK, exc
            with_naive = None
            try:
                self.naive[book_id].place(
                    self.next_order_id, side, price, quantity, owner, ts, self.next_trade_id, tif, stp
                )
            except Rejected as n_exc:
                with_naive = n_exc.message
            assert with_naive == exc.message
            event("place: FOK rejected")
            assert self.ids() == before and view(self.all_resting()) == resting_before
            return
        n_placed = self.naive[book_id].place(
            self.next_order_id, side, price, quantity, owner, ts, self.next_trade_id, tif, stp
        )
        self.compare(placed, n_placed)
        event(
            f"place: tif {tif} stp {stp} fills {bool(placed.fills)} stp-cancels {bool(placed.self_cancelled)}"
        )
        event(f"place: cancelled {placed.cancelled > 0}")
        order = placed.order
        traded = sum(f[4] for f in placed.fills)
        assert traded + order.remaining + placed.cancelled == quantity
        if tif == FOK:
            assert traded == quantity and order.remaining == 0 and placed.cancelled == 0
        if tif != GTC:
            assert order.remaining == 0 and self.ex.get_order(order.order_id) is None
        if stp != STP_ALLOW and owner:
            assert all(f[2] != owner for f in placed.fills)
        if stp != STP_CANCEL_RESTING or not owner:
            assert placed.self_cancelled == []
        assert all(o.owner == owner and o.book_id == book_id for o in placed.self_cancelled)
        self.accept(placed)

    def compare(self, placed: Placement, n_placed: Placement) -> None:
        assert view([placed.order]) == view([n_placed.order])
        assert list(placed.fills) == list(n_placed.fills)
        assert view(placed.self_cancelled) == view(n_placed.self_cancelled)
        assert placed.cancelled == n_placed.cancelled

    def accept(self, placed: Placement) -> None:
        order = placed.order
        assert order.order_id == self.next_order_id
        fills = placed.fills
        assert [f[0] for f in fills] == list(range(self.next_trade_id, self.next_trade_id + len(fills)))
        self.next_order_id += 1
        self.next_trade_id += len(fills)
        self.book_of[order.order_id] = order.book_id
        self.acc.placed(placed)
        assert self.ids() == (self.next_order_id - 1, self.next_trade_id - 1)

    @rule(
        data=st.data(),
        book_id=st.integers(0, len(TICKS) + 1),
        price=st.one_of(
            st.none(), st.integers(1, PRICES), st.integers(1, PRICES), st.sampled_from([-1, 0, 3])
        ),
        quantity=st.one_of(st.integers(1, 8), st.sampled_from([0, INT32_MAX + 1])),
        owner=st.one_of(st.none(), owners),
        stp=stps,
    )
    def amend(
        self,
        data: st.DataObject,
        book_id: int,
        price: int | None,
        quantity: int,
        owner: str | None,
        stp: int,
    ) -> None:
        order_id = self.pick_order(data)
        if data.draw(st.booleans()) and order_id in self.book_of:
            book_id = self.book_of[order_id]  # aim at the right book most of the time
        if price is not None and price > 0 and book_id == 2 and data.draw(st.booleans()):
            price *= TICKS[1]  # prices in ticks mostly (3 units is invalid in book 2)
        if order_id in self.acc.resting:
            order = self.acc.orders[order_id]
            if data.draw(st.booleans()):
                quantity = data.draw(st.integers(1, max(order.remaining - 1, 1)))  # often a reduction
            if price is not None and data.draw(st.booleans()):
                price = order.price  # the same price, given
        self._amend(book_id, order_id, price, quantity, owner, stp)

    @precondition(lambda self: self.acc.resting)
    @rule(
        data=st.data(),
        ticks=st.one_of(st.none(), st.integers(1, PRICES)),
        quantity=st.integers(1, 8),
        stp=stps,
    )
    def amend_resting(self, data: st.DataObject, ticks: int | None, quantity: int, stp: int) -> None:
        """A valid amend (but for one that changes nothing) of a resting order: often it trades."""
        order = self.acc.orders[data.draw(st.sampled_from(sorted(self.acc.resting)))]
        price = None if ticks is None else ticks * TICKS[order.book_id - 1]
        owner = data.draw(st.sampled_from([None, order.owner]))
        self._amend(order.book_id, order.order_id, price, quantity, owner, stp)

    def _amend(
        self, book_id: int, order_id: int, price: int | None, quantity: int, owner: str | None, stp: int
    ) -> None:
        ts = self.now()
        before = self.ids()
        resting_before = view(self.all_resting())
        expected = self.amend_error(book_id, order_id, price, quantity, owner)
        level_before: list[int] = []
        if expected is None:
            old = self.acc.orders[order_id]
            level_before = [
                o.order_id for o in self.fast[book_id].side_orders(old.side) if o.price == old.price
            ]
        try:
            amended = self.ex.amend(book_id, order_id, price, quantity, ts, owner, stp)
        except Rejected as exc:
            assert expected is not None and expected in exc.message, (expected, exc.message)
            event(f"amend rejected: {expected.split(' ')[0:2]}")
            assert self.ids() == before and view(self.all_resting()) == resting_before
            return
        assert expected is None, expected
        event(f"amend: {'reduced' if amended.priority_kept else 'replaced'}, fills {len(amended.fills) > 0}")
        event(f"amend: stp-cancels {len(amended.self_cancelled) > 0} cancelled {amended.cancelled > 0}")
        n_amended = self.naive[book_id].amend(
            order_id, price, quantity, ts, self.next_order_id, self.next_trade_id, stp
        )
        assert amended.priority_kept == n_amended.priority_kept
        assert amended.previous_remaining == n_amended.previous_remaining
        assert view([amended.replaced]) == view([n_amended.replaced])
        if amended.priority_kept:
            assert amended.order is old and amended.replaced is None and old.remaining == quantity
            assert (amended.fills, amended.self_cancelled, amended.cancelled) == ((), [], 0)
            assert view([amended.order]) == view([n_amended.order])
            self.acc.reduced[order_id] += amended.previous_remaining - quantity
            level = [o.order_id for o in self.fast[book_id].side_orders(old.side) if o.price == old.price]
            assert level == level_before  # the same place in its level
            return
        assert amended.replaced is old and old.order_id not in self.ex._index
        assert old.remaining == amended.previous_remaining
        new = amended.order
        assert (new.side, new.owner, new.quantity, new.timestamp) == (old.side, old.owner, quantity, ts)
        self.acc.cancel(old)
        placed = Placement(new, amended.fills, amended.self_cancelled, amended.cancelled)
        self.compare(
            placed, Placement(n_amended.order, n_amended.fills, n_amended.self_cancelled, n_amended.cancelled)
        )
        self.accept(placed)
        if new.remaining:
            level = [o.order_id for o in self.fast[book_id].side_orders(new.side) if o.price == new.price]
            assert level[-1] == new.order_id  # at the back of its level

    def amend_error(
        self, book_id: int, order_id: int, price: int | None, quantity: int, owner: str | None
    ) -> str | None:
        """The error an amend must raise (a part of its message), or None."""
        if book_id not in self.naive:
            return f"unknown order book {book_id}"
        if order_id not in self.book_of:
            return f"unknown order {order_id}"
        if order_id not in self.acc.resting:
            return f"order {order_id} is no longer resting in order book {book_id}"
        if self.book_of[order_id] != book_id:
            return f"order {order_id} belongs to order book {self.book_of[order_id]}, not {book_id}"
        order = self.acc.orders[order_id]
        if owner is not None and owner != order.owner:
            return f"order {order_id} is not an order of {owner}"
        if price is not None and (price <= 0 or price % TICKS[book_id - 1]):
            return "invalid price"
        if not 0 < quantity <= INT32_MAX:
            return "invalid quantity"
        if (price is None or price == order.price) and quantity == order.remaining:
            return f"amend of order {order_id} changes nothing"
        return None

    def pick_order(self, data: st.DataObject) -> int:
        if self.acc.resting:
            resting: int = data.draw(st.integers(0, 3))  # 3 times in 4 a resting order
            if resting:
                return data.draw(st.sampled_from(sorted(self.acc.resting)))
        return data.draw(st.integers(0, self.next_order_id + 1))

    @rule(data=st.data(), book_id=st.integers(0, len(TICKS) + 1))
    def cancel(self, data: st.DataObject, book_id: int) -> None:
        order_id = self.pick_order(data)
        if order_id in self.book_of and data.draw(st.booleans()):
            book_id = self.book_of[order_id]
        try:
            got = self.ex.cancel(book_id, order_id, self.now())
        except Rejected:
            assert order_id not in self.acc.resting or self.book_of[order_id] != book_id
            return
        n_got = self.naive[book_id].cancel(order_id)
        assert view([got]) == view([n_got])
        self.acc.cancel(got)

    @rule(
        data=st.data(),
        owner=owners,
        book_id=st.sampled_from([0, 0, 1, 2, 3]),
        by_ids=st.booleans(),
    )
    def cancel_orders(self, data: st.DataObject, owner: str, book_id: int, by_ids: bool) -> None:
        ids: list[int] | None = None
        if by_ids:
            ids = data.draw(st.lists(st.integers(0, self.next_order_id + 1), max_size=6))
        before = self.ids()
        if book_id not in (0, *self.naive):
            try:
                self.ex.cancel_orders(owner, book_id, ids)
            except Rejected as exc:
                assert exc.message == f"unknown order book {book_id}"
                assert self.ids() == before
                return
            raise AssertionError("cancel_orders of an unknown book was accepted")
        got = self.ex.cancel_orders(owner, book_id, ids)
        expected: list[Order] = []
        for naive_id, naive in self.naive.items():
            if book_id in (0, naive_id):
                expected.extend(naive.cancel_orders(owner, ids))
        expected.sort(key=lambda o: o.order_id)
        assert view(got) == view(expected)
        event(f"cancel_orders: {len(got)} cancelled")
        assert self.ids() == before
        for order in got:
            assert order.owner == owner and (ids is None or order.order_id in ids)
            self.acc.cancel(order)
        assert not any(
            o.owner == owner
            for o in self.all_resting()
            if book_id in (0, o.book_id) and (ids is None or o.order_id in ids)
        )

    # ------------------------------------------------------------------ invariants

    def all_resting(self) -> list[Order]:
        out: list[Order] = []
        for book_id in sorted(self.fast):
            out.extend(self.fast[book_id].resting_orders())
        return out

    @invariant()
    def same_books(self) -> None:
        self.ex.check_integrity()
        expected: list[Order] = []
        for book_id in sorted(self.naive):
            self.naive[book_id].check_integrity()
            expected.extend(self.naive[book_id].resting_orders())
            for side in (BUY, SELL):
                assert self.fast[book_id].levels(side) == self.naive[book_id].levels(side)
        assert view(self.all_resting()) == view(expected)
        assert {o.order_id for o in expected} == self.acc.resting == set(self.ex._index)
        self.acc.check()

    @invariant()
    def ids_follow(self) -> None:
        assert self.ids() == (self.next_order_id - 1, self.next_trade_id - 1)


class CompactingMachine(ExtensionMachine):
    """The same on a plain ``Books`` whose books compact their levels at once (a compaction floor of 0)."""

    def make_books(self) -> tuple[Books, dict[int, OrderBook]]:
        books = Books()
        fast = {i: OrderBook(i, tick, compact_floor=0, books=books) for i, tick in enumerate(TICKS, start=1)}
        return books, fast


TestExtensionMachine = ExtensionMachine.TestCase
TestExtensionMachine.settings = SETTINGS
TestCompactingMachine = CompactingMachine.TestCase
TestCompactingMachine.settings = SETTINGS
