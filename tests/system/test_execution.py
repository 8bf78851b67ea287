"""Section 6 of the contract (execution) through the gateway, and section 4's confirmation rule for it.

Which rule each test covers:

- an insert's response is the order book's (order_id, timestamp, trade_ids, traded_quantity, equal to
  its events), placed for the logged-in user: `test_insert_is_the_order_books`,
  `test_a_crossing_insert_reports_its_trades`;
- a user cancels its own resting order: `test_cancel_of_an_own_order`, also at once after its insert's
  response, from that connection or another, or of an order placed in its name straight on the order
  book: `test_cancel_at_once_after_the_insert`;
- cancelling another user's order, an order of another instrument, a filled, a cancelled or an unknown
  order is an error and changes nothing: `test_cancel_errors_change_nothing`;
- an unknown symbol is an error, for inserts and cancels: `test_unknown_symbol`;
- validation errors (side, price <= 0, NaN, inf, off tick, too large, quantity <= 0) are the order
  book's own wording, and nothing reaches the book: `test_validation_errors_are_the_order_books`;
- requests before login are refused: `test_requests_before_login_are_refused`;
- the unavailable rule while the order book is down, and its new day after a restart:
  `test_while_the_order_book_is_down_and_after_its_restart`;
- once a client holds a successful CreateInstrumentResponse, the gateway accepts the symbol (never
  "unknown instrument"), 200 times across 4 parallel clients: `test_create_then_insert_at_once_in_parallel`.
"""

from __future__ import annotations

import math
from typing import cast

import pytest
from google.protobuf.message import Message

from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, SELL, Exchange, SyncClient, create_then_at_once, insert, until_barrier

CLIENTS = 4
CREATIONS = 200
"""Instruments created, and at once traded through the gateway, across the parallel clients."""
CANCEL_ROUNDS = 200
"""Orders cancelled as soon as their insert is answered (each a chance for a stale mirror to show)."""


def place(client: SyncClient, symbol: str, side: int, price: float, quantity: int) -> ex.InsertOrderResponse:
    """Insert through the gateway; the response (which may carry an error)."""
    return client.request(
        ex.InsertOrderRequest(
            instrument_symbol=symbol, side=cast(common_pb2.Side, side), price=price, quantity=quantity
        ),
        expect=ex.InsertOrderResponse,
    )


def withdraw(client: SyncClient, symbol: str, order_id: int) -> ex.CancelOrderResponse:
    """Cancel through the gateway; the response (which may carry an error)."""
    return client.request(
        ex.CancelOrderRequest(instrument_symbol=symbol, order_id=order_id), expect=ex.CancelOrderResponse
    )


def watcher(gateway: Exchange) -> SyncClient:
    """An order-book connection that gets every event from now on (its login replay read)."""
    watch = gateway.order_book("watcher")
    until_barrier(watch)
    return watch


def events(watch: SyncClient) -> list[Message]:
    """Every event the order book sent `watch` until now."""
    return until_barrier(watch)


def test_insert_is_the_order_books(gateway: Exchange) -> None:
    book = gateway.create_instrument("ABC", tick_size=0.05)
    watch = watcher(gateway)
    alice = gateway.gateway("alice")
    response = place(alice, "ABC", BUY, 10.05, 7)
    assert response.error_message == ""
    assert response.order_id > 0 and response.timestamp > 0
    assert (list(response.trade_ids), response.traded_quantity) == ([], 0)
    (event,) = events(watch)
    assert isinstance(event, ob.OnOrderInserted)
    assert (event.order_id, event.timestamp, event.order_book_id) == (
        response.order_id,
        response.timestamp,
        book,
    )
    assert (event.side, event.price, event.quantity, event.username) == (BUY, 10.05, 7, "alice")
    assert list(event.trade_ids) == []


