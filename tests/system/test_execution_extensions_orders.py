"""The gateway's order extensions (execution.proto): time in force, self-trade prevention, amend, mass
cancel, cancel-on-disconnect, with their bad inputs, seen by the trader, its reports and everyone else.

Which rule each test covers:

- IMMEDIATE_OR_CANCEL: what does not trade is cancelled (response, reports, the book's events), never
  rests: `test_immediate_or_cancel`;
- FILL_OR_KILL: all at once or an error that changes nothing (a quantity no book can fill, more than
  the book holds at that price), an invalid time in force: `test_fill_or_kill`;
- self-trade prevention per order and per user (the order's own wins; off by default: the contract's
  self-trade), CANCEL_RESTING and CANCEL_INCOMING: `test_self_trade_prevention_on_inserts`;
- amend: down keeps id and priority (contract form to an order-book client: cancel + insert of the same
  id), up or a new price loses priority under a new id and may trade at once; reports:
  `test_amend_keeps_or_loses_priority`;
- amend's bad inputs (another user's order, another instrument, not resting, unknown symbol, invalid
  quantity or price, an amend that changes nothing) change nothing; risk limits apply to the amended
  order: `test_amend_errors_change_nothing`, `test_amend_is_risk_checked`;
- mass cancel: one instrument or all, how many and which, others' orders untouched, an unknown symbol
  an error: `test_cancel_all_orders`;
- cancel-on-disconnect: orders placed or amended by that connection (inserts in flight when it closed
  included) cancelled when it closes, seen by an order-book client as ordinary cancels; another
  connection's orders stay; enabling twice an error: `test_cancel_on_disconnect`,
  `test_cancel_on_disconnect_of_inserts_in_flight`, `test_cancel_on_disconnect_after_many_orders`;
- inserts decided after the feed's barrier (a symbol just created) keep their time in force and the
  user's self-trade prevention: `test_extensions_on_an_instrument_just_created`;
- a new day (the order book restarted) forgets positions and the ids cancel-on-disconnect collected
  (today's order with yesterday's id stays): `test_a_new_day_forgets_positions_and_cancel_on_disconnect_ids`;
- amends sent straight to the order book are reported too (the replaced order's new id named):
  `test_amends_straight_on_the_order_book_are_reported`;
- amends and mass cancels count for the message rate, queries and settings do not:
  `test_extensions_and_the_message_rate`.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf.message import Message

from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.proto import risk_limits_pb2 as rl

from .helpers import BUY, SELL, Exchange, SyncClient, insert
from .test_execution import events, watcher, withdraw
from .test_execution_extensions import (
    cancelled,
    fill,
    ok,
    open_orders,
    positions,
    report_barrier,
    set_stp,
    shown,
    subscribe_reports,
)
from .test_risk_limits import set_instrument, set_user

IOC = common_pb2.IMMEDIATE_OR_CANCEL
FOK = common_pb2.FILL_OR_KILL
RESTING = common_pb2.CANCEL_RESTING
INCOMING = common_pb2.CANCEL_INCOMING
IN_FLIGHT = 50
"""Inserts a cancel-on-disconnect connection pipelines right before it closes: fewer than a connection's
MAX_IN_FLIGHT (64) and FRAMES_PER_TURN (256), so the gateway handles them all in the turn of their one
read, before it reads the close. Whether their responses come before or after it notices the close is
up to timing (the in-flight path, each cancelled as its response comes, or the disconnect's one
CancelOrdersRequest; both seen in runs): either way every one of them must end cancelled."""
MANY_ORDERS = 300
"""Orders of the cancel-on-disconnect connection in the pruning test (several prunings at 64, 128...)."""
CREATIONS_AT_ONCE = 20
"""Instruments created and at once traded with an extension (each a chance for the barrier path)."""


def place(
    client: SyncClient, symbol: str, side: int, price: float, quantity: int, tif: int = 0, stp: int = 0
) -> ex.InsertOrderResponse:
    return client.request(
        ex.InsertOrderRequest(
            instrument_symbol=symbol,
            side=cast(common_pb2.Side, side),
            price=price,
            quantity=quantity,
            time_in_force=cast(common_pb2.TimeInForce, tif),
            self_trade_prevention=cast(common_pb2.SelfTradePrevention, stp),
        ),
        expect=ex.InsertOrderResponse,
    )


def amend(
    client: SyncClient, symbol: str, order_id: int, quantity: int, price: float = 0.0, stp: int = 0
) -> ex.AmendOrderResponse:
    return client.request(
        ex.AmendOrderRequest(
            instrument_symbol=symbol,
            order_id=order_id,
            price=price,
            quantity=quantity,
            self_trade_prevention=cast(common_pb2.SelfTradePrevention, stp),
        ),
        expect=ex.AmendOrderResponse,
    )


def cancel_all(client: SyncClient, symbol: str = "") -> ex.CancelAllOrdersResponse:
    return client.request(
        ex.CancelAllOrdersRequest(instrument_symbol=symbol), expect=ex.CancelAllOrdersResponse
    )


def split(response: ex.InsertOrderResponse | ex.AmendOrderResponse) -> tuple[int, int, int]:
    return response.traded_quantity, response.resting_quantity, response.cancelled_quantity


def book_events(messages: list[Message]) -> list[tuple[Any, ...]]:
    """Order-book events as tuples (what a contract client rebuilds the book from, and the reason)."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        if isinstance(m, ob.OnOrderInserted):
            out.append(("inserted", m.order_id, m.side, m.price, m.quantity, m.username, len(m.trade_ids)))
        elif isinstance(m, ob.OnOrderCancelled):
            out.append(("cancelled", m.order_id, m.reason))
        elif isinstance(m, ob.OnTrade):
            out.append(("trade", m.buy_order_id, m.sell_order_id, m.price, m.quantity))
        else:
            out.append((type(m).__name__,))
    return out


