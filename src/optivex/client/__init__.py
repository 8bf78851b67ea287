"""The one Optivex client: a sans-I/O session with blocking and asyncio layers.

- `ClientSession` (session.py): encodes requests, decodes received bytes into
  messages; no I/O.
- `SyncClient` (sync.py): blocking sockets, for scripts, tests and latency
  measurements.
- `AsyncClient` (aio.py): asyncio, for bots, tools and components that talk to
  other components.
"""

from optivex.client.aio import AsyncClient
from optivex.client.session import ClientSession, ConnectionClosed, RequestFailed
from optivex.client.sync import SyncClient

__all__ = ["AsyncClient", "ClientSession", "ConnectionClosed", "RequestFailed", "SyncClient"]
