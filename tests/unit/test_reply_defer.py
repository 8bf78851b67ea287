"""Reply.defer() and Reply.defer_async(): a sync handler that answers later, in process (no sockets).

The requests come through a real net.Connection on the fake transport of test_component, so the
connection's own bookkeeping (requests in flight, frames waiting for a release) is what is checked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

import pytest

from optivex.app.component import INTERNAL_ERROR, Component, Reply, handles
from optivex.app.config import ComponentConfig
from optivex.app.users import User
from optivex.client import ClientSession
from optivex.net import Connection
from optivex.net.connection import MAX_IN_FLIGHT, RESUME_IN_FLIGHT
from optivex.proto import sample_pb2
from optivex.wire import FrameDecoder
from tests.unit.test_client import run, until
from tests.unit.test_component import _act, _Async, _component, _echo, _run, _Transport


class _Deferring(Component):
    """Its sync handler defers; the request's text says how (``mode:steps``, steps as test_component's).

    - ``defer:STEPS``: defer, and run the steps on the deferred Reply from loop callbacks
      (no steps: the test answers ``later[i]`` itself);
    - ``now:STEPS``: defer, and run the steps on the deferred Reply before returning;
    - ``async:STEPS``: defer_async into a coroutine running the steps as test_component's async handler;
    - ``answered``: answer, then try to defer (and defer_async) the answered Reply;
    - ``twice``: defer, then try to defer the original again;
    - ``broken``: defer_async a handler that raises before returning its coroutine.
    """

    name = "deferring"
    protocols = ("sample",)

    def __init__(self, config: ComponentConfig, users: dict[str, User], log: logging.Logger) -> None:
        super().__init__(config, users, log)
        self.later: list[Reply] = []
        """The deferred Replies, in request order."""
        self.refused: list[str] = []
        """What defer()/defer_async() raised."""

    @handles(sample_pb2.EchoRequest)
    def echo(self, reply: Reply, request: sample_pb2.EchoRequest) -> None:
        mode, _, script = request.text.partition(":")
        steps = [step for step in script.split(",") if step]
        if mode == "defer":
            later = reply.defer()
            self.later.append(later)
            loop = asyncio.get_running_loop()
            for step in steps:
                loop.call_soon(_act, self, later, step)
        elif mode == "now":
            later = reply.defer()
            self.later.append(later)
            for step in steps:
                _act(self, later, step)
        elif mode == "async":
            reply.defer_async(lambda later: self._steps(later, steps))
        elif mode == "answered":
            _act(self, reply, "answer")
            self._try(reply.defer)
            self._try(lambda: reply.defer_async(lambda later: self._steps(later, ["answer"])))
        elif mode == "twice":
            self.later.append(reply.defer())
            self._try(reply.defer)
        elif mode == "broken":
            reply.defer_async(_raises)

    async def _steps(self, reply: Reply, steps: list[str]) -> None:
        for step in steps:
            await asyncio.sleep(0)
            _act(self, reply, step)

    def _try(self, call: Callable[[], object]) -> None:
        try:
            call()
        except RuntimeError as exc:
            self.refused.append(str(exc))


def _raises(reply: Reply) -> Coroutine[None, None, None]:
    raise ValueError("broken before its first await")


def _deferring() -> _Deferring:
    component = _component(_Deferring)
    assert isinstance(component, _Deferring)
    return component


def _open(component: Component) -> tuple[Connection, _Transport]:
    """A connection of `component` writing to a fake transport (call inside the loop)."""
    conn = Connection(component, component.log)
    transport = _Transport()
    conn._transport = transport  # type: ignore[assignment]
    return conn, transport


def _request(*requests: sample_pb2.EchoRequest) -> bytes:
    return b"".join(ClientSession("sample").encode(r) for r in requests)


def _answers(conn: Connection, transport: _Transport) -> list[tuple[int, str, str]]:
    """(request_id, error_message, text) of every response written so far."""
    conn.flush()
    out = []
    for msg_type, payload in FrameDecoder().feed(transport.written):
        assert msg_type == sample_pb2.ECHO_RESPONSE
        response = sample_pb2.EchoResponse.FromString(payload)
        out.append((response.request_id, response.error_message, response.text))
    return out


# defer ------------------------------------------------------------------------


def test_a_deferred_reply_answered_from_a_loop_callback_goes_out_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "defer:answer")))
        # The handler returned without answering: no internal error, the request is in flight.
        assert _answers(conn, transport) == []
        assert conn._in_progress == 1
        await until(lambda: bool(_answers(conn, transport)))
        assert conn._in_progress == 0
        assert _answers(conn, transport) == [(1, "", "ok")]

    run(test)
    assert "without answering" not in caplog.text and "bug" not in caplog.text


def test_the_base_adds_no_internal_error_for_a_deferred_reply_answered_later_with_an_error() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "defer:"), _echo(2, "defer:")))
        assert _answers(conn, transport) == [] and conn._in_progress == 2
        second, first = component.later[1], component.later[0]
        second.error("refused by the peer")
        first.send(sample_pb2.EchoResponse(request_id=1, text="late"))
        assert _answers(conn, transport) == [(2, "refused by the peer", ""), (1, "", "late")]
        assert conn._in_progress == 0

    run(test)


def test_max_in_flight_deferred_requests_stop_the_connection_until_answers_come() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        requests = [_echo(i, "defer:") for i in range(1, MAX_IN_FLIGHT + 3)]
        conn.data_received(_request(*requests))
        # MAX_IN_FLIGHT handled and deferred; the two frames after them wait, and the peer is not read.
        assert len(component.later) == MAX_IN_FLIGHT
        assert conn._in_progress == MAX_IN_FLIGHT and len(conn._queue) == 2
        assert conn._reading_paused
        # Answered one at a time (the connection's resumed turn is a call_soon: one loop step runs it):
        # the connection handles frames again once no more than RESUME_IN_FLIGHT are held.
        answered = 0
        while len(component.later) == MAX_IN_FLIGHT:
            assert answered < MAX_IN_FLIGHT, "all answered and the waiting frames still not handled"
            later = component.later[answered]
            later.send(sample_pb2.EchoResponse(request_id=later.request_id, text="ok"))
            answered += 1
            await asyncio.sleep(0)
        assert answered == MAX_IN_FLIGHT - RESUME_IN_FLIGHT
        assert len(component.later) == MAX_IN_FLIGHT + 2 and not conn._queue
        assert conn._in_progress == RESUME_IN_FLIGHT + 2
        await until(lambda: not conn._reading_paused)
        for later in component.later[answered:]:
            later.send(sample_pb2.EchoResponse(request_id=later.request_id, text="ok"))
        assert conn._in_progress == 0
        answers = _answers(conn, transport)
        assert sorted(answers) == [(r.request_id, "", "ok") for r in requests]

    run(test)


def test_answering_a_deferred_reply_twice_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(5, "defer:answer,answer")))
        await until(lambda: bool(_answers(conn, transport)))
        # Both callbacks ran (call_soon in order): the second one was refused, the hold released once.
        await until(lambda: "refused (EchoRequest 5" in caplog.text)
        assert _answers(conn, transport) == [(5, "", "ok")]
        assert conn._in_progress == 0

    run(test)
    assert "bug: " in caplog.text


def test_a_deferred_reply_answered_inside_its_handler_is_released_at_once() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "now:answer"), _echo(2, "now:")))
        assert conn._in_progress == 1  # request 2's deferred Reply, not answered
        component.later[1].error("later")
        assert _answers(conn, transport) == [(1, "", "ok"), (2, "later", "")]
        assert conn._in_progress == 0

    run(test)


def test_an_answered_reply_cannot_be_deferred() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "answered"), _echo(2, "twice")))
        assert component.refused == ["only an open Reply can be deferred"] * 3
        assert conn._in_progress == 1  # the one deferral of request 2 that succeeded
        [later] = component.later
        later.send(sample_pb2.EchoResponse(request_id=2, text="ok"))
        assert _answers(conn, transport) == [(1, "", "ok"), (2, "", "ok")]
        assert conn._in_progress == 0 and not component._tasks

    run(test)


def test_a_deferred_reply_deferred_again_holds_the_connection_once() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "defer:")))
        again = component.later[0].defer()
        assert conn._in_progress == 1
        again.send(sample_pb2.EchoResponse(request_id=1, text="ok"))
        assert _answers(conn, transport) == [(1, "", "ok")]
        assert conn._in_progress == 0

    run(test)


def test_a_deferred_reply_handed_to_a_coroutine_holds_the_connection_once() -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "defer:")))
        component.later[0].defer_async(lambda later: component._steps(later, ["answer"]))
        while component._tasks:
            await asyncio.gather(*component._tasks)
        assert _answers(conn, transport) == [(1, "", "ok")]
        assert conn._in_progress == 0

    run(test)


# defer_async ------------------------------------------------------------------

SCRIPTS = pytest.mark.parametrize(
    "script", ["answer", "raise", "answer,raise", "", "answer,answer", "wrong", "event,answer"]
)


@SCRIPTS
def test_defer_async_answers_as_an_async_handler_would(script: str) -> None:
    """The coroutine's Reply: its exception before answering or its end without answering -> internal
    error; the same answers, in the same order, as the async handler of test_component running the same
    steps."""
    deferred = _run(_deferring(), _echo(7, f"async:{script}"))
    assert deferred == _run(_component(_Async), _echo(7, script))
    if script in ("raise", ""):
        assert deferred == [(7, INTERNAL_ERROR, "")]


def test_defer_async_counts_the_request_in_flight_until_its_coroutine_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    component = _deferring()

    async def test() -> None:
        conn, transport = _open(component)
        conn.data_received(_request(_echo(1, "async:answer"), _echo(2, "async:")))
        assert conn._in_progress == 2 and _answers(conn, transport) == []
        while component._tasks:
            await asyncio.gather(*component._tasks)
        assert conn._in_progress == 0
        assert sorted(_answers(conn, transport)) == [(1, "", "ok"), (2, INTERNAL_ERROR, "")]

    run(test)
    assert "handler of EchoRequest finished without answering" in caplog.text


def test_defer_async_of_a_handler_that_raises_at_once_answers_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _run(_deferring(), _echo(3, "broken:")) == [(3, INTERNAL_ERROR, "")]
    assert "handler of EchoRequest failed" in caplog.text
