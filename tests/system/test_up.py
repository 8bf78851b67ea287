"""`optivex up` as a user runs it: the real console script and components, on ports the tests pick.

Each test writes the shipped deployment config with free ports (never the default 17100...), runs
`optivex up --dir <tmp>/run` and reads its output as a user would; processes are looked for in the
process table (/proc), with deadlines.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import pytest

from optivex.client import SyncClient
from optivex.deploy.config import default_deployment_path
from optivex.deploy.runner import console_script, pick_free_ports, port_is_free
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import execution_pb2 as ex

from .helpers import GATEWAY_PROTOCOL

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")

DEADLINE = 40.0
"""Seconds allowed for whatever a test waits for (starts are slow on a loaded 2-core machine)."""
STATUS_INTERVAL = "0.2"


def _deployment_file(tmp_path: Path, name: str = "deployment.json") -> tuple[Path, dict[str, int]]:
    """The shipped deployment config on free ports; the file and each component's port."""
    data = json.loads(default_deployment_path().read_text(encoding="utf-8"))
    ports = pick_free_ports(len(data["components"]))
    by_name: dict[str, int] = {}
    for component, port in zip(data["components"], ports, strict=True):
        component["config"]["listenOn"] = {"host": "127.0.0.1", "port": port}
        by_name[component["name"]] = port
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path, by_name


