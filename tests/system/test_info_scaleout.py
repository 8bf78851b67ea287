"""Scale-out (issue 8, item 4): info keeps no state beyond its feed's mirror, so any number of info
processes can follow one order book, and each gives its subscribers the same streams.

The deployment is the info suite's (order book, admin, info) plus a second info process, `info_b`:
deployment_config.json's info entry under another name (`ComponentSpec.derive`), on its own
ephemeral port, following the same order book; and a third, `info_late`, started only once the day
has traded (`Deployment.start(defer=...)`, then `start_component`).

- `test_paced_streams_are_identical_message_by_message`: each order-book request waited for on
  every subscriber (a subscription to an instrument nothing trades is answered after info's feed
  barrier, helpers.settle), so no two changes can be conflated: both processes send exactly the same
  messages, step by step, and they are right (the order book's own account, `OrderBookDay`). The
  late process then shows the same instruments and books, and follows later changes the same way.
- `test_pipelined_streams_differ_only_by_conflation`: requests pipelined with nobody reading, so
  each process may coalesce differently: the same OnInstrument and OnTrade sequences, the same final
  books, and every book message a state the book went through, in order, after its trades.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from google.protobuf.message import Message

from optivex.deploy import (
    ComponentSpec,
    Deployment,
    components_for_suite,
    default_deployment_path,
    load_deployment,
)
from optivex.proto import info_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import (
    BUY,
    PRICE_DEPTH_BOOK,
    SELL,
    TOP_OF_BOOK,
    Exchange,
    SyncClient,
    cancel,
    insert,
    settle,
    subscribe,
    until_barrier,
)
from .order_book_day import OrderBookDay, assert_follows, book_states
from .test_info import BOOK_MESSAGES, assert_consistent, shown

SECOND = "info_b"
LATE = "info_late"
PACE = "PACE"
"""An instrument nothing trades: `settle`'s barrier on info's feed subscribes to it."""
BookType = type[info_pb2.OnTopOfBook] | type[info_pb2.OnPriceDepthBook]
MESSAGE_OF: dict[int, BookType] = {
    TOP_OF_BOOK: info_pb2.OnTopOfBook,
    PRICE_DEPTH_BOOK: info_pb2.OnPriceDepthBook,
}

M = TypeVar("M", bound=Message)
Deploy = Callable[[Iterable[ComponentSpec], Collection[str]], Deployment]


@pytest.fixture
def scaled(deploy_components: Deploy) -> Iterator[Exchange]:
    """The info suite's deployment with a second info process and a deferred third one."""
    config = load_deployment(default_deployment_path())
    info = config.provider("info")
    specs = [*components_for_suite(config, "info"), info.derive(name=SECOND), info.derive(name=LATE)]
    with Exchange(deploy_components(specs, (LATE,))) as exchange:
        yield exchange


@dataclass
class Subscriber:
    """One info connection, what it subscribes to, and everything it received (snapshots included)."""

    client: SyncClient
    subscriptions: list[tuple[str, int]]
    received: list[Message] = field(default_factory=list)
    steps: list[list[Message]] = field(default_factory=list)
    """What each paced step brought."""

    def subscribe(self, symbol: str) -> None:
        for sub_symbol, kind in self.subscriptions:
            if sub_symbol == symbol:
                self.received.append(subscribe(self.client, symbol, kind))

    def settle(self) -> list[Message]:
        messages = settle(self.client, PACE)
        self.received += messages
        self.steps.append(messages)
        return messages

    def of_type(self, cls: type[M]) -> list[M]:
        return [m for m in self.received if isinstance(m, cls)]

    def symbols(self) -> set[str]:
        return {symbol for symbol, _ in self.subscriptions}


