"""Matching-engine throughput on exchange-core's published order mix, one book.

    uv run python benchmarks/engine_mix.py [--ops N] [--seed S] [--orders 1000] [--half-range 800]
                                           [--repeat 3] [--only exchange|book|loop] [--gc]

First 1,000 passive orders are placed over ~750 price levels: prices uniform
within ``--half-range`` ticks of a fixed mid (buys below, sells above; tick
0.01 around 100.00; 1,000 orders over 1,600 prices fill ~740 of them). Then N
operations in the mix of exchange-core's benchmarks:

- 9% new resting limit orders (price of the same distribution, passive side);
- 3% marketable orders: priced 50 ticks through the mid, so they cross the
  spread and in practice never rest (dozens of resting orders lie between the
  best price and their limit); quantity 1..100 like the resting orders,
  doubled at run time while the loop's model holds more than ``--orders``
  orders: a cheap feedback that keeps the book near its starting size;
- 6% cancels of a random resting order;
- 82% moves: cancel a random resting order and insert it again (same side,
  owner and remaining quantity, new id) at a new price drawn from the same
  distribution around the mid; the cancel and the insert count as ONE op.

The stream (kinds, sides, price offsets, quantities, owners, one random
number per pick) is generated with a seeded RNG before timing, without the
engine. Which order a cancel or move hits can only be decided while running,
so the timed loop keeps a cheap model of the live orders: a list of the Order
objects the engine returned; a pick is ``live[random % len(live)]``, a removal
swaps the last element in. Orders that a marketable order filled are not
removed eagerly (that would need a dict of positions): a pick that lands on
one (``remaining == 0``) drops it and picks again. This bookkeeping is a few
list operations per op, timed with the engine as a caller's own work would be
(the "loop only" figure shows its cost).

Three figures: the ``Exchange`` path (validation, id allocation, fills
returned as events: the figure that counts), the bare ``OrderBook`` (ids
allocated by the loop, no validation) and the loop alone (the Exchange path
with insert and cancel replaced by stubs that return a fixed order). Each is
the best of ``--repeat`` runs. As with ``timeit``, the garbage collector is
off during the timed loop unless ``--gc`` is given (it costs ~8% here: every
Order is a GC-tracked object). Timestamps are a constant: the engine stores them and never reads.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence

from optivex.engine import BUY, SELL, Exchange, Fill, Order, OrderBook

TICK = 100  # 0.01 in units
MID = 1_000_000  # 100.00 in units
THROUGH = 50 * TICK  # marketable orders are priced this far through the mid
OWNERS = ("alice", "bob", "carol", "dave", "erin")
TS = 1_700_000_000_000_000_000

NEW, MARKET, CANCEL, MOVE = 0, 1, 2, 3

Op = tuple[int, int, int, int, int, str]  # kind, pick, side, price offset (units), quantity, owner
Initial = tuple[int, int, int, str]  # side, price, quantity, owner
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


class _Stub(Exchange):
    """The loop's own cost: insert and cancel do nothing and return a fixed resting order."""

    __slots__ = ("_answer",)

    def __init__(self) -> None:
        super().__init__()
        self._answer: tuple[Order, Sequence[Fill]] = (Order.create(1, 1, BUY, MID, 1, "x", TS), ())

    def insert(
        self, book_id: int, side: int, price: int | None, quantity: int, owner: str, timestamp: int
    ) -> tuple[Order, Sequence[Fill]]:
        return self._answer

    def cancel(self, book_id: int, order_id: int, timestamp: int = 0) -> Order:
        return self._answer[0]


def run_exchange(initial: list[Initial], stream: list[Op], keep_gc: bool, stub: bool = False) -> Figures:
    """Time the stream through ``Exchange`` (validation and fills included)."""
    ex = Exchange()
    book_id = ex.create_book(TICK, "BENCH", TS).book_id
    live = [ex.insert(book_id, side, price, qty, owner, TS)[0] for side, price, qty, owner in initial]
    target = len(initial)
    start_levels = _level_count(ex.book(book_id))
    if stub:
        ex = _Stub()
        ex.create_book(TICK, "BENCH", TS)
    insert, cancel = ex.insert, ex.cancel
    traded_ops = 0
    gc.collect()
    if not keep_gc:
        gc.disable()
    t0 = time.perf_counter()
    for kind, pick, side, offset, qty, owner in stream:
        if kind == MOVE:
            i = pick % len(live)
            old = live[i]
            if not old.remaining:
                i, old = _repick(live, i, pick)
            cancel(book_id, old.order_id, TS)
            side = old.side
            price = MID - offset if side == BUY else MID + offset
            order, fills = insert(book_id, side, price, old.remaining, old.owner, TS)
            if fills:
                traded_ops += 1
            live[i] = order  # should it have traded away, a later pick drops it
        elif kind == CANCEL:
            i = pick % len(live)
            old = live[i]
            if not old.remaining:
                i, old = _repick(live, i, pick)
            cancel(book_id, old.order_id, TS)
            last = live.pop()
            if i < len(live):
                live[i] = last
        elif kind == NEW:
            order, fills = insert(
                book_id, side, MID - offset if side == BUY else MID + offset, qty, owner, TS
            )
            if fills:
                traded_ops += 1
            live.append(order)
        else:
            if len(live) > target:
                qty += qty
            price = MID + THROUGH if side == BUY else MID - THROUGH
            order, fills = insert(book_id, side, price, qty, owner, TS)
            if fills:
                traded_ops += 1
            if order.remaining:
                live.append(order)
    elapsed = time.perf_counter() - t0
    gc.enable()
    ex.check_integrity()
    return _figures(len(stream), elapsed, ex.last_trade_id, traded_ops, ex.book(book_id), start_levels)


