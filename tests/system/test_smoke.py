"""A first end-to-end day: instrument, orders, a trade."""

from __future__ import annotations

from optivex.proto import order_book_pb2 as ob

from .helpers import BUY, SELL, Exchange, insert


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
