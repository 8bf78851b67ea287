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

Who may administer: by default every user of the data file. An optional
`admins` list of usernames in this component's config restricts
CreateInstrument to those users.
"""

from __future__ import annotations

import logging
import sys

from optivex.app.component import Component, Reply, handles, run_component
from optivex.app.config import ComponentConfig
from optivex.app.dependents import LinkError, Requests
from optivex.app.users import User
from optivex.instruments import instrument_error, tick_size_error
from optivex.logsafe import loggable
from optivex.proto import admin_pb2 as pb
from optivex.proto import order_book_pb2


class AdminComponent(Component):
    """Creates instruments, each with its order book."""

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
