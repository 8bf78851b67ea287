"""The client: its sans-I/O session, the blocking layer and the asyncio layer.

The layers run against tiny real servers on 127.0.0.1 (a thread with a plain
socket for the blocking layer, an asyncio server in the test's own loop for
the asyncio layer) that play a script: read a request, answer what the test
needs, in the order it needs. Nothing waits for silence: a server that must
not have answered yet has not been told to.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from google.protobuf.message import Message

from optivex.client import (
    MAX_ABANDONED,
    AsyncClient,
    ClientSession,
    ConnectionClosed,
    Event,
    ProtocolViolation,
    RequestFailed,
    RequestTimeout,
    Response,
    SyncClient,
    UnexpectedMessage,
)
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.protocols import PROTOCOLS
from optivex.wire import FrameDecoder, encode_frame

PROTOCOL = PROTOCOLS["order_book"]
TIMEOUT = 3.0
"""The most any step waits for an answer that is on its way (a guard: nothing is timed)."""
SHORT = 0.05
"""A request deadline that passes for sure: the server only answers after it."""


def encode(*messages: Message) -> bytes:
    return b"".join(encode_frame(PROTOCOL.type_of(m), m.SerializeToString()) for m in messages)


def inserted(order_id: int) -> ob.OnOrderInserted:
    return ob.OnOrderInserted(order_id=order_id, order_book_id=1, price=10.0, quantity=1)


def insert_request() -> ob.InsertOrderRequest:
    return ob.InsertOrderRequest(order_book_id=1, side=common_pb2.BUY, price=10.0, quantity=1)


def answer(request: Message, **fields: object) -> Message:
    """The response to `request`, with its request_id."""
    cls = PROTOCOL.responses[PROTOCOL.type_of(request)]
    return cls(request_id=request.request_id, **fields)  # type: ignore[attr-defined]


BAD_LENGTH = struct.pack(">II", 3, ob.ON_ORDER_INSERTED)
UNDECODABLE = encode_frame(ob.INSERT_ORDER_RESPONSE, b"\x08")


# the session ---------------------------------------------------------------


def test_session_decodes_however_the_stream_is_segmented() -> None:
    session = ClientSession("order_book")
    request_id, _ = session.encode_request(insert_request())
    data = encode(inserted(1), ob.InsertOrderResponse(request_id=request_id, order_id=7), inserted(2))
    for cut in range(1, len(data)):
        session = ClientSession("order_book")
        assert session.encode_request(insert_request())[0] == request_id
        items = session.receive_data(data[:cut]) + session.receive_data(data[cut:])
        assert items == [
            Event(inserted(1)),
            Response(request_id, ob.InsertOrderResponse(request_id=request_id, order_id=7)),
            Event(inserted(2)),
        ]
    one_byte_at_a_time = ClientSession("order_book")
    one_byte_at_a_time.encode_request(insert_request())
    items = [item for i in range(len(data)) for item in one_byte_at_a_time.receive_data(data[i : i + 1])]
    assert [type(item) for item in items] == [Event, Response, Event]


def test_session_returns_many_frames_of_one_read_in_order() -> None:
    session = ClientSession("order_book")
    items = session.receive_data(encode(*(inserted(i) for i in range(1000))))
    assert items == [Event(inserted(i)) for i in range(1000)]


def test_session_matches_several_requests_in_flight_by_id_and_type() -> None:
    session = ClientSession("order_book")
    requests = [insert_request(), ob.CancelOrderRequest(order_book_id=1, order_id=5), insert_request()]
    ids = [session.encode_request(r)[0] for r in requests]
    assert len(set(ids)) == 3 and session.in_flight == 3
    first, second, third = (answer(r) for r in requests)
    items = session.receive_data(encode(third, inserted(1), first, second))
    assert items == [
        Response(ids[2], third),
        Event(inserted(1)),
        Response(ids[0], first),
        Response(ids[1], second),
    ]
    assert session.in_flight == 0


def test_a_response_nobody_awaits_is_an_event() -> None:
    session = ClientSession("order_book")
    request_id, _ = session.encode_request(insert_request())
    stranger = ob.InsertOrderResponse(request_id=request_id + 100)
    wrong_type = ob.CancelOrderResponse(request_id=request_id)  # the id is awaited, but not this answer
    sent_only = ob.CancelOrderRequest(order_book_id=1, order_id=1)
    session.encode(sent_only)  # encode alone awaits nothing
    assert session.receive_data(encode(stranger, wrong_type)) == [Event(stranger), Event(wrong_type)]
    assert session.awaits(request_id)


def test_unknown_message_types_are_skipped() -> None:
    session = ClientSession("order_book")
    data = encode_frame(4242, b"whatever") + encode(inserted(1)) + encode_frame(4243, b"")
    assert session.receive_data(data) == [Event(inserted(1))]
    assert session.skipped == 2
    assert session.error is None


def test_a_bad_frame_length_ends_the_stream_after_the_frames_before_it() -> None:
    session = ClientSession("order_book")
    assert session.receive_data(encode(inserted(1)) + BAD_LENGTH + encode(inserted(2))) == [
        Event(inserted(1))
    ]
    assert session.error is not None and "frame length 3" in str(session.error)
    assert session.receive_data(encode(inserted(3))) == []


def test_an_undecodable_payload_ends_the_stream_with_a_clear_error() -> None:
    session = ClientSession("order_book")
    assert session.receive_data(encode(inserted(1)) + UNDECODABLE + encode(inserted(2))) == [
        Event(inserted(1))
    ]
    assert "undecodable InsertOrderResponse" in str(session.error)
    assert session.receive_data(encode(inserted(3))) == []
    assert session.receive_frame(ob.ON_ORDER_INSERTED, inserted(4).SerializeToString()) is None


def test_receive_frame_classifies_one_frame() -> None:
    session = ClientSession("order_book")
    request_id, _ = session.encode_request(insert_request())
    response = ob.InsertOrderResponse(request_id=request_id)
    assert session.receive_frame(ob.INSERT_ORDER_RESPONSE, response.SerializeToString()) == Response(
        request_id, response
    )
    assert session.receive_frame(4242, b"") is None and session.error is None


def test_a_forgotten_request_s_late_response_is_dropped_and_the_memory_of_it_bounded() -> None:
    session = ClientSession("order_book")
    ids = [session.encode_request(insert_request())[0] for _ in range(MAX_ABANDONED + 1)]
    for request_id in ids:
        session.forget(request_id)
    assert session.in_flight == 0
    late = [ob.InsertOrderResponse(request_id=i) for i in ids]
    # The oldest was forgotten for good: its late answer is an event; the others are dropped.
    assert session.receive_data(encode(*late)) == [Event(late[0])]
    assert session.receive_data(encode(*late)) == [Event(m) for m in late]


def test_encode_request_assigns_ids_and_refuses_what_it_cannot_match() -> None:
    session = ClientSession("order_book")
    mine = ob.InsertOrderRequest(request_id=41)
    assert session.encode_request(mine)[0] == 41
    with pytest.raises(ValueError, match="already awaited"):
        session.encode_request(ob.CancelOrderRequest(request_id=41))
    with pytest.raises(ValueError, match="not a request"):
        session.encode_request(ob.OnOrderInserted())
    fresh = insert_request()
    request_id, frame = session.encode_request(fresh)
    assert fresh.request_id == request_id != 41
    assert FrameDecoder().feed(frame) == [(ob.INSERT_ORDER_REQUEST, fresh.SerializeToString())]


def test_encode_request_refuses_a_wrong_expect_before_awaiting_or_numbering_anything() -> None:
    session = ClientSession("order_book")
    request = insert_request()
    with pytest.raises(TypeError, match="not answered by CancelOrderResponse"):
        session.encode_request(request, ob.CancelOrderResponse)
    assert request.request_id == 0 and session.in_flight == 0
    request_id, _ = session.encode_request(request, ob.InsertOrderResponse)
    assert session.awaits(request_id)


def test_take_response_matches_an_awaited_response_and_leaves_everything_else() -> None:
    session = ClientSession("order_book")
    request_id, _ = session.encode_request(insert_request())
    forgotten, _ = session.encode_request(insert_request())
    session.forget(forgotten)
    response = ob.InsertOrderResponse(request_id=request_id, order_id=5)
    payload = response.SerializeToString()
    # Not taken, and nothing classified: an event, another class with the id, a stranger, a late answer.
    assert session.take_response(ob.ON_ORDER_INSERTED, inserted(1).SerializeToString()) is None
    wrong_class = ob.CancelOrderResponse(request_id=request_id).SerializeToString()
    assert session.take_response(ob.CANCEL_ORDER_RESPONSE, wrong_class) is None
    stranger = ob.InsertOrderResponse(request_id=999).SerializeToString()
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, stranger) is None
    late = ob.InsertOrderResponse(request_id=forgotten).SerializeToString()
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, late) is None
    assert session.awaits(request_id) and session.error is None
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, payload) == (request_id, response)
    assert session.in_flight == 0
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, payload) is None  # answered once
    # What take_response leaves, receive_frame classifies as ever (the late answer is dropped).
    assert session.receive_frame(ob.INSERT_ORDER_RESPONSE, late) is None
    assert session.receive_frame(ob.INSERT_ORDER_RESPONSE, payload) == Event(response)


def test_take_response_leaves_an_undecodable_payload_for_the_violation() -> None:
    session = ClientSession("order_book")
    session.encode_request(insert_request())
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, b"\x08") is None
    assert session.receive_frame(ob.INSERT_ORDER_RESPONSE, b"\x08") is None
    assert "undecodable InsertOrderResponse" in str(session.error)
    answered = ob.InsertOrderResponse(request_id=1).SerializeToString()
    assert session.take_response(ob.INSERT_ORDER_RESPONSE, answered) is None  # nothing after a violation


def test_the_legacy_receive_returns_messages() -> None:
    session = ClientSession("order_book")
    response = ob.InsertOrderResponse(request_id=3)
    assert session.receive(encode(inserted(1), response)) == [inserted(1), response]
    assert session.is_response(response) and not session.is_response(inserted(1))


# the blocking layer --------------------------------------------------------


class Peer:
    """The server's side of one connection: reads requests, sends what the script says."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._decoder = FrameDecoder()
        self._frames: list[tuple[int, bytes]] = []

    def read(self) -> Message:
        while not self._frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the client closed")
            self._frames.extend(self._decoder.feed(data))
        msg_type, payload = self._frames.pop(0)
        return PROTOCOL.classes[msg_type].FromString(payload)

    def send(self, *messages: Message) -> None:
        self.sock.sendall(encode(*messages))


