"""Asyncio connections that carry frames: batching, bounds, dispatch hooks."""

from optivex.net.busy_poll import BusyPoll
from optivex.net.connection import Connection, FrameHandler

__all__ = ["BusyPoll", "Connection", "FrameHandler"]
