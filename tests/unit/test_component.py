"""The component base in process: dispatch, login rule, handler failures (no sockets)."""

from __future__ import annotations

import asyncio
import logging

from optivex.app.component import INTERNAL_ERROR, Component, handles
from optivex.app.config import parse_config
from optivex.client import ClientSession
from optivex.net import Connection
from optivex.proto import sample_pb2


class _Transport:
    """Collects what the connection writes."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0


class _Failing(Component):
    name = "failing"
    protocols = ("sample",)

    @handles(sample_pb2.EchoRequest)
    def echo(self, conn: Connection, request: sample_pb2.EchoRequest) -> None:
        if request.text == "after":
            self.reply(conn, sample_pb2.EchoResponse(request_id=request.request_id, text="ok"))
        raise RuntimeError("handler bug")


def _responses(*requests: sample_pb2.EchoRequest) -> list[sample_pb2.EchoResponse]:
    async def run() -> bytes:
        config = parse_config(
            {
                "logLevel": "ERROR",
                "logDirectory": "unused",
                "listenOn": {"host": "127.0.0.1", "port": 0},
                "dataFilePath": "unused",
            },
            default_auth=False,
        )
        component = _Failing(config, {}, logging.getLogger("test.failing"))
        conn = Connection(component, component.log)
        transport = _Transport()
        conn._transport = transport  # type: ignore[assignment]
        session = ClientSession("sample")
        conn.data_received(b"".join(session.encode(r) for r in requests))
        return transport.written

    written = asyncio.run(run())
    messages = ClientSession("sample").receive(written)
    assert all(isinstance(m, sample_pb2.EchoResponse) for m in messages)
    return messages  # type: ignore[return-value]


def test_a_failing_handler_is_answered_with_an_error() -> None:
    [response] = _responses(sample_pb2.EchoRequest(request_id=3, text="before"))
    assert (response.request_id, response.error_message) == (3, INTERNAL_ERROR)


def test_a_handler_failing_after_its_reply_is_not_answered_twice() -> None:
    responses = _responses(
        sample_pb2.EchoRequest(request_id=4, text="after"), sample_pb2.EchoRequest(request_id=5, text="x")
    )
    assert [(r.request_id, r.error_message) for r in responses] == [(4, ""), (5, INTERNAL_ERROR)]
