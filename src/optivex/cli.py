"""The `optivex` command.

Each subcommand is one `add_<name>_command(subparsers)` function that adds its parser and sets
`handler` (a function of the parsed arguments returning the exit status); `build_parser()` calls
them all. To add a subcommand, write such a function and append it to `COMMANDS`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeAlias

from optivex.deploy.config import default_deployment_path, load_deployment
from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import DEFAULT_USERS, Deployment, describe_status, write_users_file

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

WATCH_INTERVAL = 0.2
"""Seconds between two checks of the components' processes by `optivex up`."""


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
            "port its config's listenOn gives, and watch them: a component that dies is reported at once "
            "(with the tail of its log) and the others are stopped (exit status 1). Ctrl-C or SIGTERM "
            "stops everything cleanly (exit status 0).",
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
    parser.set_defaults(handler=run_up)


COMMANDS: list[Callable[[SubParsers], None]] = [add_up_command]
"""The functions adding each subcommand, in --help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optivex", description="Optivex, an exchange on one machine.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
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
    return handler(args)


# up ---------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"optivex up: {message}", file=sys.stderr, flush=True)


def run_up(args: argparse.Namespace) -> int:
    """Start the deployment on fixed ports, watch it until a signal or a death."""
    workdir: Path = args.dir
    try:
        config = load_deployment(
            args.deployment if args.deployment is not None else default_deployment_path()
        )
        if args.users is None:
            users_file = write_users_file(workdir / "users.json", DEFAULT_USERS)
        else:
            users_file = args.users
        deployment = Deployment(config.components, workdir, users_file=users_file, ports="fixed")
    except DeploymentError as exc:
        _err(str(exc))
        return 2

    stop_signal: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_signal.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        return _run_until_stopped(deployment, stop_signal)
    finally:
        deployment.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = tuple(
    s for s in (getattr(signal, name, None) for name in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None
)


def _run_until_stopped(deployment: Deployment, stop_signal: list[int]) -> int:
    print(f"Deployment: {', '.join(c.name for c in deployment.components)} (work dir {deployment.workdir})")
    print(f"Users (from {deployment.users_file}):")
    for user in deployment.users:
        print(f"  {user.username:<10} password {user.password!r:<14} {user.full_name}")
    print("Starting...", flush=True)
    try:
        deployment.start()
    except DeploymentError as exc:
        _err(f"start failed: {exc}")
        return 1
    for comp in deployment.components:
        host, port = comp.address
        print(
            f"  {comp.name:<12} {','.join(comp.protocols):<22} listening on {host}:{port}  "
            f"logs in {comp.log_dir}/ (stderr: {comp.stderr_path})"
        )
    print("Running. Ctrl-C stops every component.", flush=True)
    while not stop_signal:
        dead = deployment.poll_dead()
        if dead:
            if stop_signal:
                break
            for comp in dead:
                status = describe_status(comp.returncode or 0)
                _err(f"component {comp.name!r} ({comp.spec.package_name}) died with {status}")
                print(comp.tail(), file=sys.stderr, flush=True)
            _err("stopping the other components")
            deployment.stop()
            return 1
        time.sleep(WATCH_INTERVAL)
    name = signal.Signals(stop_signal[0]).name
    print(f"\n{name} received: stopping...", flush=True)
    codes = deployment.stop()
    for comp_name, code in codes.items():
        if code is not None and code != 0:
            _err(f"component {comp_name!r} stopped with {describe_status(code)}")
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
