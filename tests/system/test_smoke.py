"""A first end-to-end day: instrument, orders, a trade."""

from __future__ import annotations

import time

import pytest

from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, SELL, Exchange, insert, until_barrier


def test_instrument_then_a_trade(exchange: Exchange) -> None:
    book = exchange.create_instrument("ABC", 0.01)
    watcher = exchange.order_book("watcher")
    created = watcher.receive_as(ob.OnOrderBookCreated)
    assert created.instrument.symbol == "ABC"
    trader = exchange.order_book()
    assert insert(trader, book, SELL, 10.01, 5, "bob").order_id == 1
    response = insert(trader, book, BUY, 10.02, 7, "alice")
    assert response.traded_quantity == 5
    assert watcher.receive_as(ob.OnOrderInserted).order_id == 1
    assert watcher.receive_as(ob.OnOrderInserted).order_id == 2
    trade = watcher.receive_as(ob.OnTrade)
    assert (trade.price, trade.quantity, trade.buy_order_id, trade.sell_order_id) == (10.01, 5, 2, 1)


def test_a_busy_polling_client_trades_and_still_times_out(exchange: Exchange) -> None:
    book = exchange.create_book()
    trader = exchange.order_book("trader")
    trader.busy_poll = 0.0002
    trader.receive_as(ob.OnOrderBookCreated)
    for price in (10.0, 10.01, 10.02):
        assert not insert(trader, book, SELL, price, 1, "bob").error_message
        assert trader.receive_as(ob.OnOrderInserted).price == price
    assert until_barrier(trader) == []  # nothing more is coming: the read below can only time out
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        trader.receive(timeout=0.05)  # polls, then sleeps until the deadline
    assert time.monotonic() - started >= 0.05
