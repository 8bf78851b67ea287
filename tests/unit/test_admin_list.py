"""admin.component.list_instruments: one page of the list from a mirror."""

from __future__ import annotations

from optivex.admin.component import MAX_LIST_BYTES, list_instruments
from optivex.feed.mirror import BookMirror, Instrument
from optivex.instruments import MAX_DESCRIPTION
from optivex.wire import MAX_FRAME_LENGTH


def test_instruments_in_creation_order_bare_books_left_out() -> None:
    mirror = BookMirror()
    mirror.apply_book_created(1, 12345, 10, Instrument("A", "a", "EUR", 2.5))
    mirror.apply_book_created(2, 100, 11)  # a bare book
    mirror.apply_book_created(3, 1, 12, Instrument("B"))
    response = list_instruments(mirror, 7, 0)
    assert (response.request_id, response.error_message, response.more) == (7, "", False)
    assert [
        (e.instrument.symbol, e.order_book_id, e.created_timestamp, e.tick_size) for e in response.instruments
    ] == [
        ("A", 1, 10, 1.2345),
        ("B", 3, 12, 0.0001),
    ]
    a = response.instruments[0].instrument
    assert (a.description, a.currency, a.multiplier) == ("a", "EUR", 2.5)
    assert [e.order_book_id for e in list_instruments(mirror, 8, 1).instruments] == [3]
    assert list(list_instruments(mirror, 9, 3).instruments) == []


def test_a_long_list_is_cut_to_fit_a_frame_and_pages_on() -> None:
    mirror = BookMirror()
    count = 1000
    for book_id in range(1, count + 1):
        mirror.apply_book_created(book_id, 1, book_id, Instrument(f"S{book_id}", "\u20ac" * MAX_DESCRIPTION))
    pages = []
    after = 0
    while True:
        page = list_instruments(mirror, 1, after)
        assert page.ByteSize() + 4 <= MAX_FRAME_LENGTH
        assert page.instruments, "a page without entries would never end"
        pages.append(page)
        if not page.more:
            break
        after = page.instruments[-1].order_book_id
    assert len(pages) == 4  # 3 bytes a character: about 320 entries a page
    assert all(p.ByteSize() > MAX_LIST_BYTES * 0.99 for p in pages[:-1])  # cut only when full
    assert [e.order_book_id for p in pages for e in p.instruments] == list(range(1, count + 1))
