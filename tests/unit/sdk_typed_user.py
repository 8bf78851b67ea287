"""A user's bot code, checked by `mypy --strict` (tests/unit/test_sdk_typing.py): the SDK's public API
must be fully typed for its users (no Any leaking out, every result of the type named here)."""

from __future__ import annotations

from typing import Literal, assert_type

from optivex.client import (
    AsyncExchange,
    ConnectionEvent,
    Exchange,
    Fill,
    Instrument,
    OpenOrder,
    OrderResult,
    Position,
    PriceBook,
    PriceLevel,
    RiskLimitBreached,
    Side,
    TimeInForce,
    Trade,
)


def quote(exchange: Exchange, symbol: str) -> None:
    book = exchange.last_price_book(symbol)
    assert_type(book, PriceBook | None)
    if book is None or book.mid is None:
        return
    assert_type(book.bids, tuple[PriceLevel, ...])
    assert_type(book.mid, float)
    try:
        result = exchange.insert_order(symbol, Side.BUY, book.mid - 0.01, 1, TimeInForce.IMMEDIATE_OR_CANCEL)
        assert_type(result, OrderResult)
        assert_type(result.order_id, int)
    except RiskLimitBreached as exc:
        assert_type(exc.limit, str)
        assert_type(exc.message, str)
    assert_type(exchange.poll_new_trades(symbol), list[Trade])
    assert_type(exchange.poll_new_fills(), list[Fill])
    assert_type(exchange.open_orders(), list[OpenOrder])
    assert_type(exchange.positions(), dict[str, Position])
    assert_type(exchange.pnl({symbol: 10.0}), float)
    assert_type(exchange.cancel_all_orders(symbol), list[int])
    assert_type(exchange.create_instrument("NEW", 0.01), Instrument)
    assert_type(exchange.wait_for(lambda: exchange.last_price_book(symbol), 1.0), PriceBook | None)


def on_connection(event: ConnectionEvent) -> None:
    assert_type(event.kind, Literal["lost", "restored", "failed"])


async def quote_async(exchange: AsyncExchange, symbol: str) -> None:
    exchange.on_connection = on_connection
    assert_type(await exchange.subscribe(symbol), PriceBook)
    assert_type(exchange.last_price_book(symbol), PriceBook | None)
    assert_type(await exchange.insert_order(symbol, Side.SELL, 10.0, 1), OrderResult)
    assert_type(await exchange.amend_order(symbol, 1, 2, price=10.5), OrderResult)
    assert_type(await exchange.positions(), dict[str, Position])
    assert_type(await exchange.pnl(), float)
    assert_type(exchange.poll_new_fills(), list[Fill])


def connect() -> Exchange:
    exchange = Exchange.connect("alice", timeout=2.0)
    assert_type(exchange, Exchange)
    return exchange


async def connect_async() -> AsyncExchange:
    exchange = await AsyncExchange.connect("alice")
    assert_type(exchange, AsyncExchange)
    return exchange
