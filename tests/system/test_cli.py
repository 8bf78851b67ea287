"""The `optivex` client commands as a user runs them: the real console script against a real deployment.

Each command's output (the exchange's answer, every field) and exit status; refusals, an unknown
symbol and a component that is not running as one line on stderr, without a traceback; the trade tape
(`optivex trades`) printing a trade made meanwhile. One deployment per module (every test uses its own
symbols and users), on ephemeral ports given to the commands by a deployment config (`--config`).
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from optivex.client import Addresses, Exchange, Side, TimeInForce
from optivex.deploy import Deployment, start_suite
from optivex.deploy.config import default_deployment_path
from optivex.deploy.runner import console_script, pick_free_ports

from .helpers import TIMEOUT

START_TIMEOUT = 10.0
WAIT = 30.0
"""Seconds a command has to answer (a loaded 2-core machine starts Python slowly)."""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    started = start_suite(None, tmp_path_factory.mktemp("cli") / "deployment", start_timeout=START_TIMEOUT)
    yield started
    started.stop()


def write_config(deployment: Deployment, path: Path) -> Path:
    """A deployment_config.json naming the deployment's ports, for the commands' --config."""
    data = json.loads(default_deployment_path().read_text())
    ports = {c.name: c.address[1] for c in deployment.components}
    for component in data["components"]:
        component["config"]["listenOn"]["port"] = ports[component["name"]]
        for target in component["config"].get("connectTo", {}).values():
            target["port"] = ports["order_book"]
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def config(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(deployment, tmp_path_factory.mktemp("cli-config") / "deployment_config.json")


def addresses(deployment: Deployment) -> Addresses:
    return Addresses(
        admin=deployment.address("admin"),
        info=deployment.address("info"),
        gateway=deployment.address("execution"),
    )


def optivex(config: Path | None, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `optivex ARGS --config CONFIG` to its end."""
    extra = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [console_script("optivex"), *args, *extra],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        cwd=cwd,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert result.returncode == 0 and not result.stderr, result
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str], status: int, command: str) -> str:
    """The error line of a command that must have failed with `status`: one line, no traceback."""
    assert result.returncode == status, result
    assert result.stdout == "", result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"optivex {command}: "), lines
    return lines[0]


def field(output: str, name: str) -> str:
    """The value of the first top-level-or-nested `name: value` line of a printed message."""
    for line in output.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep and key == name:
            return value
    raise AssertionError(f"no field {name} in:\n{output}")


def test_create_and_list_instruments(config: Path) -> None:
    created = ok(optivex(config, "create-instrument", "CLI1", "--tick-size", "0.05", "--currency", "EUR"))
    assert 'error_message: ""' in created
    book_id = int(field(created, "order_book_id"))
    assert book_id > 0 and int(field(created, "created_timestamp")) > 0

    listed = ok(optivex(config, "instruments"))
    assert 'symbol: "CLI1"' in listed and 'currency: "EUR"' in listed
    assert "tick_size: 0.05" in listed and f"order_book_id: {book_id}" in listed
    assert "multiplier: 0.0" in listed, "a default field must be printed too"

    again = one_error_line(optivex(config, "create-instrument", "CLI1"), 1, "create-instrument")
    assert "create CLI1: " in again and "CLI1" in again.split("create CLI1: ", 1)[1], again


