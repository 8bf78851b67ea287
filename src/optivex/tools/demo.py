"""`optivex demo`: a working market in one command.

It starts the exchange as `optivex up` does (the deployment config's fixed ports, the work
directory's lock, a log directory of this run, components that die with it), or uses the one
running there (the directory locked by a running `optivex up`, or every port answering); creates
the demo's instruments; runs the example bots of `optivex.examples` as processes (market makers and random
takers, so that the books move); and shows the live view of the first instrument. Ctrl-C (or
SIGTERM) stops what it started, and only that: the bots (each asked with SIGINT to cancel its
orders), then the exchange if it started it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from optivex.client import Exchange, OptivexError
from optivex.client.addresses import Addresses
from optivex.deploy.config import ComponentSpec, default_deployment_path, load_deployment
from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import DEFAULT_USERS, Deployment, die_with_parent_hook, write_users_file
from optivex.deploy.supervisor import describe_exit
from optivex.deploy.workdir import DirectoryBusy, DirectoryLock, new_run_directory
from optivex.tools.common import REFUSED, UNREACHABLE, USAGE, CliError, SubParsers, positive_int
from optivex.tools.live import watch_book

START_TIMEOUT = 10.0
"""Seconds each component has to accept connections (as `optivex up`)."""
BOT_STOP_TIMEOUT = 5.0
"""Seconds a bot has to cancel its orders and stop after SIGINT before it is killed."""
DEMO_SYMBOLS = ("DEMO", "DEMO2")


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
"""The example bots, shipped in the package (optivex.examples)."""


@dataclass(frozen=True, slots=True)
class BotSpec:
    """One example bot of the demo: its script and arguments."""

    name: str
    script: str
    args: tuple[str, ...]


def demo_bots(symbols: tuple[str, ...]) -> list[BotSpec]:
    """Two market makers (spreads 0.2 and 0.6) and a random taker on the first instrument; a market
    maker and a taker on the second; a maker on each other one."""
    first = symbols[0]
    bots = [
        BotSpec(f"market maker alice on {first}", "market_maker.py", ("--symbol", first, "--user", "alice")),
        BotSpec(
            f"market maker carol on {first}",
            "market_maker.py",
            ("--symbol", first, "--user", "carol", "--spread", "0.6"),
        ),
        BotSpec(
            f"random taker bob on {first}",
            "random_taker.py",
            ("--symbol", first, "--user", "bob", "--interval", "0.3"),
        ),
    ]
    for symbol in symbols[1:2]:
        bots.append(
            BotSpec(
                f"market maker dave on {symbol}",
                "market_maker.py",
                ("--symbol", symbol, "--user", "dave", "--spread", "0.4"),
            )
        )
        bots.append(
            BotSpec(
                f"random taker admin on {symbol}",
                "random_taker.py",
                ("--symbol", symbol, "--user", "admin", "--interval", "0.5"),
            )
        )
    for symbol in symbols[2:]:
        bots.append(
            BotSpec(
                f"market maker dave on {symbol}", "market_maker.py", ("--symbol", symbol, "--user", "dave")
            )
        )
    return bots


def add_demo_command(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a moving market in one command: the exchange, bots trading, the live book",
        description=textwrap.fill(
            "Start the exchange as optivex up does (or use the one running on the deployment's ports), "
            "create the demo's instruments, run the example market makers and random takers "
            "(optivex.examples) as processes, and show the live book of the first instrument. Ctrl-C stops "
            "everything it started, and only that (exit status 0).",
            width=78,
        ),
    )
    parser.add_argument(
        "--deployment",
        type=Path,
        default=None,
        metavar="PATH",
        help="deployment config (default: ./deployment_config.json, else the one shipped in the package)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("run"),
        metavar="DIR",
        help="optivex up's work directory: configs, logs, users.json (default: ./run)",
    )
    parser.add_argument(
        "--symbols",
        default=",".join(DEMO_SYMBOLS),
        metavar="A,B,...",
        help=f"the instruments to create and trade (default: {','.join(DEMO_SYMBOLS)}); the first is shown",
    )
    parser.add_argument(
        "--depth",
        type=positive_int,
        default=10,
        metavar="N",
        help="price levels per side shown (default: 10)",
    )
    parser.set_defaults(handler=run_demo)


class Bot:
    """A running example bot: its process and log file."""

    def __init__(self, spec: BotSpec, config: Path, log_path: Path) -> None:
        self.spec = spec
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-u", str(EXAMPLES_DIR / spec.script), *spec.args, "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo only, which asks each bot in turn
                preexec_fn=die_with_parent_hook(),
            )

    def interrupt(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)

    def finish(self, deadline: float) -> int:
        """Wait for the bot until `deadline` (monotonic), then kill it; its exit status."""
        try:
            return self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1.0):
            return True
    except OSError:
        return False


def _say(text: str) -> None:
    print(f"optivex demo: {text}", flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """`optivex demo` (see the module docstring); its exit status."""
    symbols = tuple(s.strip() for s in str(args.symbols).split(",") if s.strip())
    if not symbols:
        raise CliError("--symbols names no instrument", USAGE)
    if not EXAMPLES_DIR.is_dir():
        raise CliError(
            f"the example bots are not at {EXAMPLES_DIR}: optivex demo runs from a source checkout "
            "(./scripts/optivex demo)",
            USAGE,
        )
    deployment_path: Path = args.deployment if args.deployment is not None else default_deployment_path()
    try:
        config = load_deployment(deployment_path)
        addresses = Addresses.from_config(deployment_path)
    except DeploymentError as exc:
        raise CliError(str(exc), USAGE) from None
    workdir: Path = args.dir
    needed = {"admin": addresses.admin, "info": addresses.info, "gateway": addresses.gateway}

    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    lock: DirectoryLock | None = None
    deployment: Deployment | None = None
    bots: list[Bot] = []
    try:
        try:
            lock = DirectoryLock.acquire(workdir)
        except DirectoryBusy as exc:
            _say(f"using the running exchange ({exc.holder or 'another optivex up'} holds {workdir})")
        except DeploymentError as exc:
            raise CliError(str(exc), USAGE) from None
        if lock is not None and all(_answers(a) for a in needed.values()):
            lock.release()
            lock = None
            _say("using the exchange already answering on the deployment's ports")
        if lock is not None:
            deployment = _start(config.components, workdir)
            bot_logs = deployment_logs = deployment.components[0].log_dir.parent
        else:
            missing = [
                f"{name} at {host}:{port}"
                for name, (host, port) in needed.items()
                if not _answers((host, port))
            ]
            if missing:
                raise CliError(
                    f"{', '.join(missing)} not reachable; start the exchange with optivex up, or stop "
                    "the one holding the directory",
                    UNREACHABLE,
                )
            bot_logs = deployment_logs = Path(tempfile.mkdtemp(prefix="optivex-demo-"))
        _create(addresses, symbols)
        for spec in demo_bots(symbols):
            log_path = bot_logs / f"bot-{spec.name.replace(' ', '-')}.log"
            bots.append(Bot(spec, deployment_path, log_path))
            _say(f"{spec.name}: pid {bots[-1].process.pid}, log {log_path}")
        _say(f"logs in {deployment_logs}; Ctrl-C stops everything the demo started")
        view = argparse.Namespace(config=deployment_path, info=None, user="admin", password=None)
        watch_book(view, symbols[0], args.depth, 10)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        _stop(bots, deployment)
        if lock is not None:
            lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _start(components: Sequence[ComponentSpec], workdir: Path) -> Deployment:
    """Start the deployment on its fixed ports in `workdir`, as `optivex up` does."""
    _say(f"starting the exchange in {workdir}")
    try:
        users_file = write_users_file(workdir / "users.json", DEFAULT_USERS)
        deployment = Deployment(
            components,
            workdir,
            users_file=users_file,
            ports="fixed",
            logs_dir=new_run_directory(workdir / "logs"),
            die_with_parent=True,
            start_timeout=START_TIMEOUT,
        )
        deployment.start()
    except DeploymentError as exc:
        raise CliError(str(exc), REFUSED) from None
    for comp in deployment.components:
        host, port = comp.address
        _say(f"{comp.name} listening on {host}:{port}, pid {comp.pid}")
    return deployment


def _create(addresses: Addresses, symbols: tuple[str, ...]) -> None:
    """The demo's instruments, created if missing (as the admin user)."""
    try:
        with Exchange.connect("admin", addresses=addresses, execution_reports=False) as exchange:
            for symbol in symbols:
                exchange.get_or_create_instrument(symbol, tick_size=0.01)
    except OptivexError as exc:
        raise CliError(f"cannot create the demo's instruments: {exc}", UNREACHABLE) from None
    _say(f"instruments {', '.join(symbols)}")


def _stop(bots: list[Bot], deployment: Deployment | None) -> None:
    """Stop the bots (SIGINT: they cancel their orders), then the exchange the demo started."""
    for bot in bots:
        bot.interrupt()
    deadline = time.monotonic() + BOT_STOP_TIMEOUT
    for bot in bots:
        status = bot.finish(deadline)
        if status != 0:
            _say(f"{bot.spec.name} ended with {describe_exit(status)} (log {bot.log_path})")
    if bots:
        _say(f"stopped {len(bots)} bots")
    if deployment is not None:
        for comp in deployment.poll_dead():
            _say(f"{comp.name} had died: {describe_exit(comp.returncode or 0)}")
        deployment.stop()
        _say("stopped the exchange")
