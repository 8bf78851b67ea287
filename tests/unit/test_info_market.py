"""info.market: what info publishes, from the mirror's changes; against the real engine (hypothesis) and
case by case (sweeps, clamping, resets)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optivex.engine import BUY, SELL, Exchange
from optivex.feed.events import apply_event, load_event
from optivex.feed.mirror import BookMirror, Instrument
from optivex.info.market import (
    EMPTY_DEPTH,
    EMPTY_TOP,
    MAX_SHOWN_QUANTITY,
    Delisted,
    Depth,
    DepthUpdate,
    Listed,
    Market,
    Publication,
    Top,
    TopUpdate,
    Trade,
)
from tests.unit.test_mirror_properties import Create, EngineDay, Insert, Op, create_op, operations, replay


def engine_top(exchange: Exchange, book_id: int) -> Top:
    book = exchange.book(book_id)
    return Top(book.best(BUY), book.best(SELL))


def engine_depth(exchange: Exchange, book_id: int) -> Depth:
    book = exchange.book(book_id)
    return Depth(tuple(book.levels(BUY)), tuple(book.levels(SELL)))


def not_crossed(top: Top) -> bool:
    return top.bid is None or top.ask is None or top.bid[0] < top.ask[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(create_op, min_size=2, max_size=2), operations)
def test_published_states_follow_the_engine(first: list[Create], ops: list[Op]) -> None:
    """Settled after every event: every published book state is the engine's book at that point, never
    crossed (a settle half-way through a sweep publishes nothing), sent only when it changed; trades come
    in matching order, before the book update they caused; the last published state (what a snapshot
    shows) is always the engine's book."""
    day = EngineDay()
    exchange = day.exchange
    mirror = BookMirror()
    market = Market()
    assert market.reset(mirror) == []
    symbols: dict[int, str] = {}
    shown_top: dict[str, Top] = {}
    shown_depth: dict[str, Depth] = {}
    for op in [*first, *ops]:
        step = day.run(op)
        if step is None:
            continue
        book_id, clock, events, fills = step.book_id, step.clock, step.events, step.fills
        if isinstance(op, Create):
            symbol = step.symbol
            change = apply_event(mirror, events[0])
            assert change is not None
            announced = market.apply(change)
            if symbol is None:
                assert announced == []
            else:
                symbols[book_id] = symbol
                listed = Listed(symbol, book_id, clock, op.tick, Instrument(symbol, "", "EUR"))
                assert announced == [listed]
                shown_top[symbol], shown_depth[symbol] = EMPTY_TOP, EMPTY_DEPTH
            continue
        side = op.side if isinstance(op, Insert) else 0
        published: list[Publication] = []
        for i, event in enumerate(events):
            change = apply_event(mirror, event)
            assert change is not None
            out = market.apply(change)
            assert all(type(p) is Trade for p in out)
            published.extend(out)
            if i < len(events) - 1:  # half a sweep: never a book state
                assert market.settle() == []
        published.extend(market.settle())
        assert not market.unsettled
        symbol = symbols.get(book_id)
        if symbol is None:
            assert published == []
            continue
        trades = [p for p in published if type(p) is Trade]
        assert [(t.trade_id, t.price, t.quantity, t.aggressor_side) for t in trades] == [
            (f[0], f[3], f[4], side) for f in fills
        ]
        assert all(t.symbol == symbol and t.timestamp == clock for t in trades)
        kinds = [type(p) for p in published]
        assert kinds == sorted(kinds, key=lambda k: k is not Trade)  # trades before the book update
        top, depth = engine_top(exchange, book_id), engine_depth(exchange, book_id)
        for p in published:
            if isinstance(p, TopUpdate):
                assert p.top == top and p.top != shown_top[symbol] and not_crossed(p.top)
                assert p.timestamp == clock
                shown_top[symbol] = p.top
            elif isinstance(p, DepthUpdate):
                assert p.depth == depth and p.depth != shown_depth[symbol]
                assert p.timestamp == clock
                shown_depth[symbol] = p.depth
        assert kinds.count(TopUpdate) <= 1 and kinds.count(DepthUpdate) <= 1
        assert shown_top[symbol] == top and shown_depth[symbol] == depth
        view = market.view(symbol)
        assert view is not None and view.top == top and view.depth == depth
    # A feed that reconnects to the same day: nothing new to announce, nothing changed.
    fresh = BookMirror()
    for event in replay(exchange, day.instruments):
        load_event(fresh, event)
    assert market.reset(fresh) == []
    for book_id, symbol in symbols.items():
        view = market.view(symbol)
        assert view is not None
        assert view.top == engine_top(exchange, book_id) and view.depth == engine_depth(exchange, book_id)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(create_op, min_size=2, max_size=2), operations, st.data())
