"""Asyncio connections that carry frames: batching, bounds, dispatch hooks."""

from optivex.net.connection import Connection, FrameHandler

__all__ = ["Connection", "FrameHandler"]
