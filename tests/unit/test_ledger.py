"""The ledger: day figures from fills, FIFO realised PnL, against hand-worked cases and a
deliberately simple model that recomputes every figure from the whole fill history."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optivex.ledger import BUY, SELL, Ledger, PositionFigures

ONE = 10_000  # 1.0 in units


def test_nothing_before_a_fill() -> None:
    ledger = Ledger()
    assert ledger.position("alice", "ABC") is None
    assert ledger.positions("alice") == {}
    assert ledger.last_price("ABC") == 0


def test_a_buy_opens_a_long() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", BUY, 10 * ONE, 3)
    assert ledger.position("alice", "ABC") == PositionFigures(3, -30 * ONE, 3, 0, 3, 0, 0)
    assert ledger.open_lots("alice", "ABC") == [(10 * ONE, 3)]


def test_fifo_closes_the_oldest_lot_first() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", BUY, 10 * ONE, 2)
    ledger.fill("alice", "ABC", BUY, 12 * ONE, 2)
    ledger.fill("alice", "ABC", SELL, 13 * ONE, 3)
    # 2 x (13 - 10) + 1 x (13 - 12) = 7
    figures = ledger.position("alice", "ABC")
    assert figures == PositionFigures(1, -44 * ONE + 39 * ONE, 4, 3, 7, 7 * ONE, 0)
    assert ledger.open_lots("alice", "ABC") == [(12 * ONE, 1)]


def test_a_short_realises_entry_minus_exit() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", SELL, 10 * ONE, 5)
    ledger.fill("alice", "ABC", BUY, 8 * ONE, 2)
    figures = ledger.position("alice", "ABC")
    assert figures is not None
    assert (figures.position, figures.realised_pnl, figures.cash) == (-3, 4 * ONE, 34 * ONE)
    assert ledger.open_lots("alice", "ABC") == [(10 * ONE, 3)]


def test_a_flip_closes_everything_then_opens_the_rest_on_the_other_side() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", BUY, 10 * ONE, 2)
    ledger.fill("alice", "ABC", SELL, 9 * ONE, 5)
    figures = ledger.position("alice", "ABC")
    assert figures is not None
    assert (figures.position, figures.realised_pnl) == (-3, -2 * ONE)
    assert ledger.open_lots("alice", "ABC") == [(9 * ONE, 3)]
    ledger.fill("alice", "ABC", BUY, 11 * ONE, 4)
    figures = ledger.position("alice", "ABC")
    assert figures is not None
    assert (figures.position, figures.realised_pnl) == (1, -2 * ONE - 6 * ONE)
    assert ledger.open_lots("alice", "ABC") == [(11 * ONE, 1)]


def test_back_to_flat_keeps_the_day_figures() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", BUY, 10 * ONE, 4)
    ledger.fill("alice", "ABC", SELL, 10 * ONE + 1, 4)
    assert ledger.position("alice", "ABC") == PositionFigures(0, 4, 4, 4, 8, 4, 0)
    assert ledger.open_lots("alice", "ABC") == []


def test_fills_at_one_price_share_a_lot() -> None:
    ledger = Ledger()
    for _ in range(1000):
        ledger.fill("alice", "ABC", BUY, ONE, 1)
    assert ledger.open_lots("alice", "ABC") == [(ONE, 1000)]


def test_trade_applied_fills_both_sides_and_sets_the_last_price() -> None:
    ledger = Ledger()
    ledger.trade_applied("ABC", 7 * ONE, 5, "alice", "bob")
    assert ledger.position("alice", "ABC") == PositionFigures(5, -35 * ONE, 5, 0, 5, 0, 7 * ONE)
    assert ledger.position("bob", "ABC") == PositionFigures(-5, 35 * ONE, 0, 5, 5, 0, 7 * ONE)
    assert ledger.last_price("ABC") == 7 * ONE
    ledger.trade("ABC", 8 * ONE)
    # Anyone's trade moves the last price of every holder's figures.
    figures = ledger.position("alice", "ABC")
    assert figures is not None and figures.last_price == 8 * ONE


def test_a_self_trade_is_a_buy_and_a_sell() -> None:
    ledger = Ledger()
    ledger.fill("alice", "ABC", SELL, 10 * ONE, 1)
    ledger.trade_applied("ABC", 9 * ONE, 2, "alice", "alice")
    # The buy closes the short (+1) and opens a long of 1 at 9; the sell closes it at 9 (0).
    assert ledger.position("alice", "ABC") == PositionFigures(-1, 10 * ONE, 2, 3, 5, ONE, 9 * ONE)
    assert ledger.open_lots("alice", "ABC") == [(9 * ONE, 1)]


def test_positions_lists_only_the_users_symbols_sorted() -> None:
    ledger = Ledger()
    ledger.fill("alice", "XYZ", BUY, ONE, 1)
    ledger.fill("alice", "ABC", SELL, ONE, 1)
    ledger.fill("bob", "DEF", SELL, ONE, 1)
    assert list(ledger.positions("alice")) == ["ABC", "XYZ"]
    assert list(ledger.positions("bob")) == ["DEF"]


def test_huge_figures_stay_exact() -> None:
    ledger = Ledger()
    price, quantity = 2**53 - 1, 2**31 - 1
    for _ in range(3):
        ledger.fill("alice", "ABC", BUY, price, quantity)
    ledger.fill("alice", "ABC", SELL, 1, quantity)
    figures = ledger.position("alice", "ABC")
    assert figures is not None
    assert figures.cash == -3 * price * quantity + quantity
    assert figures.realised_pnl == (1 - price) * quantity


def test_clear_forgets_the_day() -> None:
    ledger = Ledger()
    ledger.trade_applied("ABC", ONE, 1, "alice", "bob")
    ledger.clear()
    assert ledger.position("alice", "ABC") is None
    assert ledger.last_price("ABC") == 0


# -- against the full-history model ----------------------------------------------------


def model_figures(history: list[tuple[int, int, int]]) -> tuple[PositionFigures, list[tuple[int, int]]]:
    """Every figure from one (user, symbol)'s fills (side, price, quantity), one lot per unit."""
    bought = sum(q for side, _, q in history if side == BUY)
    sold = sum(q for side, _, q in history if side == SELL)
    cash = sum(p * q if side == SELL else -p * q for side, p, q in history)
    units: list[tuple[int, int]] = []  # (+1 long / -1 short, entry price), oldest first
    realised = 0
    for side, price, quantity in history:
        sign = 1 if side == BUY else -1
        for _ in range(quantity):
            if units and units[0][0] == -sign:
                direction, entry = units.pop(0)
                realised += (price - entry) * direction
            else:
                units.append((sign, price))
    lots: list[tuple[int, int]] = []
    for _, entry in units:
        if lots and lots[-1][0] == entry:
            lots[-1] = (entry, lots[-1][1] + 1)
        else:
            lots.append((entry, 1))
    figures = PositionFigures(bought - sold, cash, bought, sold, bought + sold, realised, 0)
    return figures, lots