def test_coalesced_settles_publish_the_engine_book_as_it_is(
    first: list[Create], ops: list[Op], data: st.DataObject
) -> None:
    """Settled after random runs of operations (info settles once per loop turn): each settle publishes
    at most one top and one depth per book, each the engine's book at that point; trades still come at
    once, every one, in matching order."""
    day = EngineDay()
    exchange = day.exchange
    mirror = BookMirror()
    market = Market()
    market.reset(mirror)
    symbols: dict[int, str] = {}
    trades: list[int] = []
    fills: list[int] = []
    for op in [*first, *ops]:
        step = day.run(op)
        if step is None:
            continue
        if isinstance(op, Create) and step.symbol is not None:
            symbols[step.book_id] = step.symbol
        if step.book_id in symbols:
            fills.extend(f[0] for f in step.fills)
        for event in step.events:
            change = apply_event(mirror, event)
            assert change is not None
            trades.extend(p.trade_id for p in market.apply(change) if type(p) is Trade)
        if data.draw(st.booleans()):
            continue  # no settle yet: the next ones coalesce
        published = market.settle()
        for book_id, symbol in symbols.items():
            mine = [p for p in published if getattr(p, "symbol", None) == symbol]
            kinds = [type(p).__name__ for p in mine]
            assert kinds in ([], ["TopUpdate"], ["DepthUpdate"], ["TopUpdate", "DepthUpdate"])
            for p in mine:
                if isinstance(p, TopUpdate):
                    assert p.top == engine_top(exchange, book_id)
                elif isinstance(p, DepthUpdate):
                    assert p.depth == engine_depth(exchange, book_id)
            view = market.view(symbol)
            assert view is not None
            assert view.top == engine_top(exchange, book_id)
            assert view.depth == engine_depth(exchange, book_id)
    assert trades == fills


def _mirror_with(symbol: str, book_id: int = 1, timestamp: int = 10) -> BookMirror:
    mirror = BookMirror()
    mirror.apply_book_created(book_id, 1, timestamp, Instrument(symbol))
    return mirror


def test_a_sweep_publishes_its_trades_then_one_consistent_state() -> None:
    mirror = _mirror_with("A")
    market = Market()
    assert market.reset(mirror) == [Listed("A", 1, 10, 1, Instrument("A"))]
    market.apply(mirror.apply_order_inserted(1, 1, SELL, 100, 2, "s", 11))
    market.apply(mirror.apply_order_inserted(2, 1, SELL, 101, 2, "s", 12))
    # A buy of 5 at 101 takes both asks and rests 1: crossed in the mirror until its last trade.
    before = market.settle()
    assert before[-1] == DepthUpdate("A", 12, Depth((), ((100, 2), (101, 2))))  # two inserts, one update
    out = market.apply(mirror.apply_order_inserted(3, 1, BUY, 101, 5, "b", 13, (1, 2)))
    assert out == [] and market.settle() == []
    out = market.apply(mirror.apply_trade(1, 1, 3, 1, 100, 2, BUY, 13))
    assert out == [Trade("A", 1, 13, 100, 2, BUY)]
    assert market.settle() == [] and market.unsettled  # still half a sweep: it waits
    out = market.apply(mirror.apply_trade(2, 1, 3, 2, 101, 2, BUY, 13))
    assert out == [Trade("A", 2, 13, 101, 2, BUY)]
    assert market.settle() == [
        TopUpdate("A", 13, Top((101, 1), None)),
        DepthUpdate("A", 13, Depth(((101, 1),), ())),
    ]


