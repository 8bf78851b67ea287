"""`optivex demo` as a newcomer runs it, in a pseudo-terminal, on ports and a directory of its own.

The first demo starts the exchange, creates its instruments, runs the example bots and shows the live
book, which moves (trades appear on it); a second demo in the same directory uses that exchange (the
directory is locked by the first) and on Ctrl-C stops only its own bots; Ctrl-C on the first stops
its bots and the exchange: every process it started is gone, and the directory is free again.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from optivex.client import Addresses, Exchange
from optivex.deploy.config import default_deployment_path
from optivex.deploy.runner import console_script, pick_free_ports
from optivex.deploy.workdir import DirectoryLock

from .helpers import TIMEOUT
from .test_cli_pty import Terminal, tape_rows

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pty and /proc (Linux)"),
    pytest.mark.xdist_group("heavy"),  # two demos: 4 components and 10 bot processes
]

WAIT = 60.0


def deployment_file(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The shipped deployment config on free ports (never the default 17100...)."""
    data = json.loads(default_deployment_path().read_text(encoding="utf-8"))
    ports = pick_free_ports(len(data["components"]))
    by_name = {}
    for component, port in zip(data["components"], ports, strict=True):
        component["config"]["listenOn"] = {"host": "127.0.0.1", "port": port}
        by_name[component["name"]] = port
    for component in data["components"]:
        for target in component["config"].get("connectTo", {}).values():
            target["port"] = by_name["order_book"]
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path, by_name


def pids(text: str, pattern: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(pattern, text)}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid_list: list[int], timeout: float = WAIT) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pid_list if alive(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return [pid for pid in pid_list if alive(pid)]


def demo(deployment: Path, run_dir: Path, cwd: Path) -> Terminal:
    return Terminal(
        [console_script("optivex"), "demo", "--deployment", str(deployment), "--dir", str(run_dir)], cwd=cwd
    )


def test_the_demo_starts_a_moving_market_and_ctrl_c_stops_what_it_started(tmp_path: Path) -> None:
    path, ports = deployment_file(tmp_path)
    run_dir = tmp_path / "run"
    first = demo(path, run_dir, tmp_path)
    second: Terminal | None = None
    try:
        first.wait_for(lambda t: "Ctrl-C stops everything" in t.text(), "the demo's start", WAIT)
        components = pids(first.text(), r"optivex demo: (\w+) listening on \S+, pid (\d+)")
        bots = pids(first.text(), r"optivex demo: ([\w ]+ on \w+): pid (\d+)")
        assert sorted(components) == ["admin", "gateway", "info", "order_book"], first.text()
        assert len(bots) == 5, first.text()
        first.wait_for(lambda t: len(tape_rows(t.screen())) >= 3, "three trades on the live view", WAIT)
        screen = first.screen()
        assert screen.lstrip().startswith("DEMO") and "bid qty" in screen, screen
        assert len(first.frames()) > 3, "the view redraws in place"

        addresses = Addresses(
            admin=("127.0.0.1", ports["admin"]),
            info=("127.0.0.1", ports["info"]),
            gateway=("127.0.0.1", ports["gateway"]),
        )
        with Exchange.connect("dave", addresses=addresses, timeout=TIMEOUT) as dave:
            assert {"DEMO", "DEMO2"} <= set(dave.instruments())
            assert dave.trades("DEMO") and dave.trades("DEMO2"), "both books trade"

        second = demo(path, run_dir, tmp_path)
        second.wait_for(lambda t: "Ctrl-C stops everything" in t.text(), "the second demo's start", WAIT)
        assert "using the running exchange" in second.text() and "starting the exchange" not in second.text()
        its_bots = pids(second.text(), r"optivex demo: ([\w ]+ on \w+): pid (\d+)")
        assert len(its_bots) == 5
        second.wait_for(lambda t: "bid qty" in t.screen(), "the second demo's view", WAIT)
        assert second.interrupt() == 0
        assert wait_gone(list(its_bots.values())) == [], "the second demo's bots must stop"
        assert "stopped 5 bots" in second.text() and "stopped the exchange" not in second.text()
        assert all(alive(pid) for pid in [*components.values(), *bots.values()]), (
            "the second demo stopped what it did not start"
        )

        assert first.interrupt() == 0
        assert wait_gone([*components.values(), *bots.values()]) == []
        text = first.text()
        assert "stopped 5 bots" in text and "stopped the exchange" in text and "Traceback" not in text
        assert " ended with " not in text, "every bot stops cleanly on SIGINT"
        with DirectoryLock.acquire(run_dir):
            pass  # the directory is free again
        logs = sorted((run_dir / "logs" / "latest").glob("bot-*.log"))
        assert len(logs) == 5 and all(
            "cancelled " in p.read_text() or "stopped;" in p.read_text() for p in logs
        )
    finally:
        for terminal in (first, second):
            if terminal is not None:
                terminal.close()
        for pid in pids(first.text(), r"(\w+) listening on \S+, pid (\d+)").values():
            if alive(pid):
                os.kill(pid, 9)