ROLES: dict[str, tuple[str, list[tuple[str, int]]]] = {
    "tops": ("alice", [("PRE", TOP_OF_BOOK), ("POST", TOP_OF_BOOK)]),
    "depths": ("bob", [("PRE", PRICE_DEPTH_BOOK), ("POST", PRICE_DEPTH_BOOK)]),
    "both": ("carol", [("PRE", TOP_OF_BOOK), ("PRE", PRICE_DEPTH_BOOK), ("POST", PRICE_DEPTH_BOOK)]),
}
"""The subscribers opened on each info process: a login and its subscriptions."""


def subscribers(exchange: Exchange, process: str) -> dict[str, Subscriber]:
    return {
        role: Subscriber(exchange.info(login, component=process), subscriptions)
        for role, (login, subscriptions) in ROLES.items()
    }


def check_against_the_order_book(sub: Subscriber, day: OrderBookDay, what: str) -> None:
    """`sub`'s stream is right: each subscribed symbol's trades are the order book's, in order; every
    book message is consistent, a state the book went through (in order, after its trades), and the
    last one shows the book as it is."""
    for symbol in sub.symbols():
        trades = [m for m in sub.of_type(info_pb2.OnTrade) if m.instrument_symbol == symbol]
        assert [(t.trade_id, t.price, t.quantity, t.aggressor_side) for t in trades] == [
            (t.trade_id, t.price, t.quantity, t.aggressor_side) for t in day.trades.get(symbol, [])
        ], f"{what}: trades of {symbol}"
    for symbol, kind in sub.subscriptions:
        states = [(shown(m), trades) for m, trades in book_states(sub.received, symbol, MESSAGE_OF[kind])]
        for message, _ in book_states(sub.received, symbol, MESSAGE_OF[kind]):
            assert_consistent(message)
        truth = day.tops[symbol] if kind == TOP_OF_BOOK else day.depths[symbol]
        assert_follows(states, truth, f"{what} {symbol} {MESSAGE_OF[kind].__name__}")
        assert states[-1][0] == truth[-1][0], f"{what}: the last {symbol} message is not the book as it is"


Step = tuple[str, int, float, int]
"""(symbol, side, price, quantity) of an insert; side -1 cancels the order the step `price` inserted."""

STEPS: list[Step] = [
    ("PRE", BUY, 10.00, 5),
    ("PRE", BUY, 9.99, 3),
    ("PRE", BUY, 9.98, 7),
    ("PRE", SELL, 10.02, 4),
    ("PRE", SELL, 10.03, 6),
    ("PRE", SELL, 10.05, 2),
    ("POST", SELL, 50.0, 10),
    ("PRE", BUY, 9.97, 1),  # below the best bid: the depth changes, the top does not
    ("POST", BUY, 49.5, 3),
    ("PRE", BUY, 10.04, 12),  # a sweep: 4 at 10.02, 6 at 10.03, 2 rest at 10.04
    ("PRE", SELL, 9.98, 20),  # a sell sweep over four levels: 2 + 5 + 3 + 7, 3 rest at 9.98
    ("POST", BUY, 50.0, 4),  # a partial fill
    ("PRE", -1, 1, 0),  # cancel the order of step 1 (filled: an error, nothing changes)
    ("PRE", -1, 7, 0),  # cancel the 9.97 bid (resting)
    ("POST", SELL, 49.5, 3),  # fills the 49.5 bid whole
    ("PRE", SELL, 10.05, 1),
    ("PRE", BUY, 10.05, 4),  # 3 at 9.98, then 1 at 10.05 (the oldest there): two levels, nothing rests
    ("POST", -1, 6, 0),  # cancel what is left of the 50.0 ask
]


def run_step(trader: SyncClient, books: dict[str, int], orders: list[int], step: Step) -> Message:
    """Carry out one step; `orders` gets the order id of each step (0 for a cancel)."""
    symbol, side, price, quantity = step
    if side == -1:
        orders.append(0)
        return cancel(trader, books[symbol], orders[int(price)])
    response = insert(trader, books[symbol], side, price, quantity)
    assert response.error_message == "", response
    orders.append(response.order_id)
    return response


