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
"""

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
