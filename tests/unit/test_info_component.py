"""info.component's encoders (the contract's messages from the market's plain data) and its publication
interval."""

from __future__ import annotations

import pytest

from optivex.engine import BUY, SELL
from optivex.feed.mirror import BookMirror, Instrument
from optivex.info.component import (
    MAX_PUBLISH_INTERVAL,
    PUBLISH_INTERVAL,
    PUBLISH_INTERVAL_PER_SUBSCRIBER,
    encode_depth,
    encode_instrument,
    encode_top,
    encode_trade,
    publish_interval,
)
from optivex.info.market import MAX_DEPTH_LEVELS, MAX_SHOWN_QUANTITY, Depth, Listed, Market, Top, Trade
from optivex.proto import info_pb2 as pb
from optivex.units import MAX_UNITS
from optivex.wire import MAX_FRAME_LENGTH, FrameDecoder


def decode(frame: bytes) -> tuple[int, bytes]:
    frames = FrameDecoder().feed(frame)
    assert len(frames) == 1
    return frames[0]


def test_top_of_book_leaves_an_empty_side_unset() -> None:
    msg_type, payload = decode(encode_top("A", 7, Top((12345, 3), None)))
    assert msg_type == pb.ON_TOP_OF_BOOK
    top = pb.OnTopOfBook.FromString(payload)
    assert top.instrument_symbol == "A" and top.timestamp == 7
    assert top.HasField("best_bid") and not top.HasField("best_ask")
    assert top.best_bid.price == 1.2345 and top.best_bid.quantity == 3
    empty = pb.OnTopOfBook.FromString(decode(encode_top("A", 7, Top(None, None)))[1])
    assert not empty.HasField("best_bid") and not empty.HasField("best_ask")


def test_depth_trade_and_instrument() -> None:
    depth = pb.OnPriceDepthBook.FromString(
        decode(encode_depth("A", 9, Depth(((100, 1), (99, 2)), ((101, 5),))))[1]
    )
    assert [(lv.price, lv.quantity) for lv in depth.bids] == [(0.01, 1), (0.0099, 2)]
    assert [(lv.price, lv.quantity) for lv in depth.asks] == [(0.0101, 5)]
    msg_type, payload = decode(encode_trade(Trade("A", 4, 9, 100, 2, SELL)))
    trade = pb.OnTrade.FromString(payload)
    assert msg_type == pb.ON_TRADE
    assert (trade.trade_id, trade.instrument_symbol, trade.timestamp, trade.price, trade.quantity) == (
        4,
        "A",
        9,
        0.01,
        2,
    )
    assert trade.aggressor_side == SELL
    listed = Listed("A", 3, 8, 50, Instrument("A", "desc", "EUR", 10.0))
    msg_type, payload = decode(encode_instrument(listed))
    announced = pb.OnInstrument.FromString(payload)
    assert msg_type == pb.ON_INSTRUMENT
    assert (announced.order_book_id, announced.created_timestamp, announced.tick_size) == (3, 8, 0.005)
    assert announced.instrument.symbol == "A" and announced.instrument.currency == "EUR"
    assert announced.instrument.multiplier == 10.0


def test_the_deepest_book_shown_fits_in_a_frame() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 1, 1, Instrument("S" * 32))
    market = Market()
    market.reset(mirror)
    order_id = 0
    for side, base in ((BUY, MAX_UNITS - 4 * MAX_DEPTH_LEVELS), (SELL, MAX_UNITS - 2 * MAX_DEPTH_LEVELS)):
        for i in range(MAX_DEPTH_LEVELS + 5):
            order_id += 1
            mirror.load_order(order_id, 1, side, base + i, MAX_SHOWN_QUANTITY, "x", 2)
    fresh = Market()
    fresh.reset(mirror)
    view = fresh.view("S" * 32)
    assert view is not None
    assert len(view.depth.bids) == len(view.depth.asks) == MAX_DEPTH_LEVELS
    assert view.depth.bids[0][0] == MAX_UNITS - 4 * MAX_DEPTH_LEVELS + MAX_DEPTH_LEVELS + 4  # the best
    frame = encode_depth(view.symbol, 2**62, view.depth)
    assert len(frame) - 4 <= MAX_FRAME_LENGTH


def test_the_publication_interval_grows_with_subscribers_within_its_bounds() -> None:
    assert publish_interval(0) == PUBLISH_INTERVAL
    assert publish_interval(20) == PUBLISH_INTERVAL  # 20 x 40 us is below the floor
    assert publish_interval(100) == pytest.approx(100 * PUBLISH_INTERVAL_PER_SUBSCRIBER)
    assert publish_interval(1_000_000) == MAX_PUBLISH_INTERVAL
    intervals = [publish_interval(n) for n in range(0, 3000, 7)]
    assert intervals == sorted(intervals)