@contextmanager
def scripted_server(script: Callable[[Peer], None]) -> Iterator[tuple[str, int]]:
    """A server on 127.0.0.1 that plays `script` with the one client that connects."""
    listener = socket.create_server(("127.0.0.1", 0))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                script(Peer(conn))
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()
    finally:
        thread.join(TIMEOUT)
        listener.close()
    assert not thread.is_alive(), "the scripted server did not finish"
    if failures:
        raise failures[0]


def test_sync_request_returns_its_response_and_keeps_the_events_in_order() -> None:
    def script(peer: Peer) -> None:
        request = peer.read()
        peer.send(inserted(1), answer(request, order_id=9), inserted(2))
        peer.read()
        peer.send(inserted(3))

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        response = client.request(insert_request(), expect=ob.InsertOrderResponse)
        assert response.order_id == 9
        assert client.receive_as(ob.OnOrderInserted).order_id == 1
        client.send(ob.CancelOrderRequest(order_book_id=1, order_id=9))
        assert client.receive_as(ob.OnOrderInserted).order_id == 2
        with pytest.raises(UnexpectedMessage, match="expected OnTrade, got OnOrderInserted"):
            client.receive_as(ob.OnTrade)


def test_sync_the_response_to_a_request_sent_without_waiting_is_received_like_an_event() -> None:
    def script(peer: Peer) -> None:
        first, second = peer.read(), peer.read()
        peer.send(answer(second), inserted(1), answer(first))

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        client.send(insert_request(), ob.CancelOrderRequest(order_book_id=1, order_id=1))
        assert type(client.receive()) is ob.CancelOrderResponse
        assert type(client.receive()) is ob.OnOrderInserted
        assert type(client.receive()) is ob.InsertOrderResponse


