"""An asyncio client on the same Connection the servers use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from google.protobuf.message import DecodeError, Message

from optivex.client.session import ClientSession, ConnectionClosed, RequestFailed
from optivex.net.connection import Connection
from optivex.proto import common_pb2
from optivex.protocols import Protocol

MessageCallback = Callable[[Message], None]


class AsyncClient:
    """One connection to a component: requests answered by futures, events to a callback or queue.

    Requests get their request_id from the client (never reused on this
    connection), so each response finds its future. Every other message goes
    to `on_message` if given, else to the `messages` queue.
    """

    def __init__(
        self,
        protocol: Protocol | str,
        on_message: MessageCallback | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.session = ClientSession(protocol)
        self.log = log or logging.getLogger("optivex.client")
        self.on_message = on_message
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._conn: Connection | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        protocol: Protocol | str,
        on_message: MessageCallback | None = None,
        log: logging.Logger | None = None,
    ) -> AsyncClient:
        """Open a connection (raises OSError when nobody listens)."""
        client = cls(protocol, on_message, log)
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Connection(client, client.log), host, port)
        client._conn = conn
        return client

    # FrameHandler -----------------------------------------------------

    def frame_received(self, conn: Connection, msg_type: int, payload: bytes) -> None:
        cls = self.session.protocol.classes.get(msg_type)
        if cls is None:
            return
        try:
            message = cls.FromString(payload)
        except DecodeError:
            conn.close(f"undecodable {cls.__name__} from the server")
            return
        if cls in self.session.response_classes:
            future = self._waiting.pop(message.request_id, None)  # type: ignore[attr-defined]
            if future is not None:
                if not future.done():
                    future.set_result(message)
                return
        if self.on_message is not None:
            self.on_message(message)
        else:
            self.messages.put_nowait(message)

    def connection_closed(self, conn: Connection, exc: Exception | None) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionClosed(str(exc) if exc else "closed by the server"))
        self._waiting.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    # API --------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        assert self._conn is not None, "not connected"
        return self._conn

    def send(self, message: Message) -> None:
        """Send without waiting for anything."""
        self.session.prepare(message)
        self.connection.send(self.session.encode(message))

    def request(self, message: Message) -> asyncio.Future[Message]:
        """Send a request; the future resolves to its response."""
        conn = self.connection
        if conn.closed:
            raise ConnectionClosed("connection is closed")
        message.request_id = self.session.next_request_id()  # type: ignore[attr-defined]
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[message.request_id] = future  # type: ignore[attr-defined]
        conn.send(self.session.encode(message))
        return future

    async def call(self, message: Message) -> Message:
        """Send a request and return its response; RequestFailed if it carries an error."""
        response = await self.request(message)
        if getattr(response, "error_message", ""):
            raise RequestFailed(response)
        return response

    async def login(self, username: str, password: str = "") -> None:
        await self.call(common_pb2.LoginRequest(username=username, password=password))

    async def receive(self) -> Message:
        """The next unsolicited message (when no on_message callback is set)."""
        return await self.messages.get()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
