"""The web page in a real browser while the demo trades: does it keep up with the books?

A deployment through the runner (every component of deployment_config.json, and optivex-web) on
ephemeral ports; the demo's own bots (`optivex demo`'s market makers and random takers, as
processes) on DEMO and DEMO2, and with --flood a stream of resting 1-lot buys on DEMO straight into
the order book; headless Debian chromium (selenium) shows the page. --samples times: a resting
order on a third instrument, MARK, through the gateway, timed from the gateway's response until the
page's ladder shows it, then its cancel until the page drops it (the page's DOM polled 5 ms
after each answer of chromedriver, whose own round trip is 7-22 ms: each lag is good to ~20 ms).
Prints the order book's changes/s (every event an order-book listener got), the lag's p50,
p90 and max, optivex-web's and the whole chromium tree's CPU (from /proc), and last, with the bots
and the flood paused, whether the page's DEMO ladder comes to equal info's book.

    ./scripts/uv run python benchmarks/web_demo.py [--seconds 20] [--flood 5000] [--samples 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optivex.client import Addresses, Exchange, SyncClient
from optivex.deploy import Deployment, default_deployment_path, load_deployment
from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.protocols import protocol_for
from optivex.tools.demo import Bot, demo_bots
from optivex.web.deploy import web_component
from tests.system.test_cli import write_config
from tests.system.test_cli_pty import Flood
from tests.system.test_web_browser import chromium_driver, missing

SYMBOLS = ("DEMO", "DEMO2")
LADDER_JS = """
const card = 'section.card[data-symbol="' + arguments[0] + '"]';
const rows = document.querySelectorAll(card + ' .ladder tr.ask, ' + card + ' .ladder tr.bid');
return Array.from(rows, r => [r.dataset.side, r.dataset.price, r.dataset.qty]);
"""
STATUS_JS = "return document.getElementById('status').dataset.state;"
SHOWS_JS = """
return document.querySelector(
  'section.card[data-symbol="MARK"] .ladder tr[data-price="' + arguments[0] + '"]') !== null;
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EventCounter(threading.Thread):
    """Counts every event an order-book connection receives: the book changes of the day."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.client = SyncClient(*address, "order_book")
        self.client.login("admin", "admin")
        self.count = 0
        self.stopping = False

    def run(self) -> None:
        while not self.stopping:
            try:
                self.client.receive()
            except Exception:  # closed at the end, or a timeout while nothing moves
                if self.stopping:
                    return
                continue
            self.count += 1


def tree_cpu_seconds(root: int) -> float:
    """utime + stime of `root` and every process below it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        grew = bool(below)
        tree |= below
    total = 0.0
    for pid in tree:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until `check()` holds, polling every ~5 ms; raises after `timeout`."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"the page did not show it within {timeout:g} s")
        time.sleep(0.005)
    return time.monotonic() - began


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    p50 = statistics.median(ordered)
    return f"p50 {p50 * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


def run(args: argparse.Namespace, workdir: Path) -> None:
    components = load_deployment(default_deployment_path()).components
    deployment = Deployment([*components, web_component("carol", 0, data_file="users.json")], workdir)
    bots: list[Bot] = []
    flood: Flood | None = None
    driver: Any = None
    with deployment:
        config = write_config(deployment, workdir / "deployment_config.json")
        addresses = Addresses.from_config(config)
        with Exchange.connect("admin", addresses=addresses, execution_reports=False) as admin:
            books = {
                s: admin.get_or_create_instrument(s, tick_size=0.01).order_book_id for s in (*SYMBOLS, "MARK")
            }
        counter = EventCounter(deployment.address("order_book"))
        counter.start()
        try:
            bots = [Bot(spec, config, workdir / f"bot{i}.log") for i, spec in enumerate(demo_bots(SYMBOLS))]
            if args.flood:
                levels = [round(9.0 + i * 0.01, 2) for i in range(10)]  # below the bots' quotes
                flood = Flood(deployment.address("order_book"), books["DEMO"], levels, rate=args.flood)
                flood.start()
            driver = chromium_driver()
            host, port = deployment.component("web").address
            driver.get(f"http://{host}:{port}/")
            wait_until(
                lambda: (
                    driver.execute_script("return document.getElementById('status').dataset.state") == "live"
                )
            )
            wait_until(lambda: bool(driver.execute_script(LADDER_JS, "DEMO")))  # the bots quote
            time.sleep(2.0)  # the demo under way
            measure(args, deployment, driver, counter)
            for bot in bots:
                bot.process.send_signal(signal.SIGSTOP)
            if flood is not None:
                flood.done.set()
                flood.join()
            settle(driver, config)
        finally:
            for bot in bots:
                bot.process.send_signal(signal.SIGCONT)
                bot.interrupt()
            for bot in bots:
                bot.finish(time.monotonic() + 5)
            if flood is not None:
                flood.done.set()
            if driver is not None:
                driver.quit()
            counter.stopping = True
            counter.client.close()