USERS = ("alice", "bob", "carol")
SYMBOLS = ("ABC", "XYZ")
fills = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(USERS),
        st.sampled_from(SYMBOLS),
        st.sampled_from((1, 9_999, 10_000, 10_001, 12_345, 2**53 - 1)),
        st.integers(1, 12),
        st.booleans(),
    ),
    max_size=80,
)


@settings(max_examples=500, deadline=None)
@given(fills)
def test_ledger_agrees_with_the_full_history_model(
    ops: list[tuple[str, str, str, int, int, bool]],
) -> None:
    ledger = Ledger()
    histories: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    last: dict[str, int] = {}
    for buyer, seller, symbol, price, quantity, as_trade in ops:
        if as_trade:
            ledger.trade_applied(symbol, price, quantity, buyer, seller)
            histories.setdefault((buyer, symbol), []).append((BUY, price, quantity))
            histories.setdefault((seller, symbol), []).append((SELL, price, quantity))
            last[symbol] = price
        else:
            # A lone fill of the buyer's, on the side the quantity's parity picks; no last price.
            side = BUY if quantity % 2 else SELL
            ledger.fill(buyer, symbol, side, price, quantity)
            histories.setdefault((buyer, symbol), []).append((side, price, quantity))
        for user in USERS:
            expected = {}
            for sym in SYMBOLS:
                history = histories.get((user, sym))
                if history is None:
                    assert ledger.position(user, sym) is None
                    continue
                figures, lots = model_figures(history)
                figures = figures._replace(last_price=last.get(sym, 0))
                assert ledger.position(user, sym) == figures
                assert ledger.open_lots(user, sym) == lots
                expected[sym] = figures
            assert ledger.positions(user) == expected
