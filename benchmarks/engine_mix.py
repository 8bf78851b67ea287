"""Matching-engine throughput on exchange-core's published order mix, one book.

    uv run python benchmarks/engine_mix.py [--ops N] [--seed S] [--orders 1000] [--half-range 800]
                                           [--repeat 3] [--only exchange|loop] [--gc] [--cpu]

First 1,000 passive orders are placed over ~750 price levels: prices uniform
within ``--half-range`` ticks of a fixed mid (buys below, sells above; tick
0.01 around 100.00; 1,000 orders over 1,600 prices fill ~740 of them). Then N
operations in the mix of exchange-core's benchmarks:

- 9% new resting limit orders (price of the same distribution, passive side);
- 3% marketable orders: priced 50 ticks through the mid, so they cross the
  spread and in practice never rest (dozens of resting orders lie between the
  best price and their limit); quantity 1..100 like the resting orders,
  doubled while the model holds more than ``--orders`` orders: a cheap
  feedback that keeps the book near its starting size;
- 6% cancels of a random resting order;
- 82% moves: cancel a random resting order and insert it again (same side,
  owner and remaining quantity, new id) at a new price drawn from the same
  distribution around the mid; the cancel and the insert count as ONE op.

How it is measured, so that the figure is the engine's and not the harness's:

1. Generate (untimed): the stream of kinds, sides, price offsets,
   quantities, owners and one random number per pick, with a seeded RNG.
2. Resolve (untimed): run the stream once through a reference ``Exchange``,
   keeping a model of the live orders to decide which order each cancel or
   move hits (``live[random % len(live)]``; orders a marketable order filled
   are dropped from the model when a pick lands on them). This turns every op
   into a concrete step ``(cancel_id, side, price, quantity, owner)``:
   ``cancel_id`` 0 for no cancel, ``quantity`` 0 for no insert. The engine
   is deterministic and its ids are sequential, so replaying the steps on a
   fresh engine issues the very same order and trade ids.
3. Time a minimal replay loop over the list of steps, on a fresh engine
   holding the same initial orders.
4. Verify (untimed): after every timed replay, the engine must hold the same
   final book as the reference run (every resting order's id, side, price and
   remaining quantity), pass ``check_integrity()`` and have issued the same
   order and trade ids: a figure cannot come from a run that diverged (a
   cancel that was rejected, an order that did not rest). These checks raise
   ``RuntimeError``, so they hold under ``python -O`` too.

Two figures: the ``Exchange`` path (validation, id allocation, fills
returned as events: the engine's one hot path, ``Books.insert``/``cancel``,
and the figure that counts) and the loop alone (the Exchange replay with
insert and cancel replaced by stubs that return a fixed answer: what the
replay itself costs). There is no bare-book figure: a book has no other
path. Each is the best of ``--repeat`` runs. As with
``timeit``, the garbage collector is off during the timed loop unless
``--gc`` is given (it costs a few % here: every Order is a GC-tracked
object). ``--cpu`` times with the process's CPU time instead of wall time:
on a shared machine, the time the scheduler gives to other processes is
then not counted (what they take of the caches still is). Timestamps are a
constant: the engine stores them and never reads.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from optivex.engine import BUY, SELL, Exchange, Fill, Order, OrderBook

TICK = 100  # 0.01 in units
MID = 1_000_000  # 100.00 in units
THROUGH = 50 * TICK  # marketable orders are priced this far through the mid
OWNERS = ("alice", "bob", "carol", "dave", "erin")
TS = 1_700_000_000_000_000_000

NEW, MARKET, CANCEL, MOVE = 0, 1, 2, 3

Op = tuple[int, int, int, int, int, str]  # kind, pick, side, price offset (units), quantity, owner
Initial = tuple[int, int, int, str]  # side, price, quantity, owner
Step = tuple[int, int, int, int, str]  # cancel_id (0: none), side, price, quantity (0: no insert), owner
Figures = dict[str, float]


def generate(ops: int, orders: int, half_range: int, seed: int) -> tuple[list[Initial], list[Op]]:
    """The initial fill and the operation stream."""
    rng = random.Random(seed)
    rand, randint = rng.random, rng.randint
    initial: list[Initial] = []
    for _ in range(orders):
        side = BUY if rand() < 0.5 else SELL
        offset = randint(1, half_range) * TICK
        price = MID - offset if side == BUY else MID + offset
        initial.append((side, price, randint(1, 100), OWNERS[randint(0, 4)]))
    stream: list[Op] = []
    for _ in range(ops):
        r = rand()
        kind = NEW if r < 0.09 else MARKET if r < 0.12 else CANCEL if r < 0.18 else MOVE
        side = BUY if rand() < 0.5 else SELL
        offset = randint(1, half_range) * TICK
        stream.append((kind, rng.getrandbits(31), side, offset, randint(1, 100), OWNERS[randint(0, 4)]))
    return initial, stream


def _repick(live: list[Order], i: int, pick: int) -> tuple[int, Order]:
    """Drop filled orders from the model until the pick lands on a live one."""
    while True:
        last = live.pop()
        if i < len(live):
            live[i] = last
        i = pick % len(live)
        order = live[i]
        if order.remaining:
            return i, order


class Reference(NamedTuple):
    """What the reference run ended with; every timed replay must end the same."""

    orders: int  # order ids issued, initial orders included
    trades: int  # trade ids issued
    book: list[tuple[int, int, int, int]]  # resting (order_id, side, price, remaining), priority order
    start_levels: int
    traded_ops: int


def _book_view(book: OrderBook) -> list[tuple[int, int, int, int]]:
    return [(o.order_id, o.side, o.price, o.remaining) for o in book.resting_orders()]


def _fill(ex: Exchange, initial: list[Initial]) -> int:
    """A fresh book of ``ex`` holding the initial orders; its id."""
    book_id = ex.create_book(TICK, "BENCH", TS).book_id
    for side, price, qty, owner in initial:
        ex.insert(book_id, side, price, qty, owner, TS)
    return book_id


def resolve(initial: list[Initial], stream: list[Op]) -> tuple[list[Step], Reference]:
    """Run the stream once through a reference Exchange; the concrete steps and the outcome."""
    ex = Exchange()
    book_id = _fill(ex, initial)
    book = ex.book(book_id)
    live = book.resting_orders()
    live.sort(key=lambda o: o.order_id)
    target = len(initial)
    start_levels = _level_count(book)
    steps: list[Step] = []
    traded_ops = 0
    for kind, pick, side, offset, qty, owner in stream:
        cancel_id = 0
        if kind in (MOVE, CANCEL):
            i = pick % len(live)
            old = live[i]
            if not old.remaining:
                i, old = _repick(live, i, pick)
            cancel_id = old.order_id
            ex.cancel(book_id, cancel_id, TS)
            if kind == CANCEL:
                last = live.pop()
                if i < len(live):
                    live[i] = last
                steps.append((cancel_id, 0, 0, 0, ""))
                continue
            side, qty, owner = old.side, old.remaining, old.owner
            price = MID - offset if side == BUY else MID + offset
        elif kind == NEW:
            price = MID - offset if side == BUY else MID + offset
        else:
            if len(live) > target:
                qty += qty
            price = MID + THROUGH if side == BUY else MID - THROUGH
        order, fills = ex.insert(book_id, side, price, qty, owner, TS)
        steps.append((cancel_id, side, price, qty, owner))
        if fills:
            traded_ops += 1
        if kind == MOVE:
            live[i] = order  # should it have traded away, a later pick drops it
        elif kind == NEW or order.remaining:
            live.append(order)
    ex.check_integrity()
    ref = Reference(ex.last_order_id, ex.last_trade_id, _book_view(book), start_levels, traded_ops)
    return steps, ref


class _Stub(Exchange):
    """The loop's own cost: insert and cancel do nothing and return a fixed answer."""

    __slots__ = ("_answer",)

    def __init__(self) -> None:
        super().__init__()
        order = Order.create(1, 1, BUY, MID, 1, "x", TS)
        self._answer: tuple[Order, Sequence[Fill]] = (order, ())

    def insert(
        self, book_id: int, side: int, price: int | None, quantity: int, owner: str, timestamp: int
    ) -> tuple[Order, Sequence[Fill]]:
        return self._answer

    def cancel(self, book_id: int, order_id: int, timestamp: int = 0) -> Order:
        return self._answer[0]


