"""The order book's trader extensions (issue 10, proto/order_book.proto) straight on its port, through
the deployment runner: time in force, self-trade prevention, amend, mass cancel and cancel reasons.

Every event sequence is checked as seen by a contract-only connection (a LoginRequest without
extension_events: it never gets a message type the contract does not have) and by one that logged in
with extension_events (OnOrderAmended instead of the contract form of an amend). Then random mixes
after which both rebuild the book a fresh login replays, and info (its real process) showing the book
after amends, IOC and self-trade prevention.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import Message

from optivex.feed.events import apply_event, load_event
from optivex.feed.mirror import BookMirror
from optivex.proto import common_pb2, info_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, PRICE_DEPTH_BOOK, SELL, Exchange, SyncClient, settle, subscribe, until_barrier

GTC = common_pb2.GOOD_TILL_CANCEL
IOC = common_pb2.IMMEDIATE_OR_CANCEL
FOK = common_pb2.FILL_OR_KILL
ALLOWED = common_pb2.SELF_TRADE_ALLOWED
CANCEL_RESTING = common_pb2.CANCEL_RESTING
CANCEL_INCOMING = common_pb2.CANCEL_INCOMING
REQUESTED = common_pb2.CANCEL_REQUESTED
R_IOC = common_pb2.CANCEL_IMMEDIATE_OR_CANCEL
R_SELF = common_pb2.CANCEL_SELF_TRADE
R_MASS = common_pb2.CANCEL_MASS
R_DISCONNECT = common_pb2.CANCEL_DISCONNECT
R_REPLACED = common_pb2.CANCEL_REPLACED
R_AMENDED = common_pb2.CANCEL_AMENDED
CONTRACT_EVENTS = (ob.OnOrderBookCreated, ob.OnOrderInserted, ob.OnOrderCancelled, ob.OnTrade)


class Watchers:
    """A contract-only connection and an extension_events one, both logged in, replay consumed."""

    def __init__(self, exchange: Exchange) -> None:
        self.contract = login(exchange, "contract watcher", False)
        self.extended = login(exchange, "extension watcher", True)

    def events(self) -> tuple[list[Message], list[Message]]:
        """What each received since the last call (a barrier on each); contract events only to the first."""
        contract = until_barrier(self.contract)
        assert all(isinstance(e, CONTRACT_EVENTS) for e in contract), contract
        return contract, until_barrier(self.extended)

    def same(self) -> list[Message]:
        """What both received since the last call, which must be the same."""
        contract, extended = self.events()
        assert contract == extended
        return contract


def login(exchange: Exchange, name: str, extension_events: bool) -> SyncClient:
    """A connection logged in, its login replay consumed."""
    client, _ = login_replay(exchange, name, extension_events)
    return client


def login_replay(exchange: Exchange, name: str, extension_events: bool) -> tuple[SyncClient, list[Message]]:
    """A connection logged in, and its login replay."""
    client = exchange.order_book()
    response = client.request(
        common_pb2.LoginRequest(username=name, extension_events=extension_events),
        expect=common_pb2.LoginResponse,
    )
    assert response.error_message == ""
    return client, until_barrier(client)


@pytest.fixture
def book(exchange: Exchange) -> Iterator[int]:
    yield exchange.create_book(0.01)


def place(
    client: SyncClient,
    book: int,
    side: common_pb2.Side,
    price: float,
    quantity: int,
    user: str = "",
    **ext: Any,
) -> ob.InsertOrderResponse:
    """An InsertOrderRequest with extension fields (time_in_force, self_trade_prevention)."""
    return client.request(
        ob.InsertOrderRequest(
            order_book_id=book, side=side, price=price, quantity=quantity, on_behalf_of_username=user, **ext
        ),
        expect=ob.InsertOrderResponse,
    )


def amend(
    client: SyncClient, book: int, order_id: int, quantity: int, price: float = 0.0, **ext: Any
) -> ob.AmendOrderResponse:
    return client.request(
        ob.AmendOrderRequest(order_book_id=book, order_id=order_id, quantity=quantity, price=price, **ext),
        expect=ob.AmendOrderResponse,
    )


def cancel_orders(client: SyncClient, user: str, **fields: Any) -> ob.CancelOrdersResponse:
    fields.setdefault("reason", R_MASS)
    return client.request(
        ob.CancelOrdersRequest(on_behalf_of_username=user, **fields), expect=ob.CancelOrdersResponse
    )


def shape(events: list[Message]) -> list[tuple[Any, ...]]:
    """Each event's kind and what the tests look at."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if isinstance(e, ob.OnOrderInserted):
            out.append(
                (
                    "ins",
                    e.order_id,
                    e.quantity,
                    list(e.trade_ids),
                    e.time_in_force,
                    e.replaces_order_id,
                    e.cancels_remainder,
                )
            )
        elif isinstance(e, ob.OnTrade):
            out.append(("trade", e.buy_order_id, e.sell_order_id, e.quantity))
        elif isinstance(e, ob.OnOrderCancelled):
            out.append(("cxl", e.order_id, e.reason))
        elif isinstance(e, ob.OnOrderAmended):
            out.append(("amd", e.order_id, e.quantity, e.previous_quantity))
        else:
            out.append((type(e).__name__,))
    return out


