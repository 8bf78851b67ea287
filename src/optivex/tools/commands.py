"""The `optivex` commands that ask the exchange one thing: instruments, orders, risk limits, positions.

Each builds its request with the SDK's core (`optivex.client.state`), sends it on a logged-in
connection to the one component that serves it, and prints the answer with every field
(`format_message`); a refusal is one line on stderr with the exchange's message (`common`).
"""

from __future__ import annotations

import argparse
import textwrap

from optivex.client import SelfTradePrevention, Side, TimeInForce
from optivex.client import state as core
from optivex.proto import admin_pb2, risk_limits_pb2
from optivex.tools.common import (
    CliError,
    Rolling,
    SubParsers,
    add_connection_options,
    connect,
    emit,
    non_negative_int,
    positive_int,
    price,
    request,
    rolling,
    run_call,
)

SIDES = {"buy": Side.BUY, "sell": Side.SELL}
TIME_IN_FORCE = {
    "limit": TimeInForce.GOOD_TILL_CANCEL,
    "ioc": TimeInForce.IMMEDIATE_OR_CANCEL,
    "fok": TimeInForce.FILL_OR_KILL,
}
SELF_TRADE = {
    "user": SelfTradePrevention.ALLOWED,
    "cancel-resting": SelfTradePrevention.CANCEL_RESTING,
    "cancel-incoming": SelfTradePrevention.CANCEL_INCOMING,
}
EXIT_STATUS = (
    "Exit status: 0 done; 1 refused by the exchange (its message on stderr); 2 bad arguments; "
    "3 a component not reachable or the connection lost."
)


def _parser(subparsers: SubParsers, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, width=78),
        epilog=EXIT_STATUS,
    )


# instruments ------------------------------------------------------------------


def add_create_instrument_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "create-instrument",
        "create an instrument and its order book (admin)",
        "Create an instrument and its order book through admin, and print admin's answer "
        "(its order_book_id and created_timestamp).",
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument("--tick-size", type=price, default=0.01, help="price increment (default: 0.01)")
    parser.add_argument("--description", default="", help="free text")
    parser.add_argument("--currency", default="", help="e.g. EUR")
    parser.add_argument("--multiplier", type=float, default=0.0, help="contract multiplier")
    add_connection_options(parser, "admin")
    parser.set_defaults(handler=run_create_instrument)


def run_create_instrument(args: argparse.Namespace) -> int:
    call = core.create_instrument_call(
        args.symbol, args.tick_size, args.description, args.currency, args.multiplier
    )
    with connect(args, "admin") as client:
        response, _ = run_call(client, call)
    emit(response)
    return 0


def add_instruments_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "instruments",
        "list the instruments of the day (admin)",
        "List every instrument of the day in creation order, as admin lists them (every page, "
        "printed as one answer).",
    )
    add_connection_options(parser, "admin")
    parser.set_defaults(handler=run_instruments)


def run_instruments(args: argparse.Namespace) -> int:
    merged = admin_pb2.ListInstrumentsResponse()
    with connect(args, "admin") as client:
        after = 0
        while True:
            page, _ = run_call(client, core.list_instruments_call(after))
            merged.request_id = page.request_id
            merged.instruments.extend(page.instruments)
            if not (page.more and page.instruments):
                break
            after = page.instruments[-1].order_book_id
    emit(merged)
    return 0


# orders -----------------------------------------------------------------------


def add_insert_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "insert",
        "insert an order: limit, IOC or FOK (gateway)",
        "Insert an order through the gateway, within the user's risk limits, and print the gateway's "
        "answer: order_id, trades, traded / resting / cancelled quantities. The price is rounded to "
        "0.0001 as the exchange rounds it; it must be on the instrument's tick.",
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument("side", choices=sorted(SIDES), metavar="SIDE", help="buy or sell")
    parser.add_argument("quantity", type=positive_int, metavar="QUANTITY")
    parser.add_argument("price", type=price, metavar="PRICE")
    parser.add_argument(
        "--tif",
        choices=list(TIME_IN_FORCE),
        default="limit",
        help="limit (rests until cancelled, the default), ioc (immediate or cancel), fok (fill or kill)",
    )
    parser.add_argument(
        "--self-trade",
        choices=list(SELF_TRADE),
        default="user",
        help="self-trade prevention of this order (default: the user's setting)",
    )
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_insert)


