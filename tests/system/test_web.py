"""optivex-web against a real deployment, without a browser: its HTTP files and its WebSocket's JSON.

The web component joins the deployment's components (`web_spec`, started by the runner like any
other). Each test reads the stream as the page's script does (`Page`, tests/unit/test_web_market.py)
and waits for what it expects to be shown; a deadline only bounds the wait.

- the page and its files, all from the package (no other origin): `test_the_page_and_its_files`;
- a trade made through the gateway, and the book it leaves, reach the stream, and so do instruments
  created later: `test_a_trade_through_the_gateway_reaches_the_stream`;
- a late joiner gets the day's trades (TradesRequest): `test_a_late_joiner_gets_the_trades_it_missed`;
- at most 10 updates a second however fast books move, the last state always shown:
  `test_updates_are_coalesced_to_ten_a_second`;
- a browser that does not read is dropped and stalls nobody:
  `test_a_browser_that_does_not_read_is_dropped_and_stalls_nobody`;
- browsers beyond maxBrowsers are refused (503): `test_browsers_beyond_the_bound_are_refused`;
- info's restart: the stream says so, then follows the new info:
  `test_the_stream_follows_info_across_its_restart`;
- the order book's new day: yesterday's instruments leave the page: `test_a_new_day_at_the_order_book`;
- while the order book is down, subscriptions are asked again; its new day takes the instruments it
  no longer has off the page: `test_while_the_order_book_is_down`;
- SIGTERM stops it at once (status 0) even while a browser that does not read holds full buffers:
  `test_it_stops_at_once_with_a_browser_that_does_not_read`.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, cast

import aiohttp
import pytest

from optivex.deploy import ComponentSpec, Deployment, default_deployment_path, load_deployment
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.web.deploy import web_component

from ..unit.test_web_market import Page
from .helpers import BUY, SELL, Exchange, SyncClient

WEB_TIMEOUT = 15.0
"""Seconds the stream has to show what a test waits for (a bound on the wait, never a pause)."""
WEB_USER = "carol"
"""The web component's login to info (password from the deployment's user data file)."""

DeployComponents = Callable[[Iterable[ComponentSpec], Collection[str]], Deployment]


def web_spec(**config: Any) -> ComponentSpec:
    """The web component as a deployment entry (the runner rewrites its addresses and paths)."""
    return web_component(WEB_USER, 0, **config)


def start_with_web(
    deploy_components: DeployComponents, defer: Collection[str] = (), **config: Any
) -> Exchange:
    """Every component of deployment_config.json, and the web component (configured with `config`)."""
    components = load_deployment(default_deployment_path()).components
    return Exchange(deploy_components([*components, web_spec(**config)], defer))


def web_url(exchange: Exchange, path: str = "/") -> str:
    host, port = exchange.deployment.component("web").address
    return f"http://{host}:{port}{path}"


def web_log(exchange: Exchange) -> str:
    return "".join(p.read_text() for p in exchange.deployment.component("web").log_files())


class Stream:
    """One browser's WebSocket, read into a Page by a task of its own as messages come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.page = Page()
        self.arrivals: list[float] = []
        self.ended: aiohttp.WSMessage | None = None
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            message = await self.ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                self.ended = message
                self._arrived.set()
                return
            self.arrivals.append(loop.time())
            self.page.apply(message.data)
            self._arrived.set()

    async def until(self, shown: Callable[[Page], bool], what: str, timeout: float = WEB_TIMEOUT) -> None:
        """Wait until the page shows `what` (AssertionError, with what it shows, past `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not shown(self.page):
            assert self.ended is None, f"the stream ended ({self.ended}) before showing {what}"
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise AssertionError(
                    f"the stream did not show {what} within {timeout:g} s; it shows "
                    f"connected={self.page.connected} {self.page.instruments}"
                ) from None


def book(page: Page, symbol: str) -> dict[str, list[list[Any]]] | None:
    state = page.instruments.get(symbol)
    return None if state is None else state["book"]


def trades(page: Page, symbol: str) -> list[list[Any]]:
    state = page.instruments.get(symbol)
    return [] if state is None else state["trades"]


def place(client: SyncClient, symbol: str, side: int, price: float, quantity: int) -> ex.InsertOrderResponse:
    response = client.request(
        ex.InsertOrderRequest(
            instrument_symbol=symbol, side=cast(common_pb2.Side, side), price=price, quantity=quantity
        ),
        expect=ex.InsertOrderResponse,
    )
    assert response.error_message == "", response
    return response


def run(body: Callable[[aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            await body(session)

    asyncio.run(main())


async def open_stream(session: aiohttp.ClientSession, exchange: Exchange) -> Stream:
    stream = Stream(await session.ws_connect(web_url(exchange, "/ws"), autoping=True))
    await stream.until(lambda p: p.messages > 0 and p.connected, "a connection to info")
    return stream


def test_the_page_and_its_files(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components)

    async def body(session: aiohttp.ClientSession) -> None:
        async with session.get(web_url(exchange)) as page:
            assert page.status == 200 and page.content_type == "text/html"
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]
            html = await page.text()
        linked = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert sorted(linked) == [
            "/static/app.js",
            "/static/favicon.svg",
            "/static/style.css",
        ]  # nothing from elsewhere
        for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
            async with session.get(web_url(exchange, path)) as file:
                assert (file.status, file.content_type) == (200, kind)
                assert "http://" not in await file.text() and "https://" not in await file.text()
        async with session.get(web_url(exchange, "/static/none.js")) as missing:
            assert missing.status == 404
        async with session.get(web_url(exchange, "/snapshot.json")) as snapshot:
            assert snapshot.status == 200
            assert (await snapshot.json())["t"] == "s"

    run(body)


def test_a_trade_through_the_gateway_reaches_the_stream(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components)
    exchange.create_instrument("ABC", tick_size=0.05)

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: "ABC" in p.instruments, "ABC")
        assert stream.page.instruments["ABC"]["listing"]["d"] == 2
        alice, bob = exchange.gateway("alice"), exchange.gateway("bob")
        place(alice, "ABC", SELL, 10.05, 5)
        place(alice, "ABC", SELL, 10.10, 3)
        place(alice, "ABC", BUY, 9.95, 4)
        taken = place(bob, "ABC", BUY, 10.05, 2)
        (trade_id,) = taken.trade_ids
        await stream.until(
            lambda p: (
                book(p, "ABC") == {"b": [["9.95", 4]], "a": [["10.05", 3], ["10.10", 3]]}
                and [t[0] for t in trades(p, "ABC")] == [trade_id]
            ),
            "the trade and the book it left",
        )
        ((_, ms, price, quantity, side),) = trades(stream.page, "ABC")
        assert (price, quantity, side) == ("10.05", 2, "B")
        assert abs(ms / 1000 - time.time()) < 60
        exchange.create_instrument("XYZ", tick_size=0.0001)
        await stream.until(lambda p: "XYZ" in p.instruments, "an instrument created later")
        assert stream.page.instruments["XYZ"]["listing"]["d"] == 4
        assert book(stream.page, "XYZ") == {"b": [], "a": []}

    run(body)


def test_a_late_joiner_gets_the_trades_it_missed(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components, defer=("web",))
    exchange.create_instrument("ABC")
    alice, bob = exchange.gateway("alice"), exchange.gateway("bob")
    ids: list[int] = []
    for n in range(3):
        place(alice, "ABC", SELL, 10 + n, 1)
        ids.extend(place(bob, "ABC", BUY, 10 + n, 1).trade_ids)
    exchange.deployment.start_component("web")

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: [t[0] for t in trades(p, "ABC")] == ids, "the day's trades")
        assert [t[2] for t in trades(stream.page, "ABC")] == ["10.00", "11.00", "12.00"]
        place(alice, "ABC", SELL, 13, 1)
        ids.extend(place(bob, "ABC", BUY, 13, 1).trade_ids)
        await stream.until(lambda p: [t[0] for t in trades(p, "ABC")] == ids, "a live trade after them")

    run(body)


def move_books(exchange: Exchange, books: list[int], seconds: float, stop: threading.Event) -> int:
    """Insert resting bids into the books, pipelined in windows of 200, for `seconds` (or until `stop`);
    how many. Every insert changes a book's depth (a new level, or a level's quantity)."""
    client = exchange.order_book()
    rng = random.Random(7)
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop.is_set():
        window = [
            ob.InsertOrderRequest(
                order_book_id=rng.choice(books),
                side=BUY,
                price=rng.randrange(900, 990) / 100,
                quantity=rng.randrange(1, 100),
                on_behalf_of_username="dave",
            )
            for _ in range(200)
        ]
        client.send(*window)
        answered = 0
        while answered < len(window):  # the order book's events come too
            message = client.receive()
            if isinstance(message, ob.InsertOrderResponse):
                assert message.error_message == "", message
                answered += 1
        sent += len(window)
    return sent


def in_thread(target: Callable[[], int]) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def test_updates_are_coalesced_to_ten_a_second(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components)
    books = [exchange.create_instrument(symbol) for symbol in ("ABC", "DEF", "GHI")]

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: len(p.instruments) == 3, "the three instruments")
        before = len(stream.arrivals)
        stop = threading.Event()
        thread, sent = in_thread(lambda: move_books(exchange, books, 2.0, stop))
        try:
            await asyncio.to_thread(thread.join, WEB_TIMEOUT)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
        # the last state is shown: a bid above every bid of the load, on the last book
        place(exchange.gateway("alice"), "GHI", BUY, 9.99, 777)
        await stream.until(lambda p: (book(p, "GHI") or {"b": [[]]})["b"][0] == ["9.99", 777], "the last bid")
        during = stream.arrivals[before:]
        span = during[-1] - during[0]
        print(f"{sent[0]} inserts; {len(during)} messages in {span:.2f} s")
        # one message per 0.1 s at most; 0.5 s for the first one's delay in reaching this process
        assert len(during) <= (span + 0.5) / 0.1 + 1, (len(during), span)
        assert sent[0] >= 1000 and len(during) >= 3, (sent, len(during))

    run(body)


def hostile_browser(exchange: Exchange) -> socket.socket:
    """A WebSocket client that completes its handshake and then never reads (a receive buffer of 4 KiB)."""
    host, port = exchange.deployment.component("web").address
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WEB_TIMEOUT)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def dropped(sock: socket.socket) -> bool:
    """Read what the server had sent until the connection ends (True), or WEB_TIMEOUT passes (False)."""
    deadline = time.monotonic() + WEB_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 16):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


def test_a_browser_that_does_not_read_is_dropped_and_stalls_nobody(
    deploy_components: DeployComponents,
) -> None:
    exchange = start_with_web(deploy_components, browserTimeoutSeconds=1)
    symbols = [f"S{n:02d}" for n in range(20)]
    books = [exchange.create_instrument(symbol) for symbol in symbols]

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: len(p.instruments) == len(symbols), "every instrument")
        hostile = await asyncio.to_thread(hostile_browser, exchange)
        stop = threading.Event()
        thread, _ = in_thread(lambda: move_books(exchange, books, 4.0, stop))
        try:
            assert await asyncio.to_thread(dropped, hostile), "the browser that does not read was not dropped"
            # while it was stuck and until it was dropped, the reading browser got every update
            before = len(stream.arrivals)
            await stream.until(lambda p: len(stream.arrivals) >= before + 3, "updates after the drop")
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)
            hostile.close()
        place(exchange.gateway("alice"), "S19", BUY, 9.99, 777)
        await stream.until(lambda p: (book(p, "S19") or {"b": [[]]})["b"][0] == ["9.99", 777], "the last bid")
        assert "dropped browser" in web_log(exchange)

    run(body)


def test_browsers_beyond_the_bound_are_refused(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components, maxBrowsers=2)

    async def body(session: aiohttp.ClientSession) -> None:
        first = await open_stream(session, exchange)
        await open_stream(session, exchange)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(web_url(exchange, "/ws"))
        assert refused.value.status == 503
        await first.ws.close()
        deadline = time.monotonic() + WEB_TIMEOUT
        while True:  # the server counts the first one out once it sees it closed
            try:
                await open_stream(session, exchange)
                break
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503 and time.monotonic() < deadline, exc
                await asyncio.sleep(0.05)

    run(body)


def test_the_stream_follows_info_across_its_restart(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components)
    exchange.create_instrument("ABC")
    alice, bob = exchange.gateway("alice"), exchange.gateway("bob")
    place(alice, "ABC", SELL, 10, 1)
    ids = list(place(bob, "ABC", BUY, 10, 1).trade_ids)

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: [t[0] for t in trades(p, "ABC")] == ids, "the first trade")
        await asyncio.to_thread(exchange.deployment.stop_component, "info")
        await stream.until(lambda p: not p.connected, "info's loss")
        await asyncio.to_thread(exchange.deployment.start_component, "info")
        await stream.until(lambda p: p.connected, "the new info")
        place(alice, "ABC", SELL, 11, 1)
        ids.extend(place(bob, "ABC", BUY, 11, 1).trade_ids)
        place(alice, "ABC", SELL, 12, 5)
        await stream.until(
            lambda p: (
                [t[0] for t in trades(p, "ABC")] == ids and book(p, "ABC") == {"b": [], "a": [["12.00", 5]]}
            ),
            "a trade and the book after the restart",
        )

    run(body)


def test_a_new_day_at_the_order_book(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components)
    for symbol in ("ABC", "XYZ"):
        exchange.create_instrument(symbol)
    alice, bob = exchange.gateway("alice"), exchange.gateway("bob")
    place(alice, "ABC", SELL, 10, 1)
    place(bob, "ABC", BUY, 10, 1)

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(
            lambda p: set(p.instruments) == {"ABC", "XYZ"} and bool(trades(p, "ABC")), "the day"
        )
        await asyncio.to_thread(exchange.deployment.stop_component, "order_book")
        await asyncio.to_thread(exchange.deployment.start_component, "order_book")
        admin = exchange.admin()
        deadline = time.monotonic() + WEB_TIMEOUT
        while True:  # admin answers "unavailable" until it is back on the order book
            response = admin.request(
                admin_pb2.CreateInstrumentRequest(
                    instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01
                ),
                expect=admin_pb2.CreateInstrumentResponse,
            )
            if not response.error_message:
                break
            assert "unavailable" in response.error_message and time.monotonic() < deadline, response
            await asyncio.sleep(0.05)
        await stream.until(
            lambda p: (
                set(p.instruments) == {"ABC"}
                and not trades(p, "ABC")
                and book(p, "ABC") == {"b": [], "a": []}
            ),
            "the new day's ABC alone",
        )

    run(body)


def test_it_stops_at_once_with_a_browser_that_does_not_read(deploy_components: DeployComponents) -> None:
    exchange = start_with_web(deploy_components, browserTimeoutSeconds=60)
    books = [exchange.create_instrument(f"S{n}") for n in range(10)]

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        hostile = await asyncio.to_thread(hostile_browser, exchange)
        try:
            move_books(exchange, books, 1.0, threading.Event())  # its buffers fill while it does not read
            await stream.until(lambda p: len(p.instruments) == len(books), "every instrument")
            code = await asyncio.to_thread(exchange.deployment.stop_component, "web")
            assert code == 0, exchange.deployment.component("web").tail()
            assert not exchange.deployment.component("web").killed
        finally:
            hostile.close()

    run(body)


def create_when_available(exchange: Exchange, symbol: str) -> None:
    """Create an instrument, asking again while admin answers "unavailable" (its order book restarting)."""
    admin = exchange.admin()
    deadline = time.monotonic() + WEB_TIMEOUT
    while True:
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
            ),
            expect=admin_pb2.CreateInstrumentResponse,
        )
        if not response.error_message:
            return
        assert "unavailable" in response.error_message and time.monotonic() < deadline, response
        time.sleep(0.05)


async def until_logged(exchange: Exchange, text: str) -> None:
    deadline = time.monotonic() + WEB_TIMEOUT
    while text not in web_log(exchange):
        assert time.monotonic() < deadline, f"the web component never logged {text!r}:\n{web_log(exchange)}"
        await asyncio.sleep(0.05)


def test_while_the_order_book_is_down(deploy_components: DeployComponents) -> None:
    """Subscriptions info cannot carry out are asked again; once the order book is back with a new day,
    the instruments it no longer has leave the page."""
    exchange = start_with_web(deploy_components, defer=("web",))
    exchange.create_instrument("ABC")
    exchange.deployment.stop_component("order_book")
    exchange.deployment.start_component("web")

    async def body(session: aiohttp.ClientSession) -> None:
        stream = await open_stream(session, exchange)
        await stream.until(lambda p: "ABC" in p.instruments, "ABC, which info still lists")
        await until_logged(exchange, "cannot subscribe to 'ABC': order book unavailable")
        await asyncio.to_thread(exchange.deployment.start_component, "order_book")
        await stream.until(lambda p: "ABC" not in p.instruments, "ABC gone with the new day")
        await asyncio.to_thread(create_when_available, exchange, "XYZ")
        await stream.until(lambda p: set(p.instruments) == {"XYZ"}, "the new day's instrument")

    run(body)