CLOCK: list[Callable[[], float]] = [time.perf_counter]
"""The clock of the timed loops: wall time, or the process's CPU time with ``--cpu``."""


def _timed(run: Callable[[], None], keep_gc: bool) -> float:
    gc.collect()
    if not keep_gc:
        gc.disable()
    try:
        clock = CLOCK[0]
        t0 = clock()
        run()
        return clock() - t0
    finally:
        gc.enable()


def _verify(name: str, book: OrderBook, ref: Reference, ex: Exchange | None = None) -> None:
    """The replay must have ended exactly where the reference run did (ids issued: Exchange only)."""
    book.check_integrity()
    if _book_view(book) != ref.book:
        raise RuntimeError(f"{name}: the final book differs from the reference run's")
    if ex is not None and (ex.last_order_id, ex.last_trade_id) != (ref.orders, ref.trades):
        raise RuntimeError(f"{name}: other ids issued than in the reference run")


def _replay(ex: Exchange, book_id: int, steps: list[Step]) -> None:
    """The timed loop of the Exchange and loop-only figures."""
    insert, cancel = ex.insert, ex.cancel
    for cancel_id, side, price, qty, owner in steps:
        if cancel_id:
            cancel(book_id, cancel_id, TS)
            if not qty:
                continue
        insert(book_id, side, price, qty, owner, TS)


