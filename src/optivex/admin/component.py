"""The admin protocol (section 4 of the contract) in front of the order book.

CreateInstrument is validated here and carried out by the order book
(CreateOrderBookRequest with the instrument), which is the one source of
truth for instruments: it refuses a symbol already used that day, so two
admins racing for one symbol cannot both succeed, and every component
connected to it learns the instrument from its OnOrderBookCreated.

Admin follows the order book (``Follows("order_book")``: a feed, which is an
``app.dependents`` link with a mirror of the order book, ``optivex.feed``):
the framework keeps it connected and reconnects after the order book
restarts; creates travel over the feed's connection. While it is unreachable a CreateInstrument waits up to
``dependents.LINK_WAIT`` for it and is then answered "order book
unavailable; the request was not carried out"; once forwarded, it is
answered within ``dependents.REQUEST_DEADLINE`` whatever the order book does
(past it: "order book did not answer within ...; the request may or may not
have been carried out"). At most ``dependents.MAX_IN_FLIGHT`` requests are
outstanding on the link (each client connection holds at most
``net.connection.MAX_IN_FLIGHT`` of them): a burst from one client waits
its turn instead of overflowing the link.

ListInstruments (an Optivex extension, proto/admin.proto) answers from the
feed's mirror after ``await feed.barrier()``: the order book answers the
barrier after every event it had sent admin, so every instrument whose
CreateInstrumentResponse any client holds is listed (section 4's
confirmation rule), in creation order. A response holds at most
``MAX_LIST_BYTES`` of entries (``more`` set when cut: the client pages on
with ``after_order_book_id``). While the order book is unreachable a list
meets the same unavailable rule as a create.

Who may administer: by default every user of the data file. An optional
`admins` list of usernames in this component's config restricts
CreateInstrument to those users. Listing changes nothing: any logged-in user
may list.
"""

from __future__ import annotations

import logging
import sys
from typing import cast

from optivex.app.component import Component, Reply, handles, run_component
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError
from optivex.app.users import User
from optivex.feed.follower import Feed, Follows
from optivex.feed.mirror import BookMirror
from optivex.instruments import instrument_error, tick_size_error
from optivex.logsafe import loggable
from optivex.proto import admin_pb2 as pb
from optivex.proto import common_pb2, order_book_pb2
from optivex.units import units_to_price
from optivex.wire import MAX_FRAME_LENGTH

MAX_LIST_BYTES = 1_000_000
"""Bytes of entries in one ListInstrumentsResponse: with its other fields it stays below one frame
(``wire.MAX_FRAME_LENGTH``, 1 MiB). About 240 entries of the longest instruments, 20,000 short ones."""
_ENTRY_OVERHEAD = 4
"""An entry's tag and length prefix inside the response (1 + at most 3 bytes for a length < 2 MiB)."""
assert MAX_LIST_BYTES + 64 < MAX_FRAME_LENGTH


def list_instruments(
    mirror: BookMirror, request_id: int, after_order_book_id: int
) -> pb.ListInstrumentsResponse:
    """The instruments of `mirror` after `after_order_book_id`, in creation order, as fit in one response."""
    response = pb.ListInstrumentsResponse(request_id=request_id)
    entries = response.instruments
    size = 0
    for book in mirror.books():  # id order: creation order
        i = book.instrument
        if i is None or book.book_id <= after_order_book_id:
            continue
        entry = pb.ListedInstrument(
            instrument=common_pb2.Instrument(
                symbol=i.symbol, description=i.description, currency=i.currency, multiplier=i.multiplier
            ),
            tick_size=units_to_price(book.tick),
            order_book_id=book.book_id,
            created_timestamp=book.timestamp,
        )
        size += entry.ByteSize() + _ENTRY_OVERHEAD
        if size > MAX_LIST_BYTES:
            response.more = True
            break
        entries.append(entry)
    return response


class AdminComponent(Component):
    """Creates instruments, each with its order book, and lists them."""

    name = "admin"
    protocols = ("admin",)
    dependencies = (Follows("order_book"),)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        admins = config.raw.get("admins")  # validated with the config (optivex_config_schema.json)
        self.admins: frozenset[str] | None = frozenset(admins) if admins is not None else None
        self.order_book = cast(Feed, self.links["order_book"])

    @handles(pb.CreateInstrumentRequest)
    async def create_instrument(self, reply: Reply, request: pb.CreateInstrumentRequest) -> None:
        error = self._validate(reply.user, request)
        if error:
            reply.error(error)
            return
        try:
            created = await self.order_book.request(
                order_book_pb2.CreateOrderBookRequest(
                    tick_size=request.tick_size, instrument=request.instrument
                ),
                order_book_pb2.CreateOrderBookResponse,
            )
        except LinkError as exc:
            reply.error(str(exc))
            return
        if created.error_message:
            reply.error(created.error_message)
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
        try:
            await self.order_book.barrier()
        except LinkError as exc:
            reply.error(str(exc))
            return
        reply.send(list_instruments(self.order_book.mirror, request.request_id, request.after_order_book_id))

    def _validate(self, user: str | None, request: pb.CreateInstrumentRequest) -> str:
        if self.admins is not None and user not in self.admins:
            return f"user {user!r} may not create instruments: not in this exchange's admins"
        if not request.HasField("instrument"):
            return "instrument is required"
        i = request.instrument
        return instrument_error(i.symbol, i.description, i.currency, i.multiplier) or tick_size_error(
            request.tick_size
        )


def main() -> None:
    sys.exit(run_component(AdminComponent))