def test_insert_amend_cancel_and_open_orders(config: Path) -> None:
    ok(optivex(config, "create-instrument", "CLI2"))
    inserted = ok(optivex(config, "insert", "CLI2", "buy", "10", "10.5", "--user", "alice"))
    order_id = int(field(inserted, "order_id"))
    assert field(inserted, "resting_quantity") == "10" and field(inserted, "traded_quantity") == "0"
    assert "trade_ids: []" in inserted and field(inserted, "cancelled_quantity") == "0"

    orders = ok(optivex(config, "orders", "CLI2", "--user", "alice"))
    assert f"order_id: {order_id}" in orders and "side: BUY" in orders and "price: 10.5" in orders

    amended = ok(optivex(config, "amend", "CLI2", str(order_id), "4", "--user", "alice"))
    assert field(amended, "priority_kept") == "true" and field(amended, "order_id") == str(order_id)
    moved = ok(optivex(config, "amend", "CLI2", str(order_id), "4", "--price", "10.4", "--user", "alice"))
    new_id = int(field(moved, "order_id"))
    assert new_id != order_id and field(moved, "priority_kept") == "false"

    ok(optivex(config, "cancel", "CLI2", str(new_id), "--user", "alice"))
    again = one_error_line(optivex(config, "cancel", "CLI2", str(new_id), "--user", "alice"), 1, "cancel")
    assert f"cancel order {new_id}: " in again
    assert "orders: []" in ok(optivex(config, "orders", "CLI2", "--user", "alice"))

    first = int(
        field(ok(optivex(config, "insert", "CLI2", "sell", "1", "11", "--user", "alice")), "order_id")
    )
    second = int(
        field(ok(optivex(config, "insert", "CLI2", "sell", "2", "12", "--user", "alice")), "order_id")
    )
    cancelled = ok(optivex(config, "cancel-all", "CLI2", "--user", "alice"))
    assert field(cancelled, "cancelled_order_ids") == f"[{first}, {second}]"
    assert field(ok(optivex(config, "cancel-all", "--user", "alice")), "cancelled_order_ids") == "[]"


def test_ioc_fok_and_positions(config: Path) -> None:
    ok(optivex(config, "create-instrument", "CLI3"))
    ok(optivex(config, "insert", "CLI3", "sell", "5", "20", "--user", "carol"))
    ioc = ok(optivex(config, "insert", "CLI3", "buy", "8", "20", "--tif", "ioc", "--user", "dave"))
    assert field(ioc, "traded_quantity") == "5" and field(ioc, "cancelled_quantity") == "3"
    assert field(ioc, "resting_quantity") == "0" and len(field(ioc, "trade_ids").split(",")) == 1

    ok(optivex(config, "insert", "CLI3", "sell", "2", "21", "--user", "carol"))
    fok = one_error_line(
        optivex(config, "insert", "CLI3", "buy", "3", "21", "--tif", "fok", "--user", "dave"), 1, "insert"
    )
    assert "insert BUY 3 CLI3 @ 21.0 FILL_OR_KILL: " in fok, fok

    positions = ok(optivex(config, "positions", "--user", "dave"))
    assert 'instrument_symbol: "CLI3"' in positions
    assert field(positions, "position") == "5" and field(positions, "cash") == "-100.0"
    assert field(positions, "sold_quantity") == "0", "a field at its default must be printed too"
    assert field(ok(optivex(config, "positions", "CLI3", "--user", "carol")), "position") == "-5"


def test_set_and_show_risk_limits(config: Path) -> None:
    ok(optivex(config, "create-instrument", "CLI4"))
    shown = ok(optivex(config, "limits", "--user", "bob"))
    assert "user_risk_limits: <not set>" in shown and "risk_limits_by_instrument: []" in shown
    assert "\n\nrequest_id: " in shown, "two answers, apart"

    ok(
        optivex(
            config,
            "set-user-limits",
            "--max-outstanding-quantity",
            "100",
            "--message-rate",
            "50/2",
            "--user",
            "bob",
        )
    )
    ok(
        optivex(
            config,
            "set-instrument-limits",
            "CLI4",
            "--max-outstanding-quantity",
            "5",
            "--order-amount",
            "1000/10",
            "--user",
            "bob",
        )
    )
    shown = ok(optivex(config, "limits", "--user", "bob"))
    assert "max_outstanding_quantity: 100" in shown
    assert "limit: 50" in shown and "window_in_seconds: 2" in shown
    assert 'key: "CLI4"' in shown and "max_outstanding_quantity: 5" in shown
    assert "limit: 1000" in shown and "window_in_seconds: 10" in shown
    assert "order_quantity_rolling_limit: <not set>" in shown

    refused = one_error_line(optivex(config, "insert", "CLI4", "buy", "6", "1", "--user", "bob"), 1, "insert")
    assert "max_outstanding_quantity" in refused and "risk limit" in refused, refused
    ok(optivex(config, "insert", "CLI4", "buy", "5", "1", "--user", "bob"))

    bad = optivex(config, "set-user-limits", "--message-rate", "50", "--user", "bob")
    assert bad.returncode == 2 and "LIMIT/SECONDS" in bad.stderr and "Traceback" not in bad.stderr