def run_insert(args: argparse.Namespace) -> int:
    call = core.insert_call(
        args.symbol,
        SIDES[args.side],
        args.price,
        args.quantity,
        TIME_IN_FORCE[args.tif],
        SELF_TRADE[args.self_trade],
    )
    with connect(args, "gateway") as client:
        response, _ = run_call(client, call)
    emit(response)
    return 0


def add_amend_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "amend",
        "amend a resting order's quantity or price (gateway)",
        "Amend a resting order of the user to QUANTITY open (at --price, else at its price). A lower "
        "quantity at the same price keeps the order's id and time priority; otherwise it goes on under "
        "a new id (the answer's order_id).",
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument("order_id", type=positive_int, metavar="ORDER_ID")
    parser.add_argument("quantity", type=positive_int, metavar="QUANTITY", help="the new open quantity")
    parser.add_argument("--price", type=price, default=None, help="the new price (default: unchanged)")
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_amend)


def run_amend(args: argparse.Namespace) -> int:
    call = core.amend_call(args.symbol, args.order_id, args.quantity, args.price)
    with connect(args, "gateway") as client:
        response, _ = run_call(client, call)
    emit(response)
    return 0


def add_cancel_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "cancel",
        "cancel a resting order (gateway)",
        "Cancel a resting order of the user, and print the gateway's answer.",
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument("order_id", type=positive_int, metavar="ORDER_ID")
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_cancel)


def run_cancel(args: argparse.Namespace) -> int:
    with connect(args, "gateway") as client:
        response, _ = run_call(client, core.cancel_call(args.symbol, args.order_id))
    emit(response)
    return 0


def add_cancel_all_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "cancel-all",
        "cancel every resting order of the user (gateway)",
        "Cancel every resting order of the user, on SYMBOL or on every instrument, and print the "
        "gateway's answer (the cancelled order ids).",
    )
    parser.add_argument("symbol", metavar="SYMBOL", nargs="?", default="", help="default: every instrument")
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_cancel_all)


def run_cancel_all(args: argparse.Namespace) -> int:
    with connect(args, "gateway") as client:
        response, _ = run_call(client, core.cancel_all_call(args.symbol))
    emit(response)
    return 0


def add_orders_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "orders",
        "show the user's open orders (gateway)",
        "Show the user's resting orders, on SYMBOL or on every instrument, by symbol then order id.",
    )
    parser.add_argument("symbol", metavar="SYMBOL", nargs="?", default="", help="default: every instrument")
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_orders)


def run_orders(args: argparse.Namespace) -> int:
    with connect(args, "gateway") as client:
        response, _ = run_call(client, core.open_orders_call(args.symbol))
    emit(response)
    return 0


def add_positions_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "positions",
        "show the user's positions, cash and PnL of the day (gateway)",
        "Show the user's day on each instrument traded (or on SYMBOL): position, cash, bought and "
        "sold quantities, realised PnL and the instrument's last trade price, from the gateway's "
        "ledger.",
    )
    parser.add_argument("symbol", metavar="SYMBOL", nargs="?", default="", help="default: every instrument")
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_positions)


def run_positions(args: argparse.Namespace) -> int:
    with connect(args, "gateway") as client:
        response, _ = run_call(client, core.positions_call(args.symbol))
    emit(response)
    return 0


# risk limits --------------------------------------------------------------------


def add_limits_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "limits",
        "show the user's risk limits: user-wide and per instrument (gateway)",
        "Show the user's pre-trade risk limits: the user-wide ones, then those of each instrument "
        "(two answers of the gateway; 0 or an unset window means no limit).",
    )
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_limits)


