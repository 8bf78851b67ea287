"""Admin's list of instruments (the ListInstruments extension, proto/admin.proto)."""

from __future__ import annotations

import pytest

from optivex.admin.component import MAX_LIST_BYTES
from optivex.app.auth import NOT_LOGGED_IN
from optivex.app.dependents import LINK_WAIT
from optivex.instruments import MAX_DESCRIPTION
from optivex.orderbook.component import MAX_BOOKS_PER_RESPONSE
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob

from . import test_admin  # as a module: its tests are not collected twice
from .helpers import BUY, TIMEOUT, Exchange, SyncClient


def list_page(
    client: SyncClient, after: int = 0, timeout: float = TIMEOUT
) -> admin_pb2.ListInstrumentsResponse:
    response = client.request(admin_pb2.ListInstrumentsRequest(after_order_book_id=after), timeout=timeout)
    assert isinstance(response, admin_pb2.ListInstrumentsResponse)
    return response


def listed(client: SyncClient, timeout: float = TIMEOUT) -> list[admin_pb2.ListedInstrument]:
    """The whole list, in one page (the tests that use it list far less than a page)."""
    response = list_page(client, timeout=timeout)
    assert (response.error_message, response.more) == ("", False), response
    return list(response.instruments)


def test_empty_list(exchange: Exchange) -> None:
    response = list_page(exchange.admin())
    assert (response.error_message, response.more, list(response.instruments)) == ("", False, [])


