"""Start, watch and stop the processes of a deployment (contract section 9), each on a rewritten config.

    with start_suite("order_book", tmp_path) as deployment:
        host, port = deployment.address("admin")
        ...
        deployment.restart()          # a new trading day, same ports

Layout of the work dir: `users.json` (unless a user data file is given), `config/<name>.json`,
`logs/<name>/` (the component's logDirectory), `logs/<name>.stdout` and `logs/<name>.stderr`; `logs_dir`
moves the `logs/` part elsewhere (`optivex up` gives each run its own).

A component counts as started once it accepts TCP connections within `start_timeout` (rule 4 of
section 9) and, for Optivex's own console scripts, once it has also said ``READY=1`` on
``$NOTIFY_SOCKET`` (deploy.readiness): they listen before importing, so accepting alone does not
mean serving.

With `die_with_parent` (Linux), each component is started with PR_SET_PDEATHSIG: the kernel kills it
when the process that started it dies, however it dies (`kill -9` included).
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn

from optivex.app.config import ConfigError
from optivex.app.users import User, load_users
from optivex.deploy.config import ComponentSpec, default_deployment_path, load_deployment
from optivex.deploy.errors import DeploymentError
from optivex.deploy.readiness import NOTIFY_SOCKET_ENV, ReadyListener
from optivex.deploy.topology import check_connect_to, components_for_suite, start_order

PortPolicy = Literal["ephemeral", "fixed"]
"""`ephemeral`: fresh free ports on 127.0.0.1 (tests); `fixed`: the listenOn of each config (`optivex up`)."""
CommandResolver = Callable[[ComponentSpec], Sequence[str]]
"""The command that starts a component, without `-c <config>`."""

LOCALHOST = "127.0.0.1"
BIN_DIR_ENV = "OPTIVEX_BIN_DIR"
"""Where to find the components' console scripts instead (tests against an installed wheel)."""
START_TIMEOUT = 2.0
"""Seconds a component has, from its start, to accept a TCP connection (rule 4 of section 9)."""
READY_TIMEOUT = 20.0
"""Seconds an Optivex component has, from its start, to say it serves (READY=1); generous, for
loaded machines: the contract's limit is on accepting (START_TIMEOUT)."""
OPTIVEX_SCRIPT_PREFIX = "optivex-"
"""Console scripts so named are Optivex's and send READY=1 (when started by their default command)."""
STOP_TIMEOUT = 3.0
"""Seconds the components have to exit after SIGTERM before they are killed."""
_POLL_INTERVAL = 0.02
_CONNECT_TIMEOUT = 0.2
_TAIL_LINES = 20
_WILDCARD_HOSTS = {"": LOCALHOST, "0.0.0.0": LOCALHOST, "::": "::1"}
_BIND_RACE_HINTS = ("address already in use", "eaddrinuse", "errno 98", "errno 48", "10048")


ADMIN_USER = User("admin", "admin", "Exchange Operator")
DEFAULT_USERS: tuple[User, ...] = (
    ADMIN_USER,
    User("alice", "alice", "Alice Trader"),
    User("bob", "bob", "Bob Trader"),
    User("carol", "carol", "Carol Trader"),
    User("dave", "dave", "Dave Trader"),
)
"""The users of tests and of `optivex up` without `--users`: each one's password is its username."""


