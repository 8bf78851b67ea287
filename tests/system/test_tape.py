"""The day's trades so far (the tape): the order book's TradesRequest extension and info's, through the
deployment runner (proto/order_book.proto, proto/info.proto; orderbook/tape.py).

- order book: `test_a_book_s_trades_are_its_live_on_trade_messages_in_matching_order`,
  `test_paging_backwards_with_before_trade_id_and_more`, `test_max_trades_is_capped`,
  `test_an_unknown_book_and_bad_arguments_are_errors`, `test_a_book_without_trades_has_an_empty_tape`,
  `test_after_a_restart_the_tape_is_the_new_day_s`;
- info: `test_info_answers_with_the_live_trades_and_the_order_book_s_answer`,
  `test_two_info_connections_give_identical_answers`, `test_info_pages_as_the_order_book_does`,
  `test_info_errors_unknown_symbol_bad_arguments_and_before_login`,
  `test_a_late_joiner_subscribes_then_asks_and_misses_nothing`,
  `test_info_s_tape_after_the_order_book_restarted_is_the_new_day_s`,
  `test_info_answers_the_unavailable_rule_while_the_order_book_is_down`,
  `test_an_info_process_started_late_gives_the_same_answers` (issue 8 item 4: no state in info).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator

import pytest

from optivex.deploy import (
    ComponentSpec,
    Deployment,
    components_for_suite,
    default_deployment_path,
    load_deployment,
)
from optivex.proto import info_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, SELL, Exchange, SyncClient, insert, subscribe, until_barrier

CAP = 1_000
"""MAX_TRADES_PER_RESPONSE, as documented in proto/order_book.proto."""
LATE = "info_late"
"""A second info process, started once the day has traded."""


@pytest.fixture
def late_info(
    deploy_components: Callable[[Iterable[ComponentSpec], Collection[str]], Deployment],
) -> Iterator[Exchange]:
    """The info suite's deployment plus a second info process on the same order book, not yet started."""
    config = load_deployment(default_deployment_path())
    specs = [*components_for_suite(config, "info"), config.provider("info").derive(name=LATE)]
    with Exchange(deploy_components(specs, (LATE,))) as exchange:
        yield exchange


def book_trades(client: SyncClient, book: int, before: int = 0, max_trades: int = 0) -> ob.TradesResponse:
    return client.request(
        ob.TradesRequest(order_book_id=book, before_trade_id=before, max_trades=max_trades),
        expect=ob.TradesResponse,
    )


def info_trades(
    client: SyncClient, symbol: str, before: int = 0, max_trades: int = 0
) -> info_pb2.TradesResponse:
    return client.request(
        info_pb2.TradesRequest(instrument_symbol=symbol, before_trade_id=before, max_trades=max_trades),
        expect=info_pb2.TradesResponse,
    )


def trade(client: SyncClient, book: int, price: float, quantity: int, aggressor: int = BUY) -> list[int]:
    """A resting order, then one that takes it whole: one trade at `price`; its trade ids."""
    maker = SELL if aggressor == BUY else BUY
    assert not insert(client, book, maker, price, quantity).error_message
    response = insert(client, book, aggressor, price, quantity)
    assert not response.error_message and len(response.trade_ids) == 1, response
    return list(response.trade_ids)


def live_trades(listener: SyncClient) -> list[ob.OnTrade]:
    """The OnTrade events an order book listener holds so far (`until_barrier`)."""
    return [m for m in until_barrier(listener) if isinstance(m, ob.OnTrade)]


def as_info(t: ob.OnTrade, symbol: str) -> info_pb2.OnTrade:
    return info_pb2.OnTrade(
        trade_id=t.trade_id,
        instrument_symbol=symbol,
        timestamp=t.timestamp,
        price=t.price,
        quantity=t.quantity,
        aggressor_side=t.aggressor_side,
    )


def receive_trades(client: SyncClient, count: int) -> list[info_pb2.OnTrade]:
    """The next `count` OnTrade messages of an info connection (book messages and instruments skipped)."""
    out: list[info_pb2.OnTrade] = []
    while len(out) < count:
        message = client.receive()
        if isinstance(message, info_pb2.OnTrade):
            out.append(message)
    return out


# ---------------------------------------------------------------- order book


