"""`optivex up`'s watch over a running deployment: status lines, deaths, signals.

One thread, one select loop: each component's pidfd (Linux: readable the moment the process exits),
the signal wakeup socket (Ctrl-C, SIGTERM, SIGHUP wake the loop at once) and the order book watch's
socket (`status.OrderBookWatch`). Without pidfds (not Linux) the processes are polled every
`POLL_INTERVAL` seconds. The components are started by this thread before any other work begins, so
that their parent-death signal (`Deployment(die_with_parent=True)`) is tied to the main thread.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TextIO

from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import Deployment, RunningComponent, describe_status
from optivex.deploy.status import (
    HIDDEN,
    ComponentView,
    Connections,
    MarketTally,
    OrderBookWatch,
    StatusBoard,
    count_connections,
    format_duration,
    format_lines,
    market_figures,
    read_tcp_table,
    socket_inodes,
)
from optivex.deploy.workdir import LATEST_LINK

POLL_INTERVAL = 0.2
"""Seconds between two polls of the processes where there are no pidfds."""
WATCH_RETRY = 1.0
"""Seconds between two attempts to connect the order book watch."""
WATCH_PACE = 0.1
"""Seconds the watch's socket rests after each read: on a busy day the events pile up in the socket
and are read in batches, at most 10 wake-ups a second (the order book buffers megabytes per client)."""

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None
)


def describe_exit(returncode: int) -> str:
    """describe_status with the signal's name: "exit status 3", "killed by signal 9 (SIGKILL)"."""
    text = describe_status(returncode)
    if returncode < 0:
        with contextlib.suppress(ValueError):
            text += f" ({signal.Signals(-returncode).name})"
    return text


