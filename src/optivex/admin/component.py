"""The admin protocol (section 4 of the contract) in front of the order book.

CreateInstrument is validated here and carried out by the order book
(CreateOrderBookRequest with the instrument), which is the one source of
truth for instruments: it refuses a symbol already used that day, so two
admins racing for one symbol cannot both succeed, and every component
connected to it learns the instrument from its OnOrderBookCreated.

The order book is a declared dependency (a request link, ``app.dependents``):
the framework keeps it connected and reconnects after the order book
restarts. While it is unreachable a CreateInstrument waits up to
``dependents.LINK_WAIT`` for it and is then answered "order book
unavailable; the request was not carried out"; once forwarded, it is
answered within ``dependents.REQUEST_DEADLINE`` whatever the order book does
(past it: "order book did not answer within ...; the request may or may not
have been carried out"). At most ``dependents.MAX_IN_FLIGHT`` requests are
outstanding on the link (each client connection holds at most
``net.connection.MAX_IN_FLIGHT`` of them): a burst from one client waits
its turn instead of overflowing the link.

ListInstruments (an Optivex extension, proto/admin.proto) is answered from
the order book itself: admin asks it for its books (the ListBooksRequest
extension, over the same request link, under the same unavailable rule) and
keeps those with an instrument, in creation order. Admin keeps no list of
its own: the order book answers requests in the order they arrive, so an
instrument whose creation was confirmed to anyone (admin answers a create
only after the order book did) is in any list asked afterwards (section 4's
confirmation rule). A response holds at most ``MAX_LIST_BYTES`` of entries
(``more`` set when cut: the client pages on with ``after_order_book_id``);
admin reads as many pages of the order book's books as it takes to fill it.

Who may administer: by default every user of the data file. An optional
`admins` list of usernames in this component's config restricts
CreateInstrument to those users. Listing changes nothing: any logged-in user
may list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import Message

from optivex.app.component import Component, Reply, handles
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError, Requests
from optivex.app.users import User
from optivex.instruments import instrument_error, tick_size_error
from optivex.logsafe import loggable
from optivex.proto import admin_pb2 as pb
from optivex.proto import order_book_pb2
from optivex.wire import MAX_FRAME_LENGTH

MAX_LIST_BYTES = 1_000_000
"""Bytes of entries in one ListInstrumentsResponse: with its other fields it stays below one frame
(``wire.MAX_FRAME_LENGTH``, 1 MiB). About 240 entries of the longest instruments, 20,000 short ones."""
_ENTRY_OVERHEAD = 4
"""An entry's tag and length prefix inside the response (1 + at most 3 bytes for a length < 2 MiB)."""
assert MAX_LIST_BYTES + 64 < MAX_FRAME_LENGTH

Answer = TypeVar("Answer", order_book_pb2.CreateOrderBookResponse, order_book_pb2.ListBooksResponse)
"""The order book's answers admin asks for."""

RECONNECTED = "the connection to the order book was renewed while the list was read; ask again"
"""A list whose pages of the order book's books came over two connections (perhaps two days)."""


class ListPage:
    """One ListInstrumentsResponse, filled from pages of the order book's ListBooksResponse."""

    def __init__(self, request_id: int) -> None:
        self.response = pb.ListInstrumentsResponse(request_id=request_id)
        self.size = 0
        """Bytes of the entries so far (with their tags and length prefixes)."""

    def add(self, books: Iterable[order_book_pb2.OnOrderBookCreated]) -> bool:
        """Append the books that have an instrument, in order, while they fit.

        False once one did not fit: the page is full and ``more`` is set.
        """
        entries = self.response.instruments
        for book in books:
            if not book.HasField("instrument"):
                continue  # a bare book: no instrument to list
            entry = pb.ListedInstrument(
                instrument=book.instrument,
                tick_size=book.tick_size,  # the order book's exact 4-decimal double (optivex.units)
                order_book_id=book.order_book_id,
                created_timestamp=book.timestamp,
            )
            size = self.size + entry.ByteSize() + _ENTRY_OVERHEAD
            if size > MAX_LIST_BYTES:
                self.response.more = True
                return False
            self.size = size
            entries.append(entry)
        return True


class AdminComponent(Component):
    """Creates instruments, each with its order book, and lists them."""

    name = "admin"
    protocols = ("admin",)
    dependencies = (Requests("order_book"),)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        admins = config.raw.get("admins")  # validated with the config (optivex_config_schema.json)
        self.admins: frozenset[str] | None = frozenset(admins) if admins is not None else None
        self.order_book = self.links["order_book"]

    @handles(pb.CreateInstrumentRequest)
    async def create_instrument(self, reply: Reply, request: pb.CreateInstrumentRequest) -> None:
        error = self._validate(reply.user, request)
        if error:
            reply.error(error)
            return
        created = await self._ask(
            reply,
            order_book_pb2.CreateOrderBookRequest(tick_size=request.tick_size, instrument=request.instrument),
            order_book_pb2.CreateOrderBookResponse,
        )
        if created is None:
            return
        self.log.info(
            "%s created instrument %s (book %d)",
            loggable(reply.user),
            request.instrument.symbol,
            created.order_book_id,
        )
        reply.send(
            pb.CreateInstrumentResponse(
                request_id=request.request_id,
                created_timestamp=created.timestamp,
                order_book_id=created.order_book_id,
            )
        )

    @handles(pb.ListInstrumentsRequest)
    async def list_instruments(self, reply: Reply, request: pb.ListInstrumentsRequest) -> None:
        page = ListPage(request.request_id)
        after = request.after_order_book_id
        connection: int | None = None
        while True:
            books = await self._ask(
                reply,
                order_book_pb2.ListBooksRequest(after_order_book_id=after),
                order_book_pb2.ListBooksResponse,
            )
            if books is None:
                return
            if connection is None:
                connection = self.order_book.connections
            elif connection != self.order_book.connections:
                reply.error(RECONNECTED)
                return
            if not page.add(books.books) or not books.more:
                break
            after = books.books[-1].order_book_id
        reply.send(page.response)

    async def _ask(self, reply: Reply, request: Message, expect: type[Answer]) -> Answer | None:
        """The order book's answer to `request`; None once `reply` got its error (or the link's) instead."""
        try:
            response = await self.order_book.request(request, expect)
        except LinkError as exc:
            reply.error(str(exc))
            return None
        if response.error_message:
            reply.error(response.error_message)
            return None
        return response

    def _validate(self, user: str | None, request: pb.CreateInstrumentRequest) -> str:
        if self.admins is not None and user not in self.admins:
            return f"user {user!r} may not create instruments: not in this exchange's admins"
        if not request.HasField("instrument"):
            return "instrument is required"
        i = request.instrument
        return instrument_error(i.symbol, i.description, i.currency, i.multiplier) or tick_size_error(
            request.tick_size
        )
