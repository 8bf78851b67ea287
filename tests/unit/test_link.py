"""Link.send (the callback form of Link.request) and the link's slots, against a fake order book.

The fake order book listens on 127.0.0.1 and answers CreateOrderBookRequest (order_book_id: the
request's tick_size, which names each request of a test) and BarrierRequest, at once or, while
``holding``, only when the test releases the answers. Nothing waits for silence: to know a request was
not sent, the test sends another on the same connection and looks at what the fake received before it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from google.protobuf.message import Message

from optivex.app.config import Address
from optivex.app.dependents import Busy, Link, LinkError, NoAnswer, Unavailable
from optivex.proto import order_book_pb2 as pb
from tests.unit.test_client import AsyncPeer, answer, until

LOG = logging.getLogger("test_link")
GUARD = 10.0
"""The most a test may take (a guard: nothing is timed)."""
SHORT = 0.05
"""A deadline or link wait that passes for sure: nothing answers within it."""
LONG = 5.0
"""A deadline that does not pass during a test."""

Result = pb.CreateOrderBookResponse | LinkError


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), GUARD))


def create(name: int) -> pb.CreateOrderBookRequest:
    """A request named `name` (its tick_size); the fake answers with order_book_id `name`."""
    return pb.CreateOrderBookRequest(tick_size=name)


def names(results: list[Result]) -> list[int | str]:
    """The order_book_id of each response, the class name of each LinkError."""
    return [
        r.order_book_id if isinstance(r, pb.CreateOrderBookResponse) else type(r).__name__ for r in results
    ]


class FakeOrderBook:
    """Answers CreateOrderBookRequest and BarrierRequest; see the module docstring."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.received: asyncio.Queue[tuple[int, Message]] = asyncio.Queue()
        """(connection number, request) of every request, in arrival order; connections count from 1."""
        self.holding = False
        self.held: list[tuple[AsyncPeer, Message]] = []
        """Answers held while ``holding``, in arrival order."""
        self._peers: list[AsyncPeer] = []
        self._accepted = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        assert self.server is not None
        self.server.close()
        self.drop()
        await self.server.wait_closed()

    def drop(self) -> None:
        """Close every connection (the link loses its connection)."""
        for peer in self._peers:
            peer.close()
        self._peers.clear()

    def release(self, count: int | None = None) -> None:
        """Send the first `count` held answers (all by default)."""
        count = len(self.held) if count is None else count
        for peer, response in self.held[:count]:
            peer.send(response)
        del self.held[:count]

    async def next(self) -> tuple[int, Message]:
        return await self.received.get()

    def pending(self) -> list[tuple[int, Message]]:
        """Every request received and not taken with next() yet."""
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait())
        return out

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted += 1
        number = self._accepted
        peer = AsyncPeer(reader, writer)
        self._peers.append(peer)
        try:
            while True:
                request = await peer.read()
                self.received.put_nowait((number, request))
                fields = {}
                if isinstance(request, pb.CreateOrderBookRequest):
                    fields["order_book_id"] = int(request.tick_size)
                response = answer(request, **fields)
                if self.holding:
                    self.held.append((peer, response))
                else:
                    peer.send(response)
        except ConnectionError:
            pass
        finally:
            writer.close()


async def started(fake: FakeOrderBook | None = None, **options: Any) -> tuple[FakeOrderBook, Link]:
    """A fake order book (started unless given) and a link to it, up."""
    if fake is None:
        fake = FakeOrderBook()
        await fake.start()
    link = Link("order_book", Address("127.0.0.1", fake.port), "order_book", LOG, **options)
    link.start()
    await link.wait_up()
    return fake, link


async def finish(fake: FakeOrderBook, link: Link) -> None:
    """Check that the link holds nothing, then stop both."""
    await until(lambda: not link._sending)
    assert link._in_flight == 0 and not link._slot_waiters
    await link.stop()
    if fake.server is not None and fake.server.is_serving():
        await fake.stop()


def test_send_delivers_the_response_to_its_callback_at_once_without_a_task() -> None:
    async def scenario() -> None:
        fake, link = await started()
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        # Sent at once (fast path: no task); the callback is never called from inside send().
        assert results == [] and not link._sending and link._in_flight == 1
        number, request = await fake.next()
        assert number == 1 and isinstance(request, pb.CreateOrderBookRequest) and request.tick_size == 1
        await until(lambda: bool(results))
        assert names(results) == [1] and link._in_flight == 0
        with pytest.raises(TypeError):  # the wrong response class: refused at once, its slot freed
            link.send(create(2), pb.BarrierResponse, lambda result: None)
        assert link._in_flight == 0
        await finish(fake, link)

    run(scenario)


