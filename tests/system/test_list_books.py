"""The order book's list of books (the ListBooksRequest extension, proto/order_book.proto)."""

from __future__ import annotations

import pytest

from optivex.instruments import MAX_CURRENCY, MAX_DESCRIPTION
from optivex.orderbook.component import MAX_BOOKS_BYTES, MAX_BOOKS_PER_RESPONSE
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH

from .helpers import Exchange, SyncClient


def list_books(client: SyncClient, after: int = 0) -> ob.ListBooksResponse:
    response = client.request(ob.ListBooksRequest(after_order_book_id=after))
    assert isinstance(response, ob.ListBooksResponse)
    return response


def every_page(client: SyncClient) -> list[ob.ListBooksResponse]:
    """Every page of the list, from the first book, each checked to fit in one frame."""
    pages = []
    after = 0
    while True:
        page = list_books(client, after)
        assert page.error_message == ""
        assert len(page.books) <= MAX_BOOKS_PER_RESPONSE
        assert page.ByteSize() <= MAX_BOOKS_BYTES + 64 < MAX_FRAME_LENGTH
        pages.append(page)
        if not page.more:
            return pages
        assert page.books, "a page with more and no books would never end"
        after = page.books[-1].order_book_id


def create_books(client: SyncClient, requests: list[ob.CreateOrderBookRequest]) -> None:
    """Create books pipelined, each required to succeed (their responses come as events: no request_id)."""
    client.send(*requests)
    for _ in requests:
        assert client.receive_as(ob.CreateOrderBookResponse).error_message == ""


def test_an_empty_day_has_no_books(exchange: Exchange) -> None:
    response = list_books(exchange.order_book())
    assert (response.error_message, response.more, list(response.books)) == ("", False, [])


def test_bare_books_and_instruments_in_id_order_each_as_its_event(exchange: Exchange) -> None:
    watcher = exchange.order_book("watcher")
    client = exchange.order_book()  # not logged in: it may still list
    ticks = [0.0001, 0.05, 1.2345, 100.0, 0.0003]
    created = []
    for n, tick in enumerate(ticks):
        request = ob.CreateOrderBookRequest(tick_size=tick)
        if n % 2 == 0:  # books 1, 3 and 5 trade an instrument; 2 and 4 are bare
            request.instrument.CopyFrom(
                common_pb2.Instrument(symbol=f"S{n}", description=f"d{n}", currency="EUR", multiplier=n)
            )
        response = client.request(request, check=True)
        assert isinstance(response, ob.CreateOrderBookResponse)
        created.append(response)
    events = [watcher.receive_as(ob.OnOrderBookCreated) for _ in ticks]
    books = list(list_books(client).books)
    assert books == events
    assert [b.order_book_id for b in books] == [c.order_book_id for c in created] == [1, 2, 3, 4, 5]
    assert [b.timestamp for b in books] == [c.timestamp for c in created]
    assert [b.tick_size for b in books] == ticks  # exactly the doubles that were sent
    assert [b.instrument.symbol if b.HasField("instrument") else None for b in books] == [
        "S0",
        None,
        "S2",
        None,
        "S4",
    ]
    assert (books[2].instrument.description, books[2].instrument.currency) == ("d2", "EUR")
    assert books[4].instrument.multiplier == 4
    assert list(list_books(client, 2).books) == events[2:]
    assert list(list_books(client, 5).books) == []
    assert list(list_books(client, 2**62).books) == []


def test_a_negative_after_order_book_id_is_refused(exchange: Exchange) -> None:
    exchange.create_book()
    response = list_books(exchange.order_book(), -1)
    assert (response.error_message, list(response.books)) == ("after_order_book_id -1 is negative", [])


def test_a_book_confirmed_on_another_connection_is_listed_at_once(exchange: Exchange) -> None:
    lister = exchange.order_book()
    for n in range(1, 21):
        assert exchange.create_book() == n  # on the helper's own connection
        assert [b.order_book_id for b in list_books(lister).books] == list(range(1, n + 1))


def test_many_books_come_in_pages_of_the_count_bound(exchange: Exchange) -> None:
    client = exchange.order_book()
    count = 2 * MAX_BOOKS_PER_RESPONSE + 500
    create_books(client, [ob.CreateOrderBookRequest(tick_size=0.01) for _ in range(count)])
    pages = every_page(client)
    assert [len(p.books) for p in pages] == [MAX_BOOKS_PER_RESPONSE, MAX_BOOKS_PER_RESPONSE, 500]
    assert [b.order_book_id for p in pages for b in p.books] == list(range(1, count + 1))
    exact = list_books(client, count - MAX_BOOKS_PER_RESPONSE)  # exactly a page's worth left
    assert (len(exact.books), exact.more) == (MAX_BOOKS_PER_RESPONSE, False)


@pytest.mark.xdist_group("heavy")
def test_books_with_the_longest_instruments_come_in_pages_that_fit_a_frame(exchange: Exchange) -> None:
    client = exchange.order_book()
    count = 300
    description = "\U0001d11e" * MAX_DESCRIPTION  # 4 bytes each in UTF-8: the longest entries
    currency = "\U0001d11e" * MAX_CURRENCY
    create_books(
        client,
        [
            ob.CreateOrderBookRequest(
                tick_size=0.01,
                instrument=common_pb2.Instrument(
                    symbol=f"S{i}".ljust(32, "x"),
                    description=description,
                    currency=currency,
                    multiplier=1e300,
                ),
            )
            for i in range(count)
        ],
    )
    pages = every_page(client)
    assert len(pages) == 2  # about 235 of these entries fit in one page
    assert pages[0].ByteSize() > MAX_BOOKS_BYTES * 0.99  # cut only when full
    assert [b.order_book_id for p in pages for b in p.books] == list(range(1, count + 1))
    assert all(b.instrument.description == description for p in pages for b in p.books)