def test_a_book_s_trades_are_its_live_on_trade_messages_in_matching_order(exchange: Exchange) -> None:
    listener = exchange.order_book("listener")
    client = exchange.order_book()
    first, second = exchange.create_book(0.01), exchange.create_book(0.5)
    ids = trade(client, first, 10.07, 3)
    ids += trade(client, second, 4.5, 1)
    ids += trade(client, first, 10.01, 2, aggressor=SELL)
    # One buy sweeping two levels: two trades of one insert, at the makers' prices.
    assert not insert(client, first, SELL, 10.5, 1).error_message
    assert not insert(client, first, SELL, 10.25, 4).error_message
    sweep = insert(client, first, BUY, 10.5, 5)
    assert len(sweep.trade_ids) == 2
    live = live_trades(listener)
    assert [t.trade_id for t in live] == ids + list(sweep.trade_ids)
    on_first = [t for t in live if t.order_book_id == first]
    answer = book_trades(client, first)
    assert (answer.error_message, answer.more, answer.truncated) == ("", False, False)
    assert list(answer.trades) == on_first
    assert [(t.price, t.quantity, t.aggressor_side) for t in answer.trades] == [
        (10.07, 3, BUY),
        (10.01, 2, SELL),
        (10.25, 4, BUY),
        (10.5, 1, BUY),
    ]
    assert list(book_trades(client, second).trades) == [t for t in live if t.order_book_id == second]


def test_paging_backwards_with_before_trade_id_and_more(exchange: Exchange) -> None:
    client = exchange.order_book()
    book = exchange.create_book()
    ids = [i for n in range(7) for i in trade(client, book, round(1 + n / 100, 2), n + 1)]
    everything = book_trades(client, book)
    assert [t.trade_id for t in everything.trades] == ids and not everything.more
    pages: list[list[int]] = []
    before = 0
    while True:
        page = book_trades(client, book, before, 3)
        pages.append([t.trade_id for t in page.trades])
        assert not page.truncated
        if not page.more:
            break
        before = page.trades[0].trade_id
    assert pages == [ids[4:], ids[1:4], ids[:1]]
    assert [t.trade_id for t in book_trades(client, book, ids[3]).trades] == ids[:3]
    assert book_trades(client, book, ids[0]).trades == []
    assert [t.trade_id for t in book_trades(client, book, ids[-1] + 1000).trades] == ids


def test_max_trades_is_capped(exchange: Exchange) -> None:
    client = exchange.order_book()
    book = exchange.create_book()
    count = CAP + 5
    for _ in range(count):
        assert not insert(client, book, SELL, 2.0, 1).error_message
    sweep = insert(client, book, BUY, 2.0, count)  # one insert, CAP + 5 trades
    assert len(sweep.trade_ids) == count
    for max_trades in (0, CAP + 1, 2**31 - 1):
        answer = book_trades(client, book, max_trades=max_trades)
        assert [t.trade_id for t in answer.trades] == list(sweep.trade_ids[5:])
        assert answer.more
    rest = book_trades(client, book, answer.trades[0].trade_id)
    assert [t.trade_id for t in rest.trades] == list(sweep.trade_ids[:5]) and not rest.more


def test_an_unknown_book_and_bad_arguments_are_errors(exchange: Exchange) -> None:
    client = exchange.order_book()
    book = exchange.create_book()
    assert book_trades(client, book + 1).error_message == f"unknown order book {book + 1}"
    assert book_trades(client, 0).error_message == "unknown order book 0"
    assert "before_trade_id" in book_trades(client, book, before=-1).error_message
    assert "max_trades" in book_trades(client, book, max_trades=-1).error_message
    assert book_trades(client, book).error_message == ""


def test_a_book_without_trades_has_an_empty_tape(exchange: Exchange) -> None:
    client = exchange.order_book()
    book = exchange.create_book()
    assert not insert(client, book, BUY, 1.0, 5).error_message
    assert not insert(client, book, SELL, 1.01, 5).error_message
    answer = book_trades(client, book)
    assert (answer.error_message, list(answer.trades), answer.more, answer.truncated) == (
        "",
        [],
        False,
        False,
    )


def test_after_a_restart_the_tape_is_the_new_day_s(exchange: Exchange) -> None:
    client = exchange.order_book()
    book = exchange.create_book()
    trade(client, book, 3.0, 2)
    assert len(book_trades(client, book).trades) == 1
    exchange.deployment.restart()
    client = exchange.order_book()
    listener = exchange.order_book("listener")
    new_book = client.request(
        ob.CreateOrderBookRequest(tick_size=0.01), check=True, expect=ob.CreateOrderBookResponse
    )
    assert new_book.order_book_id == book  # ids restart with the day
    assert book_trades(client, book).trades == []
    ids = trade(client, book, 7.0, 1)
    answer = book_trades(client, book)
    assert list(answer.trades) == live_trades(listener)
    assert [(t.trade_id, t.price) for t in answer.trades] == [(ids[0], 7.0)]


