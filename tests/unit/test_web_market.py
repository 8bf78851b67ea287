"""The web page's market model (optivex.web.market): what it keeps, and what each viewer is sent."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from optivex.web.market import (
    BUY,
    SELL,
    Listed,
    Listing,
    Market,
    Trade,
    Viewer,
    decimals_of,
    format_price,
)


class Page:
    """What the page's script does with the messages (static/app.js's apply), in Python."""

    def __init__(self) -> None:
        self.connected = False
        self.hidden = 0
        self.instruments: dict[str, dict[str, Any]] = {}
        self.messages = 0

    def apply(self, text: str | None) -> None:
        if text is None:
            return
        message = json.loads(text)
        self.messages += 1
        if message["t"] == "s":
            self.instruments.clear()
        self.connected = message["c"]
        self.hidden = message["h"]
        for symbol, entry in message["i"].items():
            state = self.instruments.get(symbol)
            if state is None:
                assert "l" in entry, f"{symbol} is new to the page but came without its listing"
                state = self.instruments[symbol] = {"listing": entry["l"], "book": None, "trades": []}
            if "b" in entry:
                state["book"] = entry["b"]
            if "tr" in entry:
                state["trades"] = list(entry["tr"]) if entry.get("r") else state["trades"] + entry["tr"]

    def trade_ids(self, symbol: str, last: int) -> list[int]:
        return [t[0] for t in self.instruments[symbol]["trades"]][-last:]


def listing(symbol: str = "ABC", book_id: int = 1, tick: int = 100, created: int = 1) -> Listing:
    return Listing(symbol, book_id, tick, created)


def trade(trade_id: int, price: int = 100_000, quantity: int = 1, side: int = BUY) -> Trade:
    return Trade(trade_id, 1_000_000_000 * trade_id, price, quantity, side)


def test_decimals_and_prices_are_exact() -> None:
    assert [decimals_of(t) for t in (1, 10, 100, 500, 2500, 10_000, 50_000)] == [4, 3, 2, 2, 2, 0, 0]
    assert format_price(100_500, 2) == "10.05"
    assert format_price(100_000, 0) == "10"
    assert format_price(123_456, 2) == "12.3456"  # off the tick's grid: every decimal shown
    assert format_price(-5, 4) == "-0.0005"
    assert format_price(2**53 - 1, 4) == "900719925474.0991"


def test_a_viewer_gets_a_snapshot_then_only_what_changed() -> None:
    market = Market(depth=2)
    page, viewer = Page(), Viewer()
    assert market.listed(listing("ABC", 1, 500)) is Listed.NEW
    assert market.listed(listing("XYZ", 2, 100)) is Listed.NEW
    market.set_connected(True)
    first = market.update(viewer)
    assert first is not None and json.loads(first)["t"] == "s"
    page.apply(first)
    assert page.connected and set(page.instruments) == {"ABC", "XYZ"}
    assert page.instruments["ABC"]["listing"] == {"id": 1, "tick": 500, "d": 2}
    assert market.update(viewer) is None  # nothing changed

    market.book("ABC", [(100_000, 5), (99_500, 1), (99_000, 9)], [(100_500, 3)])
    text = market.update(viewer)
    assert text is not None
    message = json.loads(text)
    assert message["t"] == "u" and list(message["i"]) == ["ABC"]  # XYZ did not change
    assert message["i"]["ABC"] == {"b": {"b": [["10.00", 5], ["9.95", 1]], "a": [["10.05", 3]]}}
    page.apply(text)

    market.book("ABC", [(100_000, 5), (99_500, 1)], [(100_500, 3)])  # the same shown levels
    assert market.update(viewer) is None
    market.trade("XYZ", trade(7, 12_345, 4, SELL))
    message = json.loads(market.update(viewer) or "")
    assert message["i"] == {"XYZ": {"tr": [[7, 7000, "1.2345", 4, "S"]]}}


def test_changes_between_two_updates_are_coalesced() -> None:
    market = Market()
    market.listed(listing())
    viewer = Viewer()
    market.update(viewer)
    for quantity in range(1, 1001):
        market.book("ABC", [(100_000, quantity)], [])
    message = json.loads(market.update(viewer) or "")
    assert message["i"]["ABC"]["b"] == {"b": [["10.00", 1000]], "a": []}
    assert market.update(viewer) is None


def test_trades_live_and_loaded_merge_by_id() -> None:
    market = Market(trades_kept=5)
    market.listed(listing())
    page, viewer = Page(), Viewer()
    market.trade("ABC", trade(8))
    market.trade("ABC", trade(9))
    page.apply(market.update(viewer))
    assert page.trade_ids("ABC", 5) == [8, 9]
    market.trades_loaded("ABC", [trade(i) for i in range(3, 10)])  # overlaps the live ones
    text = market.update(viewer)
    assert text is not None and json.loads(text)["i"]["ABC"]["r"] is True  # older trades came: a new tape
    page.apply(text)
    assert page.trade_ids("ABC", 5) == [5, 6, 7, 8, 9]
    market.trades_loaded("ABC", [trade(1), trade(2)])  # older than everything kept: nothing
    assert market.update(viewer) is None
    market.trade("ABC", trade(10))
    text = market.update(viewer)
    assert text is not None and "r" not in json.loads(text)["i"]["ABC"]
    page.apply(text)
    assert page.trade_ids("ABC", 5) == [6, 7, 8, 9, 10]


def test_a_reconnection_forgets_what_info_no_longer_has() -> None:
    market = Market()
    market.listed(listing("ABC", 1))
    market.listed(listing("XYZ", 2))
    page, viewer = Page(), Viewer()
    page.apply(market.update(viewer))
    assert market.listed(listing("ABC", 1)) is Listed.SAME
    market.retain({"ABC"})
    text = market.update(viewer)
    assert text is not None and json.loads(text)["t"] == "s"
    page.apply(text)
    assert set(page.instruments) == {"ABC"}


def test_an_instrument_info_no_longer_knows_leaves_the_page() -> None:
    market = Market()
    market.listed(listing("ABC", 1))
    market.listed(listing("XYZ", 2))
    page, viewer = Page(), Viewer()
    page.apply(market.update(viewer))
    market.forget("ABC")
    market.forget("NONE")
    text = market.update(viewer)
    assert text is not None and json.loads(text)["t"] == "s"
    page.apply(text)
    assert set(page.instruments) == {"XYZ"}
    assert market.listed(listing("ABC", 3)) is Listed.NEW


def test_a_new_day_forgets_every_instrument() -> None:
    market = Market()
    market.listed(listing("ABC", 1, created=1))
    market.listed(listing("XYZ", 2, created=2))
    market.trade("ABC", trade(1))
    page, viewer = Page(), Viewer()
    page.apply(market.update(viewer))
    assert market.listed(listing("ABC", 1, created=10)) is Listed.NEW_DAY  # created again
    page.apply(market.update(viewer))
    assert set(page.instruments) == {"ABC"} and page.instruments["ABC"]["trades"] == []
    assert market.listed(listing("NEW", 1, created=11)) is Listed.NEW_DAY  # book id 1 again: another day
    page.apply(market.update(viewer))
    assert set(page.instruments) == {"NEW"}


def test_instruments_beyond_the_bound_are_only_counted() -> None:
    market = Market(max_instruments=2)
    assert [market.listed(listing(s, i)) for i, s in enumerate("ABC", 1)] == [
        Listed.NEW,
        Listed.NEW,
        Listed.HIDDEN,
    ]
    market.trade("C", trade(1))
    page = Page()
    page.apply(market.update(Viewer()))
    assert set(page.instruments) == {"A", "B"} and page.hidden == 1
    assert market.listed(listing("C", 3)) is Listed.HIDDEN


operations = st.lists(
    st.one_of(
        st.tuples(st.just("live"), st.integers(1, 60)),
        st.tuples(st.just("load"), st.lists(st.integers(1, 60), max_size=20)),
        st.tuples(st.just("book"), st.lists(st.tuples(st.integers(1, 50), st.integers(1, 9)), max_size=6)),
        st.tuples(st.just("update"), st.integers(0, 2)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 8))
def test_viewers_updated_at_any_moments_show_what_the_market_holds(ops: list[Any], kept: int) -> None:
    """Whatever order trades come in (live, loaded, both), the tape is the latest `kept` of them by id,
    and a page fed the updates of any viewer, sent at any moments, shows that tape and the book."""
    market = Market(depth=3, trades_kept=kept)
    market.listed(listing())
    pages = [(Page(), Viewer()) for _ in range(3)]
    seen: set[int] = set()
    for op, arg in ops:
        if op == "live":
            market.trade("ABC", trade(arg))
            seen.add(arg)
        elif op == "load":
            market.trades_loaded("ABC", [trade(i) for i in sorted(set(arg))])
            seen.update(arg)
        elif op == "book":
            prices = sorted({p for p, _ in arg}, reverse=True)
            market.book("ABC", [(p * 100, 1) for p in prices], [])
        else:
            page, viewer = pages[arg]
            page.apply(market.update(viewer))
    tape = [t.trade_id for t in market.instruments["ABC"].trades]
    assert tape == sorted(tape) and len(set(tape)) == len(tape) and len(tape) <= kept
    # The tape holds the newest trades among those it was given, except ones older than a full tape.
    assert set(tape) <= seen and (not seen or max(seen) in tape)
    for page, viewer in pages:
        page.apply(market.update(viewer))
        assert page.trade_ids("ABC", kept) == tape
        shown = page.instruments["ABC"]["book"]
        assert shown == json.loads(market.instruments["ABC"].book_text())
