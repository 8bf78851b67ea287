"""The admin protocol (section 4 of the contract) in front of the order book.

CreateInstrument is validated here and carried out by the order book
(CreateOrderBookRequest with the instrument), which is the one source of
truth for instruments: it refuses a symbol already used that day, so two
admins racing for one symbol cannot both succeed, and every component
connected to it learns the instrument from its OnOrderBookCreated.

Who may administer: by default every user of the data file. An optional
`admins` list of usernames in this component's config restricts
CreateInstrument to those users.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from optivex.app.component import Component, handles, run_component
from optivex.app.config import ComponentConfig, ConfigError
from optivex.app.users import User
from optivex.client import AsyncClient, ConnectionClosed
from optivex.instruments import instrument_error, tick_size_error
from optivex.net import Connection
from optivex.proto import admin_pb2 as pb
from optivex.proto import order_book_pb2

CONNECT_TIMEOUT = 5.0
ORDER_BOOK_UNAVAILABLE = "order book unavailable; the instrument was not created"


class AdminComponent(Component):
    """Creates instruments, each with its order book."""

    name = "admin"
    protocols = ("admin",)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        admins = config.raw.get("admins")  # validated with the config (optivex_config_schema.json)
        self.admins: frozenset[str] | None = frozenset(admins) if admins is not None else None
        self.order_book: AsyncClient | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self.order_book = await self._connect(CONNECT_TIMEOUT)

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self.order_book is not None:
            self.order_book.close()

    async def _connect(self, timeout: float) -> AsyncClient:
        address = self.config.target("order_book")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                client = await AsyncClient.connect(address.host, address.port, "order_book", log=self.log)
            except OSError as exc:
                if loop.time() >= deadline:
                    raise ConfigError(
                        f"cannot reach the order book at {address.host}:{address.port}: {exc}"
                    ) from exc
                await asyncio.sleep(0.05)
                continue
            self.log.info("connected to the order book at %s:%d", address.host, address.port)
            client.closed.add_done_callback(lambda _: self._order_book_lost())
            return client

    def _order_book_lost(self) -> None:
        if self._stopping:
            return
        self.log.error("lost the connection to the order book; reconnecting")
        self.order_book = None
        self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_forever())

    async def _reconnect_forever(self) -> None:
        while self.order_book is None:
            try:
                self.order_book = await self._connect(1.0)
            except ConfigError as exc:
                self.log.error("%s", exc)

    @handles(pb.CreateInstrumentRequest)
    async def create_instrument(self, conn: Connection, request: pb.CreateInstrumentRequest) -> None:
        error = self._validate(conn, request)
        if error:
            self.reply_error(conn, pb.CREATE_INSTRUMENT_REQUEST, request, error)
            return
        if self.order_book is None:
            self.reply_error(conn, pb.CREATE_INSTRUMENT_REQUEST, request, ORDER_BOOK_UNAVAILABLE)
            return
        try:
            created = await self.order_book.request(
                order_book_pb2.CreateOrderBookRequest(
                    tick_size=request.tick_size, instrument=request.instrument
                )
            )
        except ConnectionClosed:
            self.reply_error(conn, pb.CREATE_INSTRUMENT_REQUEST, request, ORDER_BOOK_UNAVAILABLE)
            return
        assert isinstance(created, order_book_pb2.CreateOrderBookResponse)
        if created.error_message:
            self.reply_error(conn, pb.CREATE_INSTRUMENT_REQUEST, request, created.error_message)
            return
        self.log.info(
            "%s created instrument %s (book %d)", conn.user, request.instrument.symbol, created.order_book_id
        )
        self.reply(
            conn,
            pb.CreateInstrumentResponse(
                request_id=request.request_id,
                created_timestamp=created.timestamp,
                order_book_id=created.order_book_id,
            ),
        )

    def _validate(self, conn: Connection, request: pb.CreateInstrumentRequest) -> str:
        if self.admins is not None and conn.user not in self.admins:
            return f"user {conn.user!r} may not create instruments: not in this exchange's admins"
        if not request.HasField("instrument"):
            return "instrument is required"
        i = request.instrument
        return instrument_error(i.symbol, i.description, i.currency, i.multiplier) or tick_size_error(
            request.tick_size
        )


def main() -> None:
    sys.exit(run_component(AdminComponent))
