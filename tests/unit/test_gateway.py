"""The gateway's protobuf <-> risk-limit conversions, its cancel decision, and the pure parts of its
extensions: execution reports from mirror changes, cancel-on-disconnect bookkeeping, query answers
(no processes)."""

from __future__ import annotations

import math
import struct
from typing import cast

import pytest
from google.protobuf.message import Message

from optivex.feed.mirror import BUY, SELL, BookMirror, Instrument
from optivex.gateway.component import (
    SAME_FIELDS,
    amend_error,
    cancel_error,
    instrument_limits,
    instrument_limits_message,
    open_orders_response,
    positions_response,
    self_trade_prevention_error,
    time_in_force_error,
    too_large,
    user_limits,
    user_limits_message,
)
from optivex.gateway.disconnect import CancelOnDisconnect
from optivex.gateway.reports import ExecutionReports
from optivex.ledger import Ledger
from optivex.net import Connection
from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import risk_limits_pb2 as rl
from optivex.protocols import protocol_for
from optivex.risk.limits import InstrumentLimits, Rolling, UserLimits
from optivex.wire import MAX_FRAME_LENGTH


def test_user_limits_round_trip() -> None:
    unset = rl.UserRiskLimits(max_outstanding_quantity=7)
    assert user_limits(unset) == UserLimits(7, None)
    assert user_limits_message(user_limits(unset)) == unset
    assert not user_limits_message(user_limits(unset)).HasField("message_rate_rolling_limit")
    rate = rl.UserRiskLimits(message_rate_rolling_limit=rl.RollingWindowLimit(limit=5, window_in_seconds=2))
    assert user_limits(rate) == UserLimits(0, Rolling(5, 2.0))
    assert user_limits_message(user_limits(rate)) == rate
    zero = rl.UserRiskLimits(message_rate_rolling_limit=rl.RollingWindowLimit())
    assert user_limits(zero) == UserLimits(0, Rolling(0, 0.0))  # set, though zero: Get shows it
    assert user_limits_message(user_limits(zero)).HasField("message_rate_rolling_limit")


def test_instrument_limits_in_exact_units() -> None:
    message = rl.InstrumentRiskLimits(
        max_outstanding_quantity=3,
        max_outstanding_amount=0.3,
        order_quantity_rolling_limit=rl.RollingWindowLimit(limit=9, window_in_seconds=4),
        order_amount_rolling_limit=rl.RollingWindowLimit(limit=100, window_in_seconds=60),
    )
    limits = instrument_limits(message)
    # 0.3 is 3000 units; a rolling amount limit of 100 (currency) is 1,000,000 units of price x quantity
    assert limits == InstrumentLimits(3, 3000, Rolling(9, 4.0), Rolling(1_000_000, 60.0))
    assert isinstance(limits, InstrumentLimits)
    assert instrument_limits_message(limits) == message
    assert instrument_limits(rl.InstrumentRiskLimits()) == InstrumentLimits()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_outstanding_amount": -0.5}, "max_outstanding_amount"),
        ({"max_outstanding_amount": math.nan}, "max_outstanding_amount"),
        ({"max_outstanding_amount": math.inf}, "max_outstanding_amount"),
        ({"max_outstanding_quantity": -1}, "max_outstanding_quantity"),
        (
            {"order_amount_rolling_limit": rl.RollingWindowLimit(limit=-1, window_in_seconds=1)},
            "order_amount",
        ),
        ({"order_quantity_rolling_limit": rl.RollingWindowLimit(limit=1)}, "order_quantity_rolling_limit"),
    ],
)
def test_invalid_instrument_limits_name_the_field(fields: dict[str, object], field: str) -> None:
    error = instrument_limits(rl.InstrumentRiskLimits(**fields))  # type: ignore[arg-type]
    assert isinstance(error, str) and field in error