def test_immediate_or_cancel(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(alice)
    sell = ok(place(bob, "ABC", SELL, 10.00, 3))
    events(watch)
    response = ok(place(alice, "ABC", BUY, 10.00, 5, tif=IOC))
    assert split(response) == (3, 0, 2)
    (trade_id,) = response.trade_ids
    order_id = response.order_id
    assert book_events(events(watch)) == [
        ("inserted", order_id, BUY, 10.00, 5, "alice", 1),
        ("trade", order_id, sell.order_id, 10.00, 3),
        ("cancelled", order_id, common_pb2.CANCEL_IMMEDIATE_OR_CANCEL),
    ]
    assert shown(report_barrier(alice)) == [
        fill(order_id, trade_id, BUY, 10.00, 3, 2, True),
        cancelled(order_id, 2, common_pb2.CANCEL_IMMEDIATE_OR_CANCEL),
    ]
    # nothing to trade with: all cancelled, nothing rests
    nothing = ok(place(alice, "ABC", SELL, 11.00, 4, tif=IOC))
    assert split(nothing) == (0, 0, 4) and list(nothing.trade_ids) == []
    assert open_orders(alice) == []
    # a plain insert still rests (GTC), its response says so
    assert split(ok(place(alice, "ABC", BUY, 9.00, 2))) == (0, 2, 0)


def test_fill_or_kill(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    gateway.create_instrument("DEF")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    first = ok(place(bob, "ABC", SELL, 10.00, 3)).order_id
    second = ok(place(bob, "ABC", SELL, 10.05, 3)).order_id
    events(watch)
    for symbol, price, quantity in (
        ("DEF", 10.00, 1),  # an empty book: no quantity can fill
        ("ABC", 10.00, 4),  # 3 available at 10.00 or better
        ("ABC", 10.05, 7),  # 6 available at 10.05 or better
        ("ABC", 9.99, 1),  # nothing at that price
    ):
        refused = place(alice, symbol, BUY, price, quantity, tif=FOK)
        assert "cannot be filled in full" in refused.error_message, (symbol, price, quantity, refused)
        assert (refused.order_id, refused.traded_quantity, list(refused.trade_ids)) == (0, 0, [])
    assert events(watch) == []  # nothing changed
    assert [o[0] for o in open_orders(bob)] == [first, second]
    filled = ok(place(alice, "ABC", BUY, 10.05, 5, tif=FOK))
    assert split(filled) == (5, 0, 0) and len(filled.trade_ids) == 2
    assert [(o[0], o[5]) for o in open_orders(bob)] == [(second, 1)]
    for invalid in (3, -1):
        response = place(alice, "ABC", BUY, 10.05, 1, tif=invalid)
        assert "invalid time_in_force" in response.error_message
    assert "invalid self_trade_prevention" in place(alice, "ABC", BUY, 10.05, 1, stp=7).error_message
    events(watch)
    assert [(o[0], o[5]) for o in open_orders(bob)] == [(second, 1)]


def test_self_trade_prevention_on_inserts(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(alice)
    # off by default: the contract's self-trade
    own = ok(place(alice, "ABC", SELL, 10.00, 1)).order_id
    assert ok(place(alice, "ABC", BUY, 10.00, 1)).traded_quantity == 1
    report_barrier(alice)
    # CANCEL_RESTING on the order: the own resting order goes, matching goes on with bob's
    own = ok(place(alice, "ABC", SELL, 10.00, 2)).order_id
    bobs = ok(place(bob, "ABC", SELL, 10.01, 2)).order_id
    events(watch)
    report_barrier(alice)
    response = ok(place(alice, "ABC", BUY, 10.01, 4, stp=RESTING))
    assert split(response) == (2, 2, 0)
    new = response.order_id
    assert book_events(events(watch)) == [
        ("cancelled", own, common_pb2.CANCEL_SELF_TRADE),
        ("inserted", new, BUY, 10.01, 4, "alice", 1),
        ("trade", new, bobs, 10.01, 2),
    ]
    assert shown(report_barrier(alice))[0] == cancelled(own, 2, common_pb2.CANCEL_SELF_TRADE)
    # the user's setting applies to an insert that sets none; CANCEL_INCOMING stops at the own order
    ok(set_stp(alice, INCOMING))
    sell = ok(place(alice, "ABC", SELL, 10.01, 3))
    assert split(sell) == (0, 0, 3)  # alice's own bid of 10.01 was first in line
    assert [o[0] for o in open_orders(alice)] == [new]
    # the order's own setting wins over the user's: CANCEL_RESTING removes the resting bid
    sell = ok(place(alice, "ABC", SELL, 10.01, 3, stp=RESTING))
    assert split(sell) == (0, 3, 0)
    assert [o[0] for o in open_orders(alice)] == [sell.order_id]
    ok(set_stp(alice, common_pb2.SELF_TRADE_ALLOWED))
    assert ok(place(alice, "ABC", BUY, 10.01, 3)).traded_quantity == 3  # self-trades again


def test_amend_keeps_or_loses_priority(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice, bob, carol = gateway.gateway("alice"), gateway.gateway("bob"), gateway.gateway("carol")
    subscribe_reports(alice)
    first = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    second = ok(place(bob, "ABC", BUY, 10.00, 5)).order_id
    events(watch)
    # down: same id, priority kept; an order-book client sees the contract form
    down = ok(amend(alice, "ABC", first, 3))
    assert (down.order_id, down.priority_kept, down.resting_quantity) == (first, True, 3)
    assert book_events(events(watch)) == [
        ("cancelled", first, common_pb2.CANCEL_AMENDED),
        ("inserted", first, BUY, 10.00, 3, "alice", 0),
    ]
    assert shown(report_barrier(alice)) == [("amended", first, "ABC", 10.00, 3, True, first)]
    assert ok(place(carol, "ABC", SELL, 10.00, 1)).traded_quantity == 1
    assert [(o[0], o[5]) for o in open_orders(alice)] == [(first, 2)]  # alice's was first in line
    report_barrier(alice)
    events(watch)
    # up: a new id, behind bob's
    up = ok(amend(alice, "ABC", first, 4))
    assert up.priority_kept is False and up.order_id > second and split(up) == (0, 4, 0)
    assert book_events(events(watch)) == [
        ("cancelled", first, common_pb2.CANCEL_REPLACED),
        ("inserted", up.order_id, BUY, 10.00, 4, "alice", 0),
    ]
    assert shown(report_barrier(alice)) == [
        cancelled(first, 2, common_pb2.CANCEL_REPLACED, up.order_id),
        ("amended", up.order_id, "ABC", 10.00, 4, False, first),
    ]
    sold = ok(place(carol, "ABC", SELL, 10.00, 6))
    assert sold.traded_quantity == 6
    assert [(o[0], o[5]) for o in open_orders(bob)] == []  # bob's 5 went first, then 1 of alice's
    assert [(o[0], o[5]) for o in open_orders(alice)] == [(up.order_id, 3)]
    report_barrier(alice)
    # a new price that crosses: trades at once, like a new insert
    ask = ok(place(carol, "ABC", SELL, 10.02, 2)).order_id
    crossed = ok(amend(alice, "ABC", up.order_id, 3, price=10.02))
    assert split(crossed) == (2, 1, 0) and len(crossed.trade_ids) == 1
    (trade_id,) = crossed.trade_ids
    assert shown(report_barrier(alice)) == [
        cancelled(up.order_id, 3, common_pb2.CANCEL_REPLACED, crossed.order_id),
        ("amended", crossed.order_id, "ABC", 10.02, 3, False, up.order_id),
        fill(crossed.order_id, trade_id, BUY, 10.02, 2, 1, True),
    ]
    assert ask > 0
    assert [(o[0], o[3], o[4], o[5]) for o in open_orders(alice)] == [(crossed.order_id, 10.02, 3, 1)]


def test_amend_errors_change_nothing(gateway: Exchange) -> None:
    gateway.create_instrument("ABC", tick_size=0.05)
    gateway.create_instrument("DEF")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    resting = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    filled = ok(place(alice, "ABC", SELL, 11.00, 1)).order_id
    ok(place(bob, "ABC", BUY, 11.00, 1))
    gone = ok(place(alice, "ABC", BUY, 9.00, 1)).order_id
    ok(withdraw(alice, "ABC", gone))
    events(watch)
    cases = {
        "another user's order": (amend(bob, "ABC", resting, 3), "not an order of yours"),
        "an order of another instrument": (amend(alice, "DEF", resting, 3), "not an order of 'DEF'"),
        "a filled order": (amend(alice, "ABC", filled, 3), "not resting"),
        "a cancelled order": (amend(alice, "ABC", gone, 3), "not resting"),
        "an unknown order": (amend(alice, "ABC", 10_000, 3), "not resting"),
        "an unknown symbol": (amend(alice, "ABD", resting, 3), "unknown instrument"),
        "quantity 0": (amend(alice, "ABC", resting, 0), "invalid quantity 0"),
        "a negative quantity": (amend(alice, "ABC", resting, -2), "invalid quantity -2"),
        "off tick": (amend(alice, "ABC", resting, 3, price=10.01), "not a multiple of the tick size"),
        "a negative price": (amend(alice, "ABC", resting, 3, price=-10.0), "must be > 0"),
        "a NaN price": (amend(alice, "ABC", resting, 3, price=float("nan")), "invalid price"),
        "same price and quantity": (amend(alice, "ABC", resting, 5), "changes nothing"),
        "same price given and quantity": (amend(alice, "ABC", resting, 5, price=10.0), "changes nothing"),
        "an invalid self-trade prevention": (amend(alice, "ABC", resting, 3, stp=9), "self_trade_prevention"),
    }
    for case, (response, error) in cases.items():
        assert error in response.error_message, (case, response)
        assert (response.order_id, response.timestamp) == (0, 0), case
    assert events(watch) == []  # nothing reached the book
    assert open_orders(alice) == [(resting, "ABC", BUY, 10.00, 5, 5)]
    anonymous = gateway.gateway(None)
    assert amend(anonymous, "ABC", resting, 3).error_message
    # at once after the insert's response, from another connection: never "not resting"
    alice_too = gateway.gateway("alice")
    for n in range(50):
        order_id = ok(place(alice, "DEF", SELL, 20.00, 5)).order_id
        assert ok(amend(alice_too, "DEF", order_id, 4)).order_id == order_id, n


def test_amend_is_risk_checked(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    alice = gateway.gateway("alice")
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=10, max_outstanding_amount=60.0))
    order_id = ok(place(alice, "ABC", BUY, 5.00, 6)).order_id
    ok(place(alice, "ABC", BUY, 1.00, 2))
    # outstanding sees the old order replaced by the new: 2 + 8 fits, 2 + 9 does not
    over = amend(alice, "ABC", order_id, 9)
    assert "risk limit max_outstanding_quantity breached" in over.error_message
    assert (
        "risk limit max_outstanding_amount breached" in amend(alice, "ABC", order_id, 6, 10.00).error_message
    )
    up = ok(amend(alice, "ABC", order_id, 8))
    assert up.priority_kept is False
    # down always passes, and lowers outstanding at once
    ok(set_user(alice, max_outstanding_quantity=9))
    down = ok(amend(alice, "ABC", up.order_id, 1))
    assert down.priority_kept is True
    assert ok(place(alice, "ABC", BUY, 1.00, 6)).order_id > 0  # 2 + 1 + 6 = 9
    assert "max_outstanding_quantity" in place(alice, "ABC", BUY, 1.00, 1).error_message


def test_cancel_all_orders(gateway: Exchange) -> None:
    book = gateway.create_instrument("ABC")
    gateway.create_instrument("DEF")
    watch = watcher(gateway)
    alice, alice_too, bob = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(alice)
    a1 = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    b1 = ok(place(bob, "ABC", BUY, 10.00, 5)).order_id
    a2 = ok(place(alice_too, "ABC", SELL, 12.00, 1)).order_id
    a3 = insert(gateway.order_book(), book, SELL, 13.00, 2, "alice").order_id  # straight on the order book
    d1 = ok(place(alice, "DEF", SELL, 20.00, 4)).order_id
    events(watch)
    report_barrier(alice)
    unknown = cancel_all(alice, "ABD")
    assert "unknown instrument" in unknown.error_message and unknown.cancelled_count == 0
    assert events(watch) == []
    response = ok(cancel_all(alice_too, "ABC"))
    assert (response.cancelled_count, list(response.cancelled_order_ids)) == (3, [a1, a2, a3])
    assert book_events(events(watch)) == [("cancelled", i, common_pb2.CANCEL_MASS) for i in (a1, a2, a3)]
    assert shown(report_barrier(alice)) == [
        cancelled(a1, 5, common_pb2.CANCEL_MASS),
        cancelled(a2, 1, common_pb2.CANCEL_MASS),
        cancelled(a3, 2, common_pb2.CANCEL_MASS),
    ]
    assert [o[0] for o in open_orders(bob)] == [b1]
    everything = ok(cancel_all(alice))
    assert (everything.cancelled_count, list(everything.cancelled_order_ids)) == (1, [d1])
    again = ok(cancel_all(alice))
    assert (again.cancelled_count, list(again.cancelled_order_ids)) == (0, [])
    assert [o[0] for o in open_orders(bob)] == [b1]
    assert cancel_all(gateway.gateway(None)).error_message


def test_cancel_on_disconnect(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    gateway.create_instrument("DEF")
    watch = watcher(gateway)
    leaving, staying, bob = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(staying)
    ok(leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    twice = leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse)
    assert "already enabled" in twice.error_message
    r1 = ok(place(leaving, "ABC", BUY, 10.00, 5)).order_id
    r2 = ok(place(leaving, "DEF", SELL, 20.00, 5)).order_id
    filled = ok(place(leaving, "ABC", SELL, 11.00, 1)).order_id
    ok(place(bob, "ABC", BUY, 11.00, 1))
    withdrawn = ok(place(leaving, "ABC", BUY, 9.00, 1)).order_id
    ok(withdraw(leaving, "ABC", withdrawn))
    amended = ok(amend(leaving, "ABC", r1, 7)).order_id  # replaced: the new id is its order
    kept = ok(place(staying, "ABC", BUY, 9.50, 2)).order_id  # another connection's: stays
    bobs = ok(place(bob, "DEF", BUY, 19.00, 1)).order_id
    events(watch)
    report_barrier(staying)
    leaving.close()
    # everyone sees ordinary cancels (an order-book client: OnOrderCancelled, reason DISCONNECT)
    seen = [watch.receive_as(ob.OnOrderCancelled) for _ in range(2)]
    assert sorted(m.order_id for m in seen) == sorted((amended, r2))
    assert {m.reason for m in seen} == {common_pb2.CANCEL_DISCONNECT}
    assert events(watch) == []
    assert sorted(shown(report_barrier(staying))) == sorted(
        [
            cancelled(amended, 7, common_pb2.CANCEL_DISCONNECT),
            cancelled(r2, 5, common_pb2.CANCEL_DISCONNECT, symbol="DEF"),
        ]
    )
    assert [o[0] for o in open_orders(staying)] == [kept]
    assert [o[0] for o in open_orders(bob)] == [bobs]
    assert filled > 0
    # a connection that did not enable it leaves its orders when it closes
    staying.close()
    other = gateway.gateway("alice")
    assert [o[0] for o in open_orders(other)] == [kept]


def test_cancel_on_disconnect_of_inserts_in_flight(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    leaving = gateway.gateway("alice")
    ok(leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    leaving.send(
        *(
            ex.InsertOrderRequest(instrument_symbol="ABC", side=BUY, price=10.00 - n / 100, quantity=1)
            for n in range(IN_FLIGHT)
        )
    )
    leaving.close()  # before (most of) the responses
    inserted: set[int] = set()
    cancels: set[int] = set()
    while len(inserted) < IN_FLIGHT or cancels != inserted:
        message = watch.receive()
        if isinstance(message, ob.OnOrderInserted):
            assert message.username == "alice"
            inserted.add(message.order_id)
        elif isinstance(message, ob.OnOrderCancelled):
            assert message.reason == common_pb2.CANCEL_DISCONNECT and message.order_id in inserted
            cancels.add(message.order_id)
    assert events(watch) == []
    assert open_orders(gateway.gateway("alice")) == []


def test_extensions_on_an_instrument_just_created(gateway: Exchange) -> None:
    """Right after a confirmed creation the gateway's mirror may not know the symbol yet (the insert is
    decided after the feed's barrier): time in force and the user's self-trade prevention hold there
    too."""
    alice = gateway.gateway("alice")
    direct = gateway.order_book()
    ok(set_stp(alice, INCOMING))
    for n in range(CREATIONS_AT_ONCE):
        symbol = f"NEW{n}"
        book = gateway.create_instrument(symbol)
        ioc = ok(place(alice, symbol, BUY, 10.00, 2, tif=IOC))
        assert split(ioc) == (0, 0, 2), (n, ioc)
    for n in range(CREATIONS_AT_ONCE):
        symbol = f"STP{n}"
        book = gateway.create_instrument(symbol)
        own = insert(direct, book, SELL, 10.00, 1, "alice").order_id
        prevented = ok(place(alice, symbol, BUY, 10.00, 1))  # stp 0: the user's CANCEL_INCOMING
        assert split(prevented) == (0, 0, 1), (n, prevented)
        assert [o[0] for o in open_orders(alice, symbol)] == [own]


def test_a_new_day_forgets_positions_and_cancel_on_disconnect_ids(gateway: Exchange) -> None:
    """After the order book restarts (a new day, ids from 1 again), a connection's cancel-on-disconnect
    cancels only the orders it placed that day, never today's order that has yesterday's id; positions
    start afresh."""
    gateway.create_instrument("ABC")
    leaving, bob = gateway.gateway("alice"), gateway.gateway("bob")
    ok(leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    yesterday = ok(place(leaving, "ABC", BUY, 10.00, 5)).order_id
    ok(place(bob, "ABC", SELL, 10.00, 1))
    assert [p[0] for p in positions(leaving)] == ["ABC"]
    gateway.deployment.stop_component("order_book")
    gateway.deployment.start_component("order_book")
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    staying = gateway.gateway("alice")
    assert positions(staying) == []
    todays = [ok(place(staying, "ABC", BUY, 9.00, 1)).order_id for _ in range(yesterday)]
    assert yesterday in todays  # today's order with yesterday's id, alice's too
    mine = ok(place(leaving, "ABC", BUY, 8.00, 1)).order_id
    events(watch)
    leaving.close()
    (gone,) = [watch.receive_as(ob.OnOrderCancelled)]
    assert (gone.order_id, gone.reason) == (mine, common_pb2.CANCEL_DISCONNECT)
    assert events(watch) == []  # the one CancelOrdersRequest cancelled nothing else
    assert [o[0] for o in open_orders(staying)] == todays


def test_amends_straight_on_the_order_book_are_reported(gateway: Exchange) -> None:
    """An amend the gateway did not send (its response unseen): the replaced order's cancel report
    still names the new id, just before the new order's OnOrderAmended."""
    book = gateway.create_instrument("ABC")
    alice = gateway.gateway("alice")
    subscribe_reports(alice)
    order_id = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    direct = gateway.order_book()
    kept = direct.request(
        ob.AmendOrderRequest(
            order_book_id=book, order_id=order_id, quantity=4, on_behalf_of_username="alice"
        ),
        expect=ob.AmendOrderResponse,
    )
    assert kept.error_message == "" and kept.priority_kept
    replaced = direct.request(
        ob.AmendOrderRequest(order_book_id=book, order_id=order_id, price=10.5, quantity=4),
        expect=ob.AmendOrderResponse,
    )
    assert replaced.error_message == "" and not replaced.priority_kept
    assert shown(report_barrier(alice)) == [
        ("amended", order_id, "ABC", 10.00, 4, True, order_id),
        cancelled(order_id, 4, common_pb2.CANCEL_REPLACED, replaced.order_id),
        ("amended", replaced.order_id, "ABC", 10.50, 4, False, order_id),
    ]


def test_extensions_and_the_message_rate(gateway: Exchange) -> None:
    """Amends and mass cancels count as execution requests; queries, subscriptions and settings do not."""
    gateway.create_instrument("ABC")
    alice = gateway.gateway("alice")
    ok(set_user(alice, message_rate_rolling_limit=rl.RollingWindowLimit(limit=3, window_in_seconds=600)))
    order_id = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    ok(amend(alice, "ABC", order_id, 4))
    for _ in range(3):
        open_orders(alice)
        positions(alice)
        ok(set_stp(alice, RESTING))
    subscribe_reports(alice)
    ok(alice.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    assert ok(cancel_all(alice)).cancelled_count == 1
    for refused in (
        place(alice, "ABC", BUY, 10.00, 1),
        amend(alice, "ABC", order_id, 3),
        cancel_all(alice, "ABC"),
    ):
        assert "risk limit message_rate_rolling_limit breached" in refused.error_message, refused


def test_cancel_on_disconnect_after_many_orders(gateway: Exchange) -> None:
    """Many orders, most of them gone before the close (the ids are pruned as they pile up): exactly
    those still resting are cancelled."""
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    leaving, bob = gateway.gateway("alice"), gateway.gateway("bob")
    ok(leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    resting = []
    for n in range(MANY_ORDERS):
        order_id = ok(place(leaving, "ABC", SELL, 30.00 - n / 100, 1)).order_id  # below every earlier ask
        if n % 5 == 0:
            resting.append(order_id)
        elif n % 5 == 1:
            ok(withdraw(leaving, "ABC", order_id))
        else:
            assert ok(place(bob, "ABC", BUY, 30.00 - n / 100, 1)).traded_quantity == 1
    events(watch)
    leaving.close()
    seen = [watch.receive_as(ob.OnOrderCancelled) for _ in resting]
    assert [m.order_id for m in seen] == resting  # ascending, one request
    assert events(watch) == []
