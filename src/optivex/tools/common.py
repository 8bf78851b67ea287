"""What every client command of `optivex` shares: where the exchange is, logging in, errors as one line.

A command connects to the one component it needs (admin, info or the gateway), at the address of
`--admin` / `--info` / `--gateway`, else of the deployment config (`--config`, default
./deployment_config.json when there is one), else of `optivex up`'s fixed ports. It logs in as
`--user` (password: `--password`, default the username, as `optivex up` writes its users).

Every failure is a `CliError`: `main` prints its one line on stderr (no traceback) and exits with its
status: 1 the exchange refused (its message word for word), 2 bad arguments or config, 3 a component
is not reachable or the connection broke.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

from google.protobuf.message import Message

from optivex.client import SyncClient
from optivex.client.addresses import GATEWAY_PROTOCOL, Address, Addresses
from optivex.client.errors import OptivexError, RequestRejected
from optivex.client.session import ConnectionClosed, ProtocolViolation, RequestFailed, RequestTimeout
from optivex.client.state import Call
from optivex.deploy.errors import DeploymentError
from optivex.tools.messages import format_message

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]
Component = str
"""admin, info or gateway."""

DEFAULT_CONFIG = Path("deployment_config.json")
DEFAULT_USER = "alice"
TIMEOUT = 5.0
"""Seconds a command waits for an answer."""

REFUSED = 1
USAGE = 2
UNREACHABLE = 3

M = TypeVar("M", bound=Message)
R = TypeVar("R")


class CliError(Exception):
    """A failure of a command: one line for stderr and the exit status."""

    def __init__(self, message: str, status: int = REFUSED) -> None:
        super().__init__(message)
        self.status = status


def address(text: str) -> Address:
    """argparse type of HOST:PORT."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def add_connection_options(parser: argparse.ArgumentParser, *components: Component) -> None:
    """The options saying where the exchange is and who logs in (only the components used)."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=(
            f"the deployment config giving the components' ports (default: ./{DEFAULT_CONFIG} if there is "
            "one, else optivex up's ports 17101 admin, 17102 info, 17103 gateway on 127.0.0.1)"
        ),
    )
    for component in components:
        group.add_argument(
            f"--{component}",
            type=address,
            default=None,
            metavar="HOST:PORT",
            help=f"the {component} component's address (overrides --config)",
        )
    group.add_argument(
        "--user", default=DEFAULT_USER, help=f"the user to log in as (default: {DEFAULT_USER})"
    )
    group.add_argument(
        "--password", default=None, help="its password (default: the username, as optivex up writes them)"
    )


def addresses_of(args: argparse.Namespace) -> Addresses:
    """The addresses the options give: --admin/--info/--gateway, else --config's, else up's ports."""
    config: Path | None = args.config
    if config is None and DEFAULT_CONFIG.is_file():
        config = DEFAULT_CONFIG
    try:
        base = Addresses.from_config(config) if config is not None else Addresses()
    except DeploymentError as exc:
        raise CliError(str(exc), USAGE) from None
    return Addresses(
        admin=getattr(args, "admin", None) or base.admin,
        info=getattr(args, "info", None) or base.info,
        gateway=getattr(args, "gateway", None) or base.gateway,
    )


def component_address(args: argparse.Namespace, component: Component) -> Address:
    found: Address = getattr(addresses_of(args), component)
    return found


def connect(args: argparse.Namespace, component: Component, timeout: float = TIMEOUT) -> SyncClient:
    """A client of `component`, logged in as --user (CliError if not reachable or refused)."""
    host, port = component_address(args, component)
    protocol = GATEWAY_PROTOCOL if component == "gateway" else component
    where = f"{component} at {host}:{port}"
    try:
        client = SyncClient(host, port, protocol, timeout=timeout)
    except OSError as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror or str(exc)
        raise CliError(
            f"{where} is not reachable ({why}); is the exchange running? start it with: optivex up",
            UNREACHABLE,
        ) from None
    user: str = args.user
    password: str = user if args.password is None else args.password
    try:
        client.login(user, password)
    except RequestFailed as exc:
        client.close()
        raise CliError(f"login to {where} as {user!r} refused: {exc}", REFUSED) from None
    except (ConnectionClosed, ProtocolViolation, RequestTimeout, OSError) as exc:
        client.close()
        raise CliError(f"{where}: login failed: {exc}", UNREACHABLE) from None
    return client


def request(client: SyncClient, message: Message, expect: type[M], what: str) -> M:
    """Send a request and return its answer, whatever its error (CliError if the connection fails)."""
    try:
        return client.request(message, expect=expect)
    except RequestTimeout:
        raise CliError(
            f"{what}: no answer within {client.timeout:g} s; it may or may not have been carried out",
            UNREACHABLE,
        ) from None
    except (ConnectionClosed, ProtocolViolation, OSError) as exc:
        raise CliError(
            f"{what}: connection lost ({exc}); it may or may not have been carried out", UNREACHABLE
        ) from None


def run_call(client: SyncClient, call: Call[M, R]) -> tuple[M, R]:
    """Run one SDK operation (`optivex.client.state`): its answer and its result; the exchange's refusal
    as a CliError carrying its message word for word."""
    response = request(client, call.request, call.expect, call.what)
    try:
        return response, call.outcome(response)
    except RequestRejected as exc:
        raise CliError(str(exc), REFUSED) from None
    except OptivexError as exc:
        raise CliError(str(exc), UNREACHABLE) from None


def emit(message: Message) -> None:
    """Print a message with every field (`format_message`)."""
    print(format_message(message), flush=True)


def fail(prog: str, error: CliError) -> int:
    """Print a command's error line on stderr; its exit status."""
    print(f"{prog}: {error}", file=sys.stderr, flush=True)
    return error.status


@dataclass(frozen=True, slots=True)
class Rolling:
    """A rolling-window limit as given on the command line: LIMIT/SECONDS."""

    limit: int
    seconds: int

    def pair(self) -> tuple[int, int]:
        return self.limit, self.seconds


def rolling(text: str) -> Rolling:
    """argparse type of LIMIT/SECONDS (a rolling-window limit)."""
    limit, sep, seconds = text.partition("/")
    if not sep or not limit.isdigit() or not seconds.isdigit() or int(seconds) == 0:
        raise argparse.ArgumentTypeError(f"not LIMIT/SECONDS (e.g. 100/1): {text!r}")
    return Rolling(int(limit), int(seconds))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite price: {text!r}")
    return value