def test_sync_check_login_and_expect() -> None:
    def script(peer: Peer) -> None:
        login = peer.read()
        peer.send(answer(login))
        refused = peer.read()
        peer.send(answer(refused, error_message="no such book"))

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        assert isinstance(client.login("alice"), common_pb2.LoginResponse)
        with pytest.raises(TypeError):
            client.request(insert_request(), expect=ob.CancelOrderResponse)
        with pytest.raises(RequestFailed, match="no such book") as failed:
            client.request(insert_request(), check=True)
        assert isinstance(failed.value.response, ob.InsertOrderResponse)
        assert client.session.in_flight == 0


def test_sync_a_timed_out_request_leaves_nothing_behind_and_its_late_response_is_dropped() -> None:
    def script(peer: Peer) -> None:
        late = peer.read()
        second = peer.read()  # sent once the first has timed out
        peer.send(answer(late), answer(second, order_id=2))

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        with pytest.raises(RequestTimeout) as timed_out:
            client.request(insert_request(), timeout=SHORT)
        assert isinstance(timed_out.value, TimeoutError)
        assert client.session.in_flight == 0
        assert client.request(insert_request(), expect=ob.InsertOrderResponse).order_id == 2
        assert not client.pending


def test_sync_reads_a_response_sent_one_byte_at_a_time_with_busy_polling() -> None:
    def script(peer: Peer) -> None:
        data = encode(answer(peer.read(), order_id=5))
        for i in range(len(data)):
            peer.sock.sendall(data[i : i + 1])

    with (
        scripted_server(script) as (host, port),
        SyncClient(host, port, "order_book", busy_poll=0.001) as client,
    ):
        assert client.request(insert_request(), expect=ob.InsertOrderResponse).order_id == 5