# ---------------------------------------------------------------- info


def _instrument(info: Exchange, symbol: str) -> int:
    return info.create_instrument(
        symbol, 0.01, description=f"{symbol} shares", currency="EUR", multiplier=1.0
    )


def test_info_answers_with_the_live_trades_and_the_order_book_s_answer(info: Exchange) -> None:
    book = _instrument(info, "ABC")
    other = _instrument(info, "XYZ")
    watcher = info.info("alice")
    subscribe(watcher, "ABC")
    client = info.order_book()
    ids = (
        trade(client, book, 12.34, 3)
        + trade(client, other, 1.0, 1)
        + trade(client, book, 12.3, 1, aggressor=SELL)
    )
    live = receive_trades(watcher, 2)
    assert [t.trade_id for t in live] == [ids[0], ids[2]]
    answer = info_trades(watcher, "ABC")
    assert (answer.error_message, answer.more, answer.truncated) == ("", False, False)
    assert list(answer.trades) == live
    assert [as_info(t, "ABC") for t in book_trades(client, book).trades] == live
    assert [(t.price, t.quantity, t.aggressor_side) for t in answer.trades] == [
        (12.34, 3, BUY),
        (12.3, 1, SELL),
    ]
    xyz = info_trades(watcher, "XYZ")
    assert [(t.trade_id, t.instrument_symbol) for t in xyz.trades] == [(ids[1], "XYZ")]


def test_two_info_connections_give_identical_answers(info: Exchange) -> None:
    book = _instrument(info, "ABC")
    client = info.order_book()
    for n in range(6):
        trade(client, book, round(5 + n / 100, 2), n + 1, aggressor=(BUY, SELL)[n % 2])
    alice, bob = info.info("alice"), info.info("bob")
    for before, max_trades in ((0, 0), (0, 4), (0, 1)):
        first, second = (
            info_trades(alice, "ABC", before, max_trades),
            info_trades(bob, "ABC", before, max_trades),
        )
        assert (list(first.trades), first.more, first.truncated, first.error_message) == (
            list(second.trades),
            second.more,
            second.truncated,
            second.error_message,
        )
        assert len(first.trades) == (max_trades or 6)
        assert first.more == (max_trades not in (0, 6))
    expected = [as_info(t, "ABC") for t in book_trades(client, book).trades]
    assert list(info_trades(bob, "ABC").trades) == expected


def test_info_pages_as_the_order_book_does(info: Exchange) -> None:
    book = _instrument(info, "ABC")
    client = info.order_book()
    ids = [i for n in range(5) for i in trade(client, book, 2.0, n + 1)]
    watcher = info.info("alice")
    first = info_trades(watcher, "ABC", max_trades=2)
    assert ([t.trade_id for t in first.trades], first.more) == (ids[3:], True)
    second = info_trades(watcher, "ABC", before=first.trades[0].trade_id, max_trades=2)
    assert ([t.trade_id for t in second.trades], second.more) == (ids[1:3], True)
    last = info_trades(watcher, "ABC", before=second.trades[0].trade_id, max_trades=2)
    assert ([t.trade_id for t in last.trades], last.more, last.truncated) == (ids[:1], False, False)


def test_info_errors_unknown_symbol_bad_arguments_and_before_login(info: Exchange) -> None:
    _instrument(info, "ABC")
    info.create_book()  # a bare book is no instrument
    client = info.info("alice")
    assert info_trades(client, "NOPE").error_message == "unknown instrument 'NOPE'"
    assert "max_trades" in info_trades(client, "ABC", max_trades=-2).error_message
    assert "before_trade_id" in info_trades(client, "ABC", before=-2).error_message
    empty = info_trades(client, "ABC")
    assert (empty.error_message, list(empty.trades), empty.more) == ("", [], False)
    anonymous = info.info(None)
    assert info_trades(anonymous, "ABC").error_message != ""
    assert info_trades(client, "ABC").error_message == ""