class Supervisor:
    """Start a deployment, show its status, and stop it on a signal or at the first death.

    `run()` returns the exit status of `optivex up`: 0 after a stop signal, 1 when a component failed
    to start or died. The caller stops the deployment afterwards (whatever happened) and restores the
    signal handlers this installs.
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        out: TextIO,
        err: TextIO,
        status_interval: float,
        tty: bool | None = None,
        prefix: str = "optivex up: ",
    ) -> None:
        self.deployment = deployment
        self.out = out
        self.err = err
        self.status_interval = status_interval
        self.board = StatusBoard(out, tty)
        self.prefix = prefix
        self.stop_signals: list[int] = []
        self.started_at = time.monotonic()
        self._selector = selectors.DefaultSelector()
        self._pidfds: dict[int, RunningComponent] = {}
        self._watch: OrderBookWatch | None = None
        self._watch_sock: socket.socket | None = None
        """The watch's socket while connected; registered in the selector unless resting."""
        self._watch_resting = False
        self._next_watch_try = 0.0
        self._watch_resume = 0.0
        self._next_refresh = 0.0

    # signals -----------------------------------------------------------

    def install_signal_handlers(self) -> Callable[[], None]:
        """Record stop signals (each wakes the loop); returns the function that restores the previous."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._selector.register(wake_r, selectors.EVENT_READ, "signal")

        def on_signal(signum: int, frame: object) -> None:
            self.stop_signals.append(signum)

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)

        def restore() -> None:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(wake_r)
            wake_r.close()
            wake_w.close()

        return restore

    # the run -----------------------------------------------------------

    def run(self) -> int:
        deployment = self.deployment
        self._print(
            f"Deployment: {', '.join(c.name for c in deployment.components)} (work dir {deployment.workdir})"
        )
        latest = deployment.logs_dir.parent / LATEST_LINK
        also = f" (also {latest})" if latest.is_symlink() and latest.resolve() == deployment.logs_dir else ""
        self._print(f"Logs of this run: {deployment.logs_dir}{also}")
        self._print(f"Users (from {deployment.users_file}):")
        for user in deployment.users:
            self._print(f"  {user.username:<10} password {user.password!r:<14} {user.full_name}")
        self._print("Starting...")
        try:
            deployment.start()
        except DeploymentError as exc:
            self._error(f"start failed: {exc}")
            return 1
        self.started_at = time.monotonic()
        for comp in deployment.components:
            host, port = comp.address
            self._print(
                f"  {comp.name:<12} {','.join(comp.protocols):<22} listening on {host}:{port}  "
                f"pid {comp.pid}  logs in {comp.log_dir}/ (stderr: {comp.stderr_path})"
            )
        self._print("Running. Ctrl-C stops every component.")
        self._open_pidfds()
        if self.status_interval > 0:
            self._watch = self._make_watch()
            self._connect_watch()
            self._refresh()
        try:
            return self._loop()
        finally:
            self._close()

    def _loop(self) -> int:
        while True:
            for key, _ in self._selector.select(self._timeout()):
                if key.data == "signal":
                    with contextlib.suppress(OSError):
                        while key.fileobj.recv(512):  # type: ignore[union-attr]
                            pass
                elif key.data == "watch":
                    self._read_watch()
            if self.stop_signals:
                return self._stopped()
            dead = self.deployment.poll_dead()
            if dead:
                return self._died(dead)
            now = time.monotonic()
            if self._watch is not None and self._watch_sock is None and now >= self._next_watch_try:
                self._connect_watch()
            if self._watch_resting and now >= self._watch_resume:
                self._resume_watch()
            if self.status_interval > 0 and now >= self._next_refresh:
                self._refresh()

    def _timeout(self) -> float | None:
        now = time.monotonic()
        deadlines: list[float] = []
        if self.status_interval > 0:
            deadlines.append(self._next_refresh)
        if self._watch is not None and self._watch_sock is None:
            deadlines.append(self._next_watch_try)
        if self._watch_resting:
            deadlines.append(self._watch_resume)
        if len(self._pidfds) < len(self.deployment.components):
            deadlines.append(now + POLL_INTERVAL)
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _stopped(self) -> int:
        self.board.release()
        name = signal.Signals(self.stop_signals[0]).name
        self._print(f"\n{name} received: stopping...")
        codes = self.deployment.stop()
        for comp_name, code in codes.items():
            if code is not None and code != 0:
                self._error(f"component {comp_name!r} stopped with {describe_exit(code)}")
        self._print("Stopped.")
        return 0

    def _died(self, dead: list[RunningComponent]) -> int:
        if self.status_interval > 0:
            self._refresh()
        self.board.release()
        for comp in dead:
            status = describe_exit(comp.returncode or 0)
            self._error(f"component {comp.name!r} ({comp.spec.package_name}, pid {comp.pid}) died: {status}")
            print(comp.tail(), file=self.err, flush=True)
        self._error("stopping the other components")
        self.deployment.stop()
        return 1

    # status --------------------------------------------------------------

    def _make_watch(self) -> OrderBookWatch | None:
        try:
            order_book = self.deployment.provider("order_book")
        except DeploymentError:
            return None
        return OrderBookWatch(order_book.address, MarketTally())

    def _connect_watch(self) -> None:
        watch = self._watch
        if watch is None:
            return
        if watch.connect():
            assert watch.sock is not None
            self._watch_sock = watch.sock
            self._selector.register(watch.sock, selectors.EVENT_READ, "watch")
        else:
            self._next_watch_try = time.monotonic() + WATCH_RETRY

    def _read_watch(self) -> None:
        watch = self._watch
        assert watch is not None and self._watch_sock is not None
        if not watch.read():
            self._unregister_watch()
            self._next_watch_try = time.monotonic() + WATCH_RETRY
            return
        self._selector.unregister(self._watch_sock)
        self._watch_resting = True
        self._watch_resume = time.monotonic() + WATCH_PACE

    def _resume_watch(self) -> None:
        self._watch_resting = False
        if self._watch_sock is not None:
            self._selector.register(self._watch_sock, selectors.EVENT_READ, "watch")

    def _unregister_watch(self) -> None:
        if self._watch_sock is not None:
            if not self._watch_resting:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(self._watch_sock)
            self._watch_sock = None
        self._watch_resting = False

    def _refresh(self) -> None:
        self._next_refresh = time.monotonic() + self.status_interval
        header = (
            f"Status at {time.strftime('%H:%M:%S')}, up {format_duration(time.monotonic() - self.started_at)}"
        )
        watch = self._watch
        if watch is not None and not watch.live and watch.error:
            header += f" (order book watch: {watch.error})"
        self.board.show(header, format_lines(self.views()))

    def views(self) -> list[ComponentView]:
        """What each component's status line shows now."""
        comps = self.deployment.components
        table = read_tcp_table()
        inodes = {c.name: socket_inodes(c.pid) if c.pid is not None and c.running else None for c in comps}
        owners: dict[int, str] = {}
        for name, held in inodes.items():
            owners.update(dict.fromkeys(held or (), name))
        owners.update(dict.fromkeys(socket_inodes(os.getpid()) or (), HIDDEN))
        watch = self._watch
        tally = watch.tally if watch is not None else None
        live = watch is not None and watch.live
        views: list[ComponentView] = []
        for comp in comps:
            code = comp.poll()
            state = "running" if code is None else f"DIED: {describe_exit(code)}"
            held = inodes[comp.name]
            conns: Connections | None = None
            if table is not None and held is not None:
                conns = count_connections(table, comp.port, held, owners)
            views.append(
                ComponentView(
                    comp.name,
                    comp.address,
                    comp.pid,
                    state,
                    conns,
                    market_figures(comp.protocols, tally, live),
                )
            )
        return views

    # internals -----------------------------------------------------------

    def _open_pidfds(self) -> None:
        if sys.platform != "linux":
            return
        for comp in self.deployment.components:
            if comp.pid is None:
                continue
            try:
                fd = os.pidfd_open(comp.pid)
            except OSError:  # no pidfds (kernel < 5.3) or already reaped: polled instead
                continue
            self._pidfds[fd] = comp
            self._selector.register(fd, selectors.EVENT_READ, "death")

    def _close(self) -> None:
        self._unregister_watch()
        if self._watch is not None:
            self._watch.close()
        for fd in self._pidfds:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fd)
            os.close(fd)
        self._pidfds.clear()

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _error(self, message: str) -> None:
        print(f"{self.prefix}{message}", file=self.err, flush=True)