class Up:
    """A running `optivex up` whose stdout and stderr lines are read by threads, for `wait_for`."""

    def __init__(self, tmp_path: Path, deployment: Path, run_dir: Path, *extra: str) -> None:
        self.run_dir = run_dir
        self.process = subprocess.Popen(
            [
                console_script("optivex"),
                "up",
                "--deployment",
                str(deployment),
                "--dir",
                str(run_dir),
                "--status-interval",
                STATUS_INTERVAL,
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=("out",), daemon=True),
            threading.Thread(target=self._read, args=("err",), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, which: str) -> None:
        stream = self.process.stdout if which == "out" else self.process.stderr
        assert stream is not None
        for line in stream:
            self._lines.put((which, line.rstrip("\n")))
        self._lines.put((which, None))

    def wait_for(
        self, predicate: Callable[[str], bool], which: str = "out", timeout: float = DEADLINE
    ) -> str:
        """The first new line of `which` (out/err) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        closed: set[str] = set()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or closed >= {which}:
                raise AssertionError(
                    f"no such line on std{which} within {timeout:g} s; stdout:\n"
                    + "\n".join(self.out)
                    + "\nstderr:\n"
                    + "\n".join(self.err)
                )
            try:
                stream, line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                closed.add(stream)
                continue
            (self.out if stream == "out" else self.err).append(line)
            if stream == which and predicate(line):
                return line

    def running(self) -> dict[str, int]:
        """Wait for "Running."; each component's pid from the lines before it."""
        self.wait_for(lambda line: line.startswith("Running."))
        pids: dict[str, int] = {}
        for line in self.out:
            match = re.match(r"\s+(\S+)\s+\S+\s+listening on \S+\s+pid (\d+)", line)
            if match:
                pids[match.group(1)] = int(match.group(2))
        return pids

    def finish(self, timeout: float = DEADLINE) -> int:
        """Wait for the exit, with every remaining line read; the exit status."""
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        while not self._lines.empty():
            stream, line = self._lines.get()
            if line is not None:
                (self.out if stream == "out" else self.err).append(line)
        return code

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Callable[..., Up]]:
    """Start `optivex up` (deployment file, run dir, extra arguments); every one left is stopped."""
    started: list[Up] = []

    def start(deployment: Path, run_dir: Path | None = None, *extra: str) -> Up:
        runner = Up(tmp_path, deployment, run_dir or tmp_path / "run", *extra)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait()


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (zombies are dead)."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry))
    return found


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` (symlinks as their target) -> a digest of its content."""
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        key = str(path.relative_to(directory))
        if path.is_symlink():
            files[key] = "-> " + os.readlink(path)
        elif path.is_file():
            files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _status_line(runner: Up, component: str, *needles: str) -> str:
    """The next status line of `component` holding every one of `needles`."""
    return runner.wait_for(lambda line: line.split()[:1] == [component] and all(n in line for n in needles))


# tests -------------------------------------------------------------------------


def test_version() -> None:
    result = subprocess.run(
        [console_script("optivex"), "--version"], capture_output=True, text=True, timeout=DEADLINE
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"optivex {metadata.version('optivex')}"


def test_up_starts_and_shows_the_status_of_each_component(tmp_path: Path, up: Callable[..., Up]) -> None:
    deployment, ports = _deployment_file(tmp_path)
    runner = up(deployment)
    pids = runner.running()
    assert set(pids) == set(ports)
    for name, port in ports.items():
        line = _status_line(runner, name, f"127.0.0.1:{port}", f"pid {pids[name]}", "listening")
        assert "clients 0" in line
    _status_line(runner, "order_book", "(+ admin, gateway, info)", "books 0", "trades 0")

    admin = SyncClient("127.0.0.1", ports["admin"], "admin", timeout=5)
    alice = SyncClient("127.0.0.1", ports["gateway"], GATEWAY_PROTOCOL, timeout=5)
    bob = SyncClient("127.0.0.1", ports["gateway"], GATEWAY_PROTOCOL, timeout=5)
    try:
        admin.login("admin", "admin")
        admin.request(
            admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01),
            check=True,
        )
        alice.login("alice", "alice")
        bob.login("bob", "bob")
        for client, side in ((alice, common_pb2.SELL), (bob, common_pb2.BUY)):
            client.request(
                ex.InsertOrderRequest(instrument_symbol="ABC", side=side, price=10.0, quantity=5),
                check=True,
            )
        alice.request(
            ex.InsertOrderRequest(instrument_symbol="ABC", side=common_pb2.SELL, price=11.0, quantity=1),
            check=True,
        )
        _status_line(runner, "order_book", "books 1", "orders 1 resting / 3 today", "trades 1")
        _status_line(runner, "admin", "clients 1", "instruments 1")
        _status_line(runner, "gateway", "clients 2", "user orders 3", "user trades 1")
    finally:
        for client in (admin, alice, bob):
            client.close()
    _status_line(runner, "gateway", "clients 0")
    assert runner.stop() == 0
    assert "Stopped." in runner.out


def test_a_second_up_in_the_same_dir_refuses_and_touches_nothing(
    tmp_path: Path, up: Callable[..., Up]
) -> None:
    deployment, ports = _deployment_file(tmp_path)
    first = up(deployment)
    pids = first.running()
    _status_line(first, "order_book", "books 0")
    before = _snapshot(first.run_dir)
    assert any(key.startswith("config/") for key in before) and "users.json" in before

    # Other free ports: were it not refused, it would start and rewrite the configs.
    other, _ = _deployment_file(tmp_path, "other.json")
    begin = time.monotonic()
    second = up(other, first.run_dir)
    code = second.finish()
    assert code != 0
    assert time.monotonic() - begin < 15  # at once: it does not wait for the first one to end
    assert second.out == []
    assert second.err == [
        f"optivex up: {first.run_dir} is in use by another optivex up "
        f"(pid {first.process.pid}, started {_started(first.run_dir)}); stop it first, or give another --dir"
    ]
    assert _snapshot(first.run_dir) == before
    assert first.process.poll() is None
    assert _children(first.process.pid) == set(pids.values())
    for port in ports.values():
        assert not port_is_free("127.0.0.1", port)
    assert first.stop() == 0


def _started(run_dir: Path) -> str:
    text = (run_dir / "up.lock").read_text(encoding="utf-8")
    match = re.search(r"started (.+)$", text.strip())
    assert match, text
    return match.group(1)


def test_kill_9_of_up_leaves_no_component_running(tmp_path: Path, up: Callable[..., Up]) -> None:
    deployment, ports = _deployment_file(tmp_path)
    runner = up(deployment)
    pids = runner.running()
    assert _children(runner.process.pid) == set(pids.values())
    runner.process.kill()
    assert runner.finish() == -signal.SIGKILL
    try:
        _wait_until(lambda: not any(_alive(pid) for pid in pids.values()), "every component gone")
    finally:  # what is left, should the test fail, must not hold its ports for the next tests
        for pid in pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: all(port_is_free("127.0.0.1", port) for port in ports.values()), "every port free")
    # The directory's lock went with it: a new up starts there at once.
    again = up(deployment)
    assert set(again.running()) == set(ports)
    assert again.stop() == 0


def test_a_component_killed_is_reported_with_its_name(tmp_path: Path, up: Callable[..., Up]) -> None:
    deployment, _ = _deployment_file(tmp_path)
    runner = up(deployment)
    pids = runner.running()
    killed = time.monotonic()
    os.kill(pids["info"], signal.SIGKILL)
    line = runner.wait_for(lambda line: "died" in line, "err")
    assert time.monotonic() - killed < 5.0  # at once (a pidfd wakes the watch), not at the next status
    assert line == (
        f"optivex up: component 'info' (optivex-info, pid {pids['info']}) died: killed by signal 9 (SIGKILL)"
    )
    assert runner.finish() == 1
    assert "optivex up: stopping the other components" in runner.err
    assert any("info starting with config" in err for err in runner.err)  # the tail of its log
    _wait_until(lambda: not any(_alive(pid) for pid in pids.values()), "every component gone")


def test_each_run_logs_in_a_directory_of_its_own(tmp_path: Path, up: Callable[..., Up]) -> None:
    deployment, _ = _deployment_file(tmp_path)
    first = up(deployment)
    first.running()
    assert first.stop() == 0
    logs = tmp_path / "run" / "logs"
    (first_run,) = [p for p in logs.iterdir() if not p.is_symlink()]
    assert (logs / "latest").resolve() == first_run
    first_files = _snapshot(first_run)

    second = up(deployment)
    pids = second.running()
    runs = sorted(p for p in logs.iterdir() if not p.is_symlink())
    assert len(runs) == 2 and first_run in runs
    (second_run,) = [p for p in runs if p != first_run]
    assert (logs / "latest").resolve() == second_run
    assert any(line == f"Logs of this run: {second_run} (also {logs / 'latest'})" for line in second.out)
    os.kill(pids["gateway"], signal.SIGTERM)
    second.wait_for(lambda line: "component 'gateway'" in line and "died: exit status 0" in line, "err")
    assert second.finish() == 1
    tail = "\n".join(second.err)
    assert str(second_run / "gateway") in tail
    assert str(first_run) not in tail
    sections = re.split(r"^--- gateway: ", tail, flags=re.MULTILINE)[1:]
    assert sections
    for section in sections:  # this run's start only, in each file shown
        assert section.count("gateway starting with config") == 1, section
    assert _snapshot(first_run) == first_files


def test_on_a_terminal_the_status_is_redrawn_in_place(tmp_path: Path) -> None:
    deployment, ports = _deployment_file(tmp_path)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(
        [console_script("optivex"), "up", "--deployment", str(deployment), "--dir", str(tmp_path / "run")],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=tmp_path,
    )
    os.close(terminal)
    screen = b""
    redraw = f"\x1b[{1 + len(ports)}F".encode()
    try:
        deadline = time.monotonic() + DEADLINE
        # Two redraws over the first block: the cursor goes back up over exactly its lines.
        while screen.count(redraw) < 2 or b"books 0" not in screen.split(b"Running.")[-1]:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                screen += os.read(controller, 65536)
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    after = screen.split(b"Running. Ctrl-C stops every component.\r\n", 1)[1]
    block = after.split(redraw)[1].split(b"\r\n")
    assert block[0].startswith(b"\x1b[2KStatus at ")
    assert [line.split()[1:2] for line in block[1 : 1 + len(ports)]] == [[name.encode()] for name in ports]
    assert all(len(line) < 200 for line in block)
