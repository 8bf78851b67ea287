"""Section 4 of the contract: admin creates instruments and their books."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from optivex.app.dependents import LINK_WAIT, REQUEST_DEADLINE
from optivex.deploy import default_deployment_path, start_suite
from optivex.instruments import MAX_DESCRIPTION
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import TIMEOUT, Exchange, SyncClient


def create(
    client: SyncClient, symbol: str, tick: float = 0.01, **fields: Any
) -> admin_pb2.CreateInstrumentResponse:
    response = client.request(
        admin_pb2.CreateInstrumentRequest(
            instrument=common_pb2.Instrument(symbol=symbol, **fields), tick_size=tick
        )
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse)
    return response


def test_create_instrument_creates_its_book(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    admin = exchange.admin()
    before = time.time_ns()
    response = create(admin, "ABC.L_1-x", 0.05, description="A B C", currency="GBP", multiplier=10)
    assert response.error_message == ""
    assert response.order_book_id == 1
    assert before <= response.created_timestamp <= time.time_ns()
    event = watcher.receive_as(ob.OnOrderBookCreated)
    assert (event.order_book_id, event.tick_size, event.timestamp) == (1, 0.05, response.created_timestamp)
    instrument = event.instrument
    assert (instrument.symbol, instrument.description, instrument.currency, instrument.multiplier) == (
        "ABC.L_1-x",
        "A B C",
        "GBP",
        10,
    )
    assert create(admin, "DEF").order_book_id == 2


@pytest.mark.parametrize("symbol", ["", "A" * 33, "AB C", "AB/C", "ÄBC", "AB\nC", "A+B"])
def test_invalid_symbols_are_rejected(exchange: Exchange, symbol: str) -> None:
    admin = exchange.admin()
    response = create(admin, symbol)
    assert "symbol" in response.error_message
    assert (response.order_book_id, response.created_timestamp) == (0, 0)


def test_symbol_limits_and_case(exchange: Exchange) -> None:
    admin = exchange.admin()
    assert create(admin, "A" * 32).error_message == ""
    assert create(admin, "a").error_message == ""
    assert create(admin, "A").error_message == ""  # case-sensitive: a different symbol
    assert "exists" in create(admin, "a").error_message


@pytest.mark.parametrize("tick", [0.0, -0.01, 0.00001, 0.30000000000000004, float("nan"), float("inf")])
def test_invalid_tick_sizes(exchange: Exchange, tick: float) -> None:
    response = create(exchange.admin(), "ABC", tick)
    assert "tick" in response.error_message


def test_multiplier(exchange: Exchange) -> None:
    admin = exchange.admin()
    assert "multiplier" in create(admin, "NEG", multiplier=-1).error_message
    assert "multiplier" in create(admin, "NAN", multiplier=float("nan")).error_message
    assert create(admin, "ZERO", multiplier=0).error_message == ""


def test_missing_instrument_is_an_error(exchange: Exchange) -> None:
    response = exchange.admin().request(admin_pb2.CreateInstrumentRequest(tick_size=0.01))
    assert isinstance(response, admin_pb2.CreateInstrumentResponse) and response.error_message


def test_failed_create_changes_nothing(exchange: Exchange) -> None:
    admin = exchange.admin()
    assert create(admin, "bad symbol").error_message
    assert create(admin, "OK", 0.00001).error_message
    assert create(admin, "OK").order_book_id == 1
    watcher = exchange.order_book("watcher")
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == 1


def test_racing_admins_create_a_symbol_once(exchange: Exchange) -> None:
    admins = [exchange.admin(user) for user in ("admin", "alice", "bob", "carol")]
    barrier = threading.Barrier(len(admins))
    results: list[admin_pb2.CreateInstrumentResponse] = []

    def race(client: SyncClient) -> None:
        barrier.wait()
        results.append(create(client, "RACE"))

    threads = [threading.Thread(target=race, args=(a,)) for a in admins]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert len(results) == len(admins)
    winners = [r for r in results if not r.error_message]
    assert len(winners) == 1
    assert all("exists" in r.error_message for r in results if r.error_message)


def test_requests_are_answered_in_order(exchange: Exchange) -> None:
    admin = exchange.admin()
    requests = [
        admin_pb2.CreateInstrumentRequest(
            request_id=100 + i, instrument=common_pb2.Instrument(symbol=f"S{i}"), tick_size=0.01
        )
        for i in range(50)
    ]
    admin.send(*requests)
    responses = [admin.receive_as(admin_pb2.CreateInstrumentResponse) for _ in requests]
    assert [r.request_id for r in responses] == [100 + i for i in range(50)]
    assert [r.order_book_id for r in responses] == list(range(1, 51))


def test_admins_list_restricts_who_creates(deploy: object, tmp_path: Path) -> None:
    config = json.loads(default_deployment_path().read_text())
    for component in config["components"]:
        if "admin" in component["protocols"]:
            component["config"]["admins"] = ["admin"]
    path = tmp_path / "deployment_config.json"
    path.write_text(json.dumps(config))
    with start_suite("order_book", tmp_path / "run", path) as deployment, Exchange(deployment) as ex:
        assert "admins" in create(ex.admin("alice"), "ABC").error_message
        assert create(ex.admin("admin"), "ABC").error_message == ""


# The order book unreachable, silent, or flooded (app.dependents: the unavailable rule, deadlines, bounds).


def create_waiting(client: SyncClient, symbol: str) -> admin_pb2.CreateInstrumentResponse:
    """A create whose answer may take LINK_WAIT (the link is down or coming up)."""
    response = client.request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01),
        timeout=LINK_WAIT + TIMEOUT,
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse)
    return response


UNAVAILABLE = "order book unavailable; the request was not carried out"


def test_order_book_down_is_answered_unavailable_then_admin_works_again(exchange: Exchange) -> None:
    admin = exchange.admin()
    assert create(admin, "A").order_book_id == 1
    exchange.deployment.stop_component("order_book")
    # Reconnecting. A fresh login is a round trip through admin's loop: it has seen the link close by then.
    response = create_waiting(exchange.admin(), "B")
    assert (response.error_message, response.order_book_id, response.created_timestamp) == (UNAVAILABLE, 0, 0)
    # Not yet connected: admin started while the order book is down still accepts within 2 s.
    exchange.deployment.stop_component("admin")
    exchange.deployment.start_component("admin")
    assert create_waiting(exchange.admin(), "B").error_message == UNAVAILABLE
    # The order book back (a new day): the next request waits for the link and is carried out.
    exchange.deployment.start_component("order_book")
    again = create_waiting(exchange.admin(), "A")
    assert (again.error_message, again.order_book_id) == ("", 1)


def test_silent_order_book_is_answered_within_the_deadline(exchange: Exchange) -> None:
    admin = exchange.admin()
    assert create(admin, "A").order_book_id == 1
    pid = exchange.deployment.component("order_book").pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        response = create(admin, "B")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.error_message == (
        f"order book did not answer within {REQUEST_DEADLINE:g} s; "
        "the request may or may not have been carried out"
    )
    assert (response.order_book_id, response.created_timestamp) == (0, 0)
    # The order book carries out B once it runs again; admin drops that late answer and goes on.
    assert create(admin, "C").order_book_id == 3
    assert "exists" in create(admin, "B").error_message


@pytest.mark.xdist_group("heavy")
def test_a_burst_of_30000_creates_in_one_write_is_answered_and_keeps_the_link(exchange: Exchange) -> None:
    count = 30_000
    description = "d" * MAX_DESCRIPTION  # the largest requests: about 31 MB in one write
    flood = exchange.admin()
    other = exchange.admin("alice")
    requests = [
        admin_pb2.CreateInstrumentRequest(
            request_id=i + 1,
            instrument=common_pb2.Instrument(symbol=f"S{i}", description=description),
            tick_size=0.01,
        )
        for i in range(count)
    ]
    data = b"".join(flood.session.encode(r) for r in requests)
    writer = threading.Thread(target=flood.send_raw, args=(data,))
    writer.start()  # one write, read back while it goes out
    try:
        first = flood.receive_as(admin_pb2.CreateInstrumentResponse)
        assert (first.request_id, first.error_message) == (1, "")
        # Another admin client is served in the middle of the burst.
        assert create(other, "OTHER").error_message == ""
        errors = []
        for i in range(2, count + 1):
            response = flood.receive_as(admin_pb2.CreateInstrumentResponse)
            assert response.request_id == i
            if response.error_message:
                errors.append(response.error_message)
    finally:
        writer.join(TIMEOUT)
    assert errors == []
    assert create(other, "LAST").order_book_id == count + 2
    admin_log = "\n".join(p.read_text() for p in exchange.deployment.component("admin").log_files())
    assert "lost the connection to the order book" not in admin_log
    assert "slow consumer" not in exchange.deployment.logs()