def write_users_file(path: Path, users: Iterable[User]) -> Path:
    """Write a user data file in the contract's form ({"users": [...]})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"users": [u.to_json() for u in users]}
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
    return path


def read_users_file(path: Path) -> tuple[User, ...]:
    """The users of a user data file (contract form, or a bare array); DeploymentError if unusable."""
    try:
        return tuple(load_users(path).values())
    except ConfigError as exc:
        raise DeploymentError(str(exc)) from exc


def console_script(name: str) -> str:
    """The path of a console script: in $OPTIVEX_BIN_DIR if set (e.g. a venv with only the wheel
    installed), else beside the running Python (a venv's bin/), else on PATH."""
    bin_dir = os.environ.get(BIN_DIR_ENV)
    if bin_dir:
        found = shutil.which(name, path=bin_dir)
        if found is None:
            raise DeploymentError(f"console script {name!r} not found in {BIN_DIR_ENV}={bin_dir}")
        return found
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise DeploymentError(
            f"console script {name!r} not found beside {sys.executable} nor on PATH; "
            "is the project installed (uv sync)?"
        )
    return found


def default_command(spec: ComponentSpec) -> list[str]:
    """The command of a component: its console script (`packageName`)."""
    return [console_script(spec.package_name)]


def pick_free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """`count` distinct ports the OS reports free now (bound to port 0 together, then released)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (with SO_REUSEADDR, as the components do)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def connect_host(listen_host: str) -> str:
    """Where a client reaches a server listening on `listen_host` (a wildcard becomes loopback)."""
    return _WILDCARD_HOSTS.get(listen_host, listen_host)


def rewrite_config(
    original: Mapping[str, Any],
    listen_on: tuple[str, int],
    targets: Mapping[str, tuple[str, int]],
    log_directory: Path,
    data_file: Path,
) -> dict[str, Any]:
    """A copy of `original` with listenOn, every connectTo target, logDirectory and dataFilePath replaced.

    Every other key is kept. `targets` holds every connectTo key (a Deployment checks its components'
    targets once, with `check_connect_to`).
    """
    config = copy.deepcopy(dict(original))
    config["listenOn"] = {"host": listen_on[0], "port": listen_on[1]}
    if "connectTo" in config:
        config["connectTo"] = {
            name: {"host": targets[name][0], "port": targets[name][1]} for name in config["connectTo"]
        }
    config["logDirectory"] = str(log_directory)
    config["dataFilePath"] = str(data_file)
    return config


def process_listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a TCP socket listening on `port`; None where /proc cannot tell."""
    inodes: set[str] = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(f"socket:[{fields[9]}]")
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def describe_status(returncode: int) -> str:
    """ "exit status N", or "killed by signal N" for a negative return code."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


@dataclass(eq=False)
class RunningComponent:
    """One component of a Deployment: where it listens, its files, its process."""

    spec: ComponentSpec
    host: str
    """The host it listens on."""
    port: int
    config_path: Path
    log_dir: Path
    stdout_path: Path
    stderr_path: Path
    process: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    """Exit status once the process has exited (negative: killed by that signal)."""
    killed: bool = False
    """Whether the last stop() had to kill it."""
    config: dict[str, Any] = field(default_factory=dict)
    """The rewritten config it was last started with."""
    started_at: float = 0.0
    ready_listener: ReadyListener | None = None
    """Where it says READY=1, from its launch until it has (or failed to)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def protocols(self) -> tuple[str, ...]:
        return self.spec.protocols

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) for a client to connect to."""
        return connect_host(self.host), self.port

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.poll() is None and self.process is not None

    def poll(self) -> int | None:
        """The exit status if the process has exited (recorded in `returncode`), else None."""
        if self.process is None:
            return self.returncode
        code = self.process.poll()
        if code is not None:
            self.returncode = code
        return code

    def log_files(self) -> list[Path]:
        """The files in its log directory, by name."""
        try:
            return sorted(p for p in self.log_dir.iterdir() if p.is_file())
        except OSError:
            return []

    def tail(self, lines: int = _TAIL_LINES) -> str:
        """The last lines of its stderr and of each log file, labelled (empty ones left out)."""
        parts: list[str] = []
        for path in [self.stderr_path, *self.log_files()]:
            text = _tail(path, lines)
            if text.strip():
                parts.append(f"--- {self.name}: {path} (last {lines} lines) ---\n{text}")
        return (
            "\n".join(parts)
            if parts
            else f"--- {self.name}: no output in {self.stderr_path} or {self.log_dir}"
        )


PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal the calling process gets when its parent (the thread that forked it) dies."""