def test_unknown_symbol_is_one_line(config: Path) -> None:
    line = one_error_line(optivex(config, "insert", "NOPE", "buy", "1", "1"), 1, "insert")
    assert "unknown instrument" in line and "NOPE" in line
    line = one_error_line(optivex(config, "book", "NOPE"), 1, "book")
    assert "unknown instrument" in line and "NOPE" in line
    line = one_error_line(optivex(config, "trades", "NOPE"), 1, "trades")
    assert "unknown instrument" in line and "NOPE" in line


def test_a_component_not_running_is_one_line(tmp_path: Path) -> None:
    """Nothing listens on the ports: each command names its component and address, and says what to do."""
    free = pick_free_ports(3)
    args = [
        "--admin",
        f"127.0.0.1:{free[0]}",
        "--info",
        f"127.0.0.1:{free[1]}",
        "--gateway",
        f"127.0.0.1:{free[2]}",
    ]
    cases = [
        (["instruments", *args[0:2]], "instruments", f"admin at 127.0.0.1:{free[0]}"),
        (["book", "DEMO", *args[2:4]], "book", f"info at 127.0.0.1:{free[1]}"),
        (["trades", *args[2:4]], "trades", f"info at 127.0.0.1:{free[1]}"),
        (["orders", *args[4:6]], "orders", f"gateway at 127.0.0.1:{free[2]}"),
        (["insert", "DEMO", "buy", "1", "10", *args[4:6]], "insert", f"gateway at 127.0.0.1:{free[2]}"),
    ]
    for argv, command, where in cases:
        line = one_error_line(optivex(None, *argv, cwd=tmp_path), 3, command)
        assert f"{where} is not reachable (connection refused)" in line and "optivex up" in line, line


def test_a_wrong_password_is_one_line(config: Path) -> None:
    line = one_error_line(optivex(config, "orders", "--user", "alice", "--password", "wrong"), 1, "orders")
    assert "login to gateway at " in line and "'alice' refused" in line, line


class Tape:
    """`optivex trades` running, its stdout lines read by a thread."""

    def __init__(self, config: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [console_script("optivex"), "trades", *args, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, *texts: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line with {texts}; seen {self.seen}") from None
            self.seen.append(line)
            if all(text in line for text in texts):
                return line

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(WAIT)


def test_the_trade_tape(deployment: Deployment, config: Path) -> None:
    with Exchange.connect("alice", addresses=addresses(deployment), timeout=TIMEOUT) as alice:
        alice.create_instrument("TAPE1")
        alice.insert_order("TAPE1", Side.SELL, 7.25, 4)
        with Exchange.connect("bob", addresses=addresses(deployment), timeout=TIMEOUT) as bob:
            bob.insert_order("TAPE1", Side.BUY, 7.25, 1, TimeInForce.IMMEDIATE_OR_CANCEL)
            one = Tape(config, "TAPE1")
            every = Tape(config)
            try:
                one.expect("TAPE1", "BUY", " 1 @ ", "7.25")  # the history
                every.expect("TAPE1", "BUY", " 1 @ ", "7.25")
                bob.insert_order("TAPE1", Side.BUY, 7.25, 2, TimeInForce.IMMEDIATE_OR_CANCEL)
                one.expect("TAPE1", "BUY", " 2 @ ", "7.25")
                every.expect("TAPE1", "BUY", " 2 @ ", "7.25")
                alice.create_instrument("TAPE2")  # created after the tape started: on it too
                alice.insert_order("TAPE2", Side.BUY, 3.5, 1)
                bob.insert_order("TAPE2", Side.SELL, 3.5, 1, TimeInForce.IMMEDIATE_OR_CANCEL)
                line = every.expect("TAPE2")
                assert "SELL" in line and " 1 @ " in line and "3.50" in line, line
            finally:
                assert one.stop() == 0 and every.stop() == 0
    assert not any("TAPE2" in line for line in one.seen), one.seen
