"""Section 7 of the contract (risk_limits) through the gateway: every row of the table at its boundary.

Which rule each test covers:

- Get before any Set: user limits unset, no instrument entries: `test_get_before_any_set`;
- Get returns what was set, zero-valued instrument entries included: `test_set_and_get_round_trip`;
- Set replaces the message as a whole: `test_set_replaces_the_whole_message`;
- negative values, a rolling limit > 0 with a window <= 0, NaN/inf amounts and an unknown symbol are
  errors naming the field, and change nothing: `test_invalid_limits_are_errors_and_change_nothing`;
- each row of the table at the limit (accepted), one over (rejected, naming the field, nothing reaches
  the book), unset and zero (no limit): `test_user_max_outstanding_quantity`,
  `test_instrument_max_outstanding_quantity`, `test_instrument_max_outstanding_amount` (exact sums),
  `test_order_quantity_rolling_limit`, `test_order_amount_rolling_limit`,
  `test_message_rate_counts_every_request_in_the_window`;
- requests rejected by the message rate do not count (a 2 s window, asserted only when the client's
  own clock shows the margins held): `test_message_rate_rejections_do_not_count`;
- the order of checks (rate, validation, user, instrument in the table's order): `test_order_of_checks`;
- limits belong to the user, shared by its connections: `test_limits_are_shared_by_a_users_connections`;
- checks see every fill and cancel a client was told of (fills by another user through the gateway or
  straight on the order book, a cancel on another connection):
  `test_fills_and_cancels_lower_outstanding_at_once`;
- limits outlive an order-book restart, whose new day's outstanding starts afresh:
  `test_limits_outlive_an_order_book_restart`;
- race-free: 2 connections x 200 pipelined inserts against a limit that admits exactly 100:
  `test_two_connections_racing_never_both_slip_under_a_limit`;
- section 4's confirmation rule for risk_limits (instrument limits set right after a confirmed
  creation, 200 times across 4 parallel clients): `test_create_then_set_limits_at_once_in_parallel`.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from google.protobuf.message import Message

from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.proto import risk_limits_pb2 as rl

from .helpers import BUY, SELL, TIMEOUT, Exchange, SyncClient, create_then_at_once, insert, until_barrier
from .test_execution import place, watcher, withdraw

CLIENTS = 4
CREATIONS = 200
RACERS = 2
RACE_INSERTS = 200
"""Inserts each racing connection pipelines; the limit admits exactly RACE_ADMITS of all of them."""
RACE_ADMITS = 100
FILL_ROUNDS = 20
"""Times each "lowered at once" case is repeated (each a chance for a stale check to show)."""
RATE_WINDOW = 2
"""Seconds of the window of the timed message-rate test; its margins are ``RATE_WINDOW / 4``."""


def rolling(limit: int, window: int) -> rl.RollingWindowLimit:
    return rl.RollingWindowLimit(limit=limit, window_in_seconds=window)


def set_user(client: SyncClient, **fields: Any) -> rl.SetUserRiskLimitsResponse:
    return client.request(
        rl.SetUserRiskLimitsRequest(user_risk_limits=rl.UserRiskLimits(**fields)),
        expect=rl.SetUserRiskLimitsResponse,
    )


def set_instrument(client: SyncClient, symbol: str, **fields: Any) -> rl.SetInstrumentRiskLimitsResponse:
    return client.request(
        rl.SetInstrumentRiskLimitsRequest(
            instrument_symbol=symbol, instrument_risk_limits=rl.InstrumentRiskLimits(**fields)
        ),
        expect=rl.SetInstrumentRiskLimitsResponse,
    )


def get_user(client: SyncClient) -> rl.GetUserRiskLimitsResponse:
    response = client.request(rl.GetUserRiskLimitsRequest(), expect=rl.GetUserRiskLimitsResponse)
    assert response.error_message == ""
    return response


def get_instruments(client: SyncClient) -> dict[str, rl.InstrumentRiskLimits]:
    response = client.request(rl.GetInstrumentRiskLimitsRequest(), expect=rl.GetInstrumentRiskLimitsResponse)
    assert response.error_message == ""
    return dict(response.risk_limits_by_instrument)


def ok(response: Message) -> Any:
    assert response.error_message == "", response  # type: ignore[attr-defined]
    return response


def breached(response: ex.InsertOrderResponse, field: str) -> None:
    """A rejection naming `field` (and no order: a failed request changes nothing)."""
    assert f"risk limit {field} breached" in response.error_message, response
    assert (response.order_id, response.timestamp) == (0, 0)


def test_get_before_any_set(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    alice, bob = risk_limits.gateway("alice"), risk_limits.gateway("bob")
    ok(set_user(bob, max_outstanding_quantity=5))
    ok(set_instrument(bob, "ABC", max_outstanding_quantity=5))
    response = get_user(alice)
    assert not response.HasField("user_risk_limits")
    assert get_instruments(alice) == {}
    assert get_user(bob).user_risk_limits == rl.UserRiskLimits(max_outstanding_quantity=5)


def test_set_and_get_round_trip(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    risk_limits.create_instrument("DEF")
    alice = risk_limits.gateway("alice")
    user = rl.UserRiskLimits(max_outstanding_quantity=100, message_rate_rolling_limit=rolling(10, 5))
    ok(alice.request(rl.SetUserRiskLimitsRequest(user_risk_limits=user), expect=rl.SetUserRiskLimitsResponse))
    got = get_user(alice)
    assert got.HasField("user_risk_limits") and got.user_risk_limits == user
    abc = rl.InstrumentRiskLimits(
        max_outstanding_quantity=5,
        max_outstanding_amount=1234.5678,
        order_quantity_rolling_limit=rolling(7, 3),
        order_amount_rolling_limit=rolling(9, 4),
    )
    ok(set_instrument(alice, "ABC", **{f.name: v for f, v in abc.ListFields()}))
    ok(set_instrument(alice, "DEF"))  # every limit zero: an entry nonetheless
    assert get_instruments(alice) == {"ABC": abc, "DEF": rl.InstrumentRiskLimits()}
    # a zero-valued user message is set limits too (no longer "unset")
    ok(set_user(alice))
    got = get_user(alice)
    assert got.HasField("user_risk_limits") and got.user_risk_limits == rl.UserRiskLimits()


def test_set_replaces_the_whole_message(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    alice = risk_limits.gateway("alice")
    ok(set_user(alice, max_outstanding_quantity=1, message_rate_rolling_limit=rolling(2, 60)))
    ok(set_user(alice, max_outstanding_quantity=0))
    assert not get_user(alice).user_risk_limits.HasField("message_rate_rolling_limit")
    for _ in range(3):  # neither the old quantity limit nor the old rate applies
        ok(place(alice, "ABC", BUY, 10.0, 2))
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=1, order_quantity_rolling_limit=rolling(1, 60)))
    breached(place(alice, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")
    ok(set_instrument(alice, "ABC", max_outstanding_amount=1000.0))
    assert get_instruments(alice) == {"ABC": rl.InstrumentRiskLimits(max_outstanding_amount=1000.0)}
    ok(place(alice, "ABC", BUY, 10.0, 2))  # quantity 6 + 2 > 1, rolling 2 > 1: neither applies now
    breached(place(alice, "ABC", BUY, 10.0, 93), "max_outstanding_amount")  # 80 + 930 > 1000


USER_ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("max_outstanding_quantity", {"max_outstanding_quantity": -1}),
    ("message_rate_rolling_limit", {"message_rate_rolling_limit": rolling(-1, 10)}),
    ("message_rate_rolling_limit", {"message_rate_rolling_limit": rolling(5, 0)}),
    ("message_rate_rolling_limit", {"message_rate_rolling_limit": rolling(5, -1)}),
    ("message_rate_rolling_limit", {"message_rate_rolling_limit": rolling(0, -1)}),
]
INSTRUMENT_ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("max_outstanding_quantity", {"max_outstanding_quantity": -1}),
    ("max_outstanding_amount", {"max_outstanding_amount": -0.01}),
    ("max_outstanding_amount", {"max_outstanding_amount": math.nan}),
    ("max_outstanding_amount", {"max_outstanding_amount": math.inf}),
    ("order_quantity_rolling_limit", {"order_quantity_rolling_limit": rolling(-1, 10)}),
    ("order_quantity_rolling_limit", {"order_quantity_rolling_limit": rolling(1, 0)}),
    ("order_amount_rolling_limit", {"order_amount_rolling_limit": rolling(-5, 10)}),
    ("order_amount_rolling_limit", {"order_amount_rolling_limit": rolling(5, 0)}),
    ("order_amount_rolling_limit", {"order_amount_rolling_limit": rolling(5, -2)}),
]


def test_invalid_limits_are_errors_and_change_nothing(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    alice = risk_limits.gateway("alice")
    ok(set_user(alice, max_outstanding_quantity=7))
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=3))
    before_user, before_instruments = get_user(alice).user_risk_limits, get_instruments(alice)
    for field, fields in USER_ERRORS:
        error = set_user(alice, **fields).error_message
        assert field in error, (fields, error)
    for field, fields in INSTRUMENT_ERRORS:
        error = set_instrument(alice, "ABC", **fields).error_message
        assert field in error, (fields, error)
    assert "unknown instrument" in set_instrument(alice, "ABD", max_outstanding_quantity=1).error_message
    assert get_user(alice).user_risk_limits == before_user
    assert get_instruments(alice) == before_instruments
    breached(place(alice, "ABC", BUY, 10.0, 4), "max_outstanding_quantity")  # still 3


def test_user_max_outstanding_quantity(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    risk_limits.create_instrument("DEF")
    watch = watcher(risk_limits)
    alice = risk_limits.gateway("alice")
    for _ in range(2):  # unset, then zero: no limit
        ok(place(alice, "ABC", BUY, 10.0, 1_000_000))
        ok(set_user(alice, max_outstanding_quantity=0))
    ok(set_user(alice, max_outstanding_quantity=2_000_100))
    sixty = ok(place(alice, "ABC", BUY, 10.0, 60))
    ok(place(alice, "DEF", SELL, 10.0, 40))  # all instruments together: at the limit
    until_barrier(watch)
    breached(place(alice, "DEF", SELL, 10.0, 1), "max_outstanding_quantity")
    assert until_barrier(watch) == []
    ok(withdraw(alice, "ABC", sixty.order_id))
    ok(place(alice, "ABC", BUY, 10.0, 60))  # room again
    breached(place(alice, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")


def test_instrument_max_outstanding_quantity(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    risk_limits.create_instrument("DEF")
    alice = risk_limits.gateway("alice")
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=0))
    ok(place(alice, "ABC", BUY, 10.0, 500))  # zero: no limit
    ok(set_instrument(alice, "ABC", max_outstanding_quantity=510))
    ok(place(alice, "ABC", SELL, 11.0, 10))  # both sides count: at the limit
    breached(place(alice, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")
    ok(place(alice, "DEF", BUY, 10.0, 1000))  # another instrument: not limited
    assert "instrument ABC" in place(alice, "ABC", BUY, 10.0, 1).error_message


def test_instrument_max_outstanding_amount(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC", tick_size=0.01)
    alice = risk_limits.gateway("alice")
    ok(set_instrument(alice, "ABC", max_outstanding_amount=0.0))
    big = ok(place(alice, "ABC", BUY, 1000.0, 1000))  # zero: no limit
    ok(withdraw(alice, "ABC", big.order_id))
    ok(set_instrument(alice, "ABC", max_outstanding_amount=0.3))
    # exact sums: 0.1 + 0.2 is 0.30000000000000004 in doubles, and must not breach 0.3
    ok(place(alice, "ABC", BUY, 0.1, 1))
    ok(place(alice, "ABC", BUY, 0.2, 1))
    breached(place(alice, "ABC", BUY, 0.01, 1), "max_outstanding_amount")
    ok(set_instrument(alice, "ABC", max_outstanding_amount=1000.3))
    ok(place(alice, "ABC", SELL, 99.99, 10))  # both sides count: 0.3 + 999.9
    ok(place(alice, "ABC", BUY, 0.01, 10))  # + 0.1: at the limit
    breached(place(alice, "ABC", BUY, 0.01, 1), "max_outstanding_amount")


def test_a_max_outstanding_amount_of_any_size_is_a_limit(risk_limits: Exchange) -> None:
    """Only negative values are errors: amounts beyond a double's 53 bits of 0.0001 units (about 9e11)
    are limits too, compared exactly."""
    risk_limits.create_instrument("ABC", tick_size=0.0001)
    alice = risk_limits.gateway("alice")
    limit = 2_000_000_000_000.0  # 2e16 units
    ok(set_instrument(alice, "ABC", max_outstanding_amount=limit))
    assert get_instruments(alice) == {"ABC": rl.InstrumentRiskLimits(max_outstanding_amount=limit)}
    ok(place(alice, "ABC", BUY, 1000.0, 1_999_999_999))  # 1,999,999,999,000
    ok(place(alice, "ABC", BUY, 999.9999, 1))  # 1,999,999,999,999.9999
    breached(place(alice, "ABC", BUY, 0.0002, 1), "max_outstanding_amount")  # 0.0001 over
    ok(place(alice, "ABC", BUY, 0.0001, 1))  # at the limit
    ok(set_instrument(alice, "ABC", max_outstanding_amount=1e300))
    assert get_instruments(alice) == {"ABC": rl.InstrumentRiskLimits(max_outstanding_amount=1e300)}
    ok(place(alice, "ABC", SELL, 90_000_000.0, 2_147_483_647))


def test_order_quantity_rolling_limit(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    risk_limits.create_instrument("DEF")
    alice, bob = risk_limits.gateway("alice"), risk_limits.gateway("bob")
    # (bob's orders: a window counts what was accepted before the limit was set too)
    ok(set_instrument(bob, "ABC", order_quantity_rolling_limit=rolling(0, 0)))
    ok(place(bob, "ABC", BUY, 5.0, 1000))  # zero: no limit
    ok(set_instrument(alice, "ABC", order_quantity_rolling_limit=rolling(10, 60)))
    six = ok(place(alice, "ABC", SELL, 11.0, 6))
    ok(withdraw(alice, "ABC", six.order_id))  # accepted orders count, resting or not
    ok(place(bob, "ABC", SELL, 10.0, 2))
    assert ok(place(alice, "ABC", SELL, 9.0, 4)).traded_quantity == 0  # at the limit
    breached(place(alice, "ABC", BUY, 1.0, 1), "order_quantity_rolling_limit")
    ok(place(alice, "DEF", BUY, 1.0, 100))  # per instrument


def test_order_amount_rolling_limit(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    alice, bob = risk_limits.gateway("alice"), risk_limits.gateway("bob")
    # (bob's orders: a window counts what was accepted before the limit was set too)
    ok(set_instrument(bob, "ABC", order_amount_rolling_limit=rolling(0, 0)))
    ok(place(bob, "ABC", BUY, 0.3, 1000))  # zero: no limit
    ok(set_instrument(alice, "ABC", order_amount_rolling_limit=rolling(100, 60)))
    sixty = ok(place(alice, "ABC", SELL, 1.0, 60))
    ok(withdraw(alice, "ABC", sixty.order_id))
    ok(place(alice, "ABC", SELL, 0.4, 100))  # 60 + 40: at the limit (and it trades: still counts)
    breached(place(alice, "ABC", BUY, 0.01, 1), "order_amount_rolling_limit")


def test_message_rate_counts_every_request_in_the_window(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    watch = watcher(risk_limits)
    alice, again, bob = risk_limits.gateway("alice"), risk_limits.gateway("alice"), risk_limits.gateway("bob")
    # (bob's requests: a window counts what was sent before the limit was set too)
    ok(set_user(bob, message_rate_rolling_limit=rolling(0, 0)))
    for _ in range(20):  # zero: no limit
        ok(place(bob, "ABC", BUY, 1.0, 1))
    ok(set_user(alice, message_rate_rolling_limit=rolling(5, 60)))
    order = ok(place(alice, "ABC", BUY, 9.0, 1))  # 1: an insert
    assert "invalid price" in place(alice, "ABC", BUY, 0.0, 1).error_message  # 2: an invalid one
    assert "unknown instrument" in place(again, "NOPE", BUY, 1.0, 1).error_message  # 3: another connection
    assert withdraw(alice, "ABC", 10_000).error_message  # 4: a failed cancel
    ok(withdraw(again, "ABC", order.order_id))  # 5: a cancel
    until_barrier(watch)
    for client in (alice, again):
        breached(place(client, "ABC", BUY, 9.0, 1), "message_rate_rolling_limit")
        assert "message_rate_rolling_limit" in withdraw(client, "ABC", 1).error_message
    assert until_barrier(watch) == []
    ok(place(risk_limits.gateway("carol"), "ABC", BUY, 9.0, 1))  # per user


def test_message_rate_rejections_do_not_count(risk_limits: Exchange) -> None:
    """Limit 2 in RATE_WINDOW s: A at t0, B and rejections at t0 + W/2, C at t0 + W + W/4.

    At C, A has expired and B counts: C is accepted only if the rejections did not count. Asserted
    when the client's clock shows the margins held (A's age > W at C and the rejections' < W),
    else the round is tried again with another user.
    """
    risk_limits.create_instrument("ABC")
    for user in ("alice", "bob", "carol", "dave"):
        client = risk_limits.gateway(user)
        ok(set_user(client, message_rate_rolling_limit=rolling(2, RATE_WINDOW)))
        ok(place(client, "ABC", BUY, 1.0, 1))
        first_answered = time.monotonic()
        time.sleep(RATE_WINDOW / 2)
        rejections_sent = time.monotonic()
        ok(place(client, "ABC", BUY, 1.0, 1))
        for _ in range(3):
            breached(place(client, "ABC", BUY, 1.0, 1), "message_rate_rolling_limit")
        time.sleep(max(0.0, first_answered + RATE_WINDOW * 1.25 - time.monotonic()))
        last = place(client, "ABC", BUY, 1.0, 1)
        if time.monotonic() - rejections_sent < RATE_WINDOW:
            ok(last)
            return
    pytest.fail("the machine was too slow for the margins of every round")


def test_order_of_checks(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    alice, bob = risk_limits.gateway("alice"), risk_limits.gateway("bob")
    # the message rate first, before validation
    ok(set_user(bob, message_rate_rolling_limit=rolling(1, 60)))
    ok(place(bob, "ABC", BUY, 1.0, 1))
    breached(place(bob, "ABC", BUY, 0.0, 0), "message_rate_rolling_limit")
    # validation before limits
    ok(set_user(alice, max_outstanding_quantity=5))
    ok(
        set_instrument(
            alice,
            "ABC",
            max_outstanding_quantity=5,
            max_outstanding_amount=10.0,
            order_quantity_rolling_limit=rolling(5, 60),
            order_amount_rolling_limit=rolling(10, 60),
        )
    )
    assert "invalid price" in place(alice, "ABC", BUY, 10.001, 6).error_message
    # user limits, then the instrument's in the table's order
    rejected = place(alice, "ABC", BUY, 10.0, 6)
    breached(rejected, "max_outstanding_quantity")
    assert "(user)" in rejected.error_message
    ok(set_user(alice))
    rejected = place(alice, "ABC", BUY, 10.0, 6)
    breached(rejected, "max_outstanding_quantity")
    assert "instrument ABC" in rejected.error_message
    rolls = {"order_quantity_rolling_limit": rolling(5, 60), "order_amount_rolling_limit": rolling(10, 60)}
    ok(set_instrument(alice, "ABC", max_outstanding_amount=10.0, **rolls))
    breached(place(alice, "ABC", BUY, 10.0, 6), "max_outstanding_amount")
    ok(set_instrument(alice, "ABC", **rolls))
    breached(place(alice, "ABC", BUY, 10.0, 6), "order_quantity_rolling_limit")
    ok(set_instrument(alice, "ABC", order_amount_rolling_limit=rolling(10, 60)))
    breached(place(alice, "ABC", BUY, 10.0, 6), "order_amount_rolling_limit")
    ok(set_instrument(alice, "ABC"))
    ok(place(alice, "ABC", BUY, 10.0, 6))


def test_limits_are_shared_by_a_users_connections(risk_limits: Exchange) -> None:
    risk_limits.create_instrument("ABC")
    first, second, bob = (
        risk_limits.gateway("alice"),
        risk_limits.gateway("alice"),
        risk_limits.gateway("bob"),
    )
    ok(set_user(first, max_outstanding_quantity=10))
    ok(set_instrument(first, "ABC", max_outstanding_amount=500.0))
    assert get_user(second).user_risk_limits == rl.UserRiskLimits(max_outstanding_quantity=10)
    assert get_instruments(second) == {"ABC": rl.InstrumentRiskLimits(max_outstanding_amount=500.0)}
    ok(place(second, "ABC", BUY, 10.0, 10))
    breached(place(first, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")
    ok(place(bob, "ABC", BUY, 10.0, 100))  # limits belong to one user
    assert not get_user(bob).HasField("user_risk_limits")


def test_fills_and_cancels_lower_outstanding_at_once(risk_limits: Exchange) -> None:
    """Each reduction is told to a client other than the one that inserts next, at once after."""
    risk_limits.create_instrument("ABC")
    book = risk_limits.create_instrument("DEF")
    alice, alice_too = risk_limits.gateway("alice"), risk_limits.gateway("alice")
    bob = risk_limits.gateway("bob")
    direct = risk_limits.order_book()
    ok(set_user(alice, max_outstanding_quantity=100))
    for _ in range(FILL_ROUNDS):
        resting = ok(place(alice, "ABC", SELL, 10.0, 100))
        assert ok(place(bob, "ABC", BUY, 10.0, 60)).traded_quantity == 60  # bob told: alice has 40 left
        sixty = ok(place(alice, "ABC", SELL, 11.0, 60))  # at once: 100 again
        breached(place(alice, "ABC", SELL, 11.0, 1), "max_outstanding_quantity")
        ok(withdraw(alice_too, "ABC", resting.order_id))  # another connection cancels the 40
        forty = ok(place(alice, "ABC", SELL, 11.0, 40))  # at once: 100 again
        for order in (sixty, forty):
            ok(withdraw(alice_too, "ABC", order.order_id))
    # fills by orders straight on the order book, which the gateway did not send
    for _ in range(FILL_ROUNDS):
        ok(place(alice, "DEF", BUY, 5.0, 100))
        assert insert(direct, book, SELL, 5.0, 100, "bob").traded_quantity == 100
        ok(place(alice, "DEF", BUY, 4.0, 100))  # at once: the fill freed all of it
        assert insert(direct, book, SELL, 4.0, 100, "bob").traded_quantity == 100


def test_limits_outlive_an_order_book_restart(risk_limits: Exchange) -> None:
    """A new day of the order book: the limits hold on (kept by user and symbol), yesterday's orders
    no longer count (the feed's fresh replay)."""
    risk_limits.create_instrument("ABC")
    alice = risk_limits.gateway("alice")
    ok(set_user(alice, max_outstanding_quantity=10))
    ok(set_instrument(alice, "ABC", max_outstanding_amount=150.0))
    ok(place(alice, "ABC", BUY, 10.0, 10))
    breached(place(alice, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")
    risk_limits.deployment.stop_component("order_book")
    risk_limits.deployment.start_component("order_book")
    risk_limits.create_instrument("ABC")
    assert get_user(alice).user_risk_limits == rl.UserRiskLimits(max_outstanding_quantity=10)
    assert get_instruments(alice) == {"ABC": rl.InstrumentRiskLimits(max_outstanding_amount=150.0)}
    ok(place(alice, "ABC", BUY, 10.0, 10))
    breached(place(alice, "ABC", BUY, 10.0, 1), "max_outstanding_quantity")
    ok(set_user(alice))
    breached(place(alice, "ABC", BUY, 10.0, 6), "max_outstanding_amount")  # 100 + 60 > 150


@pytest.mark.xdist_group("heavy")
@pytest.mark.parametrize(
    "limit",
    ["user max_outstanding_quantity", "max_outstanding_quantity", "max_outstanding_amount", "order_quantity"],
)
def test_two_connections_racing_never_both_slip_under_a_limit(risk_limits: Exchange, limit: str) -> None:
    risk_limits.create_instrument("ABC")
    watch = watcher(risk_limits)
    racers = [risk_limits.gateway("alice") for _ in range(RACERS)]
    if limit == "user max_outstanding_quantity":
        ok(set_user(racers[0], max_outstanding_quantity=RACE_ADMITS))
    elif limit == "max_outstanding_quantity":
        ok(set_instrument(racers[0], "ABC", max_outstanding_quantity=RACE_ADMITS))
    elif limit == "max_outstanding_amount":
        ok(set_instrument(racers[0], "ABC", max_outstanding_amount=RACE_ADMITS * 2.5))
    else:
        ok(set_instrument(racers[0], "ABC", order_quantity_rolling_limit=rolling(RACE_ADMITS, 3600)))
    requests = [
        [
            ex.InsertOrderRequest(instrument_symbol="ABC", side=BUY, price=2.5, quantity=1)
            for _ in range(RACE_INSERTS)
        ]
        for _ in racers
    ]
    start = threading.Barrier(RACERS)
    answers: list[list[Message]] = [[] for _ in racers]
    failures: list[str] = []

    def race(index: int) -> None:
        try:
            client = racers[index]
            start.wait(TIMEOUT)
            client.send(*requests[index])
            answers[index] = [client.receive() for _ in range(RACE_INSERTS)]
        except Exception as exc:
            failures.append(f"racer {index}: {exc!r}")

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    accepted = []
    for answer in (a for racer in answers for a in racer):
        assert isinstance(answer, ex.InsertOrderResponse)
        if answer.error_message:
            assert "breached" in answer.error_message, answer.error_message
        else:
            accepted.append(answer.order_id)
    assert len(accepted) == RACE_ADMITS
    inserted = [e for e in until_barrier(watch) if isinstance(e, ob.OnOrderInserted)]
    assert sorted(e.order_id for e in inserted) == sorted(accepted)


@pytest.mark.xdist_group("heavy")
def test_create_then_set_limits_at_once_in_parallel(risk_limits: Exchange) -> None:
    pairs = [
        (risk_limits.admin(), risk_limits.gateway(user))
        for user in ("alice", "bob", "carol", "dave")[:CLIENTS]
    ]

    def limit(trader: SyncClient, symbol: str, n: int) -> str:
        return set_instrument(trader, symbol, max_outstanding_quantity=n + 1).error_message

    assert create_then_at_once(pairs, CREATIONS, limit) == []
    for _, trader in pairs:
        assert len(get_instruments(trader)) == CREATIONS // CLIENTS