def test_sync_the_server_closing_fails_the_request_and_ends_wait_closed() -> None:
    def script(peer: Peer) -> None:
        peer.read()
        peer.send(inserted(1))

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        with pytest.raises(ConnectionClosed):
            client.request(insert_request())
        assert client.closed and client.session.in_flight == 0
        assert client.receive_as(ob.OnOrderInserted).order_id == 1
    with scripted_server(lambda peer: None) as (host, port), SyncClient(host, port, "order_book") as client:
        assert client.wait_closed()


@pytest.mark.parametrize("violation", [BAD_LENGTH, UNDECODABLE], ids=["bad length", "undecodable"])
def test_sync_a_protocol_violation_is_raised_after_the_messages_before_it(violation: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.read()
        peer.sock.sendall(encode(inserted(1)) + violation + encode(inserted(2)))
        assert peer.sock.recv(1) == b"", "the client did not close the connection"

    with scripted_server(script) as (host, port), SyncClient(host, port, "order_book") as client:
        with pytest.raises(ProtocolViolation, match="protocol violation by the server"):
            client.request(insert_request())
        assert client.receive_as(ob.OnOrderInserted).order_id == 1
        with pytest.raises(ProtocolViolation):
            client.receive()
        assert client.closed


# the asyncio layer ---------------------------------------------------------


class AsyncPeer:
    """The server's side of one asyncio connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._decoder = FrameDecoder()
        self._frames: list[tuple[int, bytes]] = []

    async def read(self) -> Message:
        while not self._frames:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the client closed")
            self._frames.extend(self._decoder.feed(data))
        msg_type, payload = self._frames.pop(0)
        return PROTOCOL.classes[msg_type].FromString(payload)

    def send(self, *messages: Message) -> None:
        self.writer.write(encode(*messages))

    def close(self) -> None:
        self.writer.close()


@asynccontextmanager
async def async_server(**client_options: object) -> AsyncIterator[tuple[AsyncClient, AsyncPeer]]:
    """An asyncio server on 127.0.0.1 and an AsyncClient connected to it."""
    accepted: asyncio.Queue[AsyncPeer] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(AsyncPeer(reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    client = await AsyncClient.connect(host, port, "order_book", **client_options)  # type: ignore[arg-type]
    peer = await asyncio.wait_for(accepted.get(), TIMEOUT)
    try:
        yield client, peer
    finally:
        client.close()
        peer.close()
        server.close()
        await asyncio.wait_for(client.closed, TIMEOUT)


def run(test: Callable[[], object]) -> None:
    async def guarded() -> None:
        await asyncio.wait_for(test(), TIMEOUT)  # type: ignore[arg-type]

    asyncio.run(guarded())


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run (its I/O included) until `condition` holds; the test's guard bounds it."""
    while not condition():
        await asyncio.sleep(0)


def nothing_left(client: AsyncClient) -> bool:
    return not client._waiting and client.session.in_flight == 0


def test_async_call_returns_its_response_and_queues_the_events_in_order() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            call = asyncio.ensure_future(client.call(insert_request(), expect=ob.InsertOrderResponse))
            request = await peer.read()
            peer.send(inserted(1), answer(request, order_id=4), inserted(2))
            assert (await call).order_id == 4
            assert (await client.receive_as(ob.OnOrderInserted)).order_id == 1
            assert (await client.receive_as(ob.OnOrderInserted)).order_id == 2
            assert nothing_left(client)

    run(test)


def test_async_several_requests_in_flight_each_get_their_own_response() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            futures = [client.request(insert_request()) for _ in range(3)]
            requests = [await peer.read() for _ in range(3)]
            peer.send(*(answer(r, order_id=r.request_id * 10) for r in reversed(requests)))  # type: ignore[attr-defined]
            responses = await asyncio.gather(*futures)
            assert [r.order_id for r in responses] == [r.request_id * 10 for r in requests]  # type: ignore[attr-defined]
            assert nothing_left(client)

    run(test)


def test_async_call_raises_request_failed_and_login_returns_its_response() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            login = asyncio.ensure_future(client.login("alice"))
            peer.send(answer(await peer.read()))
            assert isinstance(await login, common_pb2.LoginResponse)
            refused = asyncio.ensure_future(client.call(insert_request()))
            peer.send(answer(await peer.read(), error_message="unknown book"))
            with pytest.raises(RequestFailed, match="unknown book"):
                await refused

    run(test)


def test_async_events_go_to_on_message_when_set() -> None:
    async def test() -> None:
        got: list[Message] = []
        async with async_server(on_message=got.append) as (client, peer):
            call = client.request(insert_request())
            request = await peer.read()
            peer.send(inserted(1), inserted(2), answer(request))
            await call
            assert got == [inserted(1), inserted(2)]
            assert client.messages.empty()

    run(test)


def test_async_a_timed_out_request_leaves_nothing_behind_and_its_late_response_is_dropped() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            with pytest.raises(RequestTimeout) as timed_out:
                await client.call(insert_request(), timeout=SHORT)
            assert isinstance(timed_out.value, TimeoutError)
            assert nothing_left(client)
            late = await peer.read()
            second = client.request(insert_request())
            peer.send(answer(late), answer(await peer.read(), order_id=2))
            assert (await second).order_id == 2  # type: ignore[attr-defined]
            assert client.messages.empty()  # the late answer came first and was dropped

    run(test)


def test_async_the_client_s_request_timeout_is_the_default_deadline() -> None:
    async def test() -> None:
        async with async_server(request_timeout=SHORT) as (client, _):
            with pytest.raises(RequestTimeout):
                await client.request(insert_request())
            assert nothing_left(client)

    run(test)


def test_async_a_cancelled_request_leaves_nothing_behind() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            future = client.request(insert_request())
            late = await peer.read()
            future.cancel()
            await until(lambda: nothing_left(client))
            second = client.request(insert_request())
            peer.send(answer(late), answer(await peer.read()))
            await second
            assert client.messages.empty()

    run(test)


def test_async_closing_fails_every_waiter_and_later_calls() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            futures = [client.request(insert_request()) for _ in range(3)]
            for _ in futures:
                await peer.read()
            peer.send(inserted(1))
            peer.close()
            for future in futures:
                with pytest.raises(ConnectionClosed):
                    await future
            await client.closed
            assert nothing_left(client)
            with pytest.raises(ConnectionClosed):
                client.request(insert_request())
            assert (await client.receive_as(ob.OnOrderInserted)).order_id == 1  # queued before the close
            with pytest.raises(ConnectionClosed):
                await client.receive()

    run(test)


def test_async_close_by_the_client_fails_its_waiters() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            future = client.request(insert_request())
            await peer.read()
            client.close()
            with pytest.raises(ConnectionClosed, match="closed by the client"):
                await future
            receive = asyncio.ensure_future(client.receive())
            with pytest.raises(ConnectionClosed):
                await receive

    run(test)


VIOLATIONS = pytest.mark.parametrize(
    ("violation", "what"),
    [(BAD_LENGTH, "frame length 3"), (UNDECODABLE, "undecodable InsertOrderResponse")],
    ids=["bad length", "undecodable"],
)


@VIOLATIONS
def test_async_a_protocol_violation_closes_and_fails_the_waiters(violation: bytes, what: str) -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            future = client.request(insert_request())
            await peer.read()
            peer.writer.write(encode(inserted(1)) + violation)
            with pytest.raises(ProtocolViolation, match=what):
                await future
            assert (await client.receive_as(ob.OnOrderInserted)).order_id == 1

    run(test)


def test_async_a_full_queue_stops_reading_until_the_consumer_catches_up_and_loses_nothing() -> None:
    async def test() -> None:
        async with async_server(max_queued=4) as (client, peer):
            assert not client.reading_paused
            peer.send(*(inserted(i) for i in range(10)))
            await until(lambda: client.messages.qsize() >= 4)
            assert client.reading_paused
            peer.send(*(inserted(i) for i in range(10, 20)))  # stays in the socket while paused
            received = []
            while client.messages.qsize() > 2:
                assert client.reading_paused
                received.append(await client.receive_as(ob.OnOrderInserted))
            assert not client.reading_paused
            while len(received) < 20:
                received.append(await client.receive_as(ob.OnOrderInserted))
            assert [m.order_id for m in received] == list(range(20))
            call = client.request(insert_request())
            peer.send(answer(await peer.read()))
            await call

    run(test)


def test_async_a_failing_on_message_callback_does_not_kill_the_connection() -> None:
    async def test() -> None:
        def fail(message: Message) -> None:
            raise RuntimeError("a bug in the callback")

        async with async_server(on_message=fail) as (client, peer):
            call = client.request(insert_request())
            request = await peer.read()
            peer.send(inserted(1), answer(request))
            await call
            assert not client.closed.done()

    run(test)


# request_callback: the same requests answered by a callback ------------------


def test_async_request_callback_delivers_the_response_never_from_inside_the_call() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            results: list[object] = []
            request_id = client.request_callback(
                insert_request(), results.append, expect=ob.InsertOrderResponse
            )
            assert results == [] and client.session.awaits(request_id)
            request = await peer.read()
            assert request.request_id == request_id  # type: ignore[attr-defined]
            peer.send(inserted(1), answer(request, order_id=8))
            await until(lambda: bool(results))
            assert results == [ob.InsertOrderResponse(request_id=request_id, order_id=8)]
            assert nothing_left(client)
            assert (await client.receive_as(ob.OnOrderInserted)).order_id == 1  # events still queued

    run(test)


def test_async_request_callback_times_out_and_drops_the_late_response() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            results: list[object] = []
            request_id = client.request_callback(insert_request(), results.append, SHORT)
            await until(lambda: bool(results))
            [timed_out] = results
            assert isinstance(timed_out, RequestTimeout) and str(request_id) in str(timed_out)
            assert nothing_left(client)
            late = await peer.read()
            second = client.request(insert_request())
            peer.send(answer(late), answer(await peer.read(), order_id=2))
            assert (await second).order_id == 2  # type: ignore[attr-defined]
            assert len(results) == 1  # the late answer came first: not to the callback
            assert client.messages.empty()  # nor to the events

    run(test)


def test_async_request_callback_gets_connection_closed_for_every_pending_request() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            results: list[object] = []
            for _ in range(3):
                client.request_callback(insert_request(), results.append)
            answered = client.request(insert_request())
            for _ in range(4):
                request = await peer.read()
            peer.send(answer(request))  # the last one is answered before the close
            await answered
            peer.close()
            await client.closed
            assert len(results) == 3 and all(type(r) is ConnectionClosed for r in results)
            assert nothing_left(client)
            with pytest.raises(ConnectionClosed):  # at once, sending nothing
                client.request_callback(insert_request(), results.append)
            assert len(results) == 3

    run(test)


def test_async_a_failing_request_callback_is_logged_and_the_client_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        called: list[Message] = []

        def fail(result: Message) -> None:
            called.append(result)
            raise RuntimeError("a bug in the callback")

        async with async_server() as (client, peer):
            client.request_callback(insert_request(), fail)
            peer.send(answer(await peer.read(), order_id=1))
            await until(lambda: bool(called))
            second = client.request(insert_request())
            peer.send(answer(await peer.read(), order_id=2))
            assert (await second).order_id == 2  # type: ignore[attr-defined]
            assert not client.closed.done() and nothing_left(client)

    run(test)
    assert "a request's callback failed" in caplog.text and "a bug in the callback" in caplog.text


def test_async_request_callback_refuses_a_wrong_expect_sending_nothing() -> None:
    async def test() -> None:
        async with async_server() as (client, peer):
            results: list[object] = []
            with pytest.raises(TypeError, match="not answered by CancelOrderResponse"):
                client.request_callback(insert_request(), results.append, expect=ob.CancelOrderResponse)
            assert nothing_left(client)
            future = client.request(insert_request(), expect=ob.InsertOrderResponse)
            request = await peer.read()  # the first frame the server gets: the refused one was not sent
            assert isinstance(request, ob.InsertOrderRequest)
            peer.send(answer(request))
            await future
            assert results == []

    run(test)


def test_async_a_cancelled_request_among_others_frees_its_entry_and_its_answer_is_dropped() -> None:
    """request() on request_callback: a cancelled future frees its entry, however the two race."""

    async def test() -> None:
        async with async_server() as (client, peer):
            futures = [client.request(insert_request()) for _ in range(3)]
            requests = [await peer.read() for _ in range(3)]
            futures[1].cancel()
            assert client.session.in_flight == 3  # freed once the cancellation's callback ran
            await until(lambda: client.session.in_flight == 2)
            peer.send(*(answer(r) for r in requests))
            assert [type(r) for r in await asyncio.gather(futures[0], futures[2])] == [
                ob.InsertOrderResponse
            ] * 2
            assert nothing_left(client) and client.messages.empty()  # the cancelled one's answer dropped

    run(test)