def test_a_crossing_insert_reports_its_trades(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    first = place(alice, "ABC", SELL, 10.00, 5)
    second = place(alice, "ABC", SELL, 10.01, 5)
    assert first.error_message == second.error_message == ""
    events(watch)
    response = place(bob, "ABC", BUY, 10.01, 8)
    assert response.error_message == ""
    assert response.traded_quantity == 8
    assert len(response.trade_ids) == 2
    inserted, *trades = events(watch)
    assert isinstance(inserted, ob.OnOrderInserted)
    assert (inserted.order_id, inserted.timestamp, inserted.username) == (
        response.order_id,
        response.timestamp,
        "bob",
    )
    assert list(inserted.trade_ids) == list(response.trade_ids)
    assert [(t.trade_id, t.sell_order_id, t.price, t.quantity) for t in trades] == [  # type: ignore[attr-defined]
        (response.trade_ids[0], first.order_id, 10.00, 5),
        (response.trade_ids[1], second.order_id, 10.01, 3),
    ]


def test_cancel_of_an_own_order(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice = gateway.gateway("alice")
    order = place(alice, "ABC", BUY, 9.99, 3)
    events(watch)
    response = withdraw(alice, "ABC", order.order_id)
    assert response.error_message == ""
    (event,) = events(watch)
    assert isinstance(event, ob.OnOrderCancelled) and event.order_id == order.order_id
    # cancelled: a second cancel is an error
    assert withdraw(alice, "ABC", order.order_id).error_message


def test_cancel_at_once_after_the_insert(gateway: Exchange) -> None:
    """The client holds the order's InsertOrderResponse before the gateway's feed may have its event."""
    book = gateway.create_instrument("ABC")
    alice, alice_too = gateway.gateway("alice"), gateway.gateway("alice")
    direct = gateway.order_book()
    for n in range(CANCEL_ROUNDS):
        order = place(alice, "ABC", BUY, 10.0, 1)
        assert order.error_message == ""
        response = withdraw(alice_too if n % 2 else alice, "ABC", order.order_id)
        assert response.error_message == "", n
    # an order of alice's placed straight on the order book: the gateway did not even send it
    for n in range(CANCEL_ROUNDS):
        order_id = insert(direct, book, SELL, 11.0, 1, "alice").order_id
        assert withdraw(alice, "ABC", order_id).error_message == "", n


def test_cancel_errors_change_nothing(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    gateway.create_instrument("DEF")
    watch = watcher(gateway)
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    resting = place(alice, "ABC", BUY, 9.00, 3).order_id
    filled = place(alice, "ABC", SELL, 11.00, 2).order_id
    assert place(bob, "ABC", BUY, 11.00, 2).traded_quantity == 2
    cancelled = place(alice, "ABC", BUY, 8.00, 1).order_id
    assert withdraw(alice, "ABC", cancelled).error_message == ""
    events(watch)
    cases = {
        "another user's order": withdraw(bob, "ABC", resting),
        "an order of another instrument": withdraw(alice, "DEF", resting),
        "a filled order": withdraw(alice, "ABC", filled),
        "a cancelled order": withdraw(alice, "ABC", cancelled),
        "an unknown order": withdraw(alice, "ABC", 10_000),
        "order id 0": withdraw(alice, "ABC", 0),
    }
    for case, response in cases.items():
        assert response.error_message, case
    assert events(watch) == []  # nothing reached the book
    # alice's order still rests, hers to cancel
    assert withdraw(alice, "ABC", resting).error_message == ""
    (event,) = events(watch)
    assert isinstance(event, ob.OnOrderCancelled) and event.order_id == resting


def test_unknown_symbol(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    alice = gateway.gateway("alice")
    order = place(alice, "ABC", BUY, 9.00, 3).order_id
    events(watch)
    for symbol in ("ABD", "", "abc", "x" * 1000):
        assert "unknown instrument" in place(alice, symbol, BUY, 9.00, 1).error_message
        assert "unknown instrument" in withdraw(alice, symbol, order).error_message
    assert events(watch) == []


def test_validation_errors_are_the_order_books(gateway: Exchange) -> None:
    book = gateway.create_instrument("ABC", tick_size=0.05)
    watch = watcher(gateway)
    direct = gateway.order_book()
    alice = gateway.gateway("alice")
    invalid = [
        (2, 10.0, 1),  # side
        (-1, 10.0, 1),
        (BUY, 0.0, 1),  # price <= 0
        (BUY, -10.0, 1),
        (SELL, math.nan, 1),
        (SELL, math.inf, 1),
        (SELL, -math.inf, 1),
        (BUY, 10.01, 1),  # off tick
        (BUY, 1e300, 1),  # too large
        (BUY, 10.0, 0),  # quantity <= 0
        (SELL, 10.0, -5),
    ]
    for side, price, quantity in invalid:
        through = place(alice, "ABC", side, price, quantity)
        straight = insert(direct, book, side, price, quantity, "alice")
        assert through.error_message, (side, price, quantity)
        assert through.error_message == straight.error_message, (side, price, quantity)
        assert (through.order_id, through.timestamp) == (0, 0)
    assert events(watch) == []


def test_requests_before_login_are_refused(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    watch = watcher(gateway)
    anonymous = gateway.gateway(None)
    assert place(anonymous, "ABC", BUY, 10.0, 1).error_message
    assert withdraw(anonymous, "ABC", 1).error_message
    assert events(watch) == []


def test_while_the_order_book_is_down_and_after_its_restart(gateway: Exchange) -> None:
    """The unavailable rule while it is down; after it, a new day: yesterday's symbol is unknown, and
    no request goes to the new day's book that has yesterday's id (the gateway's feed may still be
    reconnecting when the first request comes)."""
    gateway.create_instrument("ABC")
    alice = gateway.gateway("alice")
    order = place(alice, "ABC", BUY, 10.0, 1)
    gateway.deployment.stop_component("order_book")
    # The first request may reach the gateway before it read the end of its feed's connection.
    first = place(alice, "ABC", BUY, 10.0, 1)
    assert first.error_message.startswith("order book ") and first.error_message.endswith("carried out")
    unavailable = "order book unavailable; the request was not carried out"
    assert place(alice, "ABC", BUY, 10.0, 1).error_message == unavailable
    assert withdraw(alice, "ABC", order.order_id).error_message == unavailable
    gateway.deployment.start_component("order_book")
    assert "unknown instrument" in place(alice, "ABC", BUY, 10.0, 1).error_message  # not yesterday's book
    gateway.create_instrument("XYZ")  # book 1 again, as ABC was yesterday
    watch = watcher(gateway)
    assert "unknown instrument" in place(alice, "ABC", BUY, 10.0, 1).error_message
    assert "unknown instrument" in withdraw(alice, "ABC", order.order_id).error_message
    assert events(watch) == []
    assert place(alice, "XYZ", BUY, 10.0, 1).error_message == ""


@pytest.mark.xdist_group("heavy")
def test_create_then_insert_at_once_in_parallel(gateway: Exchange) -> None:
    pairs = [(gateway.admin(), gateway.gateway(user)) for user in ("alice", "bob", "carol", "dave")[:CLIENTS]]
    placed: list[int] = []

    def trade(trader: SyncClient, symbol: str, n: int) -> str:
        answer = place(trader, symbol, BUY if n % 2 else SELL, 10.0, 1)
        placed.append(answer.order_id)
        return answer.error_message

    assert create_then_at_once(pairs, CREATIONS, trade) == []
    assert len(set(placed)) == CREATIONS