def test_cancel_error_from_the_mirror() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 0, Instrument("ABC"))
    other = mirror.apply_book_created(2, 100, 0, Instrument("DEF"))
    mirror.apply_order_inserted(10, 1, BUY, 10_000, 5, "alice", 0)
    abc = mirror.book_by_symbol("ABC")
    def_ = mirror.book(other.book_id)
    assert abc is not None and def_ is not None
    assert cancel_error(mirror, "alice", abc, "ABC", 10) is None
    assert "not an order of yours" in (cancel_error(mirror, "bob", abc, "ABC", 10) or "")
    assert "not an order of 'DEF'" in (cancel_error(mirror, "alice", def_, "DEF", 10) or "")
    assert "not resting" in (cancel_error(mirror, "alice", abc, "ABC", 11) or "")
    mirror.apply_order_cancelled(10, 0)
    assert "not resting" in (cancel_error(mirror, "alice", abc, "ABC", 10) or "")


# -- the extensions of issue 10 -------------------------------------------------------------------


class FakeConnection:
    """What ExecutionReports needs of a connection: send(frame); frames decoded as execution messages."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)

    def messages(self) -> list[Message]:
        out = []
        for frame in self.frames:
            length, msg_type = struct.unpack(">II", frame[:8])
            assert length == len(frame) - 4
            out.append(GATEWAY.classes[msg_type].FromString(frame[8:]))
        self.frames.clear()
        return out


GATEWAY = protocol_for(("execution", "risk_limits"))


def book_mirror() -> BookMirror:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 0, Instrument("ABC"))
    mirror.apply_book_created(2, 100, 0, None)  # a bare book: no symbol, never reported
    return mirror


def subscribed(reports: ExecutionReports, user: str, count: int = 1) -> list[FakeConnection]:
    conns = [FakeConnection() for _ in range(count)]
    for conn in conns:
        assert reports.subscribe(cast(Connection, conn), user)
    return conns


def test_reports_of_fills_go_to_every_subscribed_connection_of_the_owner() -> None:
    mirror = book_mirror()
    reports = ExecutionReports()
    alice1, alice2 = subscribed(reports, "alice", 2)
    assert not reports.subscribe(cast(Connection, alice1), "alice")  # twice
    for change in (
        mirror.apply_order_inserted(10, 1, BUY, 10_000, 5, "alice", 1),
        mirror.apply_order_inserted(11, 1, SELL, 10_000, 3, "bob", 2, (7,)),
        mirror.apply_trade(7, 1, 10, 11, 10_000, 3, SELL, 3),
    ):
        reports.changed(change, mirror)
    expected = [
        ex.OnFill(
            order_id=10,
            trade_id=7,
            instrument_symbol="ABC",
            side=common_pb2.BUY,
            price=1.0,
            quantity=3,
            remaining_quantity=2,
            aggressor=False,
            timestamp=3,
        )
    ]
    assert alice1.messages() == expected and alice2.messages() == expected
    # a self-trade: both sides, buy first; bob (not subscribed) gets nothing anywhere
    bob = FakeConnection()
    for change in (
        mirror.apply_order_inserted(12, 1, SELL, 10_000, 2, "alice", 4, (8,)),
        mirror.apply_trade(8, 1, 10, 12, 10_000, 2, SELL, 5),
    ):
        reports.changed(change, mirror)
    assert [(m.order_id, m.side, m.remaining_quantity, m.aggressor) for m in alice1.messages()] == [  # type: ignore[attr-defined]
        (10, BUY, 0, False),
        (12, SELL, 0, True),
    ]
    assert len(alice2.messages()) == 2
    assert bob.frames == []
    # unsubscribed: nothing more for that connection
    reports.unsubscribe(cast(Connection, alice1), "alice")
    reports.changed(mirror.apply_order_inserted(13, 1, BUY, 9_900, 1, "alice", 6), mirror)
    reports.changed(mirror.apply_order_cancelled(13, 7, 3), mirror)
    assert alice1.frames == []
    (report,) = alice2.messages()
    assert report == ex.OnOrderCancelled(
        order_id=13, instrument_symbol="ABC", cancelled_quantity=1, reason=common_pb2.CANCEL_MASS, timestamp=7
    )
    reports.unsubscribe(cast(Connection, alice2), "alice")
    assert reports.by_user == {}


def test_no_reports_of_a_bare_book() -> None:
    mirror = book_mirror()
    reports = ExecutionReports()
    (alice,) = subscribed(reports, "alice")
    reports.changed(mirror.apply_order_inserted(10, 2, BUY, 10_000, 5, "alice", 1), mirror)
    reports.changed(mirror.apply_order_cancelled(10, 2), mirror)
    assert alice.frames == []


def test_amend_reports() -> None:
    mirror = book_mirror()
    reports = ExecutionReports()
    (alice,) = subscribed(reports, "alice")
    reports.changed(mirror.apply_order_inserted(10, 1, BUY, 10_000, 5, "alice", 1), mirror)
    reports.changed(mirror.apply_order_amended(10, 1, 3, 5, 2), mirror)
    assert alice.messages() == [
        ex.OnOrderAmended(
            order_id=10,
            instrument_symbol="ABC",
            price=1.0,
            quantity=3,
            priority_kept=True,
            previous_order_id=10,
            timestamp=2,
        )
    ]
    # replaced, the new id known from the amend's response: the cancel names it at once
    reports.replaced("alice", 10, 11)
    reports.changed(mirror.apply_order_cancelled(10, 3, common_pb2.CANCEL_REPLACED), mirror)
    assert alice.messages() == [
        ex.OnOrderCancelled(
            order_id=10,
            instrument_symbol="ABC",
            cancelled_quantity=3,
            reason=common_pb2.CANCEL_REPLACED,
            timestamp=3,
            replaced_by_order_id=11,
        )
    ]
    reports.changed(mirror.apply_order_inserted(11, 1, BUY, 10_100, 4, "alice", 3, (), 10), mirror)
    assert alice.messages() == [
        ex.OnOrderAmended(
            order_id=11,
            instrument_symbol="ABC",
            price=1.01,
            quantity=4,
            priority_kept=False,
            previous_order_id=10,
            timestamp=3,
        )
    ]
    # replaced straight on the order book (no response seen): the cancel waits for the new order
    reports.changed(mirror.apply_order_cancelled(11, 4, common_pb2.CANCEL_REPLACED), mirror)
    assert alice.frames == []
    reports.changed(mirror.apply_order_inserted(12, 1, BUY, 10_200, 4, "alice", 4, (), 11), mirror)
    cancelled, amended = alice.messages()
    assert isinstance(cancelled, ex.OnOrderCancelled) and isinstance(amended, ex.OnOrderAmended)
    assert (cancelled.order_id, cancelled.replaced_by_order_id) == (11, 12)
    assert (amended.order_id, amended.previous_order_id) == (12, 11)
    # another user's replace is not remembered (nobody of bob's subscribed)
    reports.replaced("bob", 1, 2)
    assert reports._replaced == {} and reports._held == {}


def test_cancel_on_disconnect_bookkeeping() -> None:
    state = CancelOnDisconnect("alice", 0)
    resting = set(range(0, 1000, 2))
    for order_id in range(1000):
        assert not state.placed(order_id, resting.__contains__)
    # pruned as it grew: what rests and what was added since the last pruning, never more than twice that
    assert resting <= state.ids and len(state.ids) <= 2 * len(resting)
    state.replaced(998, 2000)
    state.replaced(5000, 5001)  # not one of its orders: nothing
    ids = state.closed()
    assert ids == sorted(ids) and 2000 in ids and 998 not in ids and 5001 not in ids
    assert set(ids) >= resting - {998}
    # closed: a later response is to be cancelled at once, and not kept
    assert state.placed(3000, resting.__contains__)
    assert state.ids == set()


def test_extension_field_errors() -> None:
    assert time_in_force_error(common_pb2.FILL_OR_KILL) is None
    assert "invalid time_in_force 3" in (time_in_force_error(3) or "")
    assert self_trade_prevention_error(common_pb2.CANCEL_INCOMING) is None
    assert "invalid self_trade_prevention -1" in (self_trade_prevention_error(-1) or "")
    assert amend_error(None, 1, 100) is None
    assert "invalid quantity 0" in (amend_error(None, 0, 100) or "")
    assert "not a multiple of the tick size" in (amend_error(10_050, 1, 100) or "")
    assert "must be > 0" in (amend_error(-100, 1, 100) or "")


def test_open_orders_and_positions_responses() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 100, 0, Instrument("XYZ"))
    mirror.apply_book_created(2, 100, 0, Instrument("ABC"))
    mirror.apply_book_created(3, 100, 0, None)
    mirror.apply_order_inserted(10, 1, BUY, 10_000, 5, "alice", 1)
    mirror.apply_order_inserted(11, 2, SELL, 20_000, 2, "alice", 2)
    mirror.apply_order_inserted(12, 2, SELL, 20_000, 2, "bob", 3)
    mirror.apply_order_inserted(13, 3, SELL, 20_000, 2, "alice", 4)
    everything = open_orders_response(5, mirror, "alice", None)
    assert [(o.order_id, o.instrument_symbol) for o in everything.orders] == [(11, "ABC"), (10, "XYZ")]
    assert everything.request_id == 5
    one = open_orders_response(6, mirror, "alice", mirror.book_by_symbol("XYZ"))
    assert [o.order_id for o in one.orders] == [10]
    ledger = Ledger()
    ledger.trade_applied("ABC", 1_000, 3, "alice", "bob")
    ledger.trade_applied("ABC", 2_000, 1, "bob", "alice")
    (position,) = positions_response(1, ledger, "alice", None).positions
    assert position == ex.Position(
        instrument_symbol="ABC",
        position=2,
        cash=-0.1,
        bought_quantity=3,
        sold_quantity=1,
        traded_volume=4,
        realised_pnl=0.1,
        last_trade_price=0.2,
    )
    (untraded,) = positions_response(2, ledger, "carol", mirror.book_by_symbol("ABC")).positions
    assert untraded == ex.Position(instrument_symbol="ABC", last_trade_price=0.2)
    assert too_large(everything) is None


@pytest.mark.parametrize(("book_response", "gateway_response"), SAME_FIELDS)
def test_forwarded_responses_have_the_same_fields(
    book_response: type[Message], gateway_response: type[Message]
) -> None:
    """The gateway answers inserts, amends and cancels with the order book's own response: every field
    of either message has the same number, type and cardinality in the other."""

    def fields(cls: type[Message]) -> dict[int, tuple[str, int, bool]]:
        return {f.number: (f.name, f.type, f.is_repeated) for f in cls.DESCRIPTOR.fields}

    assert fields(book_response) == fields(gateway_response)
    values = {"request_id": 1, "order_id": 2, "timestamp": 3, "trade_ids": [4, 5], "traded_quantity": 6}
    names = {f.name for f in book_response.DESCRIPTOR.fields}
    full = book_response(**{name: value for name, value in values.items() if name in names})
    decoded = gateway_response.FromString(full.SerializeToString())
    assert decoded == gateway_response(**{name: getattr(full, name) for name in names})


def test_an_answer_too_large_for_a_frame_is_an_error() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 1, 0, Instrument("A" * 32))
    for order_id in range(1, 40_001):
        mirror.load_order(order_id, 1, BUY, 2**40 + order_id, 2**30, "alice", 2**62)
    response = open_orders_response(1, mirror, "alice", None)
    assert response.ByteSize() > MAX_FRAME_LENGTH
    assert "does not fit in one frame" in (too_large(response) or "")
    small = open_orders_response(1, mirror, "bob", None)
    assert too_large(small) is None