def measure(args: argparse.Namespace, deployment: Deployment, driver: Any, counter: EventCounter) -> None:
    web_pid = deployment.component("web").pid
    browser_pid = driver.service.process.pid
    assert web_pid is not None
    trader = SyncClient(*deployment.address("execution"), protocol_for(("execution", "risk_limits")))
    trader.login("alice", "alice")
    shows, drops = [], []
    events0, t0 = counter.count, time.monotonic()
    web0, browser0 = cpu_seconds(web_pid), tree_cpu_seconds(browser_pid)
    pause = max(0.0, args.seconds / args.samples - 0.05)
    for n in range(args.samples):
        price = f"{20 + n / 100:.2f}"

        def shown(price: str = price) -> bool:
            return bool(driver.execute_script(SHOWS_JS, price))

        order = ex.InsertOrderRequest(
            instrument_symbol="MARK", side=common_pb2.SELL, price=float(price), quantity=1
        )
        inserted = trader.request(order, expect=ex.InsertOrderResponse)
        assert not inserted.error_message, inserted
        shows.append(wait_until(shown))
        cancel = ex.CancelOrderRequest(instrument_symbol="MARK", order_id=inserted.order_id)
        cancelled = trader.request(cancel, expect=ex.CancelOrderResponse)
        assert not cancelled.error_message, cancelled
        drops.append(wait_until(lambda: not shown()))
        time.sleep(pause)
    elapsed = time.monotonic() - t0
    events = counter.count - events0
    web = (cpu_seconds(web_pid) - web0) / elapsed * 100
    browser = (tree_cpu_seconds(browser_pid) - browser0) / elapsed * 100
    trader.close()
    print(f"flood {args.flood}/s: the order book made {events / elapsed:,.0f} changes/s for {elapsed:.1f} s")
    print(f"   an order on the page: {ms(shows)}; its cancel: {ms(drops)} ({args.samples} samples)")
    print(f"   CPU % of one core: optivex-web {web:.1f}, chromium (every process) {browser:.1f}")


def settle(driver: Any, config: Path) -> None:
    """With the bots paused: whether the page's DEMO ladder comes to equal info's book."""
    with Exchange.connect(
        "admin", addresses=Addresses.from_config(config), execution_reports=False
    ) as exchange:
        book = exchange.subscribe("DEMO")
        expected = [["ask", f"{level.price:.2f}", str(level.quantity)] for level in reversed(book.asks[:10])]
        expected += [["bid", f"{level.price:.2f}", str(level.quantity)] for level in book.bids[:10]]
    try:
        took = wait_until(lambda: driver.execute_script(LADDER_JS, "DEMO") == expected, timeout=5.0)
        print(f"   bots paused: the page's DEMO ladder equals info's book after {took * 1000:.0f} ms: yes")
    except TimeoutError:
        print("   bots paused: the page's DEMO ladder equals info's book: NO")
        print(f"   page {driver.execute_script(LADDER_JS, 'DEMO')}\n   info {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the samples are spread over")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--flood", type=int, default=0, help="extra resting 1-lot buys on DEMO per second")
    args = parser.parse_args()
    reason = missing()
    if reason is not None:
        print(f"skipped: {reason}")
        return
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory() as workdir:
        run(args, Path(workdir))


if __name__ == "__main__":
    main()
