"""A simple arbitrage between two instruments of one underlying (callbacks of the blocking flavour):
whenever one's best bid is above the other's best ask, it buys the cheap one and sells the dear one,
both immediate-or-cancel, for as much as both books show (at most --max-quantity)."""

from __future__ import annotations

import argparse

from optivex.client import (
    ConnectionLost,
    Exchange,
    Instrument,
    OrderRejected,
    PriceBook,
    Side,
    TimeInForce,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", default="DEMO", help="one instrument (created if missing)")
    parser.add_argument("--second", default="DEMO2", help="the other instrument (created if missing)")
    parser.add_argument(
        "--user", default="carol", help="login; the password is the same (optivex up's users)"
    )
    parser.add_argument("--max-quantity", type=int, default=10, help="largest pair of orders")
    parser.add_argument(
        "--config", help="the exchange's deployment_config.json (default: optivex up's ports)"
    )
    args = parser.parse_args()

    with Exchange.connect(args.user, config=args.config) as exchange:
        first = exchange.get_or_create_instrument(args.first, tick_size=0.01)
        second = exchange.get_or_create_instrument(args.second, tick_size=0.01)
        traded_on: dict[str, PriceBook] = {}
        """The book an instrument showed when we last traded on it: until info shows it anew, it still
        shows what we took."""

        def arbitrage(cheap: Instrument, dear: Instrument) -> None:
            cheap_book = exchange.last_price_book(cheap.symbol)
            dear_book = exchange.last_price_book(dear.symbol)
            if cheap_book is None or dear_book is None:
                return
            if traded_on.get(cheap.symbol) is cheap_book or traded_on.get(dear.symbol) is dear_book:
                return
            ask, bid = cheap_book.best_ask, dear_book.best_bid
            if ask is None or bid is None or bid.price_units <= ask.price_units:
                return
            quantity = min(ask.quantity, bid.quantity, args.max_quantity)
            try:
                bought = exchange.insert_order(
                    cheap.symbol, Side.BUY, ask.price, quantity, TimeInForce.IMMEDIATE_OR_CANCEL
                )
                if bought.traded_quantity == 0:
                    return
                traded_on[cheap.symbol] = cheap_book
                sold = exchange.insert_order(
                    dear.symbol, Side.SELL, bid.price, bought.traded_quantity, TimeInForce.IMMEDIATE_OR_CANCEL
                )
            except OrderRejected as exc:
                print(f"refused: {exc.message}", flush=True)
                return
            except ConnectionLost as exc:  # the SDK reconnects by itself; the next book tries again
                print(exc, flush=True)
                return
            if sold.traded_quantity:
                traded_on[dear.symbol] = dear_book
            print(
                f"bought {bought.traded_quantity} {cheap.symbol} @ {ask.price:.2f}, "
                f"sold {sold.traded_quantity} {dear.symbol} @ {bid.price:.2f}",
                flush=True,
            )

        def on_book(book: PriceBook) -> None:
            arbitrage(first, second)
            arbitrage(second, first)

        exchange.on_book = on_book
        exchange.subscribe(first.symbol)
        exchange.subscribe(second.symbol)
        print(f"watching {first.symbol} and {second.symbol}", flush=True)
        try:
            exchange.run_forever()
        except KeyboardInterrupt:
            positions = exchange.positions()
            held = {symbol: p.position for symbol, p in positions.items()}
            print(f"stopped; positions {held}, PnL {exchange.pnl():.2f}", flush=True)


if __name__ == "__main__":
    main()
