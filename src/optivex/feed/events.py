"""The order book's event messages applied to a ``BookMirror``: where protobuf meets the mirror.

Prices and tick sizes cross here once, doubles to integer units
(``optivex.units``); everything past this point is plain data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from optivex.feed.mirror import BookMirror, Change, Instrument, MirrorError
from optivex.proto import order_book_pb2 as pb
from optivex.units import price_to_units, tick_to_units


def _book_created(mirror: BookMirror, event: pb.OnOrderBookCreated) -> Change:
    tick = tick_to_units(event.tick_size)
    if tick is None:
        raise MirrorError(f"book {event.order_book_id}: invalid tick size {event.tick_size!r}")
    instrument = None
    if event.HasField("instrument"):
        i = event.instrument
        instrument = Instrument(i.symbol, i.description, i.currency, i.multiplier)
    return mirror.apply_book_created(event.order_book_id, tick, event.timestamp, instrument)


def _order_inserted(mirror: BookMirror, event: pb.OnOrderInserted) -> Change:
    price = price_to_units(event.price)
    if price is None:
        raise MirrorError(f"order {event.order_id}: invalid price {event.price!r}")
    return mirror.apply_order_inserted(
        event.order_id,
        event.order_book_id,
        event.side,
        price,
        event.quantity,
        event.username,
        event.timestamp,
        event.trade_ids,
        event.replaces_order_id,
        event.cancels_remainder,
        event.time_in_force,
    )


def _order_loaded(mirror: BookMirror, event: pb.OnOrderInserted) -> None:
    price = price_to_units(event.price)
    if price is None:
        raise MirrorError(f"order {event.order_id}: invalid price {event.price!r}")
    mirror.load_order(
        event.order_id,
        event.order_book_id,
        event.side,
        price,
        event.quantity,
        event.username,
        event.timestamp,
    )


def _trade(mirror: BookMirror, event: pb.OnTrade) -> Change:
    price = price_to_units(event.price)
    if price is None:
        raise MirrorError(f"trade {event.trade_id}: invalid price {event.price!r}")
    return mirror.apply_trade(
        event.trade_id,
        event.order_book_id,
        event.buy_order_id,
        event.sell_order_id,
        price,
        event.quantity,
        event.aggressor_side,
        event.timestamp,
    )


def _order_cancelled(mirror: BookMirror, event: pb.OnOrderCancelled) -> Change:
    return mirror.apply_order_cancelled(event.order_id, event.cancellation_timestamp, event.reason)


def _order_amended(mirror: BookMirror, event: pb.OnOrderAmended) -> Change:
    return mirror.apply_order_amended(
        event.order_id, event.order_book_id, event.quantity, event.previous_quantity, event.timestamp
    )


_APPLY: dict[type[Message], Callable[[BookMirror, Any], Change]] = {
    pb.OnOrderBookCreated: _book_created,
    pb.OnOrderInserted: _order_inserted,
    pb.OnTrade: _trade,
    pb.OnOrderCancelled: _order_cancelled,
    pb.OnOrderAmended: _order_amended,
}


EVENT_CLASSES: dict[int, type[Message]] = {
    pb.ON_ORDER_BOOK_CREATED: pb.OnOrderBookCreated,
    pb.ON_ORDER_INSERTED: pb.OnOrderInserted,
    pb.ON_TRADE: pb.OnTrade,
    pb.ON_ORDER_CANCELLED: pb.OnOrderCancelled,
    pb.ON_ORDER_AMENDED: pb.OnOrderAmended,
}
"""The order book's event message types and their classes (OnOrderAmended: the Optivex extension a
connection that logged in with extension_events receives)."""


def load_event(mirror: BookMirror, event: Message) -> None:
    """Apply one event of the login replay (or any event) without building its change: the fast path.

    An OnOrderInserted that names trades, or whose remainder is cancelled at once, takes the full
    path (its trades, its cancel, must be awaited).
    """
    if type(event) is pb.OnOrderInserted and not event.trade_ids and not event.cancels_remainder:
        _order_loaded(mirror, event)
    else:
        apply_event(mirror, event)


def apply_event(mirror: BookMirror, event: Message) -> Change | None:
    """Apply one order-book event; None for a message that is not an event (MirrorError if inconsistent)."""
    apply = _APPLY.get(type(event))
    return None if apply is None else apply(mirror, event)