def test_send_gets_no_answer_past_the_deadline_and_the_late_response_is_dropped() -> None:
    async def scenario() -> None:
        fake, link = await started(deadline=SHORT)
        fake.holding = True
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        await until(lambda: bool(results))
        [no_answer] = results
        assert isinstance(no_answer, NoAnswer)
        assert str(no_answer) == (
            "order book did not answer within 0.05 s; the request may or may not have been carried out"
        )
        assert link._in_flight == 0 and link.client is not None and link.client._waiting == {}
        fake.holding = False
        fake.release()  # the late answer, then the next request's on the same connection
        link.send(create(2), pb.CreateOrderBookResponse, results.append)
        await until(lambda: len(results) == 2)
        assert names(results) == ["NoAnswer", 2]
        await finish(fake, link)

    run(scenario)


def test_send_gets_no_answer_when_the_connection_is_lost() -> None:
    async def scenario() -> None:
        fake, link = await started()
        fake.holding = True
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        await fake.next()
        fake.drop()
        await until(lambda: bool(results))
        [lost] = results
        assert isinstance(lost, NoAnswer) and "connection lost before it answered" in str(lost)
        assert link._in_flight == 0
        await finish(fake, link)

    run(scenario)


def test_a_full_link_serves_send_and_request_first_come_first_served() -> None:
    async def scenario() -> None:
        fake, link = await started(max_in_flight=2)
        fake.holding = True
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        link.send(create(2), pb.CreateOrderBookResponse, results.append)
        assert link._in_flight == 2
        third = asyncio.ensure_future(link.request(create(3), pb.CreateOrderBookResponse))
        link.send(create(4), pb.CreateOrderBookResponse, results.append)  # after the third: it waits
        assert len(link._sending) == 1
        await until(lambda: len(link._slot_waiters) == 2)
        assert [(await fake.next())[1].tick_size for _ in range(2)] == [1, 2]  # type: ignore[attr-defined]
        fake.release(1)  # 1 answered: its slot passes to the third, which goes out
        assert (await fake.next())[1].tick_size == 3  # type: ignore[attr-defined]
        assert link._in_flight == 2 and len(link._slot_waiters) == 1
        fake.release(1)  # 2 answered: its slot passes to the fourth
        assert (await fake.next())[1].tick_size == 4  # type: ignore[attr-defined]
        fake.holding = False
        fake.release()
        assert (await third).order_book_id == 3
        await until(lambda: len(results) == 3)
        assert names(results) == [1, 2, 4]
        await finish(fake, link)

    run(scenario)


def test_a_request_that_waits_too_long_for_a_slot_is_busy_and_leaks_no_slot() -> None:
    async def scenario() -> None:
        fake, link = await started(max_in_flight=1, deadline=LONG)
        fake.holding = True
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)  # holds the one slot
        await fake.next()
        link.deadline = SHORT  # the next ones give up on a slot long before the first is answered
        with pytest.raises(
            Busy, match=r"^order book busy: no answer slot within 0\.05 s; the request was not"
        ):
            await link.request(create(2), pb.CreateOrderBookResponse)
        link.send(create(3), pb.CreateOrderBookResponse, results.append)
        await until(lambda: len(results) == 1)
        assert isinstance(results[0], Busy)
        assert link._in_flight == 1 and not link._slot_waiters
        fake.holding = False
        fake.release()
        await until(lambda: len(results) == 2)
        assert names(results) == ["Busy", 1] and link._in_flight == 0
        link.deadline = LONG
        assert (await link.request(create(4), pb.CreateOrderBookResponse)).order_book_id == 4
        # 2 and 3 were never sent: 4 is the next request the order book got.
        assert [(n, r.tick_size) for n, r in fake.pending()] == [(1, 4)]  # type: ignore[attr-defined]
        await finish(fake, link)

    run(scenario)


def test_a_request_cancelled_as_a_slot_is_handed_to_it_passes_the_slot_on() -> None:
    async def scenario() -> None:
        fake, link = await started(max_in_flight=1)
        fake.holding = True
        waiting: list[asyncio.Future[pb.CreateOrderBookResponse]] = []
        results: list[Result] = []

        def first_done(result: Result) -> None:
            # Called once the first's slot was handed to the second, before the second resumes.
            results.append(result)
            waiting[0].cancel()

        link.send(create(1), pb.CreateOrderBookResponse, first_done)
        waiting.append(asyncio.ensure_future(link.request(create(2), pb.CreateOrderBookResponse)))
        waiting.append(asyncio.ensure_future(link.request(create(3), pb.CreateOrderBookResponse)))
        await until(lambda: len(link._slot_waiters) == 2)
        fake.holding = False
        fake.release()
        with pytest.raises(asyncio.CancelledError):
            await waiting[0]
        assert (await waiting[1]).order_book_id == 3
        assert names(results) == [1]
        assert [r.tick_size for _, r in [await fake.next() for _ in range(2)]] == [1, 3]  # type: ignore[attr-defined]
        await finish(fake, link)

    run(scenario)