def quantities(response: ob.InsertOrderResponse | ob.AmendOrderResponse) -> tuple[int, int, int]:
    return (response.traded_quantity, response.resting_quantity, response.cancelled_quantity)


# ------------------------------------------------------------------------------ time in force


def test_a_plain_insert_answers_its_resting_quantity_and_sends_no_extension_field(
    exchange: Exchange, book: int
) -> None:
    client = exchange.order_book()
    watchers = Watchers(exchange)
    resting = place(client, book, SELL, 10.0, 5, "a")
    assert quantities(resting) == (0, 5, 0)
    taker = place(client, book, BUY, 10.0, 3, "b")
    assert quantities(taker) == (3, 0, 0)
    assert quantities(place(client, book, BUY, 10.0, 4, "b")) == (2, 2, 0)
    events = watchers.same()
    assert shape(events) == [
        ("ins", 1, 5, [], GTC, 0, False),
        ("ins", 2, 3, [1], GTC, 0, False),
        ("trade", 2, 1, 3),
        ("ins", 3, 4, [2], GTC, 0, False),
        ("trade", 3, 1, 2),
    ]
    for event in events:  # the contract's fields only (username is an older extension)
        known = {f.name for f in type(event).DESCRIPTOR.fields if f.number < 100} | {"username"}
        assert {f.name for f, _ in event.ListFields()} <= known
    assert client.request(ob.CancelOrderRequest(order_book_id=book, order_id=3), check=True)
    cancelled = watchers.same()
    assert shape(cancelled) == [("cxl", 3, REQUESTED)]
    on_the_wire = [f.name for f, _ in cancelled[0].ListFields()]
    assert on_the_wire == ["order_id", "cancellation_timestamp"]  # reason CANCEL_REQUESTED is 0: not sent


