"""A market maker: quotes 10 lots each side of the mid (100 on an empty book), anew every second."""

import argparse

from optivex.client import Exchange, Side

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--symbol", default="DEMO", help="instrument to quote (created if missing)")
parser.add_argument("--user", default="alice", help="login; the password is the same (optivex up's users)")
parser.add_argument("--spread", type=float, default=0.2, help="distance from bid to ask")
parser.add_argument("--config", help="the exchange's deployment_config.json (default: optivex up's ports)")
args = parser.parse_args()

with Exchange.connect(args.user, config=args.config) as exchange:
    market = exchange.get_or_create_instrument(args.symbol, tick_size=0.01)
    try:
        while True:
            book = exchange.last_price_book(market.symbol)
            mid = book.mid if book and book.mid else 100.0
            exchange.cancel_all_orders(market.symbol)
            for side, price in ((Side.BUY, mid - args.spread / 2), (Side.SELL, mid + args.spread / 2)):
                exchange.insert_order(market.symbol, side, market.to_tick(price, side), 10)
            print(f"quoting around {mid:.2f}; PnL {exchange.pnl():.2f}", flush=True)
            exchange.wait(1.0)
    except KeyboardInterrupt:
        print(f"cancelled {len(exchange.cancel_all_orders(market.symbol))} orders; PnL {exchange.pnl():.2f}")