def test_a_request_decided_on_one_connection_never_goes_out_on_the_next() -> None:
    async def scenario() -> None:
        fake, link = await started(link_wait=LONG)
        first = link.connections
        assert first == 1
        port = fake.port
        await fake.stop()
        await until(lambda: not link.up)
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append, connection=first)
        link.send(create(2), pb.CreateOrderBookResponse, results.append)  # any connection will do
        assert results == [] and len(link._sending) == 2
        await fake.start(port)  # the link comes up again, on a new connection
        await until(lambda: len(results) == 2)
        assert link.connections == first + 1
        assert sorted(names(results), key=str) == [2, "Unavailable"]
        assert str(next(r for r in results if isinstance(r, Unavailable))) == (
            "order book unavailable; the request was not carried out"
        )
        # Up on the new connection already: the guard answers at once (in its task), nothing is sent.
        link.send(create(3), pb.CreateOrderBookResponse, results.append, connection=first)
        await until(lambda: len(results) == 3)
        assert isinstance(results[2], Unavailable)
        await link.request(pb.BarrierRequest(), pb.BarrierResponse)
        received = [(n, type(r).__name__, getattr(r, "tick_size", None)) for n, r in fake.pending()]
        assert received == [(2, "CreateOrderBookRequest", 2), (2, "BarrierRequest", None)]
        await finish(fake, link)

    run(scenario)


def test_send_is_unavailable_after_link_wait_when_nobody_listens() -> None:
    async def scenario() -> None:
        fake = FakeOrderBook()
        await fake.start()
        await fake.stop()
        link = Link("order_book", Address("127.0.0.1", fake.port), "order_book", LOG, link_wait=SHORT)
        link.start()
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        assert results == []
        await until(lambda: bool(results))
        assert names(results) == ["Unavailable"] and link._in_flight == 0
        await finish(fake, link)

    run(scenario)


def test_a_failing_callback_is_logged_and_the_link_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        fake, link = await started()
        called: list[Result] = []

        def fail(result: Result) -> None:
            called.append(result)
            raise RuntimeError("a bug in the callback")

        link.send(create(1), pb.CreateOrderBookResponse, fail)
        await until(lambda: bool(called))
        assert link._in_flight == 0
        assert (await link.request(create(2), pb.CreateOrderBookResponse)).order_book_id == 2
        await finish(fake, link)

    run(scenario)
    assert "a callback of a request to the order_book failed" in caplog.text


def test_send_on_a_connection_lost_before_the_link_noticed_answers_unavailable() -> None:
    """The connection is gone (its client closed) a loop step or two before the link drops it: send()
    must not raise (a gateway handler would leave its deferred Reply unanswered), `done` gets
    Unavailable (nothing was sent), never from inside the call."""

    async def scenario() -> None:
        fake, link = await started()
        client = link.client
        assert client is not None
        client.connection.abort()
        await until(lambda: client.closed.done())
        assert link.client is client  # the link has not noticed yet: the window this test is about
        results: list[Result] = []
        link.send(create(1), pb.CreateOrderBookResponse, results.append)
        assert results == []
        await until(lambda: bool(results))
        assert names(results) == ["Unavailable"] and link._in_flight == 0
        await until(lambda: link.connections == 2)
        assert (await link.request(create(2), pb.CreateOrderBookResponse)).order_book_id == 2
        await finish(fake, link)

    run(scenario)


def test_a_send_that_waited_for_a_slot_is_told_as_its_response_is_read() -> None:
    """On the waiting path too, the callback runs inside the frame's handling, before any later frame
    of that connection (the gateway relies on it: a response before the events it caused)."""

    async def scenario() -> None:
        fake, link = await started(max_in_flight=1)
        fake.holding = True
        seen: list[str] = []
        client = link.client
        assert client is not None
        original = client.frame_received

        def traced(conn: Any, msg_type: int, payload: bytes) -> None:
            seen.append("frame")
            original(conn, msg_type, payload)
            seen.append("end")

        client.frame_received = traced  # type: ignore[method-assign]
        link.send(create(1), pb.CreateOrderBookResponse, lambda result: seen.append("done 1"))
        link.send(create(2), pb.CreateOrderBookResponse, lambda result: seen.append("done 2"))
        assert len(link._sending) == 1  # the second waits for the slot
        await fake.next()
        fake.release()
        await fake.next()  # the second went out once the first's slot was freed
        fake.holding = False
        fake.release()
        await until(lambda: "done 2" in seen)
        assert seen == ["frame", "done 1", "end", "frame", "done 2", "end"]
        await finish(fake, link)

    run(scenario)