def test_ioc_trades_what_it_can_and_its_rest_is_cancelled(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    place(client, book, SELL, 10.0, 2, "s")
    place(client, book, SELL, 10.1, 2, "s")
    watchers = Watchers(exchange)
    response = place(client, book, BUY, 10.0, 5, "b", time_in_force=IOC)
    assert quantities(response) == (2, 0, 3) and len(response.trade_ids) == 1
    events = watchers.same()
    assert shape(events) == [
        ("ins", 3, 5, list(response.trade_ids), IOC, 0, True),
        ("trade", 3, 1, 2),
        ("cxl", 3, R_IOC),
    ]
    inserted, trade, cancelled = events
    assert isinstance(inserted, ob.OnOrderInserted) and isinstance(cancelled, ob.OnOrderCancelled)
    assert inserted.timestamp == response.timestamp == cancelled.cancellation_timestamp
    assert isinstance(trade, ob.OnTrade) and trade.trade_id == response.trade_ids[0]
    # Traded in full: no cancel. Nothing to trade: inserted and cancelled at once.
    full = place(client, book, BUY, 10.1, 2, "b", time_in_force=IOC)
    assert quantities(full) == (2, 0, 0)
    assert shape(watchers.same()) == [("ins", 4, 2, list(full.trade_ids), IOC, 0, True), ("trade", 4, 2, 2)]
    dry = place(client, book, SELL, 11.0, 7, "b", time_in_force=IOC)
    assert quantities(dry) == (0, 0, 7)
    assert shape(watchers.same()) == [("ins", 5, 7, [], IOC, 0, True), ("cxl", 5, R_IOC)]
    _, replay = login_replay(exchange, "late", False)
    assert [type(e) for e in replay] == [ob.OnOrderBookCreated]  # no IOC rests


def test_fok_trades_in_full_or_is_refused_changing_nothing(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    place(client, book, SELL, 10.0, 2, "s")
    place(client, book, SELL, 10.1, 2, "me")
    place(client, book, SELL, 10.2, 2, "s")
    watchers = Watchers(exchange)
    refused = place(client, book, BUY, 10.1, 5, "b", time_in_force=FOK)
    assert "FOK" in refused.error_message and "4 of 5" in refused.error_message, refused.error_message
    assert (refused.order_id, refused.traded_quantity, list(refused.trade_ids)) == (0, 0, [])
    # Self-trade prevention counts: without my own order only 2 + 2 are there at 10.2.
    mine = place(client, book, BUY, 10.2, 5, "me", time_in_force=FOK, self_trade_prevention=CANCEL_RESTING)
    assert "FOK" in mine.error_message and "4 of 5" in mine.error_message, mine.error_message
    no_book = place(client, book + 1, BUY, 10.0, 1, "b", time_in_force=FOK)
    assert "unknown order book" in no_book.error_message
    assert watchers.same() == []
    filled = place(client, book, BUY, 10.1, 4, "b", time_in_force=FOK)
    assert quantities(filled) == (4, 0, 0) and filled.order_id == 4  # no id was consumed by the refusals
    assert shape(watchers.same()) == [
        ("ins", 4, 4, list(filled.trade_ids), FOK, 0, False),
        ("trade", 4, 1, 2),
        ("trade", 4, 2, 2),
    ]


def test_bad_time_in_force_or_self_trade_prevention_is_an_error(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    watchers = Watchers(exchange)
    bad_tif = place(client, book, BUY, 10.0, 1, "a", time_in_force=7)
    assert "time in force" in bad_tif.error_message and bad_tif.order_id == 0
    bad_stp = place(client, book, BUY, 10.0, 1, "a", self_trade_prevention=9)
    assert "self-trade prevention" in bad_stp.error_message and bad_stp.order_id == 0
    bad_price = place(client, book, BUY, 10.001, 1, "a", time_in_force=IOC)
    assert "tick" in bad_price.error_message  # validated exactly as a plain insert
    too_long = place(client, book, BUY, 10.0, 1, "x" * 1000, time_in_force=IOC)
    assert "on_behalf_of_username" in too_long.error_message
    assert watchers.same() == []
    assert place(client, book, BUY, 10.0, 1, "a").order_id == 1


# ------------------------------------------------------------------------------ self-trade prevention


def test_cancel_resting_removes_my_orders_first_and_goes_on(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    place(client, book, SELL, 10.0, 2, "me")  # 1
    place(client, book, SELL, 10.0, 3, "other")  # 2
    place(client, book, SELL, 10.1, 1, "me")  # 3
    watchers = Watchers(exchange)
    response = place(client, book, BUY, 10.1, 4, "me", self_trade_prevention=CANCEL_RESTING)
    assert quantities(response) == (3, 1, 0)
    assert shape(watchers.same()) == [
        ("cxl", 1, R_SELF),
        ("cxl", 3, R_SELF),
        ("ins", 4, 4, list(response.trade_ids), GTC, 0, False),
        ("trade", 4, 2, 3),
    ]
    # An empty username is nobody's: never prevented.
    place(client, book, SELL, 11.0, 1, "")
    anonymous = place(client, book, BUY, 11.0, 1, "", self_trade_prevention=CANCEL_INCOMING)
    assert quantities(anonymous) == (1, 0, 0)
    assert [s[0] for s in shape(watchers.same())] == ["ins", "ins", "trade"]


def test_cancel_incoming_stops_at_my_order_and_cancels_my_rest(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    place(client, book, BUY, 10.1, 2, "other")  # 1
    place(client, book, BUY, 10.0, 2, "me")  # 2
    place(client, book, BUY, 10.0, 2, "other")  # 3
    watchers = Watchers(exchange)
    response = place(client, book, SELL, 9.0, 5, "me", self_trade_prevention=CANCEL_INCOMING)
    assert quantities(response) == (2, 0, 3)
    assert shape(watchers.same()) == [
        ("ins", 4, 5, list(response.trade_ids), GTC, 0, True),
        ("trade", 1, 4, 2),
        ("cxl", 4, R_SELF),
    ]
    # IOC with CANCEL_INCOMING: stopped by my order -> SELF_TRADE; nothing left crossing -> IOC.
    stopped = place(
        client, book, SELL, 10.0, 1, "me", time_in_force=IOC, self_trade_prevention=CANCEL_INCOMING
    )
    assert quantities(stopped) == (0, 0, 1)
    assert shape(watchers.same()) == [("ins", 5, 1, [], IOC, 0, True), ("cxl", 5, R_SELF)]
    dry = place(client, book, SELL, 10.5, 1, "me", time_in_force=IOC, self_trade_prevention=CANCEL_INCOMING)
    assert shape(watchers.same()) == [
        ("ins", dry.order_id, 1, [], IOC, 0, True),
        ("cxl", dry.order_id, R_IOC),
    ]
    # What does not meet my order rests (GTC): no remainder cancel.
    rests = place(client, book, SELL, 10.5, 3, "me", self_trade_prevention=CANCEL_INCOMING)
    assert quantities(rests) == (0, 3, 0)
    assert shape(watchers.same()) == [("ins", rests.order_id, 3, [], GTC, 0, False)]


# ------------------------------------------------------------------------------ amend


def test_amend_down_keeps_priority_in_both_forms(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    first = place(client, book, SELL, 10.0, 5, "a")
    place(client, book, SELL, 10.0, 5, "b")
    place(client, book, BUY, 10.0, 1, "c")  # order 1: 4 open
    watchers = Watchers(exchange)
    response = amend(client, book, first.order_id, 2, on_behalf_of_username="a")
    assert response.error_message == ""
    assert (response.order_id, response.priority_kept, response.resting_quantity) == (1, True, 2)
    assert (response.traded_quantity, response.cancelled_quantity, list(response.trade_ids)) == (0, 0, [])
    contract, extended = watchers.events()
    assert shape(contract) == [("cxl", 1, R_AMENDED), ("ins", 1, 2, [], GTC, 0, False)]
    cancelled, inserted = contract
    assert isinstance(cancelled, ob.OnOrderCancelled) and isinstance(inserted, ob.OnOrderInserted)
    assert cancelled.cancellation_timestamp == response.timestamp
    assert (inserted.timestamp, inserted.username, inserted.side, inserted.price) == (
        first.timestamp,
        "a",
        SELL,
        10.0,
    )
    assert extended == [
        ob.OnOrderAmended(
            order_id=1, order_book_id=book, timestamp=response.timestamp, quantity=2, previous_quantity=4
        )
    ]
    # Still first in its queue: the next buy trades with it before order 2.
    taker = place(client, book, BUY, 10.0, 3)
    assert shape(watchers.same())[1:] == [("trade", taker.order_id, 1, 2), ("trade", taker.order_id, 2, 1)]


def test_amend_up_or_to_a_new_price_replaces_the_order(exchange: Exchange, book: int) -> None:
    client = exchange.order_book()
    first = place(client, book, SELL, 10.0, 5, "a")  # 1
    place(client, book, SELL, 10.0, 5, "b")  # 2
    place(client, book, BUY, 9.5, 3, "c")  # 3
    watchers = Watchers(exchange)
    up = amend(client, book, first.order_id, 6)
    assert (up.order_id, up.priority_kept, quantities(up)) == (4, False, (0, 6, 0))
    assert shape(watchers.same()) == [("cxl", 1, R_REPLACED), ("ins", 4, 6, [], GTC, 1, False)]
    # A new price that crosses: it trades at once, like a new insert.
    down = amend(client, book, 4, 4, 9.5)
    assert (down.order_id, down.priority_kept, quantities(down)) == (5, False, (3, 1, 0))
    assert shape(watchers.same()) == [
        ("cxl", 4, R_REPLACED),
        ("ins", 5, 4, list(down.trade_ids), GTC, 4, False),
        ("trade", 3, 5, 3),
    ]
    # Same quantity, new price; then a price change with self-trade prevention.
    moved = amend(client, book, 2, 5, 10.5)
    assert (moved.order_id, quantities(moved)) == (6, (0, 5, 0))
    assert shape(watchers.same()) == [("cxl", 2, R_REPLACED), ("ins", 6, 5, [], GTC, 2, False)]
    place(client, book, BUY, 9.0, 2, "a")  # 7: a's own bid
    place(client, book, BUY, 8.9, 2, "z")  # 8
    stp = amend(client, book, 5, 3, 8.9, self_trade_prevention=CANCEL_RESTING)
    assert (stp.order_id, quantities(stp)) == (9, (2, 1, 0))
    assert shape(watchers.same())[2:] == [
        ("cxl", 5, R_REPLACED),
        ("cxl", 7, R_SELF),
        ("ins", 9, 3, list(stp.trade_ids), GTC, 5, False),
        ("trade", 8, 9, 2),
    ]
    place(client, book, BUY, 8.0, 1, "a")  # 10
    incoming = amend(client, book, 9, 2, 8.0, self_trade_prevention=CANCEL_INCOMING)
    assert (incoming.order_id, quantities(incoming)) == (11, (0, 0, 2))
    assert shape(watchers.same())[1:] == [
        ("cxl", 9, R_REPLACED),
        ("ins", 11, 2, [], GTC, 9, True),
        ("cxl", 11, R_SELF),
    ]


AMEND_ERRORS: list[tuple[dict[str, Any], str]] = [
    (dict(order_book_id=99, order_id=1, quantity=1), "unknown order book"),
    (dict(order_id=99, quantity=1), "unknown order"),
    (dict(order_id=2, quantity=1), "no longer resting"),  # filled
    (dict(order_id=3, quantity=1), "belongs to order book"),
    (dict(order_id=1, quantity=5), "changes nothing"),
    (dict(order_id=1, quantity=5, price=10.0), "changes nothing"),
    (dict(order_id=1, quantity=0), "quantity"),
    (dict(order_id=1, quantity=-3), "quantity"),
    (dict(order_id=1, quantity=1, price=10.001), "tick"),
    (dict(order_id=1, quantity=1, price=-1.0), "price"),
    (dict(order_id=1, quantity=1, price=math.nan), "price"),
    (dict(order_id=1, quantity=1, price=math.inf), "price"),
    (dict(order_id=1, quantity=1, on_behalf_of_username="mallory"), "not an order of mallory"),
    (dict(order_id=1, quantity=1, on_behalf_of_username="m" * 1000), "on_behalf_of_username"),
    (dict(order_id=1, quantity=6, self_trade_prevention=7), "self-trade prevention"),
]


def test_amend_errors_change_nothing(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    other_book = exchange.create_book(0.01)
    client = exchange.order_book()
    place(client, book, BUY, 10.0, 5, "alice")  # 1
    place(client, book, SELL, 11.0, 1, "bob")  # 2
    place(client, other_book, BUY, 10.0, 1, "bob")  # 3
    place(client, book, BUY, 11.0, 1, "carol")  # 4: fills 2
    watchers = Watchers(exchange)
    for request_fields, words in AMEND_ERRORS:
        fields = {"order_book_id": book, "price": 0.0, **request_fields}
        response = client.request(ob.AmendOrderRequest(**fields), expect=ob.AmendOrderResponse)
        assert words in response.error_message, (request_fields, response.error_message)
        assert (response.order_id, response.timestamp, response.resting_quantity) == (0, 0, 0)
        assert watchers.same() == []
    assert place(client, book, BUY, 1.0, 1).order_id == 5  # no id consumed
    assert shape(login_replay(exchange, "late", False)[1])[2:] == [
        ("ins", 1, 5, [], GTC, 0, False),
        ("ins", 5, 1, [], GTC, 0, False),  # book 1's bids, best first
        ("ins", 3, 1, [], GTC, 0, False),  # then book 2's
    ]


# ------------------------------------------------------------------------------ mass cancel


def test_cancel_orders_all_per_book_and_by_ids(exchange: Exchange) -> None:
    first = exchange.create_book(0.01)
    second = exchange.create_book(0.01)
    client = exchange.order_book()
    for book, user in [(first, "a"), (second, "a"), (first, "b"), (first, "a"), (second, "a"), (first, "a")]:
        place(client, book, BUY, 1.0, 1, user)  # ids 1..6
    watchers = Watchers(exchange)
    by_ids = cancel_orders(client, "a", order_ids=[6, 3, 99, 1], reason=R_DISCONNECT)  # 3: b's; 99: none
    assert (by_ids.error_message, list(by_ids.cancelled_order_ids)) == ("", [1, 6])
    assert shape(watchers.same()) == [("cxl", 1, R_DISCONNECT), ("cxl", 6, R_DISCONNECT)]
    in_second = cancel_orders(client, "a", order_book_id=second)
    assert list(in_second.cancelled_order_ids) == [2, 5]
    assert shape(watchers.same()) == [("cxl", 2, R_MASS), ("cxl", 5, R_MASS)]
    everywhere = cancel_orders(client, "a")
    assert list(everywhere.cancelled_order_ids) == [4]
    assert shape(watchers.same()) == [("cxl", 4, R_MASS)]
    nothing = cancel_orders(client, "a")
    assert (nothing.error_message, list(nothing.cancelled_order_ids)) == ("", [])
    assert watchers.same() == []
    assert shape(login_replay(exchange, "late", False)[1])[2:] == [("ins", 3, 1, [], GTC, 0, False)]


CANCEL_ORDERS_ERRORS: list[tuple[dict[str, Any], str]] = [
    (dict(on_behalf_of_username=""), "on_behalf_of_username"),
    (dict(reason=REQUESTED), "reason"),
    (dict(reason=R_REPLACED), "reason"),
    (dict(reason=42), "reason"),
    (dict(order_book_id=99), "unknown order book"),
    (dict(order_book_id=-1), "unknown order book"),
    (dict(order_ids=[1, -2]), "order id -2"),
    (dict(on_behalf_of_username="a" * 1000), "on_behalf_of_username"),
]


def test_cancel_orders_errors_change_nothing(exchange: Exchange) -> None:
    book = exchange.create_book(0.01)
    client = exchange.order_book()
    place(client, book, BUY, 1.0, 1, "a")
    watchers = Watchers(exchange)
    for fields, words in CANCEL_ORDERS_ERRORS:
        request = {"on_behalf_of_username": "a", "reason": R_MASS, **fields}
        response = client.request(ob.CancelOrdersRequest(**request), expect=ob.CancelOrdersResponse)
        assert words in response.error_message, (fields, response.error_message)
        assert list(response.cancelled_order_ids) == []
        assert watchers.same() == []
    assert list(cancel_orders(client, "a").cancelled_order_ids) == [1]


# ------------------------------------------------------------------------------ rebuilding the book


def rebuilt(events: list[Message], mirror: BookMirror | None = None) -> BookMirror:
    mirror = BookMirror() if mirror is None else mirror
    for event in events:
        apply_event(mirror, event)
    return mirror


def book_state(mirror: BookMirror) -> list[Any]:
    return [
        (
            b.book_id,
            b.levels(BUY),
            b.levels(SELL),
            [(o.order_id, o.side, o.price, o.remaining, o.owner, o.timestamp) for o in b.resting_orders()],
        )
        for b in mirror.books()
    ]


def random_request(rng: random.Random, books: list[int], resting: BookMirror) -> Message:
    """A random extended (or plain) request; amends and cancels mostly of resting orders."""
    owner = rng.choice(("alice", "bob", ""))
    book = rng.choice(books)
    price = 10.0 + rng.randrange(5) / 100
    target, target_book = rng.randint(1, 500), book
    orders = [o for b in resting.books() for o in b.resting_orders()]
    if orders and rng.random() < 0.85:
        order = rng.choice(orders)
        target, target_book, owner = order.order_id, order.book_id, order.owner
    kind = rng.random()
    if kind < 0.5:
        return ob.InsertOrderRequest(
            order_book_id=book,
            side=rng.choice((BUY, SELL)),
            price=price,
            quantity=rng.randint(1, 5),
            on_behalf_of_username=owner,
            time_in_force=rng.choice((GTC, GTC, IOC, FOK)),
            self_trade_prevention=rng.choice((ALLOWED, ALLOWED, CANCEL_RESTING, CANCEL_INCOMING)),
        )
    if kind < 0.8:
        return ob.AmendOrderRequest(
            order_book_id=target_book,
            order_id=target,
            price=rng.choice((0.0, 0.0, price)),
            quantity=rng.randint(1, 5),
            on_behalf_of_username=rng.choice((owner, "")),
            self_trade_prevention=rng.choice((ALLOWED, CANCEL_RESTING, CANCEL_INCOMING)),
        )
    if kind < 0.9:
        return ob.CancelOrderRequest(order_book_id=target_book, order_id=target)
    return ob.CancelOrdersRequest(
        on_behalf_of_username=owner or "alice",
        order_book_id=rng.choice((0, book)),
        order_ids=rng.sample(range(1, 60), rng.randint(0, 2)),
        reason=rng.choice((R_MASS, R_DISCONNECT)),
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_random_mixes_rebuild_the_book_a_fresh_login_replays(exchange: Exchange, seed: int) -> None:
    """A contract-only client and an extension client rebuild the books from events after a random mix
    of extended requests (pipelined in bursts); both end equal to a fresh login's replay."""
    watchers = Watchers(exchange)
    books = [exchange.create_book(0.01), exchange.create_book(0.01)]
    client = exchange.order_book()
    contract, extended = BookMirror(), BookMirror()
    rng = random.Random(seed)
    amended = accepted = 0
    for _ in range(40):
        burst = [random_request(rng, books, extended) for _ in range(rng.randint(1, 8))]
        client.send(*burst)
        answers = until_barrier(client)  # the requester is not logged in: its responses only
        assert len(answers) == len(burst)
        accepted += sum(not a.error_message for a in answers)  # type: ignore[attr-defined]
        contract_events, extended_events = watchers.events()
        amended += sum(isinstance(e, ob.OnOrderAmended) for e in extended_events)
        rebuilt(contract_events, contract)
        rebuilt(extended_events, extended)
    assert amended > 0 and accepted > 60
    fresh = BookMirror()
    for event in login_replay(exchange, "fresh", False)[1]:
        load_event(fresh, event)
    assert len(fresh) > 0
    assert book_state(contract) == book_state(fresh)
    assert book_state(extended) == book_state(fresh)


# ------------------------------------------------------------------------------ info


def depth_of(message: Message) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
    assert isinstance(message, info_pb2.OnPriceDepthBook), message
    return (
        [(lv.price, lv.quantity) for lv in message.bids],
        [(lv.price, lv.quantity) for lv in message.asks],
    )


def test_info_shows_the_book_after_amends_ioc_and_self_trade_prevention(info: Exchange) -> None:
    book = info.create_instrument("EXT")
    info.create_instrument("QUIET")
    client = info.order_book()
    viewer = info.info("alice")
    subscribe(viewer, "EXT", PRICE_DEPTH_BOOK)

    def published() -> list[tuple[list[tuple[float, int]], list[tuple[float, int]]]]:
        shown = [depth_of(m) for m in settle(viewer, "QUIET") if isinstance(m, info_pb2.OnPriceDepthBook)]
        for bids, asks in shown:
            assert not bids or not asks or bids[0][0] < asks[0][0], (bids, asks)  # never crossed
        return shown

    place(client, book, SELL, 10.0, 5, "a")  # 1
    place(client, book, SELL, 10.1, 3, "b")  # 2
    place(client, book, BUY, 9.9, 4, "c")  # 3
    assert published()[-1] == ([(9.9, 4)], [(10.0, 5), (10.1, 3)])
    assert amend(client, book, 1, 2).priority_kept
    assert published() == [([(9.9, 4)], [(10.0, 2), (10.1, 3)])]
    # IOC buying 10 up to 10.2: takes both asks, its rest of 5 is cancelled, never shown at 10.2.
    ioc = place(client, book, BUY, 10.2, 10, "c", time_in_force=IOC)
    assert quantities(ioc) == (5, 0, 5)
    after = settle(viewer, "QUIET")
    trades = [(m.price, m.quantity) for m in after if isinstance(m, info_pb2.OnTrade)]
    assert trades == [(10.0, 2), (10.1, 3)]
    assert [depth_of(m) for m in after if isinstance(m, info_pb2.OnPriceDepthBook)] == [([(9.9, 4)], [])]
    place(client, book, SELL, 10.0, 2, "c")  # 5: c's own ask
    stp = place(client, book, BUY, 10.0, 3, "c", self_trade_prevention=CANCEL_RESTING)
    assert quantities(stp) == (0, 3, 0)
    assert published()[-1] == ([(10.0, 3), (9.9, 4)], [])
    replaced = amend(client, book, stp.order_id, 1, 9.9)
    assert not replaced.priority_kept
    assert published()[-1] == ([(9.9, 5)], [])
    snapshot = subscribe(info.info("bob"), "EXT", PRICE_DEPTH_BOOK)
    assert depth_of(snapshot) == ([(9.9, 5)], [])