def run_limits(args: argparse.Namespace) -> int:
    with connect(args, "gateway") as client:
        user = request(
            client,
            risk_limits_pb2.GetUserRiskLimitsRequest(),
            risk_limits_pb2.GetUserRiskLimitsResponse,
            "get user risk limits",
        )
        _check(user, "get user risk limits")
        by_instrument = request(
            client,
            risk_limits_pb2.GetInstrumentRiskLimitsRequest(),
            risk_limits_pb2.GetInstrumentRiskLimitsResponse,
            "get instrument risk limits",
        )
        _check(by_instrument, "get instrument risk limits")
    emit(user)
    print(flush=True)
    emit(by_instrument)
    return 0


def _check(
    response: risk_limits_pb2.GetUserRiskLimitsResponse | risk_limits_pb2.GetInstrumentRiskLimitsResponse,
    what: str,
) -> None:
    """The exchange's refusal of a get request as a CliError (the SDK has no call for these)."""
    if response.error_message:
        raise CliError(f"{what}: {response.error_message}")


def _pair(value: Rolling | None) -> tuple[int, int] | None:
    return None if value is None else value.pair()


def add_set_user_limits_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "set-user-limits",
        "replace the user's user-wide risk limits (gateway)",
        "Replace the user's user-wide limits: the options not given mean no limit.",
    )
    parser.add_argument(
        "--max-outstanding-quantity",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="resting quantity over every instrument (0: no limit)",
    )
    parser.add_argument(
        "--message-rate",
        type=rolling,
        default=None,
        metavar="LIMIT/SECONDS",
        help="execution requests within any window of SECONDS seconds (e.g. 100/1)",
    )
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_set_user_limits)


def run_set_user_limits(args: argparse.Namespace) -> int:
    call = core.user_limits_call(args.max_outstanding_quantity, _pair(args.message_rate))
    with connect(args, "gateway") as client:
        response, _ = run_call(client, call)
    emit(response)
    return 0


def add_set_instrument_limits_command(subparsers: SubParsers) -> None:
    parser = _parser(
        subparsers,
        "set-instrument-limits",
        "replace the user's risk limits on one instrument (gateway)",
        "Replace the user's limits on SYMBOL: the options not given mean no limit.",
    )
    parser.add_argument("symbol", metavar="SYMBOL")
    parser.add_argument(
        "--max-outstanding-quantity", type=non_negative_int, default=0, metavar="N", help="resting quantity"
    )
    parser.add_argument(
        "--max-outstanding-amount",
        type=price,
        default=0.0,
        metavar="AMOUNT",
        help="sum of price x quantity resting",
    )
    parser.add_argument(
        "--order-quantity",
        type=rolling,
        default=None,
        metavar="LIMIT/SECONDS",
        help="quantity ordered within any window of SECONDS seconds",
    )
    parser.add_argument(
        "--order-amount",
        type=rolling,
        default=None,
        metavar="LIMIT/SECONDS",
        help="price x quantity ordered within any window of SECONDS seconds",
    )
    add_connection_options(parser, "gateway")
    parser.set_defaults(handler=run_set_instrument_limits)


def run_set_instrument_limits(args: argparse.Namespace) -> int:
    call = core.instrument_limits_call(
        args.symbol,
        args.max_outstanding_quantity,
        args.max_outstanding_amount,
        _pair(args.order_quantity),
        _pair(args.order_amount),
    )
    with connect(args, "gateway") as client:
        response, _ = run_call(client, call)
    emit(response)
    return 0


COMMANDS = [
    add_create_instrument_command,
    add_instruments_command,
    add_insert_command,
    add_amend_command,
    add_cancel_command,
    add_cancel_all_command,
    add_orders_command,
    add_positions_command,
    add_limits_command,
    add_set_user_limits_command,
    add_set_instrument_limits_command,
]
"""The functions adding these commands, in --help order."""
