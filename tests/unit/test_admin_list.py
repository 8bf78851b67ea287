"""Admin's list of instruments: ListPage (one page from the order book's books) and the handler's paging."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from google.protobuf.message import Message

from optivex.admin.component import MAX_LIST_BYTES, RECONNECTED, AdminComponent, ListPage
from optivex.app.component import Reply
from optivex.app.dependents import Link, LinkError, Unavailable
from optivex.instruments import MAX_DESCRIPTION
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH


def book(
    book_id: int, tick_size: float, timestamp: int, instrument: common_pb2.Instrument | None = None
) -> ob.OnOrderBookCreated:
    event = ob.OnOrderBookCreated(order_book_id=book_id, tick_size=tick_size, timestamp=timestamp)
    if instrument is not None:
        event.instrument.CopyFrom(instrument)
    return event


def test_instruments_in_order_bare_books_left_out() -> None:
    a = common_pb2.Instrument(symbol="A", description="a", currency="EUR", multiplier=2.5)
    page = ListPage(7)
    assert page.add([book(1, 1.2345, 10, a), book(2, 0.01, 11)])  # book 2 is bare
    assert page.add([book(3, 0.0001, 12, common_pb2.Instrument(symbol="B"))])
    response = page.response
    assert (response.request_id, response.error_message, response.more) == (7, "", False)
    assert [
        (e.instrument.symbol, e.order_book_id, e.created_timestamp, e.tick_size) for e in response.instruments
    ] == [
        ("A", 1, 10, 1.2345),
        ("B", 3, 12, 0.0001),
    ]
    assert response.instruments[0].instrument == a
    assert page.size == sum(e.ByteSize() + 4 for e in response.instruments)  # bare books count nothing


def test_a_page_is_cut_when_the_next_entry_does_not_fit() -> None:
    count = 1000
    books = [
        book(n, 0.01, n, common_pb2.Instrument(symbol=f"S{n}", description="\u20ac" * MAX_DESCRIPTION))
        for n in range(1, count + 1)
    ]
    pages = []
    rest = books
    while True:
        page = ListPage(1)
        full = not page.add(rest)
        response = page.response
        assert response.more == full
        assert response.ByteSize() + 4 <= MAX_FRAME_LENGTH
        assert response.instruments, "a page without entries would never end"
        pages.append(response)
        if not full:
            break
        after = response.instruments[-1].order_book_id
        rest = [b for b in books if b.order_book_id > after]
    assert len(pages) == 4  # 3 bytes a character: about 320 entries a page
    assert all(p.ByteSize() > MAX_LIST_BYTES * 0.99 for p in pages[:-1])  # cut only when full
    assert [e.order_book_id for p in pages for e in p.instruments] == list(range(1, count + 1))


def test_a_full_page_takes_no_more() -> None:
    page = ListPage(1)
    big = common_pb2.Instrument(symbol="X", description="\u20ac" * MAX_DESCRIPTION)
    assert not page.add([book(n, 0.01, n, big) for n in range(1, 400)])
    held = len(page.response.instruments)
    assert not page.add([book(400, 0.01, 400, big)])
    assert len(page.response.instruments) == held
    assert page.add([book(401, 0.01, 401)])  # a bare book takes no room


class FakeOrderBook:
    """Answers ListBooksRequests from scripted pages, the link's connection count renewed where told."""

    def __init__(self, pages: Sequence[ob.ListBooksResponse | LinkError], renew_before: int = -1) -> None:
        self.pages = pages
        self.renew_before = renew_before
        self.asked: list[int] = []
        self.connections = 1

    async def request(self, message: ob.ListBooksRequest, expect: type[ob.ListBooksResponse]) -> Message:
        if len(self.asked) == self.renew_before:
            self.connections += 1
        self.asked.append(message.after_order_book_id)
        page = self.pages[len(self.asked) - 1]
        if isinstance(page, LinkError):
            raise page
        return page


class FakeReply:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.errors: list[str] = []

    def send(self, response: Message) -> None:
        self.sent.append(response)

    def error(self, text: str) -> None:
        self.errors.append(text)


def list_with(order_book: FakeOrderBook, after: int = 0) -> FakeReply:
    admin = AdminComponent.__new__(AdminComponent)  # only the handler and its link are exercised
    admin.order_book = cast(Link, order_book)
    reply = FakeReply()
    asyncio.run(
        admin.list_instruments(
            cast(Reply, reply), admin_pb2.ListInstrumentsRequest(request_id=5, after_order_book_id=after)
        )
    )
    return reply


def instrument_book(book_id: int) -> ob.OnOrderBookCreated:
    return book(book_id, 0.01, book_id, common_pb2.Instrument(symbol=f"S{book_id}"))


def test_the_handler_reads_the_order_books_pages_until_they_end() -> None:
    order_book = FakeOrderBook(
        [
            ob.ListBooksResponse(books=[instrument_book(4), book(5, 0.01, 5)], more=True),
            ob.ListBooksResponse(books=[book(6, 0.01, 6)], more=True),  # bare books only
            ob.ListBooksResponse(books=[instrument_book(7)]),
        ]
    )
    reply = list_with(order_book, 3)
    assert order_book.asked == [3, 5, 6]
    assert reply.errors == []
    [response] = reply.sent
    assert isinstance(response, admin_pb2.ListInstrumentsResponse)
    assert (response.request_id, response.more) == (5, False)
    assert [e.order_book_id for e in response.instruments] == [4, 7]


def test_a_page_read_over_two_connections_is_refused() -> None:
    pages = [ob.ListBooksResponse(books=[instrument_book(1)], more=True), ob.ListBooksResponse()]
    reply = list_with(FakeOrderBook(pages, renew_before=1))
    assert (reply.sent, reply.errors) == ([], [RECONNECTED])
    # The connection renewed before the first page: nothing mixed, the page is answered.
    pages = [ob.ListBooksResponse(books=[instrument_book(1)])]
    assert len(list_with(FakeOrderBook(pages, renew_before=0)).sent) == 1


def test_the_order_books_and_the_links_errors_are_the_answer() -> None:
    pages: list[ob.ListBooksResponse | LinkError] = [
        ob.ListBooksResponse(books=[instrument_book(1)], more=True),
        ob.ListBooksResponse(error_message="after_order_book_id -1 is negative"),
    ]
    reply = list_with(FakeOrderBook(pages))
    assert (reply.sent, reply.errors) == ([], ["after_order_book_id -1 is negative"])
    reply = list_with(FakeOrderBook([Unavailable("order book")]))
    assert (reply.sent, reply.errors) == ([], ["order book unavailable; the request was not carried out"])