@dataclass
class Streams:
    """A scale-out test's day so far: its books, the order book's account of it, and ROLES' subscribers
    on each of the two info processes (the first one's name is `first`)."""

    books: dict[str, int]
    day: OrderBookDay
    first: str
    processes: dict[str, dict[str, Subscriber]]

    @property
    def everyone(self) -> list[Subscriber]:
        return [sub for subs in self.processes.values() for sub in subs.values()]


def open_streams(exchange: Exchange, post_tick: float) -> Streams:
    """PRE and PACE created, the subscribers logged in and subscribed to PRE, then POST created (with
    tick `post_tick`; each subscriber's OnInstrument for it waited for) and subscribed to."""
    first = exchange.deployment.provider("info").name
    books = {"PRE": exchange.create_instrument("PRE"), PACE: exchange.create_instrument(PACE)}
    streams = Streams(
        books, OrderBookDay(exchange), first, {name: subscribers(exchange, name) for name in (first, SECOND)}
    )
    for sub in streams.everyone:
        sub.settle()  # the login's OnInstrument for PRE and PACE
        sub.subscribe("PRE")
    books["POST"] = exchange.create_instrument("POST", post_tick)  # created after they subscribed
    for sub in streams.everyone:
        assert [m.instrument.symbol for m in sub.settle()] == ["POST"]  # type: ignore[attr-defined]
        sub.subscribe("POST")
    return streams


def test_paced_streams_are_identical_message_by_message(scaled: Exchange) -> None:
    exchange = scaled
    streams = open_streams(exchange, 0.5)
    books, day, first, processes, everyone = (
        streams.books,
        streams.day,
        streams.first,
        streams.processes,
        streams.everyone,
    )
    trader = exchange.order_book()
    orders: list[int] = []
    for step in STEPS:
        response = run_step(trader, books, orders, step)
        for sub in everyone:
            got = sub.settle()
            trade_ids = [m.trade_id for m in got if isinstance(m, info_pb2.OnTrade)]
            if step[0] in sub.symbols():  # the step's trades, before any book message of the step
                assert trade_ids == list(getattr(response, "trade_ids", ())), step
                assert all(isinstance(m, info_pb2.OnTrade) for m in got[: len(trade_ids)]), got
            else:
                assert got == [], f"a message for another symbol's step: {got}"

    # identical, message by message: the same snapshots, instruments, trades and book messages
    for role in ROLES:
        a, b = processes[first][role], processes[SECOND][role]
        assert a.received == b.received, role
        assert a.steps == b.steps, role
    day.catch_up()
    assert sum(len(trades) for trades in day.trades.values()) >= 10  # the steps traded
    for name, subs in processes.items():
        for role, sub in subs.items():
            check_against_the_order_book(sub, day, f"{name} {role}")
            assert until_barrier(sub.client) == []

    # A process started now shows the same instruments and books, and follows what comes next.
    exchange.deployment.start_component(LATE)
    late = Subscriber(exchange.info("dave", component=LATE), ROLES["both"][1])
    announced = late.settle()
    earlier = processes[first]["both"].of_type(info_pb2.OnInstrument)
    assert sorted(announced, key=order_book_id) == sorted(earlier, key=order_book_id)
    again = Subscriber(processes[first]["both"].client, ROLES["both"][1])
    for sub in (late, again):
        sub.subscribe("PRE")
        sub.subscribe("POST")
    # Shown alike (the timestamps aside: the late one's mirror starts from the order book's replay).
    assert [shown(m) for m in late.received[len(announced) :]] == [shown(m) for m in again.received]
    assert [shown(m) for m in again.received] == [
        day.top("PRE"),
        day.depth("PRE"),
        day.depth("POST"),
    ]
    run_step(trader, books, orders, ("PRE", BUY, 10.05, 2))
    assert late.settle() == again.settle() != []
    for sub in (late, again):
        assert until_barrier(sub.client) == []


def order_book_id(message: Message) -> int:
    assert isinstance(message, info_pb2.OnInstrument)
    return message.order_book_id


PIPELINED = 600
"""Requests sent without waiting, in chunks of CHUNK."""
CHUNK = 100


