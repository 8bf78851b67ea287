"""The live book view (`optivex book`) in a pseudo-terminal, against a real deployment.

It redraws in place (rich's cursor-up-and-erase before each frame, the frame's height constant) and
shows the book after a trade; while a client floods the book with changes (thousands a second,
straight to the order book) it redraws at most 10 times in a second, and leaves on Ctrl-C with exit
status 0 and the cursor shown again. `Terminal` and `Flood` serve `test_demo.py` and
`benchmarks/live_view.py` too.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from optivex.client import Exchange, Side, SyncClient, TimeInForce
from optivex.deploy import Deployment, start_suite
from optivex.deploy.runner import console_script
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob

from .helpers import TIMEOUT
from .test_cli import addresses, write_config

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pty and /proc (Linux)")

START_TIMEOUT = 10.0
WAIT = 30.0
REDRAW = re.compile(rb"\r\x1b\[2K(?:\x1b\[1A\x1b\[2K)+")
"""What rich's Live writes before each frame but the first: back to the frame's first line, erasing."""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A command running in a pseudo-terminal of `rows` x `columns`; its output read by a thread, each
    chunk with the time it arrived."""

    def __init__(
        self, argv: Sequence[str], rows: int = 50, columns: int = 110, cwd: Path | None = None
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.process = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env, cwd=cwd
        )
        os.close(slave)
        self.master = master
        self.buffer = bytearray()
        self.arrivals: list[tuple[int, float]] = []
        """(end offset in buffer, monotonic time) of each chunk."""
        self._changed = threading.Condition()
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the slave side is gone
                data = b""
            with self._changed:
                if not data:
                    self.closed = True
                    self._changed.notify_all()
                    return
                self.buffer += data
                self.arrivals.append((len(self.buffer), time.monotonic()))
                self._changed.notify_all()

    def text(self) -> str:
        with self._changed:
            return bytes(self.buffer).decode("utf-8", errors="replace")

    def frames(self) -> list[str]:
        """Each frame drawn so far, its escape sequences removed."""
        with self._changed:
            data = bytes(self.buffer)
        parts = REDRAW.split(data)
        return [ANSI.sub("", part.decode("utf-8", errors="replace")).replace("\r", "") for part in parts]

    def screen(self) -> str:
        """The last frame drawn."""
        return self.frames()[-1]

    def wait_for(self, predicate: Callable[[Terminal], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    raise AssertionError(
                        f"not shown within {timeout:g} s: {what}; output:\n{self.text()[-4000:]}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def redraws(self, since: float, until: float) -> int:
        """Redraws whose first byte arrived in [since, until)."""
        with self._changed:
            data = bytes(self.buffer)
            arrivals = list(self.arrivals)
        count = 0
        index = 0
        for match in REDRAW.finditer(data):
            while index < len(arrivals) and arrivals[index][0] <= match.start():
                index += 1
            if index < len(arrivals) and since <= arrivals[index][1] < until:
                count += 1
        return count

    def interrupt(self, timeout: float = WAIT) -> int:
        """Ctrl-C (SIGINT to the process), then its exit status once its output is read."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        os.close(self.master)


class Flood(threading.Thread):
    """Inserts resting buy orders of 1 lot straight into the order book, round the `levels` prices, at
    `rate` a second (in pipelined batches): each one changes the book's top levels, no trade."""

    def __init__(
        self, address: tuple[str, int], book_id: int, levels: Sequence[float], rate: float, batch: int = 50
    ) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.book_id = book_id
        self.levels = list(levels)
        self.rate = rate
        self.batch = batch
        self.done = threading.Event()
        self.inserted = 0
        self.started_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._flood()
        except BaseException as exc:
            self.error = exc

    def _flood(self) -> None:
        host, port = self.address
        with SyncClient(host, port, "order_book", timeout=TIMEOUT) as client:
            self.started_at = time.monotonic()
            n = 0
            while not self.done.is_set():
                requests = []
                for _ in range(self.batch):
                    price = self.levels[n % len(self.levels)]
                    n += 1
                    requests.append(
                        ob.InsertOrderRequest(
                            order_book_id=self.book_id, side=common_pb2.BUY, price=price, quantity=1
                        )
                    )
                client.send(*requests)
                answered = 0
                while answered < self.batch:
                    message = client.receive()
                    if isinstance(message, ob.InsertOrderResponse):
                        assert not message.error_message, message.error_message
                        answered += 1
                self.inserted += self.batch
                ahead = self.started_at + self.inserted / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def per_second(self) -> float:
        return self.inserted / max(1e-9, time.monotonic() - self.started_at)

    def stop(self) -> None:
        self.done.set()
        self.join(WAIT)
        if self.error is not None:
            raise self.error


def create_book(deployment: Deployment, symbol: str) -> int:
    """Create an instrument (tick 0.01) through admin; its order_book_id."""
    host, port = deployment.address("admin")
    with SyncClient(host, port, "admin", timeout=TIMEOUT) as admin:
        admin.login("admin", "admin")
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
            ),
            check=True,
            expect=admin_pb2.CreateInstrumentResponse,
        )
        return response.order_book_id


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    started = start_suite(None, tmp_path_factory.mktemp("pty") / "deployment", start_timeout=START_TIMEOUT)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def config(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(deployment, tmp_path_factory.mktemp("pty-config") / "deployment_config.json")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def book_view(config: Path, symbol: str, *args: str) -> Terminal:
    return Terminal([console_script("optivex"), "book", symbol, "--config", str(config), *args])


def ladder_rows(screen: str) -> list[list[str]]:
    """The ladder's rows (bid qty, price, ask qty as words) between its heading and "Last trades"."""
    lines = screen.splitlines()
    start = next((i for i, line in enumerate(lines) if "bid qty" in line), None)
    end = next((i for i, line in enumerate(lines) if line.startswith("Last trades")), None)
    if start is None or end is None:
        return []  # not drawn yet, or a frame still arriving
    return [line.split() for line in lines[start + 1 : end] if line.strip()]


def tape_rows(screen: str) -> list[list[str]]:
    lines = screen.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("time (UTC)")), None)
    if start is None:
        return []
    return [line.split() for line in lines[start + 1 :] if line.strip()]