def die_with_parent_hook(starter: int | None = None) -> Callable[[], None] | None:
    """A `preexec_fn` making the child die (SIGKILL) with the process that starts it (`starter`, by
    default this one); None off Linux.

    The hook runs in the child between fork and exec: prctl(PR_SET_PDEATHSIG, SIGKILL) survives the
    exec. Should the parent have died before the prctl (the race), the child is already orphaned and
    the kernel will never signal it: the hook sees a parent pid that is not the starter's and kills the
    child itself. The starter must be the thread that outlives the child (the main thread): the kernel
    signals when that thread exits. ctypes is loaded here, in the parent, so that the child only calls.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid() if starter is None else starter

    def hook() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _kill_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Last resort (the Deployment was never stopped): kill what still runs."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


class Deployment:
    """Components running as processes on rewritten configs; a context manager (start, then stop).

    `components` may come in any order: they start connectTo targets first. `users` is written to
    `<workdir>/users.json`, unless `users_file` names an existing user data file to use as it is.
    `command` resolves a component's command (default: its console script). `logs_dir` is where logs
    go (default `<workdir>/logs`); `die_with_parent` starts each component so that the kernel kills it
    when this process dies (Linux; start them from the main thread).
    """

    def __init__(
        self,
        components: Iterable[ComponentSpec],
        workdir: str | Path,
        users: Sequence[User] = DEFAULT_USERS,
        *,
        users_file: Path | None = None,
        ports: PortPolicy = "ephemeral",
        command: CommandResolver | None = None,
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
        env: Mapping[str, str] | None = None,
        logs_dir: str | Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        specs = start_order(components)
        check_connect_to(specs, [s.name for s in specs], "not part of this deployment")
        self.workdir = Path(workdir).absolute()
        self.ports: PortPolicy = ports
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._command: CommandResolver = command or default_command
        self._notified = command is None
        """Whether components say READY=1 (Optivex's console scripts, not custom commands)."""
        self._env = dict(os.environ if env is None else env)
        self._env.pop(NOTIFY_SOCKET_ENV, None)
        self._env.setdefault("PYTHONUNBUFFERED", "1")
        self.logs_dir = self.workdir / "logs" if logs_dir is None else Path(logs_dir).absolute()
        """Where the components' log directories and stdout/stderr files go."""
        self.die_with_parent = die_with_parent
        """Whether components are started to die with this process (see the module docstring)."""
        if users_file is not None:
            self.users_file = users_file.absolute()
            self.users: tuple[User, ...] = read_users_file(self.users_file)
            self._write_users = False
        else:
            self.users_file = self.workdir / "users.json"
            self.users = tuple(users)
            self._write_users = True
        self._components: dict[str, RunningComponent] = {}
        for spec in specs:
            host, port = LOCALHOST, 0
            if ports == "fixed":
                listen = spec.config["listenOn"]
                host, port = str(listen["host"]), int(listen["port"])
            logs = self.logs_dir
            self._components[spec.name] = RunningComponent(
                spec=spec,
                host=host,
                port=port,
                config_path=self.workdir / "config" / f"{spec.name}.json",
                log_dir=logs / spec.name,
                stdout_path=logs / f"{spec.name}.stdout",
                stderr_path=logs / f"{spec.name}.stderr",
            )
        if ports == "fixed":
            self._check_fixed_ports()
        self.day = 0
        """How many times the deployment was started (1 after start(), 2 after the first restart())."""
        self.exit_codes: dict[str, int | None] = {}
        """Exit status of each component at the last stop()."""
        self._running = False
        self._processes: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _kill_all, self._processes)

    # queries -----------------------------------------------------------

    @property
    def components(self) -> tuple[RunningComponent, ...]:
        """Every component, in start order."""
        return tuple(self._components.values())

    @property
    def running(self) -> bool:
        return self._running

    def component(self, name: str) -> RunningComponent:
        try:
            return self._components[name]
        except KeyError:
            have = ", ".join(self._components)
            raise DeploymentError(f"no component named {name!r} in this deployment (have: {have})") from None

    def provider(self, protocol: str) -> RunningComponent:
        """The component serving `protocol`."""
        for comp in self._components.values():
            if protocol in comp.protocols:
                return comp
        raise DeploymentError(f"no component of this deployment provides protocol {protocol!r}")

    def address(self, protocol: str) -> tuple[str, int]:
        """(host, port) where a client reaches `protocol`."""
        return self.provider(protocol).address

    def poll_dead(self) -> list[RunningComponent]:
        """The components whose process has exited."""
        return [c for c in self._components.values() if c.process is not None and c.poll() is not None]

    def logs(self) -> str:
        """Every component's stdout, stderr and log files, whole and labelled: for a failing test's report."""
        parts: list[str] = []
        for comp in self._components.values():
            for path in [comp.stdout_path, comp.stderr_path, *comp.log_files()]:
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                if text.strip():
                    parts.append(f"===== {comp.name}: {path} =====\n{text.rstrip()}")
        return "\n".join(parts)

    # lifecycle ---------------------------------------------------------

    def start(self, *, defer: Collection[str] = ()) -> Deployment:
        """Start every component in order, each accepting TCP before the next starts, then wait until
        each serves (READY=1).

        The components named in `defer` get their port but are not started: `start_component` starts
        them later (a process that joins a running deployment, e.g. an info process that follows the
        order book from the middle of the day). On failure the started ones are stopped and
        DeploymentError says which component failed, its exit status and the tail of its stderr and log.
        """
        if self._running:
            raise DeploymentError("the deployment is already running")
        for name in defer:
            self.component(name)  # DeploymentError for a name that is not one of ours
        self.day += 1
        first = self.day == 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._write_users and first:
            write_users_file(self.users_file, self.users)
        fresh_ports = first and self.ports == "ephemeral"
        comps = list(self._components.values())
        if fresh_ports:
            for comp, port in zip(comps, pick_free_ports(len(comps)), strict=True):
                comp.port = port
        else:
            for comp in comps:
                if comp.port == 0:
                    comp.port = pick_free_ports(1)[0]
                elif not port_is_free(comp.host, comp.port):
                    raise DeploymentError(
                        f"cannot start component {comp.name!r}: "
                        f"port {comp.host}:{comp.port} is already in use"
                    )
        self._running = True
        try:
            started = [comp for comp in comps if comp.name not in defer]
            for comp in started:
                self._start_one(comp, may_move=fresh_ports)
            # All accept by now; they finish starting in parallel.
            for comp in started:
                self._wait_serving(comp)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every process (in reverse start order), wait up to `stop_timeout`, then kill.

        Returns (and records in `exit_codes`) each component's exit status; None for one never started.
        """
        for comp in self._components.values():
            self._close_listener(comp)  # a start cut short leaves some open
        alive = [c for c in reversed(self._components.values()) if c.process is not None and c.poll() is None]
        for comp in alive:
            assert comp.process is not None
            comp.killed = False
            with contextlib.suppress(ProcessLookupError):
                comp.process.terminate()
        deadline = time.monotonic() + self.stop_timeout
        for comp in alive:
            assert comp.process is not None
            try:
                comp.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                comp.process.kill()
                comp.process.wait()
                comp.killed = True
        codes: dict[str, int | None] = {}
        for comp in self._components.values():
            codes[comp.name] = comp.poll() if comp.process is not None else None
        self._processes.clear()
        self._running = False
        self.exit_codes = codes
        return codes

    def stop_component(self, name: str) -> int | None:
        """SIGTERM one component and wait for it (killed after `stop_timeout`); its exit status."""
        comp = self.component(name)
        process = comp.process
        if process is None or comp.poll() is not None:
            return comp.poll() if process is not None else None
        comp.killed = False
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            comp.killed = True
        return comp.poll()

    def start_component(self, name: str) -> None:
        """Start a stopped component again on its port (its day begins anew), or a deferred one (see
        `start`) for the first time; DeploymentError unless it accepts connections within the readiness
        limit. A deferred one that lost its ephemeral port meanwhile moves to a new one."""
        comp = self.component(name)
        if comp.process is not None and comp.poll() is None:
            raise DeploymentError(f"component {name!r} is still running")
        first = comp.process is None and self.ports == "ephemeral"
        self._start_one(comp, may_move=first)
        self._wait_serving(comp)

    def restart(self) -> dict[str, int | None]:
        """Stop, then start again on the same ports: a new trading day. Returns the stop's exit codes."""
        codes = self.stop()
        self.start()
        return codes

    def __enter__(self) -> Deployment:
        if not self._running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # internals ---------------------------------------------------------

    def _check_fixed_ports(self) -> None:
        seen: dict[tuple[str, int], str] = {}
        for comp in self._components.values():
            if comp.port == 0:
                continue
            key = (connect_host(comp.host), comp.port)
            if key in seen:
                raise DeploymentError(
                    f"components {seen[key]!r} and {comp.name!r} both listen on {key[0]}:{key[1]}"
                )
            seen[key] = comp.name

    def _start_one(self, comp: RunningComponent, may_move: bool) -> None:
        """Start one component and wait until it accepts a connection; with `may_move`, retry once on a
        new port when it lost its port to another process."""
        for attempt in (1, 2):
            self._launch(comp, note="" if attempt == 1 else f"retrying on port {comp.port}")
            failure = self._wait_accepting(comp)
            if failure is None:
                return
            self._close_listener(comp)
            if may_move and attempt == 1 and self._lost_port(comp):
                comp.port = pick_free_ports(1)[0]
                continue
            self._fail(comp, failure)

    def _wait_serving(self, comp: RunningComponent) -> None:
        """Once it accepts: wait until it says READY=1, when it was asked to."""
        listener = comp.ready_listener
        if listener is None:
            return
        try:
            failure = self._wait_notified(comp, listener)
        finally:
            self._close_listener(comp)
        if failure is not None:
            self._fail(comp, failure)

    def _fail(self, comp: RunningComponent, failure: str) -> NoReturn:
        if comp.process is not None and comp.process.poll() is None:
            comp.process.kill()
            comp.process.wait()
            comp.poll()
        raise DeploymentError(f"{failure}\n{comp.tail()}")

    @staticmethod
    def _close_listener(comp: RunningComponent) -> None:
        if comp.ready_listener is not None:
            comp.ready_listener.close()
            comp.ready_listener = None

    def _launch(self, comp: RunningComponent, note: str) -> None:
        targets = {name: self._components[name].address for name in comp.spec.connect_to}
        comp.config = rewrite_config(
            comp.spec.config, (comp.host, comp.port), targets, comp.log_dir, self.users_file
        )
        comp.config_path.parent.mkdir(parents=True, exist_ok=True)
        comp.config_path.write_text(json.dumps(comp.config, indent=4) + "\n", encoding="utf-8")
        comp.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [*self._command(comp.spec), "-c", str(comp.config_path)]
        env = self._env
        if self._notified and comp.spec.package_name.startswith(OPTIVEX_SCRIPT_PREFIX):
            comp.ready_listener = ReadyListener()
            env = {**env, NOTIFY_SOCKET_ENV: comp.ready_listener.env_value}
        fresh = self.day == 1 and not note
        header = "" if fresh else f"===== day {self.day}{': ' + note if note else ''} =====\n"
        with (
            comp.stdout_path.open("wb" if fresh else "ab") as out,
            comp.stderr_path.open("wb" if fresh else "ab") as err,
        ):
            if header:
                err.write(header.encode())
                err.flush()
            try:
                comp.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=env,
                    start_new_session=True,
                    preexec_fn=die_with_parent_hook() if self.die_with_parent else None,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise DeploymentError(
                    f"cannot start component {comp.name!r} ({' '.join(argv)}): {reason}"
                ) from exc
        comp.started_at = time.monotonic()
        comp.returncode = None
        comp.killed = False
        self._processes.append(comp.process)

    def _wait_accepting(self, comp: RunningComponent) -> str | None:
        """None once the component accepts a TCP connection, else why it did not in time."""
        assert comp.process is not None
        host, port = comp.address
        what = f"component {comp.name!r} ({comp.spec.package_name})"
        deadline = comp.started_at + self.start_timeout
        while True:
            code = comp.poll()
            if code is not None:
                status = describe_status(code)
                return f"{what} stopped with {status} before accepting connections on {host}:{port}"
            remaining = deadline - time.monotonic()
            try:
                with socket.create_connection(
                    (host, port), timeout=max(0.01, min(_CONNECT_TIMEOUT, remaining))
                ):
                    pass
            except OSError:
                pass
            else:
                # Someone accepts; on Linux make sure it is this process, not
                # another deployment that raced us to the same ephemeral port.
                if comp.poll() is None and process_listens_on(comp.process.pid, port) is not False:
                    return None
            if time.monotonic() >= deadline:
                return f"{what} did not accept connections on {host}:{port} within {self.start_timeout:g} s"
            time.sleep(_POLL_INTERVAL)

    def _wait_notified(self, comp: RunningComponent, listener: ReadyListener) -> str | None:
        what = f"component {comp.name!r} ({comp.spec.package_name})"
        deadline = comp.started_at + READY_TIMEOUT
        while not listener.wait(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic()))):
            code = comp.poll()
            if code is not None:
                return f"{what} stopped with {describe_status(code)} before it was ready to serve"
            if time.monotonic() >= deadline:
                return f"{what} accepts connections but did not say it was ready within {READY_TIMEOUT:g} s"
        return None

    def _lost_port(self, comp: RunningComponent) -> bool:
        """Whether a component that died probably lost its (ephemeral) port to another process."""
        if comp.returncode is None:
            return False
        if not port_is_free(comp.host, comp.port):
            return True
        text = "\n".join(_tail(p, 50) for p in [comp.stderr_path, *comp.log_files()]).lower()
        return any(hint in text for hint in _BIND_RACE_HINTS)


def start_suite(
    suite: str | None,
    workdir: str | Path,
    deployment_path: str | Path | None = None,
    *,
    users: Sequence[User] = DEFAULT_USERS,
    command: CommandResolver | None = None,
    start_timeout: float = START_TIMEOUT,
) -> Deployment:
    """Start, on ephemeral ports, the components a system-test suite needs (all of them for None).

    Returns the running Deployment; use it as a context manager to stop it.
    """
    config = load_deployment(deployment_path if deployment_path is not None else default_deployment_path())
    specs = config.components if suite is None else components_for_suite(config, suite)
    deployment = Deployment(specs, workdir, users, command=command, start_timeout=start_timeout)
    return deployment.start()