def random_requests(rng: random.Random, books: dict[str, int], count: int) -> list[Message]:
    """Inserts around 100.00 on each book (many crossing, some sweeping several levels) and cancels of
    earlier orders by id (some already filled: errors, which change nothing)."""
    requests: list[Message] = []
    for i in range(count):
        book = books[rng.choice(sorted(books))]
        if i > 20 and rng.random() < 0.2:
            requests.append(ob.CancelOrderRequest(order_book_id=book, order_id=rng.randint(1, i)))
            continue
        side = rng.choice((BUY, SELL))
        price = round(100.0 + rng.randint(-8, 8) * 0.01, 2)
        quantity = rng.choice((1, 2, 5, 10, 25))
        requests.append(ob.InsertOrderRequest(order_book_id=book, side=side, price=price, quantity=quantity))
    return requests


def pipeline(trader: SyncClient, requests: list[Message]) -> None:
    """Send the requests CHUNK at a time without waiting, then take their responses."""
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start : start + CHUNK]
        trader.send(*chunk)
        for _ in chunk:
            response = trader.receive()
            assert isinstance(response, (ob.InsertOrderResponse, ob.CancelOrderResponse)), response


def read_until_final(sub: Subscriber, day: OrderBookDay) -> None:
    """Read until every trade of the subscribed symbols and, for each subscription, the book as it is
    (as the order book told it) arrived; then nothing more may be on its way."""
    wanted = {
        (symbol, kind): day.top(symbol) if kind == TOP_OF_BOOK else day.depth(symbol)
        for symbol, kind in sub.subscriptions
    }
    trades = {symbol: len(day.trades.get(symbol, [])) for symbol in sub.symbols()}
    counts: Counter[str] = Counter()
    last: dict[tuple[str, int], object] = {}
    for message in sub.received:
        if isinstance(message, BOOK_MESSAGES):
            kind = TOP_OF_BOOK if isinstance(message, info_pb2.OnTopOfBook) else PRICE_DEPTH_BOOK
            last[(message.instrument_symbol, kind)] = shown(message)
    while any(counts[s] < n for s, n in trades.items()) or any(last.get(k) != v for k, v in wanted.items()):
        message = sub.client.receive()
        sub.received.append(message)
        if isinstance(message, info_pb2.OnTrade):
            counts[message.instrument_symbol] += 1
        elif isinstance(message, BOOK_MESSAGES):
            kind = TOP_OF_BOOK if isinstance(message, info_pb2.OnTopOfBook) else PRICE_DEPTH_BOOK
            last[(message.instrument_symbol, kind)] = shown(message)
    assert until_barrier(sub.client) == []


def test_pipelined_streams_differ_only_by_conflation(scaled: Exchange) -> None:
    exchange = scaled
    streams = open_streams(exchange, 0.01)
    books, day, first, processes = streams.books, streams.day, streams.first, streams.processes
    trading = {symbol: book for symbol, book in books.items() if symbol != PACE}
    pipeline(exchange.order_book(), random_requests(random.Random(8), trading, PIPELINED))
    day.catch_up()
    assert all(len(day.trades.get(symbol, [])) > 50 for symbol in trading)  # it traded on both books
    for name, subs in processes.items():
        for role, sub in subs.items():
            read_until_final(sub, day)
            check_against_the_order_book(sub, day, f"{name} {role}")
    for role in ROLES:
        a, b = processes[first][role], processes[SECOND][role]
        # identical, timestamps included
        assert a.of_type(info_pb2.OnInstrument) == b.of_type(info_pb2.OnInstrument), role
        assert a.of_type(info_pb2.OnTrade) == b.of_type(info_pb2.OnTrade), role
        for symbol, kind in a.subscriptions:  # the same final books
            a_books, b_books = (book_states(s.received, symbol, MESSAGE_OF[kind]) for s in (a, b))
            assert shown(a_books[-1][0]) == shown(b_books[-1][0]), (role, symbol, kind)
