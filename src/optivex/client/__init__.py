"""The one Optivex client: a sans-I/O session with blocking and asyncio layers (the websockets model),
and the SDK for bots built on it.

The SDK (``Exchange``, blocking; ``AsyncExchange``, asyncio): one call connects and logs in to info,
the gateway and admin; instruments, orders (limit, IOC, FOK, self-trade prevention, amend, cancel,
cancel all), books and trades by callback or polling, fills, open orders, positions and PnL, typed
errors carrying the exchange's message, reconnection that rebuilds the books. Its layers:

- `model` (the data it returns: exact integer units inside, floats at the edge), `errors`;
- `state` (sans-I/O: every operation's request and outcome, the market and account state built
  from received events), `base` (settings, callbacks);
- `exchange.Exchange` on `SyncClient`, `aio_exchange.AsyncExchange` on `AsyncClient`.

The protocol clients underneath:

- `ClientSession` (session.py), the core, without I/O: encodes requests
  (assigning request ids), decodes received bytes or frames, and is the one
  place where responses are matched to the requests awaiting them; every
  other message is an `Event`.
- `SyncClient` (sync.py): blocking sockets, for scripts, tests and latency
  measurements: it reads, the session decodes and matches.
- `AsyncClient` (aio.py): asyncio, for bots, tools and components that talk
  to other components: futures with deadlines for requests, events to a
  callback or a bounded queue that pauses reading when full.

Importing this package imports nothing more: each name loads its module when first used, so that a
component, which needs only `AsyncClient`, does not pay for the SDK at startup.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optivex.client.addresses import Addresses
    from optivex.client.aio import DEFAULT_MAX_QUEUED, DEFAULT_REQUEST_TIMEOUT, AsyncClient
    from optivex.client.aio_exchange import AsyncExchange
    from optivex.client.errors import (
        ConnectionLost,
        ExchangeTimeout,
        ExchangeUnavailable,
        LoginRefused,
        NotLoggedIn,
        OptivexError,
        OrderRejected,
        RequestRejected,
        RiskLimitBreached,
        UnknownInstrument,
    )
    from optivex.client.exchange import Exchange
    from optivex.client.model import (
        CancelReason,
        ConnectionEvent,
        ExecutionReport,
        Fill,
        Instrument,
        OpenOrder,
        OrderAmended,
        OrderCancelled,
        OrderResult,
        Position,
        PriceBook,
        PriceLevel,
        SelfTradePrevention,
        Side,
        TimeInForce,
        Trade,
    )
    from optivex.client.session import (
        MAX_ABANDONED,
        ClientSession,
        ConnectionClosed,
        Event,
        ProtocolViolation,
        Received,
        RequestFailed,
        RequestTimeout,
        Response,
        UnexpectedMessage,
    )
    from optivex.client.sync import SyncClient

_MODULE_OF = {
    "Addresses": "addresses",
    "AsyncClient": "aio",
    "AsyncExchange": "aio_exchange",
    "CancelReason": "model",
    "ClientSession": "session",
    "ConnectionClosed": "session",
    "ConnectionEvent": "model",
    "ConnectionLost": "errors",
    "DEFAULT_MAX_QUEUED": "aio",
    "DEFAULT_REQUEST_TIMEOUT": "aio",
    "Event": "session",
    "Exchange": "exchange",
    "ExchangeTimeout": "errors",
    "ExchangeUnavailable": "errors",
    "ExecutionReport": "model",
    "Fill": "model",
    "Instrument": "model",
    "LoginRefused": "errors",
    "MAX_ABANDONED": "session",
    "NotLoggedIn": "errors",
    "OpenOrder": "model",
    "OptivexError": "errors",
    "OrderAmended": "model",
    "OrderCancelled": "model",
    "OrderRejected": "errors",
    "OrderResult": "model",
    "Position": "model",
    "PriceBook": "model",
    "PriceLevel": "model",
    "ProtocolViolation": "session",
    "Received": "session",
    "RequestFailed": "session",
    "RequestRejected": "errors",
    "RequestTimeout": "session",
    "Response": "session",
    "RiskLimitBreached": "errors",
    "SelfTradePrevention": "model",
    "Side": "model",
    "SyncClient": "sync",
    "TimeInForce": "model",
    "Trade": "model",
    "UnexpectedMessage": "session",
    "UnknownInstrument": "errors",
}
"""Where each public name lives (a module of this package)."""

__all__ = [
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_REQUEST_TIMEOUT",
    "MAX_ABANDONED",
    "Addresses",
    "AsyncClient",
    "AsyncExchange",
    "CancelReason",
    "ClientSession",
    "ConnectionClosed",
    "ConnectionEvent",
    "ConnectionLost",
    "Event",
    "Exchange",
    "ExchangeTimeout",
    "ExchangeUnavailable",
    "ExecutionReport",
    "Fill",
    "Instrument",
    "LoginRefused",
    "NotLoggedIn",
    "OpenOrder",
    "OptivexError",
    "OrderAmended",
    "OrderCancelled",
    "OrderRejected",
    "OrderResult",
    "Position",
    "PriceBook",
    "PriceLevel",
    "ProtocolViolation",
    "Received",
    "RequestFailed",
    "RequestRejected",
    "RequestTimeout",
    "Response",
    "RiskLimitBreached",
    "SelfTradePrevention",
    "Side",
    "SyncClient",
    "TimeInForce",
    "Trade",
    "UnexpectedMessage",
    "UnknownInstrument",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