def test_a_late_joiner_subscribes_then_asks_and_misses_nothing(info: Exchange) -> None:
    """Trades before, between and after: subscribed first, then asking, the union is every trade."""
    book = _instrument(info, "ABC")
    client = info.order_book()
    before = trade(client, book, 1.5, 1) + trade(client, book, 1.6, 2)
    joiner = info.info("carol")
    # Pipelined: the subscription is in place before the order book is asked.
    request = info_pb2.TradesRequest(instrument_symbol="ABC")
    joiner.send(
        info_pb2.OrderBookSubscribeRequest(instrument_symbol="ABC", subscription_type=info_pb2.TOP_OF_BOOK),
        request,
    )
    after = trade(client, book, 1.7, 3)
    seen: dict[int, float] = {}
    answered = False
    while not answered or not set(after) <= seen.keys():
        message = joiner.receive()
        if isinstance(message, info_pb2.TradesResponse):
            assert message.request_id == request.request_id and not message.error_message
            answered = True
            seen.update((t.trade_id, t.price) for t in message.trades)
        elif isinstance(message, info_pb2.OnTrade):
            seen[message.trade_id] = message.price
    assert seen == dict(zip(before + after, (1.5, 1.6, 1.7), strict=True))


def test_info_s_tape_after_the_order_book_restarted_is_the_new_day_s(info: Exchange) -> None:
    book = _instrument(info, "ABC")
    client = info.order_book()
    trade(client, book, 9.0, 1)
    watcher = info.info("alice")
    until_barrier(watcher)  # the login's OnInstrument burst
    assert len(info_trades(watcher, "ABC").trades) == 1
    info.deployment.stop_component("order_book")
    info.deployment.start_component("order_book")
    new_book = _instrument(info, "ABC")
    assert new_book == book  # ids restart with the day
    # Info's feed holds the new day once it announces the new instrument.
    announced = watcher.receive_as(info_pb2.OnInstrument)
    while announced.instrument.symbol != "ABC":
        announced = watcher.receive_as(info_pb2.OnInstrument)
    assert info_trades(watcher, "ABC").trades == []
    client = info.order_book()
    ids = trade(client, new_book, 8.5, 2)
    answer = info_trades(watcher, "ABC")
    assert [(t.trade_id, t.price, t.quantity) for t in answer.trades] == [(ids[0], 8.5, 2)]
    assert [as_info(t, "ABC") for t in book_trades(client, new_book).trades] == list(answer.trades)


def test_info_answers_the_unavailable_rule_while_the_order_book_is_down(info: Exchange) -> None:
    book = _instrument(info, "ABC")
    trade(info.order_book(), book, 4.0, 1)
    watcher = info.info("alice")
    info.deployment.stop_component("order_book")
    # The first request may reach info before it read the end of its feed's connection.
    first = info_trades(watcher, "ABC")
    assert first.error_message.startswith("order book ") and first.error_message.endswith("carried out"), (
        first
    )
    assert list(first.trades) == []
    second = info_trades(watcher, "ABC")
    assert second.error_message == "order book unavailable; the request was not carried out"
    info.deployment.start_component("order_book")
    assert info_trades(watcher, "ABC").error_message == "unknown instrument 'ABC'"  # a new day, no ABC yet


def test_an_info_process_started_late_gives_the_same_answers(late_info: Exchange) -> None:
    book = _instrument(late_info, "ABC")
    client = late_info.order_book()
    for n in range(5):
        trade(client, book, round(3 + n / 100, 2), n + 1, aggressor=(BUY, SELL)[n % 3 == 0])
    first = late_info.info("alice")
    asks = ((0, 0), (0, 2), (0, 5))
    before = [info_trades(first, "ABC", b, m) for b, m in asks]
    late_info.deployment.start_component(LATE)
    late = late_info.info("bob", component=LATE)

    def same(a: info_pb2.TradesResponse, b: info_pb2.TradesResponse) -> None:
        assert (a.error_message, list(a.trades), a.more, a.truncated) == (
            b.error_message,
            list(b.trades),
            b.more,
            b.truncated,
        )

    for (b, m), earlier in zip(asks, before, strict=True):
        same(info_trades(late, "ABC", b, m), earlier)
    assert [len(r.trades) for r in before] == [5, 2, 5] and [r.more for r in before] == [False, True, False]
    page = info_trades(late, "ABC", before[1].trades[0].trade_id, 2)
    same(page, info_trades(first, "ABC", before[1].trades[0].trade_id, 2))
    trade(client, book, 3.5, 7)
    now = info_trades(first, "ABC")
    same(info_trades(late, "ABC"), now)
    assert [as_info(t, "ABC") for t in book_trades(client, book).trades] == list(now.trades)
    assert len(now.trades) == 6