def test_an_unchanged_top_publishes_nothing_and_depth_only_when_levels_changed() -> None:
    mirror = _mirror_with("A")
    market = Market()
    market.reset(mirror)
    assert market.apply(mirror.apply_order_inserted(1, 1, BUY, 100, 1, "x", 11)) == []
    assert [type(p).__name__ for p in market.settle()] == ["TopUpdate", "DepthUpdate"]
    # A worse bid: the depth changes, the top does not.
    market.apply(mirror.apply_order_inserted(2, 1, BUY, 99, 1, "x", 12))
    assert market.settle() == [DepthUpdate("A", 12, Depth(((100, 1), (99, 1)), ()))]
    # An order in and out again before the settle: nothing shown changed, nothing published.
    market.apply(mirror.apply_order_inserted(3, 1, BUY, 101, 1, "x", 13))
    market.apply(mirror.apply_order_cancelled(3, 14))
    assert market.settle() == []
    view = market.view("A")
    assert view is not None and view.top_timestamp == 11 and view.depth_timestamp == 12


def test_totals_above_int32_are_shown_clamped() -> None:
    mirror = _mirror_with("A")
    market = Market()
    market.reset(mirror)
    big = MAX_SHOWN_QUANTITY
    market.apply(mirror.apply_order_inserted(1, 1, BUY, 100, big, "x", 11))
    market.settle()
    # The second order takes the level's total past int32: shown as 2**31-1, so nothing changed.
    market.apply(mirror.apply_order_inserted(2, 1, BUY, 100, big, "x", 12))
    assert market.settle() == []
    view = market.view("A")
    assert view is not None and view.top == Top((100, big), None) and view.depth.bids == ((100, big),)


def test_books_without_an_instrument_are_not_published() -> None:
    mirror = BookMirror()
    market = Market()
    market.reset(mirror)
    assert market.apply(mirror.apply_book_created(1, 1, 5)) == []
    assert market.apply(mirror.apply_order_inserted(1, 1, BUY, 100, 1, "x", 6)) == []
    assert not market.unsettled and market.settle() == []
    assert market.views() == []


def test_a_new_day_announces_its_books_updates_kept_symbols_and_delists_the_rest() -> None:
    day1 = _mirror_with("A")
    day1.apply_book_created(2, 1, 11, Instrument("B"))
    market = Market()
    market.reset(day1)
    market.apply(day1.apply_order_inserted(1, 1, BUY, 100, 1, "x", 12))
    market.settle()
    # The order book restarted: a new day with only A (a new book, created later), one ask resting.
    day2 = _mirror_with("A", book_id=1, timestamp=50)
    day2.load_order(1, 1, SELL, 105, 3, "y", 51)
    assert market.reset(day2) == [
        Listed("A", 1, 50, 1, Instrument("A")),
        Delisted("B"),
        TopUpdate("A", 51, Top(None, (105, 3))),
        DepthUpdate("A", 51, Depth((), ((105, 3),))),
    ]
    assert market.view("B") is None


def test_an_amend_lowers_the_level_and_an_ioc_rest_is_never_published() -> None:
    mirror = _mirror_with("A")
    market = Market()
    market.reset(mirror)
    market.apply(mirror.apply_order_inserted(1, 1, BUY, 100, 5, "x", 11))
    market.apply(mirror.apply_order_inserted(2, 1, SELL, 102, 2, "y", 12))
    market.settle()
    assert market.apply(mirror.apply_order_amended(1, 1, 3, 5, 13)) == []
    assert market.settle() == [
        TopUpdate("A", 13, Top((100, 3), (102, 2))),
        DepthUpdate("A", 13, Depth(((100, 3),), ((102, 2),))),
    ]
    # An IOC buy of 4 at 103 takes the ask; its rest of 2 crosses nothing, but rests only until its
    # cancel: the book waits for it, then shows what it was before plus nothing.
    market.apply(mirror.apply_order_inserted(3, 1, BUY, 103, 4, "z", 14, (1,), 0, True, 1))
    assert market.apply(mirror.apply_trade(1, 1, 3, 2, 102, 2, BUY, 14)) == [Trade("A", 1, 14, 102, 2, BUY)]
    assert market.settle() == [] and market.unsettled  # the IOC's rest of 2 at 103 is not shown
    market.apply(mirror.apply_order_cancelled(3, 14, 1))
    assert market.settle() == [
        TopUpdate("A", 14, Top((100, 3), None)),
        DepthUpdate("A", 14, Depth(((100, 3),), ())),
    ]