def test_every_created_instrument_is_listed_in_creation_order(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    admin = exchange.admin()
    ticks = {"Z.TICK": 0.0001, "B": 0.05, "A-1": 1.2345, "C_": 100.0, "z": 0.0003}
    created = {}
    for n, (symbol, tick) in enumerate(ticks.items()):
        if n == 2:
            assert exchange.create_book(0.01) == 3  # a bare book, between two instruments: not listed
        response = test_admin.create(
            admin, symbol, tick, description=f"d {symbol}", currency="EUR", multiplier=n
        )
        assert response.error_message == ""
        created[symbol] = response
    events = {}
    for _ in range(len(ticks) + 1):
        event = watcher.receive_as(ob.OnOrderBookCreated)
        events[event.order_book_id] = event
    # Any logged-in user may list, not only the `admins` of the config.
    entries = listed(exchange.admin("alice"))
    assert [e.instrument.symbol for e in entries] == list(ticks)
    assert [e.order_book_id for e in entries] == [1, 2, 4, 5, 6]
    for n, e in enumerate(entries):
        symbol = e.instrument.symbol
        assert e.tick_size == ticks[symbol]  # exactly the double that was sent
        assert (e.order_book_id, e.created_timestamp) == (
            created[symbol].order_book_id,
            created[symbol].created_timestamp,
        )
        event = events[e.order_book_id]
        assert (e.tick_size, e.created_timestamp, e.instrument) == (
            event.tick_size,
            event.timestamp,
            event.instrument,
        )
        assert (e.instrument.description, e.instrument.currency, e.instrument.multiplier) == (
            f"d {symbol}",
            "EUR",
            n,
        )


BACKLOG = 200
"""Inserts sent to the order book before each create: work it still has queued when the create is
confirmed, so a list from anything but the order book's own answer afterwards (a cache of an earlier
list, a follower's feed that did not wait for its barrier) would miss the instrument."""


def test_a_confirmed_instrument_is_listed_at_once_on_another_connection(exchange: Exchange) -> None:
    """Created through admin or straight on the order book (on a connection admin knows nothing of),
    a confirmed instrument is in the very next list, asked on another connection."""
    admin = exchange.admin()
    book = exchange.order_book()  # not logged in: it gets its responses, no events
    bare = exchange.create_book()
    lister = exchange.admin("bob")
    backlog = [
        ob.InsertOrderRequest(order_book_id=bare, side=BUY, price=1.0, quantity=1) for _ in range(BACKLOG)
    ]
    for n in range(40):
        symbol = f"S{n}"
        book.send(*backlog)
        if n % 2:
            response = test_admin.create(admin, symbol, 0.25)
            assert response.error_message == ""
            book_id, timestamp = response.order_book_id, response.created_timestamp
        else:
            direct = book.request(
                ob.CreateOrderBookRequest(tick_size=0.25, instrument=common_pb2.Instrument(symbol=symbol)),
                check=True,
            )
            assert isinstance(direct, ob.CreateOrderBookResponse)
            book_id, timestamp = direct.order_book_id, direct.timestamp
        entries = listed(lister)
        assert len(entries) == n + 1, f"{symbol} confirmed but not listed"
        last = entries[-1]
        assert (last.instrument.symbol, last.order_book_id, last.created_timestamp, last.tick_size) == (
            symbol,
            book_id,
            timestamp,
            0.25,
        )
        book.pending.clear()  # the inserts' responses


def test_listing_before_login_is_refused(exchange: Exchange) -> None:
    exchange.create_instrument("ABC")
    client = exchange.connect("admin")
    response = list_page(client)
    assert (response.error_message, list(response.instruments)) == (NOT_LOGGED_IN, [])
    client.login("alice", "alice")
    assert [e.instrument.symbol for e in listed(client)] == ["ABC"]


def test_after_the_order_book_restarts_the_list_is_the_new_days(exchange: Exchange) -> None:
    admin = exchange.admin()
    for symbol in ("A", "B"):
        assert test_admin.create(admin, symbol).error_message == ""
    assert [e.instrument.symbol for e in listed(admin)] == ["A", "B"]
    exchange.deployment.stop_component("order_book")
    down = list_page(exchange.admin(), timeout=LINK_WAIT + TIMEOUT)
    assert (down.error_message, list(down.instruments)) == (test_admin.UNAVAILABLE, [])
    exchange.deployment.start_component("order_book")
    assert listed(admin, timeout=LINK_WAIT + TIMEOUT) == []  # waits for the link: the new, empty day
    response = test_admin.create_waiting(admin, "B")
    assert response.error_message == ""
    entries = listed(admin)
    assert [(e.instrument.symbol, e.order_book_id, e.created_timestamp) for e in entries] == [
        ("B", 1, response.created_timestamp)
    ]


ORDER_BOOK_PAGES = 4
"""Pages of the order book's books behind admin's one page in the test below."""


def test_one_page_gathers_instruments_from_several_pages_of_the_order_books_books(exchange: Exchange) -> None:
    """More books than one ListBooksResponse holds (ORDER_BOOK_PAGES of them, a run of bare books longer
    than a page among them): admin reads on until its own page is full or the books end."""
    client = exchange.order_book()
    symbols = [f"S{i}" for i in range(ORDER_BOOK_PAGES * MAX_BOOKS_PER_RESPONSE // 2)]
    requests = [
        ob.CreateOrderBookRequest(tick_size=0.01, instrument=common_pb2.Instrument(symbol=symbol))
        for symbol in symbols[: len(symbols) // 2]
    ]
    requests += [ob.CreateOrderBookRequest(tick_size=0.01) for _ in range(MAX_BOOKS_PER_RESPONSE + 1)]
    requests += [
        ob.CreateOrderBookRequest(tick_size=0.05, instrument=common_pb2.Instrument(symbol=symbol))
        for symbol in symbols[len(symbols) // 2 :]
    ]
    client.send(*requests)
    ids = []
    for request in requests:
        response = client.receive_as(ob.CreateOrderBookResponse)
        assert response.error_message == ""
        if request.HasField("instrument"):
            ids.append(response.order_book_id)
    entries = listed(exchange.admin())
    assert [e.instrument.symbol for e in entries] == symbols
    assert [e.order_book_id for e in entries] == ids
    assert ids[len(ids) // 2] - ids[len(ids) // 2 - 1] == MAX_BOOKS_PER_RESPONSE + 2
    half = len(symbols) // 2
    assert [e.tick_size for e in entries] == [0.01] * half + [0.05] * (len(symbols) - half)
    rest = list_page(exchange.admin(), ids[half - 1])  # from the last instrument before the bare run
    assert (rest.more, [e.order_book_id for e in rest.instruments]) == (False, ids[half:])


@pytest.mark.xdist_group("heavy")
def test_a_long_list_comes_in_pages_that_each_fit_a_frame(exchange: Exchange) -> None:
    admin = exchange.admin()
    count = 300
    description = "\U0001d11e" * MAX_DESCRIPTION  # 4 bytes each in UTF-8: the longest entries
    requests = [
        admin_pb2.CreateInstrumentRequest(
            instrument=common_pb2.Instrument(symbol=f"S{i}", description=description), tick_size=0.01
        )
        for i in range(count)
    ]
    admin.send(*requests)
    for _ in requests:
        assert admin.receive_as(admin_pb2.CreateInstrumentResponse).error_message == ""
    pages = []
    after = 0
    while True:
        page = list_page(admin, after)
        assert page.error_message == ""
        assert page.ByteSize() <= MAX_LIST_BYTES + 64
        pages.append(page)
        if not page.more:
            break
        after = page.instruments[-1].order_book_id
    assert len(pages) == 2  # about 240 of these entries fit in one page
    ids = [e.order_book_id for page in pages for e in page.instruments]
    assert ids == list(range(1, count + 1))
    assert all(e.instrument.description == description for page in pages for e in page.instruments)
    assert list(list_page(admin, count).instruments) == []
