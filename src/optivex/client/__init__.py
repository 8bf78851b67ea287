"""The one Optivex client: a sans-I/O session with blocking and asyncio layers (the websockets model).

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

from optivex.client.aio import DEFAULT_MAX_QUEUED, DEFAULT_REQUEST_TIMEOUT, AsyncClient
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
    "AsyncClient",
    "ClientSession",
    "ConnectionClosed",
    "Event",
    "ProtocolViolation",
    "Received",
    "RequestFailed",
    "RequestTimeout",
    "Response",
    "SyncClient",
    "UnexpectedMessage",
]