def run_exchange(initial: list[Initial], steps: list[Step], ref: Reference, keep_gc: bool) -> Figures:
    """Time the replay through ``Exchange`` (validation, ids and fills included)."""
    ex = Exchange()
    book_id = _fill(ex, initial)

    elapsed = _timed(lambda: _replay(ex, book_id, steps), keep_gc)
    _verify("Exchange", ex.book(book_id), ref, ex)
    return _figures(len(steps), elapsed, ref, ex.book(book_id))


def run_loop_only(initial: list[Initial], steps: list[Step], ref: Reference, keep_gc: bool) -> Figures:
    """Time the Exchange replay loop alone: insert and cancel are stubs."""
    ex = _Stub()
    book_id = ex.create_book(TICK, "BENCH", TS).book_id

    elapsed = _timed(lambda: _replay(ex, book_id, steps), keep_gc)
    return _figures(len(steps), elapsed, None, ex.book(book_id))


def _level_count(book: OrderBook) -> int:
    return len(book.levels(BUY)) + len(book.levels(SELL))


def _figures(ops: int, elapsed: float, ref: Reference | None, book: OrderBook) -> Figures:
    return {
        "ops": ops,
        "seconds": elapsed,
        "ops_per_s": ops / elapsed,
        "trades": 0 if ref is None else ref.trades,
        "traded_share": 0 if ref is None else ref.traded_ops / max(ops, 1),
        "resting": len(book),
        "bid_levels": len(book.levels(BUY)),
        "ask_levels": len(book.levels(SELL)),
    }


def _print(name: str, f: Figures, worst: float) -> None:
    print(
        f"{name:9s} {f['ops']:>10,.0f} ops in {f['seconds']:.3f} s = {f['ops_per_s']:>10,.0f} ops/s "
        f"(worst run {worst:,.0f}) | {f['trades']:,.0f} trades, "
        f"{100 * f['traded_share']:.2f}% of ops traded | "
        f"final book: {f['resting']:,.0f} orders, "
        f"{f['bid_levels']:.0f} bid + {f['ask_levels']:.0f} ask levels"
    )


Runner = Callable[[list[Initial], list[Step], Reference, bool], Figures]


def main() -> None:
    parser = argparse.ArgumentParser(description="Matching-engine throughput on exchange-core's order mix.")
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations to time (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=1000, help="initial resting orders")
    parser.add_argument("--half-range", type=int, default=800, help="ticks of prices each side of the mid")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; the best is printed")
    parser.add_argument("--only", choices=("exchange", "loop"), default=None)
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time with the process's CPU time (on a busy machine: time other processes take is not counted)",
    )
    args = parser.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    t0 = time.perf_counter()
    initial, stream = generate(args.ops, args.orders, args.half_range, args.seed)
    steps, ref = resolve(initial, stream)
    print(
        f"generated and resolved {len(stream):,} operations in {time.perf_counter() - t0:.1f} s "
        f"(seed {args.seed}; GC {'on' if args.gc else 'off'} while timing; "
        f"{'CPU' if args.cpu else 'wall'} time)"
    )
    print(f"initial book: {len(initial):,} orders on {ref.start_levels} price levels")
    runners: list[tuple[str, str, Runner]] = [
        ("exchange", "Exchange", run_exchange),
        ("loop", "loop only", run_loop_only),
    ]
    for key, name, run in runners:
        if args.only in (None, key):
            runs = [run(initial, steps, ref, args.gc) for _ in range(max(args.repeat, 1))]
            best = max(runs, key=lambda f: f["ops_per_s"])
            _print(name, best, min(f["ops_per_s"] for f in runs))


if __name__ == "__main__":
    main()
