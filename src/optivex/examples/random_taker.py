"""A random taker (the asyncio flavour): now and then it buys or sells a few lots at the best price
on the other side, immediate-or-cancel, within a position limit, and prints its fills."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random

from optivex.client import AsyncExchange, ConnectionLost, Fill, OrderRejected, Side, TimeInForce


async def take(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    exchange = await AsyncExchange.connect(args.user, config=args.config)
    position = 0

    def filled(fill: Fill) -> None:
        nonlocal position
        position += fill.quantity if fill.side == Side.BUY else -fill.quantity
        print(
            f"{fill.side.name} {fill.quantity} {fill.symbol} @ {fill.price:.2f}; position {position}",
            flush=True,
        )

    exchange.on_fill = filled
    try:
        market = await exchange.get_or_create_instrument(args.symbol, tick_size=0.01)
        await exchange.subscribe(market.symbol)
        while True:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.interval)
            side = rng.choice((Side.BUY, Side.SELL))
            if (position if side == Side.BUY else -position) >= args.max_position:
                side = Side.SELL if side == Side.BUY else Side.BUY
            book = exchange.last_price_book(market.symbol)
            level = None if book is None else book.best_ask if side == Side.BUY else book.best_bid
            if level is None:
                continue  # nothing to take on that side (yet)
            quantity = rng.randint(1, args.max_quantity)
            try:
                await exchange.insert_order(
                    market.symbol, side, level.price, quantity, TimeInForce.IMMEDIATE_OR_CANCEL
                )
            except OrderRejected as exc:
                print(f"refused: {exc.message}", flush=True)
            except ConnectionLost as exc:  # the SDK reconnects by itself: try again later
                print(exc, flush=True)
    finally:
        if exchange.connected:
            print(f"stopped; position {position}, PnL {await exchange.pnl():.2f}", flush=True)
        await exchange.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbol", default="DEMO", help="instrument to trade (created if missing)")
    parser.add_argument("--user", default="bob", help="login; the password is the same (optivex up's users)")
    parser.add_argument("--interval", type=float, default=1.0, help="mean seconds between orders")
    parser.add_argument("--max-quantity", type=int, default=5, help="largest order")
    parser.add_argument(
        "--max-position", type=int, default=50, help="never buy (sell) beyond this long (short)"
    )
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    parser.add_argument(
        "--config", help="the exchange's deployment_config.json (default: optivex up's ports)"
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # take() printed its summary and closed on its way out
        asyncio.run(take(args))


if __name__ == "__main__":
    main()