def run_loop_only(initial: list[Initial], stream: list[Op], keep_gc: bool) -> Figures:
    """Time the loop alone: the Exchange path with the engine replaced by stubs."""
    return run_exchange(initial, stream, keep_gc, stub=True)


def run_book(initial: list[Initial], stream: list[Op], keep_gc: bool) -> Figures:
    """Time the stream on a bare ``OrderBook`` (the loop allocates ids; no validation)."""
    book = OrderBook(1, TICK)
    live = [book.insert(n, s, p, q, o, TS, 1)[0] for n, (s, p, q, o) in enumerate(initial, start=1)]
    oid = len(initial)
    tid = 1
    target = len(initial)
    start_levels = _level_count(book)
    insert, cancel = book.insert, book.cancel
    traded_ops = 0
    gc.collect()
    if not keep_gc:
        gc.disable()
    t0 = time.perf_counter()
    for kind, pick, side, offset, qty, owner in stream:
        if kind == MOVE:
            i = pick % len(live)
            old = live[i]
            if not old.remaining:
                i, old = _repick(live, i, pick)
            cancel(old.order_id)
            side = old.side
            oid += 1
            price = MID - offset if side == BUY else MID + offset
            order, fills = insert(oid, side, price, old.remaining, old.owner, TS, tid)
            if fills:
                tid += len(fills)
                traded_ops += 1
            live[i] = order
        elif kind == CANCEL:
            i = pick % len(live)
            old = live[i]
            if not old.remaining:
                i, old = _repick(live, i, pick)
            cancel(old.order_id)
            last = live.pop()
            if i < len(live):
                live[i] = last
        elif kind == NEW:
            oid += 1
            order, fills = insert(
                oid, side, MID - offset if side == BUY else MID + offset, qty, owner, TS, tid
            )
            if fills:
                tid += len(fills)
                traded_ops += 1
            live.append(order)
        else:
            if len(live) > target:
                qty += qty
            oid += 1
            price = MID + THROUGH if side == BUY else MID - THROUGH
            order, fills = insert(oid, side, price, qty, owner, TS, tid)
            if fills:
                tid += len(fills)
                traded_ops += 1
            if order.remaining:
                live.append(order)
    elapsed = time.perf_counter() - t0
    gc.enable()
    book.check_integrity()
    return _figures(len(stream), elapsed, tid - 1, traded_ops, book, start_levels)


def _level_count(book: OrderBook) -> int:
    return len(book.levels(BUY)) + len(book.levels(SELL))


def _figures(
    ops: int, elapsed: float, trades: int, traded_ops: int, book: OrderBook, start_levels: int
) -> Figures:
    return {
        "ops": ops,
        "seconds": elapsed,
        "ops_per_s": ops / elapsed,
        "trades": trades,
        "traded_share": traded_ops / ops,
        "resting": len(book),
        "bid_levels": len(book.levels(BUY)),
        "ask_levels": len(book.levels(SELL)),
        "start_levels": start_levels,
    }


def _print(name: str, f: Figures) -> None:
    print(
        f"{name:9s} {f['ops']:>10,.0f} ops in {f['seconds']:.3f} s = {f['ops_per_s']:>10,.0f} ops/s | "
        f"{f['trades']:,.0f} trades, {100 * f['traded_share']:.2f}% of ops traded | "
        f"final book: {f['resting']:,.0f} orders, "
        f"{f['bid_levels']:.0f} bid + {f['ask_levels']:.0f} ask levels"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Matching-engine throughput on exchange-core's order mix.")
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations to time (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=1000, help="initial resting orders")
    parser.add_argument("--half-range", type=int, default=800, help="ticks of prices each side of the mid")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; the best is printed")
    parser.add_argument("--only", choices=("exchange", "book", "loop"), default=None)
    parser.add_argument("--gc", action="store_true", help="keep the garbage collector on while timing")
    args = parser.parse_args()
    t0 = time.perf_counter()
    initial, stream = generate(args.ops, args.orders, args.half_range, args.seed)
    print(
        f"generated {len(stream):,} operations in {time.perf_counter() - t0:.1f} s "
        f"(seed {args.seed}; GC {'on' if args.gc else 'off'} while timing)"
    )
    runners: list[tuple[str, str, Callable[[list[Initial], list[Op], bool], Figures]]] = [
        ("exchange", "Exchange", run_exchange),
        ("book", "OrderBook", run_book),
        ("loop", "loop only", run_loop_only),
    ]
    for key, name, run in runners:
        if args.only in (None, key):
            best = max(
                (run(initial, stream, args.gc) for _ in range(args.repeat)), key=lambda f: f["ops_per_s"]
            )
            if key == "exchange":
                print(f"initial book: {len(initial):,} orders on {best['start_levels']:.0f} price levels")
            _print(name, best)


if __name__ == "__main__":
    main()
