"""The component base in process: dispatch, login rule, one answer per request, its log (no sockets)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from optivex.app.auth import NOT_LOGGED_IN
from optivex.app.component import (
    INTERNAL_ERROR,
    MAX_COMPLAINTS_PER_CONNECTION,
    Component,
    Reply,
    handles,
    same_wire_form,
)
from optivex.app.config import ComponentConfig, parse_config
from optivex.app.users import User
from optivex.client import ClientSession
from optivex.net import Connection
from optivex.proto import common_pb2, sample_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.protocols import LOGIN_RESPONSE
from optivex.wire import FrameDecoder, encode_frame

EVENT = 99
"""A frame type that is no response: stands for an event queued to the requester."""


class _Transport:
    """Collects what the connection writes."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        """A large read is handled over several turns, reading paused meanwhile."""

    def resume_reading(self) -> None:
        """Reading resumes once the backlog is handled."""

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _act(component: Component, reply: Reply, action: str) -> None:
    """One step of a scripted handler (the request's text: steps separated by commas)."""
    if action == "answer":
        reply.send(sample_pb2.EchoResponse(request_id=reply.request_id, text="ok"))
    elif action == "event":
        reply.conn.send(encode_frame(EVENT, b""))
    elif action == "raise":
        raise RuntimeError("handler bug")
    elif action == "wrong":
        reply.send(common_pb2.LoginResponse(request_id=reply.request_id))
    elif action == "keep":
        component.kept = reply  # type: ignore[attr-defined]
    elif action == "nested":
        nested = sample_pb2.EchoRequest(request_id=reply.request_id + 100, text="answer")
        component.frame_received(reply.conn, sample_pb2.ECHO_REQUEST, nested.SerializeToString())


class _Sync(Component):
    name = "sync"
    protocols = ("sample",)

    @handles(sample_pb2.EchoRequest)
    def echo(self, reply: Reply, request: sample_pb2.EchoRequest) -> None:
        for action in filter(None, request.text.split(",")):
            _act(self, reply, action)


class _Async(Component):
    name = "async"
    protocols = ("sample",)

    @handles(sample_pb2.EchoRequest)
    async def echo(self, reply: Reply, request: sample_pb2.EchoRequest) -> None:
        for action in filter(None, request.text.split(",")):
            await asyncio.sleep(0)  # other requests' handlers run in between
            _act(self, reply, action)


def _component(cls: type[Component], auth: bool = False) -> Component:
    config = parse_config(
        {
            "logLevel": "INFO",
            "logDirectory": "unused",
            "listenOn": {"host": "127.0.0.1", "port": 0},
            "dataFilePath": "unused",
            "authRequired": auth,
        }
    )
    return cls(config, {}, logging.getLogger(f"test.{cls.name}"))


def _feed(component: Component, data: bytes, close: bool = False) -> bytes:
    """What the component writes to a connection that sent `data` in one read (then closed, if `close`)."""

    async def run() -> bytes:
        conn = Connection(component, component.log)
        transport = _Transport()
        conn._transport = transport  # type: ignore[assignment]
        conn.data_received(data)
        while conn._queue:  # frames beyond one turn's are handled in later loop iterations
            await asyncio.sleep(0)
        while component._tasks:
            await asyncio.gather(*component._tasks)
        conn.flush()
        if close:
            conn.connection_lost(None)
        return transport.written

    return asyncio.run(run())


def _run(component: Component, *requests: sample_pb2.EchoRequest) -> list[tuple[int, str, str]]:
    """Send the requests in one read; (request_id, error_message, text) of each response, EVENT as (-1,..)."""
    out = []
    written = _feed(component, b"".join(ClientSession("sample").encode(r) for r in requests))
    for msg_type, payload in FrameDecoder().feed(written):
        if msg_type == EVENT:
            out.append((-1, "", "event"))
        else:
            assert msg_type == sample_pb2.ECHO_RESPONSE
            r = sample_pb2.EchoResponse.FromString(payload)
            out.append((r.request_id, r.error_message, r.text))
    return out


def _echo(request_id: int, script: str) -> sample_pb2.EchoRequest:
    return sample_pb2.EchoRequest(request_id=request_id, text=script)


BOTH = pytest.mark.parametrize("cls", [_Sync, _Async], ids=["sync", "async"])


@BOTH
def test_each_request_is_answered_exactly_once(cls: type[Component]) -> None:
    responses = _run(_component(cls), _echo(1, "answer"), _echo(2, "answer"), _echo(3, "answer"))
    assert sorted(responses) == [(1, "", "ok"), (2, "", "ok"), (3, "", "ok")]


@BOTH
def test_a_handler_failing_before_answering_gets_the_internal_error(cls: type[Component]) -> None:
    assert _run(_component(cls), _echo(3, "raise")) == [(3, INTERNAL_ERROR, "")]


@BOTH
def test_a_handler_failing_after_answering_gets_nothing_more(cls: type[Component]) -> None:
    responses = _run(_component(cls), _echo(4, "answer,raise"), _echo(5, "raise"))
    assert sorted(responses) == [(4, "", "ok"), (5, INTERNAL_ERROR, "")]


@BOTH
def test_an_event_sent_to_the_requester_is_not_the_answer(cls: type[Component]) -> None:
    responses = _run(_component(cls), _echo(6, "event,raise"), _echo(7, "event,answer"))
    assert sorted(responses) == [(-1, "", "event"), (-1, "", "event"), (6, INTERNAL_ERROR, ""), (7, "", "ok")]


@BOTH
def test_a_second_answer_is_refused_and_logged(
    cls: type[Component], caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(_component(cls), _echo(8, "answer,answer")) == [(8, "", "ok")]
    assert "bug: a second answer refused (EchoRequest 8" in caplog.text


@BOTH
def test_a_handler_that_does_not_answer_gets_the_internal_error(
    cls: type[Component], caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(_component(cls), _echo(9, "")) == [(9, INTERNAL_ERROR, "")]
    assert "handler of EchoRequest finished without answering" in caplog.text


@BOTH
def test_an_answer_of_the_wrong_class_is_refused(
    cls: type[Component], caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(_component(cls), _echo(10, "wrong")) == [(10, INTERNAL_ERROR, "")]
    assert "a LoginResponse is not the response to EchoRequest" in caplog.text


@BOTH
def test_a_reply_used_after_its_handler_finished_is_refused(
    cls: type[Component], caplog: pytest.LogCaptureFixture
) -> None:
    component = _component(cls)
    assert _run(component, _echo(11, "keep,answer")) == [(11, "", "ok")]
    kept: Reply = component.kept  # type: ignore[attr-defined]
    kept.send(sample_pb2.EchoResponse(request_id=11))
    kept.conn.flush()
    assert "bug: an answer after its handler finished refused (EchoRequest 11" in caplog.text


def test_a_request_dispatched_inside_a_sync_handler_has_its_own_reply() -> None:
    responses = _run(_component(_Sync), _echo(12, "nested,answer"))
    assert responses == [(112, "", "ok"), (12, "", "ok")]


@BOTH
def test_requests_before_login_are_refused_where_login_is_required(cls: type[Component]) -> None:
    assert _run(_component(cls, auth=True), _echo(13, "answer")) == [(13, NOT_LOGGED_IN, "")]


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_complaints_about_a_connection_are_logged_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    unknown = b"".join(encode_frame(EVENT, b"") for _ in range(1000))
    _feed(_component(_Sync), unknown, close=True)
    lines = _lines(caplog)
    assert len(lines) == MAX_COMPLAINTS_PER_CONNECTION + 2
    assert all("ignoring message type 99" in line for line in lines[:MAX_COMPLAINTS_PER_CONNECTION])
    assert "further ones are counted, not logged" in lines[MAX_COMPLAINTS_PER_CONNECTION]
    assert lines[-1].endswith(
        f"closed: {1000 - MAX_COMPLAINTS_PER_CONNECTION} more complaints about it were not logged"
    )


def test_requests_before_login_and_refused_logins_are_complaints(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    session = ClientSession("sample")
    login = common_pb2.LoginRequest(username="mallory", password="secret")
    data = b"".join([session.encode(_echo(1, "answer")) * 20, session.encode(login) * 20])
    _feed(_component(_Sync, auth=True), data)
    lines = _lines(caplog)
    assert len(lines) == MAX_COMPLAINTS_PER_CONNECTION + 1
    assert "refused EchoRequest 1: not logged in" in lines[0]
    assert not any("secret" in line for line in lines)


def test_client_strings_are_logged_escaped_and_truncated(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    session = ClientSession("sample")
    forged = "eve\n2026-12-02 00:00:00,000 INFO optivex.sync: forged"
    logins = [common_pb2.LoginRequest(username=forged), common_pb2.LoginRequest(username="x" * 100_000)]
    _feed(_component(_Sync), b"".join(session.encode(m) for m in logins), close=True)
    lines = _lines(caplog)
    assert lines[0].startswith(repr(forged) + " logged in")  # one line, the newline escaped
    assert "\n" not in "".join(lines)
    assert "...(99936 more)" in lines[1] and len(lines[1]) < 200  # the refused second login


class _FailingLogin(_Sync):
    name = "failing-login"

    def on_login(self, conn: Connection) -> None:
        raise RuntimeError("on_login bug")


def test_a_failing_on_login_closes_the_connection_after_its_login_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    component = _component(_FailingLogin)

    async def run() -> tuple[Connection, _Transport]:
        conn = Connection(component, component.log)
        transport = _Transport()
        conn._transport = transport  # type: ignore[assignment]
        conn.data_received(ClientSession("sample").encode(common_pb2.LoginRequest(username="alice")))
        return conn, transport

    conn, transport = asyncio.run(run())
    [(msg_type, payload)] = FrameDecoder().feed(transport.written)
    assert msg_type == LOGIN_RESPONSE and not common_pb2.LoginResponse.FromString(payload).error_message
    assert transport.closed and conn not in component.subscribers
    assert any(r.exc_info and "on_login bug" in str(r.exc_info[1]) for r in caplog.records)


class _LoginWaits(_Sync):
    """Its login state waits for an event set by the test (as info's waits for the feed's barrier)."""

    name = "login-waits"

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.ready = asyncio.Event()

    async def before_login_state(self) -> None:
        await self.ready.wait()

    def on_login(self, conn: Connection) -> None:
        conn.send(encode_frame(EVENT, b"state"))


def test_a_login_state_that_waits_comes_before_the_answers_to_later_requests() -> None:
    """LoginResponse at once; the state once before_login_state returns; the request sent right after the
    login in the same read is handled only then; the connection receives events only from then on."""
    component = _component(_LoginWaits)
    assert isinstance(component, _LoginWaits)
    session = ClientSession("sample")
    data = session.encode(common_pb2.LoginRequest(username="alice")) + session.encode(_echo(7, "answer"))

    async def run() -> list[int]:
        conn = Connection(component, component.log)
        transport = _Transport()
        conn._transport = transport  # type: ignore[assignment]
        conn.data_received(data)
        for _ in range(5):
            await asyncio.sleep(0)
        conn.flush()
        early = [t for t, _ in FrameDecoder().feed(transport.written)]
        assert early == [LOGIN_RESPONSE] and conn not in component.subscribers
        component.ready.set()
        while component._tasks or conn._queue:
            await asyncio.sleep(0)
        conn.flush()
        return [t for t, _ in FrameDecoder().feed(transport.written)]

    assert asyncio.run(run()) == [LOGIN_RESPONSE, EVENT, sample_pb2.ECHO_RESPONSE]


# relay: another protocol's response of the same wire form ---------------------


class _Relaying(Component):
    """Answers execution's requests with the order book's responses, as a forwarding gateway does."""

    name = "relaying"
    protocols = ("execution",)

    @handles(ex.InsertOrderRequest)
    def insert(self, reply: Reply, request: ex.InsertOrderRequest) -> None:
        response = ob.InsertOrderResponse(
            request_id=999, order_id=7, timestamp=8, trade_ids=[1, 2], traded_quantity=3, resting_quantity=2
        )
        reply.relay(response)
        reply.relay(response)  # a second answer

    @handles(ex.CancelOrderRequest)
    def cancel(self, reply: Reply, request: ex.CancelOrderRequest) -> None:
        reply.relay(ob.InsertOrderResponse(request_id=request.request_id))  # not a cancel's form


def test_wire_forms_compare_fields_by_name_number_type_and_label() -> None:
    assert same_wire_form(ob.InsertOrderResponse, ex.InsertOrderResponse)
    assert same_wire_form(ob.CancelOrderResponse, ex.CancelOrderResponse)
    assert not same_wire_form(ob.InsertOrderRequest, ex.InsertOrderRequest)  # book id / symbol
    assert not same_wire_form(ob.InsertOrderResponse, ex.CancelOrderResponse)


def test_a_relayed_response_is_the_same_bytes_as_the_response_class_with_the_request_s_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = ClientSession("execution")
    requests = (ex.InsertOrderRequest(request_id=5), ex.CancelOrderRequest(request_id=6))
    written = _feed(_component(_Relaying), b"".join(session.encode(r) for r in requests))
    expected = ex.InsertOrderResponse(
        request_id=5, order_id=7, timestamp=8, trade_ids=[1, 2], traded_quantity=3, resting_quantity=2
    )
    cancel = ex.CancelOrderResponse(request_id=6, error_message=INTERNAL_ERROR)
    assert FrameDecoder().feed(written) == [
        (ex.INSERT_ORDER_RESPONSE, expected.SerializeToString()),
        (ex.CANCEL_ORDER_RESPONSE, cancel.SerializeToString()),
    ]
    assert "bug: a second answer refused (InsertOrderRequest 5" in caplog.text
    assert "a InsertOrderResponse is not the response to CancelOrderRequest" in caplog.text
