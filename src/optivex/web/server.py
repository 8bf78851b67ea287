"""The HTTP side of optivex-web (aiohttp): the page, its files, and a WebSocket per browser.

Routes: ``/`` (the page), ``/static/<file>`` (its script and style, from the
package: no CDN, it works offline), ``/ws`` (the live stream: JSON text
messages, see ``web.market``) and ``/snapshot.json`` (the current state as
one snapshot message, for scripts and curl).

Bounds, so that hostile browsers are normal browsers:

- at most `max_browsers` WebSockets at once (handshakes in progress
  included); more are refused with 503, logged once per 10 s with a count;
- each browser gets at most one message per ``UPDATE_INTERVAL`` (0.1 s:
  10 a second), holding the latest state of everything that changed since
  its last one, however fast the books move; a quiet period is ended at
  once by the next change;
- each browser has its own sender, and nothing is queued for it beyond the
  one message being written: a browser that does not read stalls nobody
  else; one that does not answer a ping within half of `browser_timeout`
  (a ping goes after `browser_timeout` seconds without a word from it) or
  whose update is not taken within `browser_timeout` is dropped (its
  connection aborted), and so is one with more than ``MAX_UNSENT_BYTES``
  unsent; the kernel's send buffer of its socket is capped at
  ``SEND_BUFFER_BYTES``;
- what a browser sends is ignored (a message above ``MAX_RECEIVED_BYTES``
  closes its connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from importlib import resources

from aiohttp import WSMsgType, web

from optivex.web.market import Market, Viewer

UPDATE_INTERVAL = 0.1
"""Seconds between two messages to one browser, at least."""
MAX_UNSENT_BYTES = 1 << 20
"""A browser with more output waiting in user space is dropped."""
SEND_BUFFER_BYTES = 256 * 1024
"""SO_SNDBUF of each WebSocket's socket: what the kernel holds for a browser that does not read."""
MAX_RECEIVED_BYTES = 4096
REFUSALS_LOGGED_EVERY = 10.0
"""Seconds between two log lines about browsers refused beyond max_browsers."""
STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files shipped in the package: name -> (content, content type)."""
    files: dict[str, tuple[bytes, str]] = {}
    root = resources.files(__package__).joinpath("static")
    for entry in root.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            files[name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    if "index.html" not in files:
        raise RuntimeError("the package has no web/static/index.html")
    return files


class WebServer:
    """The aiohttp application over one Market; `changed()` wakes the browsers' senders."""

    def __init__(
        self, market: Market, log: logging.Logger, *, max_browsers: int, browser_timeout: float
    ) -> None:
        self.market = market
        self.log = log
        self.max_browsers = max_browsers
        self.browser_timeout = browser_timeout
        self.browsers: set[web.WebSocketResponse] = set()
        """The WebSockets served (from before their handshake: the bound counts those in progress)."""
        self._refused = 0
        self._refused_logged_at = -REFUSALS_LOGGED_EVERY
        self._static = load_static()
        self._change: asyncio.Future[None] | None = None
        self.app = web.Application(handler_args={"max_field_size": 8190, "max_line_size": 8190})
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/static/{name}", self._file)
        self.app.router.add_get("/ws", self._websocket)
        self.app.router.add_get("/snapshot.json", self._snapshot)
        self.app.on_shutdown.append(self._close_browsers)

    def changed(self) -> None:
        """The market changed: every sender waiting for a change goes on."""
        change = self._change
        if change is not None and not change.done():
            change.set_result(None)

    async def _next_change(self) -> None:
        if self._change is None or self._change.done():
            self._change = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._change)

    def _send_file(self, name: str) -> web.Response:
        found = self._static.get(name)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, content_type=content_type, headers=SECURITY_HEADERS)

    async def _index(self, request: web.Request) -> web.Response:
        return self._send_file("index.html")

    async def _file(self, request: web.Request) -> web.Response:
        return self._send_file(request.match_info["name"])

    async def _snapshot(self, request: web.Request) -> web.Response:
        text = self.market.update(Viewer())
        assert text is not None  # a fresh viewer always gets a snapshot
        return web.Response(text=text, content_type="application/json", headers=SECURITY_HEADERS)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self.browsers) >= self.max_browsers:
            self._refuse(request)
            return web.Response(status=503, text=f"too many browsers (at most {self.max_browsers} at once)\n")
        ws = web.WebSocketResponse(
            heartbeat=self.browser_timeout,  # aiohttp waits half of it for the pong
            max_msg_size=MAX_RECEIVED_BYTES,
            compress=False,
        )
        self.browsers.add(ws)  # before the handshake's await: concurrent ones count against the bound
        try:
            await ws.prepare(request)
        except BaseException:
            self.browsers.discard(ws)
            raise
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        remote = request.remote
        self.log.info("browser %s connected (%d now)", remote, len(self.browsers))
        sender = asyncio.get_running_loop().create_task(self._send_updates(ws, request))
        try:
            async for message in ws:  # nothing is expected; reading answers pings and sees the close
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            sender.cancel()
            outcome = (await asyncio.gather(sender, return_exceptions=True))[0]
            self.browsers.discard(ws)
            failure = ws.exception()
            why = (
                outcome
                if isinstance(outcome, str)
                else failure
                if isinstance(failure, TimeoutError)
                else None
            )
            transport = request.transport
            if transport is not None and (why is not None or transport.get_write_buffer_size()):
                transport.abort()  # a close would wait for a peer that does not read
            if why is not None:
                self.log.warning("dropped browser %s: %s (%d now)", remote, why, len(self.browsers))
            else:
                gone = f" ({failure})" if failure is not None else ""
                self.log.info("browser %s gone%s (%d now)", remote, gone, len(self.browsers))
        return ws

    async def _send_updates(self, ws: web.WebSocketResponse, request: web.Request) -> str | None:
        """One browser's sender: the market's diff for it, at most once per UPDATE_INTERVAL.

        Returns why the browser must be dropped, having aborted its connection (None: it closed)."""
        try:
            return await self._send_loop(ws, request)
        except Exception:  # a bug: the browser would stay connected without updates
            self.log.exception("the sender of browser %s failed", request.remote)
            return self._drop(request, "its sender failed")

    async def _send_loop(self, ws: web.WebSocketResponse, request: web.Request) -> str | None:
        loop = asyncio.get_running_loop()
        viewer = Viewer()
        market = self.market
        while not ws.closed:
            text = market.update(viewer)
            if text is None:
                await self._next_change()
                continue
            transport = request.transport
            if transport is not None and transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
                return self._drop(request, "too much unsent output")
            sent_at = loop.time()
            try:
                await asyncio.wait_for(ws.send_str(text), self.browser_timeout)
            except TimeoutError:
                return self._drop(request, f"an update not taken within {self.browser_timeout:g} s")
            except ConnectionError:
                return None
            await asyncio.sleep(max(0.0, sent_at + UPDATE_INTERVAL - loop.time()))
        return None

    def _drop(self, request: web.Request, why: str) -> str:
        if request.transport is not None:
            request.transport.abort()  # a close handshake could wait on the same full buffers
        return why

    def _refuse(self, request: web.Request) -> None:
        """Count a refused browser; logged at most once per REFUSALS_LOGGED_EVERY seconds, with the count."""
        self._refused += 1
        now = asyncio.get_running_loop().time()
        if now - self._refused_logged_at >= REFUSALS_LOGGED_EVERY:
            self._refused_logged_at = now
            self.log.warning(
                "refused a browser from %s: %d served already (maxBrowsers); %d refused so far",
                request.remote,
                self.max_browsers,
                self._refused,
            )

    async def _close_browsers(self, app: web.Application) -> None:
        """Stopping: every browser told so at once, for at most a second in all."""
        closes = [
            asyncio.ensure_future(ws.close(code=1001, message=b"server stopping"))
            for ws in self.browsers
            if ws.prepared
        ]
        if closes:
            await asyncio.wait(closes, timeout=1.0)
