"""The example bots (src/optivex/examples/) against a real deployment, as a user runs them: `--help`, trading,
and a clean stop on Ctrl-C (SIGINT: exit status 0, their orders cancelled).

- every bot answers `--help`: `test_every_bot_has_help`;
- the market maker quotes, the random taker trades against it, both stop on Ctrl-C and the market
  maker's orders are cancelled: `test_the_market_maker_and_the_random_taker_trade`;
- the arbitrage buys the cheap instrument and sells the dear one when their books cross, and stops on
  Ctrl-C: `test_the_arbitrage_takes_a_crossing`.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from optivex.client import Exchange, Side
from optivex.deploy import Deployment, start_suite
from optivex.deploy.config import default_deployment_path

from .helpers import TIMEOUT
from .test_sdk import START_TIMEOUT, addresses

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "optivex" / "examples"
BOTS = ("market_maker.py", "random_taker.py", "arbitrage.py")
WAIT = 20.0
"""Seconds a bot has to show what it does (it acts about once a second)."""


class Bot:
    """An example bot running as a process; its output lines read in a thread."""

    def __init__(self, script: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(EXAMPLES / script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def expect(self, text: str, timeout: float = WAIT) -> str:
        """The next output line holding `text` (AssertionError with the output after `timeout`)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; output: {''.join(self.output)}") from None
            self.output.append(line)
            if text in line:
                return line

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then its exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def everything(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    deployment = start_suite(None, tmp_path / "deployment", start_timeout=START_TIMEOUT)
    request.node.__dict__.setdefault("_deployments", []).append(deployment)
    yield deployment
    deployment.stop()


@pytest.fixture
def config(everything: Deployment, tmp_path: Path) -> str:
    """A deployment_config.json naming the test deployment's ports, for the bots' --config."""
    data = json.loads(default_deployment_path().read_text())
    ports = {c.name: c.address[1] for c in everything.components}
    for component in data["components"]:
        component["config"]["listenOn"]["port"] = ports[component["name"]]
        for target in component["config"].get("connectTo", {}).values():
            target["port"] = ports["order_book"]
    path = tmp_path / "deployment_config.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.kill()


@pytest.mark.parametrize("script", BOTS)
def test_every_bot_has_help(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage:"), result
    assert "--config" in result.stdout and "--user" in result.stdout


def test_the_market_maker_and_the_random_taker_trade(
    everything: Deployment, config: str, bots: list[Bot]
) -> None:
    maker = Bot("market_maker.py", "--config", config, "--symbol", "DEMO")
    bots.append(maker)
    maker.expect("quoting around 100.00")
    taker = Bot("random_taker.py", "--config", config, "--symbol", "DEMO", "--interval", "0.2", "--seed", "7")
    bots.append(taker)
    fill = taker.expect(" DEMO @ ")
    assert fill.startswith(("BUY ", "SELL ")) and ("@ 100.10" in fill or "@ 99.90" in fill), fill
    with Exchange.connect("dave", addresses=addresses(everything), timeout=TIMEOUT) as dave:
        assert dave.trades("DEMO"), "no trade on the tape"
        assert taker.interrupt() == 0, taker.output
        taker.expect("stopped; position")
        assert maker.interrupt() == 0, maker.output
        maker.expect("cancelled ")
        book = dave.last_price_book("DEMO")
        assert book is not None and (book.bids, book.asks) == ((), ()), book


def test_the_arbitrage_takes_a_crossing(everything: Deployment, config: str, bots: list[Bot]) -> None:
    arbitrage = Bot(
        "arbitrage.py", "--config", config, "--first", "AAA", "--second", "BBB", "--user", "carol"
    )
    bots.append(arbitrage)
    arbitrage.expect("watching AAA and BBB")
    with (
        Exchange.connect("alice", addresses=addresses(everything), timeout=TIMEOUT) as alice,
        Exchange.connect("carol", addresses=addresses(everything), timeout=TIMEOUT) as carol,
    ):
        alice.insert_order("BBB", Side.SELL, 9.9, 5)
        alice.insert_order("AAA", Side.BUY, 10.1, 3)
        line = arbitrage.expect("bought")
        assert line.strip() == "bought 3 BBB @ 9.90, sold 3 AAA @ 10.10", arbitrage.output
        positions = carol.positions()
        assert {s: p.position for s, p in positions.items()} == {"AAA": -3, "BBB": 3}
        assert carol.pnl({"AAA": 10.0, "BBB": 10.0}) == 0.6
    assert arbitrage.interrupt() == 0, arbitrage.output
    assert "positions {'AAA': -3, 'BBB': 3}" in arbitrage.expect("stopped;")
