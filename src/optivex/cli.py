"""The `optivex` command.

Each subcommand is one `add_<name>_command(subparsers)` function that adds its parser and sets
`handler` (a function of the parsed arguments returning the exit status); `build_parser()` calls
them all. To add a subcommand, write such a function and append it to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TypeAlias

from optivex.deploy.config import default_deployment_path, load_deployment
from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import DEFAULT_USERS, Deployment, read_users_file, write_users_file
from optivex.deploy.supervisor import Supervisor
from optivex.deploy.workdir import DirectoryLock, new_run_directory
from optivex.tools import commands, demo, live
from optivex.tools.common import CliError, fail
from optivex.tools.messages import format_message
from optivex.web.deploy import web_component

__all__ = ["build_parser", "format_message", "main", "version"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

UP_START_TIMEOUT = 10.0
"""Seconds a component of `optivex up` has to accept connections: more than the system tests' 2 s
(section 9 of the contract), so that a day does not fail to start on a loaded machine."""
TTY_STATUS_INTERVAL = 1.0
"""Seconds between two redraws of `optivex up`'s status lines on a terminal."""
PLAIN_STATUS_INTERVAL = 10.0
"""Seconds between two looks at the status when stdout is not a terminal (printed when it changed)."""


def _fixed_ports_help() -> str:
    """The listen addresses of the default deployment, for `optivex up --help`."""
    try:
        path = default_deployment_path()
        config = load_deployment(path)
    except DeploymentError as exc:
        return f"(the default deployment config cannot be read: {exc})"
    lines = [f"Fixed ports, from each component's listenOn in {path}:"]
    for spec in config.components:
        listen = spec.config["listenOn"]
        lines.append(f"  {spec.name:<12} {','.join(spec.protocols):<22} {listen['host']}:{listen['port']}")
    return "\n".join(lines)


def add_up_command(subparsers: SubParsers) -> None:
    """`optivex up`: run the whole exchange in the foreground."""
    parser = subparsers.add_parser(
        "up",
        help="start every component of the deployment on its fixed ports",
        description=textwrap.fill(
            "Start every component of the deployment config, connectTo targets first, each on the "
            "port its config's listenOn gives, and watch them: a status line per component (address, "
            "clients, books, orders, trades), redrawn in place on a terminal; a component that dies is "
            "reported at once (with the tail of its log) and the others are stopped (exit status 1). "
            "Ctrl-C or SIGTERM stops everything cleanly (exit status 0); the components die with "
            "optivex up whatever kills it (Linux). One optivex up per DIR: a second one refuses at "
            "once (exit status 1) and touches nothing. Each run logs to DIR/logs/<UTC time>/, "
            "DIR/logs/latest pointing to the newest.",
            width=78,
        ),
        epilog=_fixed_ports_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--deployment",
        type=Path,
        default=None,
        metavar="PATH",
        help="deployment config (default: ./deployment_config.json, else the one shipped in the package)",
    )
    parser.add_argument(
        "--users",
        type=Path,
        default=None,
        metavar="FILE",
        help="user data file to use (default: write one with the default users to DIR/users.json)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("run"),
        metavar="DIR",
        help="where configs, logs and the default user data file go (default: ./run)",
    )
    parser.add_argument(
        "--status-interval",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=(
            f"seconds between two status updates (default: {TTY_STATUS_INTERVAL:g} on a terminal, else "
            f"{PLAIN_STATUS_INTERVAL:g}, printed only when a figure changed); 0: no status lines"
        ),
    )
    parser.add_argument(
        "--web",
        type=_port,
        default=None,
        metavar="PORT",
        help=(
            "also serve the web page for watching the market on http://127.0.0.1:PORT/ "
            "(optivex-web, a client of info, logged in as the first user of the user data file)"
        ),
    )
    parser.set_defaults(handler=run_up)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


COMMANDS: list[Callable[[SubParsers], None]] = [
    add_up_command,
    demo.add_demo_command,
    *commands.COMMANDS,
    *live.COMMANDS,
]
"""The functions adding each subcommand, in --help order."""


def version() -> str:
    """The installed package's version (its metadata), or a note that it is not installed."""
    try:
        return metadata.version("optivex")
    except metadata.PackageNotFoundError:
        return "unknown (the optivex package is not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optivex",
        description="Optivex, an exchange on one machine: run it (up, demo), ask it (instruments, "
        "orders, risk limits, positions), watch it (book, trades). `optivex COMMAND --help` for each.",
    )
    parser.add_argument("--version", action="version", version=f"optivex {version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `optivex` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except CliError as exc:
        return fail(f"optivex {args.command}", exc)
    except KeyboardInterrupt:
        return 130


# up ---------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"optivex up: {message}", file=sys.stderr, flush=True)


def run_up(args: argparse.Namespace) -> int:
    """Start the deployment on fixed ports in a locked work dir, watch it until a signal or a death."""
    workdir: Path = args.dir
    try:
        config = load_deployment(
            args.deployment if args.deployment is not None else default_deployment_path()
        )
    except DeploymentError as exc:
        _err(str(exc))
        return 2
    try:
        lock = DirectoryLock.acquire(workdir)
    except DeploymentError as exc:  # DirectoryBusy: another up runs here; nothing was touched
        _err(str(exc))
        return 1
    with lock:
        try:
            if args.users is None:
                users_file = write_users_file(workdir / "users.json", DEFAULT_USERS)
            else:
                users_file = args.users
            components = list(config.components)
            if args.web is not None:
                user = read_users_file(users_file)[0].username
                components.append(web_component(user, args.web, info=config.provider("info").name))
            deployment = Deployment(
                components,
                workdir,
                users_file=users_file,
                ports="fixed",
                logs_dir=new_run_directory(workdir / "logs"),
                die_with_parent=True,
                start_timeout=UP_START_TIMEOUT,
            )
        except DeploymentError as exc:
            _err(str(exc))
            return 2
        tty = sys.stdout.isatty()
        interval = args.status_interval
        if interval is None:
            interval = TTY_STATUS_INTERVAL if tty else PLAIN_STATUS_INTERVAL
        supervisor = Supervisor(deployment, out=sys.stdout, err=sys.stderr, status_interval=interval, tty=tty)
        restore = supervisor.install_signal_handlers()
        try:
            return supervisor.run()
        finally:
            deployment.stop()
            restore()


if __name__ == "__main__":
    sys.exit(main())
