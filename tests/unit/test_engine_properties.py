"""Property tests: the fast book against the naive oracle, and the Exchange against naive books."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from optivex.engine import BUY, SELL, Exchange, Fill, NaiveOrderBook, Order, OrderBook, Rejected

SETTINGS = settings(
    max_examples=80,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

sides = st.sampled_from([BUY, SELL])
owners = st.sampled_from(["alice", "bob", "carol"])


def view(orders: Sequence[Order]) -> list[tuple[int, int, int, int, int, str]]:
    return [(o.order_id, o.side, o.price, o.quantity, o.remaining, o.owner) for o in orders]


class Ledger:
    """Per-order accounting: quantity = remaining (if resting) + traded + cancelled."""

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.traded: dict[int, int] = {}
        self.cancelled: dict[int, int] = {}
        self.resting: set[int] = set()

    def placed(self, order: Order, fills: Sequence[Fill], opposite_before: list[Order]) -> None:
        oid = order.order_id
        self.orders[oid] = order
        self.traded[oid] = sum(f[4] for f in fills)
        self.cancelled[oid] = 0
        # Priority: the makers are the head of the opposite side, in order;
        # each fill at the maker's price, never beyond the taker's limit.
        assert [f[1] for f in fills] == [o.order_id for o in opposite_before[: len(fills)]]
        for fill, maker in zip(fills, opposite_before, strict=False):
            _, maker_id, maker_owner, price, qty = fill
            assert price == maker.price and maker_owner == maker.owner and qty > 0
            assert price <= order.price if order.side == BUY else price >= order.price
            self.traded[maker_id] += qty
            if maker.remaining == 0:
                self.resting.discard(maker_id)
        for maker in opposite_before[: max(len(fills) - 1, 0)]:
            assert maker.remaining == 0, "only the last maker may be partially filled"
        if order.remaining:
            # Unfilled: every maker it met is gone and the next one does not cross
            # (the book-level "never crossed" invariant checks the same from the other side).
            assert all(m.remaining == 0 for m in opposite_before[: len(fills)])
            if len(opposite_before) > len(fills):
                nxt = opposite_before[len(fills)]
                assert nxt.price > order.price if order.side == BUY else nxt.price < order.price
            self.resting.add(oid)
        ids = [f[0] for f in fills]
        assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else True

    def cancelled_order(self, order: Order) -> None:
        self.cancelled[order.order_id] += order.remaining
        self.resting.discard(order.order_id)

    def check(self) -> None:
        for oid, order in self.orders.items():
            live = order.remaining if oid in self.resting else 0
            assert order.quantity == live + self.traded[oid] + self.cancelled[oid], order
            assert order.quantity - order.remaining == self.traded[oid]


class BookMachine(RuleBasedStateMachine):
    """Same operations on the fast and the naive book: same answers, same state, always."""

    def __init__(self) -> None:
        super().__init__()
        # A tiny compaction floor, so that compactions happen within a few steps.
        self.fast = OrderBook(1, 1, compact_floor=0)
        self.naive = NaiveOrderBook(1, 1)
        self.next_order_id = 1
        self.next_trade_id = 1
        self.ledger = Ledger()

    @rule(side=sides, price=st.integers(1, 12), quantity=st.integers(1, 8), owner=owners)
    def insert(self, side: int, price: int, quantity: int, owner: str) -> None:
        self._insert(side, price, quantity, owner)

    @rule(side=sides, price=st.integers(1, 80), quantity=st.integers(1, 3), owner=owners)
    def insert_anywhere(self, side: int, price: int, quantity: int, owner: str) -> None:
        """Wide prices: many levels, so compactions and empty kept levels come into play."""
        self._insert(side, price, quantity, owner)

    def _insert(self, side: int, price: int, quantity: int, owner: str) -> None:
        oid, tid = self.next_order_id, self.next_trade_id
        opposite = self.fast.side_orders(SELL if side == BUY else BUY)
        order, fills = self.fast.insert(side, price, quantity, owner, 100 + oid)
        n_order, n_fills = self.naive.insert(oid, side, price, quantity, owner, 100 + oid, tid)
        assert order.order_id == oid  # the fast book allocates the ids; the naive one is given them
        assert list(fills) == n_fills
        assert view([order]) == view([n_order])
        self.next_order_id += 1
        self.next_trade_id += len(fills)
        self.ledger.placed(order, fills, opposite)

    def _cancel(self, order_id: int) -> None:
        got = self.fast.cancel(order_id)
        n_got = self.naive.cancel(order_id)
        assert (got is None) == (n_got is None)
        if got is not None:
            assert n_got is not None and view([got]) == view([n_got])
            assert got.order_id == order_id
            self.ledger.cancelled_order(got)
        else:
            assert order_id not in self.ledger.resting

    @precondition(lambda self: self.ledger.resting)
    @rule(data=st.data())
    def cancel_live(self, data: st.DataObject) -> None:
        self._cancel(data.draw(st.sampled_from(sorted(self.ledger.resting))))

    @precondition(lambda self: self.next_order_id > 1)
    @rule(data=st.data())
    def cancel_any_issued(self, data: st.DataObject) -> None:
        self._cancel(data.draw(st.integers(1, self.next_order_id - 1)))

    @rule(order_id=st.integers(-2, 400))
    def cancel_random(self, order_id: int) -> None:
        self._cancel(order_id)

    @invariant()
    def same_state(self) -> None:
        self.fast.check_integrity()
        self.naive.check_integrity()
        assert view(self.fast.resting_orders()) == view(self.naive.resting_orders())
        for side in (BUY, SELL):
            assert self.fast.levels(side) == self.naive.levels(side)
            assert self.fast.best(side) == self.naive.best(side)
        assert len(self.fast) == len(self.naive) == len(self.ledger.resting)
        assert {o.order_id for o in self.fast.resting_orders()} == self.ledger.resting
        bid, ask = self.fast.best(BUY), self.fast.best(SELL)
        assert bid is None or ask is None or bid[0] < ask[0]
        self.ledger.check()


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = SETTINGS


TICKS = (1, 2, 5)  # book ids 1, 2, 3


class ExchangeMachine(RuleBasedStateMachine):
    """The Exchange (validation, global ids, several books) against one naive book per book id."""

    def __init__(self) -> None:
        super().__init__()
        self.ex = Exchange()
        self.naive: dict[int, NaiveOrderBook] = {}
        for i, tick in enumerate(TICKS, start=1):
            info = self.ex.create_book(tick, f"S{i}", i)
            assert info.book_id == i
            self.naive[i] = NaiveOrderBook(i, tick)
        self.next_order_id = 1
        self.next_trade_id = 1
        self.book_of: dict[int, int] = {}
        self.ledger = Ledger()

    @rule(
        book_id=st.integers(1, len(TICKS)),
        side=sides,
        ticks=st.integers(1, 10),
        quantity=st.integers(1, 8),
        owner=owners,
    )
    def insert_valid(self, book_id: int, side: int, ticks: int, quantity: int, owner: str) -> None:
        self._insert(book_id, side, ticks * TICKS[book_id - 1], quantity, owner)

    @rule(
        book_id=st.integers(0, 4),
        side=st.sampled_from([BUY, SELL, 2, -1]),
        price=st.one_of(st.integers(-1, 30), st.none(), st.just(2**53)),
        quantity=st.one_of(st.integers(-1, 8), st.just(2**31)),
        owner=owners,
    )
    def insert_any(self, book_id: int, side: int, price: int | None, quantity: int, owner: str) -> None:
        self._insert(book_id, side, price, quantity, owner)

    def _insert(self, book_id: int, side: int, price: int | None, quantity: int, owner: str) -> None:
        naive = self.naive.get(book_id)
        valid = (
            naive is not None
            and side in (BUY, SELL)
            and price is not None
            and 0 < price < 2**53
            and price % naive.tick == 0
            and 0 < quantity < 2**31
        )
        last = (self.ex.last_order_id, self.ex.last_trade_id)
        try:
            order, fills = self.ex.insert(book_id, side, price, quantity, owner, 1000 + self.next_order_id)
        except Rejected as exc:
            assert not valid, exc
            assert (self.ex.last_order_id, self.ex.last_trade_id) == last
            return
        assert valid and naive is not None and price is not None
        oid = self.next_order_id
        assert order.order_id == oid and order.book_id == book_id
        opposite = naive.side_orders(SELL if side == BUY else BUY)
        n_order, n_fills = naive.insert(oid, side, price, quantity, owner, 1000 + oid, self.next_trade_id)
        assert list(fills) == n_fills
        assert view([order]) == view([n_order])
        self.next_order_id += 1
        self.next_trade_id += len(fills)
        self.book_of[oid] = book_id
        self.ledger.placed(order, fills, opposite)
        assert self.ex.last_order_id == oid and self.ex.last_trade_id == self.next_trade_id - 1

    @rule(book_id=st.integers(0, 4), data=st.data())
    def cancel(self, book_id: int, data: st.DataObject) -> None:
        choices = [st.integers(-1, self.next_order_id + 2)]
        if self.ledger.resting:
            choices.append(st.sampled_from(sorted(self.ledger.resting)))
        order_id = data.draw(st.one_of(*choices))
        if data.draw(st.booleans()) and order_id in self.book_of:
            book_id = self.book_of[order_id]  # aim at the right book half of the time
        try:
            got = self.ex.cancel(book_id, order_id, 5)
        except Rejected as exc:
            message = str(exc)
            if book_id not in self.naive:
                assert "unknown order book" in message
            elif order_id not in self.book_of:
                assert "unknown order" in message
            elif order_id not in self.ledger.resting:
                # Dead: its book is no longer known (the documented rule of Books._cancel_error).
                assert f"no longer resting in order book {book_id}" in message
            else:
                assert self.book_of[order_id] != book_id
                assert f"belongs to order book {self.book_of[order_id]}, not {book_id}" in message
            return
        assert self.book_of[order_id] == book_id and order_id in self.ledger.resting
        n_got = self.naive[book_id].cancel(order_id)
        assert n_got is not None and view([got]) == view([n_got])
        self.ledger.cancelled_order(got)

    @invariant()
    def same_state(self) -> None:
        self.ex.check_integrity()
        assert self.ex.resting_count() == len(self.ledger.resting)
        expected: list[Order] = []
        for book_id in sorted(self.naive):
            expected.extend(self.naive[book_id].resting_orders())
            for side in (BUY, SELL):
                assert self.ex.book(book_id).levels(side) == self.naive[book_id].levels(side)
        assert view(self.ex.resting_orders()) == view(expected)
        self.ledger.check()


TestExchangeMachine = ExchangeMachine.TestCase
TestExchangeMachine.settings = SETTINGS