def test_the_book_view_redraws_in_place_and_shows_a_trade(
    deployment: Deployment, config: Path, terminals: list[Terminal]
) -> None:
    create_book(deployment, "LIVE1")
    with (
        Exchange.connect("alice", addresses=addresses(deployment), timeout=TIMEOUT) as alice,
        Exchange.connect("bob", addresses=addresses(deployment), timeout=TIMEOUT) as bob,
    ):
        alice.insert_order("LIVE1", Side.SELL, 10.5, 5)
        alice.insert_order("LIVE1", Side.BUY, 10.25, 7)
        view = book_view(config, "LIVE1", "--depth", "5", "--trades", "4")
        terminals.append(view)
        view.wait_for(lambda t: ["10.50", "5"] in ladder_rows(t.screen()), "the resting ask")
        assert ladder_rows(view.screen()) == [["10.50", "5"], ["7", "10.25"]]
        assert "LIVE1" in view.screen() and "tick 0.01" in view.screen()

        bob.insert_order("LIVE1", Side.BUY, 10.5, 3, TimeInForce.IMMEDIATE_OR_CANCEL)
        view.wait_for(lambda t: ["10.50", "2"] in ladder_rows(t.screen()), "the ask after the trade")
        view.wait_for(
            lambda t: any(row[1:4] == ["BUY", "3", "10.50"] for row in tape_rows(t.screen())), "the trade"
        )
        screen = view.screen()
        assert "last 10.50 x 3" in screen and "spread 0.25" in screen

        frames = view.frames()
        assert len(frames) >= 2, "the trade must be a redraw in place, not new lines"
        heights = {len(frame.rstrip("\n").splitlines()) for frame in frames[1:]}
        assert len(heights) == 1, f"frames of different heights: {heights}"
        assert view.text().startswith("\x1b[?25l"), "the cursor is hidden while drawing"
    assert view.interrupt() == 0
    assert view.text().endswith("\x1b[?25h"), "the cursor is shown again on the way out"


def test_at_most_ten_redraws_a_second_under_a_flood(
    deployment: Deployment, config: Path, terminals: list[Terminal]
) -> None:
    book_id = create_book(deployment, "LIVE2")
    view = book_view(config, "LIVE2")
    terminals.append(view)
    view.wait_for(lambda t: "bid qty" in t.screen(), "the empty ladder")
    levels = [round(99.0 + i * 0.01, 2) for i in range(10)]
    flood = Flood(deployment.address("order_book"), book_id, levels, rate=5000)
    flood.start()
    try:
        view.wait_for(lambda t: len(ladder_rows(t.screen())) == 10, "ten bid levels")
        time.sleep(1.0)
        since = time.monotonic()
        time.sleep(1.0)
        redraws = view.redraws(since, since + 1.0)
        screen = view.screen()
    finally:
        flood.stop()
    rate = flood.per_second()
    updates = int(re.search(r"(\d+) updates/s", screen).group(1))  # type: ignore[union-attr]
    print(f"flood {rate:.0f} inserts/s, the view received {updates} books/s, redrew {redraws} times in 1 s")
    # Not a speed test: only that the view got books faster than it may redraw, and kept to the cap.
    assert rate >= 1000, f"the flood was too slow to test anything: {rate:.0f}/s"
    assert updates >= 20, screen
    assert 1 <= redraws <= 10, redraws
    total = sum(int(row[0]) for row in ladder_rows(screen))
    assert total > 100, screen
    assert view.interrupt() == 0


def test_a_lost_info_is_one_line_not_a_traceback(tmp_path: Path, terminals: list[Terminal]) -> None:
    own = start_suite(None, tmp_path / "deployment", start_timeout=START_TIMEOUT)
    try:
        config_path = write_config(own, tmp_path / "deployment_config.json")
        create_book(own, "LIVE3")
        view = book_view(config_path, "LIVE3")
        terminals.append(view)
        view.wait_for(lambda t: "bid qty" in t.screen(), "the empty ladder")
        own.stop_component("info")
        code = view.process.wait(WAIT)
    finally:
        own.stop()
    view._reader.join(WAIT)
    host, port = own.address("info")
    assert code == 3
    text = ANSI.sub("", view.text())
    assert f"optivex book: info at {host}:{port}: connection lost" in text and "Traceback" not in text, text
    assert text.rstrip().splitlines()[-1].startswith("optivex book: "), text
