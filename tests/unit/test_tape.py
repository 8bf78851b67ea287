"""The day's trades per book (orderbook/tape.py): storage bound, paging, truncation, frame size."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optivex.orderbook.tape import (
    MAX_TRADES_PER_RESPONSE,
    TRADES_KEPT_PER_BOOK,
    Page,
    Tape,
    TapeTrade,
    page_error,
)
from optivex.proto import common_pb2, info_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH, encode_frame

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def trade(trade_id: int) -> TapeTrade:
    return (trade_id, 1000 + trade_id, 2 * trade_id, 2 * trade_id + 1, 10_000 + trade_id, trade_id % 7 + 1, 0)


def ids(page: Page) -> list[int]:
    return [t[0] for t in page.trades]


def test_an_empty_tape_answers_nothing_and_no_more() -> None:
    assert Tape().page() == Page([], False, False)
    assert Tape().page(before_trade_id=5, max_trades=3) == Page([], False, False)


def test_the_latest_trades_oldest_first_with_every_field_kept() -> None:
    tape = Tape()
    tape.record([trade(1), trade(2)])
    tape.record([trade(5)])
    assert tape.page() == Page([trade(1), trade(2), trade(5)], False, False)
    assert tape.page(max_trades=2) == Page([trade(2), trade(5)], True, False)


def test_paging_backwards_with_before_trade_id() -> None:
    tape = Tape()
    tape.record([trade(i) for i in range(1, 11)])
    first = tape.page(max_trades=4)
    assert (ids(first), first.more) == ([7, 8, 9, 10], True)
    second = tape.page(before_trade_id=first.trades[0][0], max_trades=4)
    assert (ids(second), second.more) == ([3, 4, 5, 6], True)
    last = tape.page(before_trade_id=second.trades[0][0], max_trades=4)
    assert (ids(last), last.more, last.truncated) == ([1, 2], False, False)
    assert tape.page(before_trade_id=1) == Page([], False, False)


def test_before_trade_id_between_or_above_ids() -> None:
    tape = Tape()
    tape.record([trade(i) for i in (3, 6, 9)])
    assert ids(tape.page(before_trade_id=7)) == [3, 6]
    assert ids(tape.page(before_trade_id=6)) == [3]
    assert ids(tape.page(before_trade_id=100)) == [3, 6, 9]


def test_max_trades_zero_or_above_the_cap_is_the_cap() -> None:
    tape = Tape()
    tape.record([trade(i) for i in range(1, MAX_TRADES_PER_RESPONSE + 6)])
    for max_trades in (0, MAX_TRADES_PER_RESPONSE + 1, INT32_MAX):
        page = tape.page(max_trades=max_trades)
        assert len(page.trades) == MAX_TRADES_PER_RESPONSE
        assert page.trades[0][0] == 6 and page.trades[-1][0] == MAX_TRADES_PER_RESPONSE + 5
        assert page.more
    assert len(tape.page(max_trades=MAX_TRADES_PER_RESPONSE - 1).trades) == MAX_TRADES_PER_RESPONSE - 1


def test_the_tape_keeps_the_most_recent_trades_and_says_older_ones_were_dropped() -> None:
    tape = Tape(kept=5)
    tape.record([trade(i) for i in range(1, 5)])
    assert not tape.dropped
    tape.record([trade(i) for i in range(5, 9)])
    assert tape.dropped
    assert ids(tape.page()) == [4, 5, 6, 7, 8]
    assert tape.page().truncated and not tape.page().more
    assert tape.page(max_trades=2) == Page([trade(7), trade(8)], True, False)
    # Below the kept ones: nothing kept, yet the day had trades there.
    assert tape.page(before_trade_id=4) == Page([], False, True)
    assert tape.page(before_trade_id=2) == Page([], False, True)
    # Below the day's first trade there never was one.
    assert tape.page(before_trade_id=1) == Page([], False, False)


def test_the_default_bound_is_the_documented_one() -> None:
    tape = Tape()
    assert tape.trades.maxlen == TRADES_KEPT_PER_BOOK == 100_000
    tape.record([trade(i) for i in range(1, TRADES_KEPT_PER_BOOK + 2)])
    assert len(tape.trades) == TRADES_KEPT_PER_BOOK
    assert tape.trades[0][0] == 2 and tape.dropped


def test_page_errors() -> None:
    assert page_error(0, 0) == ""
    assert page_error(INT64_MAX, INT32_MAX) == ""
    assert "before_trade_id" in page_error(-1, 0)
    assert "max_trades" in page_error(0, -1)


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(1, 3), max_size=40),
    batch=st.integers(1, 4),
    kept=st.integers(1, 30),
    before=st.integers(0, 130),
    max_trades=st.integers(0, 12),
)
def test_a_page_is_the_model_answer(
    gaps: list[int], batch: int, kept: int, before: int, max_trades: int
) -> None:
    """Against a model: every trade recorded (in batches), the last `kept` of them kept."""
    all_ids: list[int] = []
    next_id = 0
    for gap in gaps:
        next_id += gap
        all_ids.append(next_id)
    tape = Tape(kept=kept)
    for start in range(0, len(all_ids), batch):
        tape.record([trade(i) for i in all_ids[start : start + batch]])
    kept_ids = all_ids[-kept:] if all_ids else []
    below = [i for i in kept_ids if before == 0 or i < before]
    limit = max_trades or MAX_TRADES_PER_RESPONSE
    expected = below[-limit:]
    page = tape.page(before, max_trades)
    assert page.trades == [trade(i) for i in expected]
    assert page.more == (len(below) > len(expected))
    dropped_below = [i for i in all_ids[: len(all_ids) - len(kept_ids)] if before == 0 or i < before]
    assert page.truncated == (not page.more and bool(dropped_below))


def test_a_full_response_with_every_field_at_its_largest_fits_a_frame() -> None:
    """MAX_TRADES_PER_RESPONSE trades, each field at its largest, on both protocols: under 1 MiB."""
    big = ob.TradesResponse(request_id=INT64_MAX, more=True, truncated=True, error_message="")
    for _ in range(MAX_TRADES_PER_RESPONSE):
        big.trades.add(
            trade_id=INT64_MAX,
            order_book_id=INT64_MAX,
            timestamp=INT64_MAX,
            buy_order_id=INT64_MAX,
            sell_order_id=INT64_MAX,
            price=92233720368547.7,
            quantity=INT32_MAX,
            aggressor_side=common_pb2.SELL,
        )
    order_book_frame = encode_frame(ob.TRADES_RESPONSE, big.SerializeToString())
    answer = info_pb2.TradesResponse(request_id=INT64_MAX, more=True, truncated=True)
    for _ in range(MAX_TRADES_PER_RESPONSE):
        answer.trades.add(
            trade_id=INT64_MAX,
            instrument_symbol="S" * 32,
            timestamp=INT64_MAX,
            price=92233720368547.7,
            quantity=INT32_MAX,
            aggressor_side=common_pb2.SELL,
        )
    info_frame = encode_frame(info_pb2.TRADES_RESPONSE, answer.SerializeToString())
    assert len(order_book_frame) < 0.8 * MAX_FRAME_LENGTH, len(order_book_frame)
    assert len(info_frame) < 0.8 * MAX_FRAME_LENGTH, len(info_frame)
