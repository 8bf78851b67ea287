"""What `optivex up` tells of each component, learnt without changing the components.

- Clients and listening: Linux's socket tables (`/proc/net/tcp`, `/proc/net/tcp6`) and each process's
  descriptors (`/proc/<pid>/fd`): the established connections on a component's port held by that
  component, each peer told apart as another component of the deployment (by the process holding the
  other end), `optivex up` itself (not shown) or a client. Where /proc cannot tell, "?".
- Books, orders and trades: `OrderBookWatch`, a connection of `optivex up` to the order book that
  logs in like any follower and counts from its events (`MarketTally`). Order and trade ids are issued
  in sequence from 1 each day, so "orders today" and "trades today" are the highest ids seen: right
  even after the watch reconnects. The users' figures (orders with a username, the gateway's, and
  trades with a user on either side) are counted from the events, so a reconnection may miss some:
  they are then shown as lower bounds (">=").
- `StatusBoard` draws the lines: in place on a terminal, else as plain lines when they change.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast

from google.protobuf.message import Message

from optivex.client import ClientSession
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A
PROC = Path("/proc")
WATCH_USERNAME = "optivex-up"
"""The username `optivex up`'s order book connection logs in with (the order book requires no password)."""

Endpoint = tuple[str, int]
"""(address as /proc writes it, in hex; port)."""


# socket tables -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpSocket:
    """One row of /proc/net/tcp or tcp6."""

    local: Endpoint
    remote: Endpoint
    state: int
    inode: int


def parse_tcp_table(text: str) -> list[TcpSocket]:
    """The rows of a /proc/net/tcp (or tcp6) text; the header and malformed rows are skipped."""
    rows: list[TcpSocket] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local_host, local_port = fields[1].rsplit(":", 1)
            remote_host, remote_port = fields[2].rsplit(":", 1)
            rows.append(
                TcpSocket(
                    (_unmapped(local_host), int(local_port, 16)),
                    (_unmapped(remote_host), int(remote_port, 16)),
                    int(fields[3], 16),
                    int(fields[9]),
                )
            )
        except ValueError:
            continue
    return rows


_V4_MAPPED = "0000000000000000FFFF0000"
"""How /proc/net/tcp6 writes the prefix of an IPv4-mapped address (::ffff:a.b.c.d)."""


def _unmapped(host: str) -> str:
    """An IPv4-mapped IPv6 address as its IPv4 form (how the other end's row in /proc/net/tcp has it)."""
    return host[len(_V4_MAPPED) :] if len(host) == 32 and host.upper().startswith(_V4_MAPPED) else host


def read_tcp_table(proc: Path = PROC) -> list[TcpSocket] | None:
    """Every TCP socket of this network namespace; None where /proc cannot tell (not Linux)."""
    rows: list[TcpSocket] = []
    found = False
    for name in ("tcp", "tcp6"):
        try:
            text = (proc / "net" / name).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        found = True
        rows.extend(parse_tcp_table(text))
    return rows if found else None


def socket_inodes(pid: int, proc: Path = PROC) -> set[int] | None:
    """The inodes of the sockets process `pid` holds; None when its descriptors cannot be read."""
    fd_dir = proc / str(pid) / "fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    inodes: set[int] = set()
    for fd in fds:
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(fd_dir / fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


@dataclass(frozen=True)
class Connections:
    """A component's established connections: `clients` from outside the deployment, and the names of
    the deployment's components connected to it (one per connection, sorted)."""

    listening: bool
    clients: int
    peers: tuple[str, ...] = ()


HIDDEN = ""
"""The owner name of connections not to show (those of `optivex up` itself)."""


def count_connections(
    table: Sequence[TcpSocket], port: int, server_inodes: set[int], owners: Mapping[int, str]
) -> Connections:
    """The connections to `port` held by the process whose socket inodes are `server_inodes`.

    Each one's other end is looked up in `table` (the row whose local endpoint is its remote one);
    `owners` names the holder of an inode (HIDDEN: not counted); any other peer is a client.
    """
    by_local = {(row.local, row.remote): row.inode for row in table if row.state == TCP_ESTABLISHED}
    listening = False
    clients = 0
    peers: list[str] = []
    for row in table:
        if row.local[1] != port or row.inode not in server_inodes:
            continue
        if row.state == TCP_LISTEN:
            listening = True
        elif row.state == TCP_ESTABLISHED:
            owner = owners.get(by_local.get((row.remote, row.local), -1))
            if owner is None:
                clients += 1
            elif owner != HIDDEN:
                peers.append(owner)
    return Connections(listening, clients, tuple(sorted(peers)))


# the order book's figures -------------------------------------------------


@dataclass
class MarketTally:
    """Counts of the day from the order book's events.

    Lighter than a `feed.mirror.BookMirror` (no price levels, no checks): each resting order's open
    quantity and whether a user owns it, which is all the figures need. An order adds its full
    quantity (its trades follow and reduce it, as section 3 of the contract has it), a trade reduces
    both of its orders, a cancel removes one; events about unknown orders change no figure.
    """

    open_orders: dict[int, tuple[int, bool]] = field(default_factory=dict)
    """order_id -> (open quantity, whether a user owns it) of each resting order."""
    books: int = 0
    instruments: int = 0
    last_order_id: int = 0
    last_trade_id: int = 0
    user_orders: int = 0
    """Orders inserted with a username (on a user's behalf: through the gateway), counted live."""
    user_trades: int = 0
    """Trades with a user's order on either side, counted live."""
    exact: bool = True
    """False once a reconnection may have missed events: the user figures are then lower bounds."""
    replaying: bool = False

    def begin_replay(self, reconnection: bool) -> None:
        """A connection: the state is rebuilt from the replay that follows, whose orders are not
        counted as new. After a reconnection the user figures are lower bounds (events in between
        were missed)."""
        if reconnection:
            self.exact = False
        self.open_orders = {}
        self.books = self.instruments = 0
        self.replaying = True

    def end_replay(self) -> None:
        self.replaying = False

    def apply(self, event: Message) -> None:
        """One message of the order book (anything but its four events is ignored)."""
        kind = type(event)
        if kind is pb.OnOrderInserted:
            inserted = cast(pb.OnOrderInserted, event)
            order_id = inserted.order_id
            owned = bool(inserted.username)
            self.open_orders[order_id] = (inserted.quantity, owned)
            # Ids ascend: an id not above the last is no new order (an amend that kept its priority,
            # in the contract's form: cancelled, then inserted again under its id).
            if order_id > self.last_order_id:
                self.last_order_id = order_id
                if owned and not self.replaying:
                    self.user_orders += 1
            if inserted.trade_ids:
                self.last_trade_id = max(self.last_trade_id, max(inserted.trade_ids))
        elif kind is pb.OnTrade:
            trade = cast(pb.OnTrade, event)
            self.last_trade_id = max(self.last_trade_id, trade.trade_id)
            owned = self._reduce(trade.buy_order_id, trade.quantity)
            owned = self._reduce(trade.sell_order_id, trade.quantity) or owned
            if owned and not self.replaying:
                self.user_trades += 1
        elif kind is pb.OnOrderCancelled:
            self.open_orders.pop(cast(pb.OnOrderCancelled, event).order_id, None)
        elif kind is pb.OnOrderBookCreated:
            self.books += 1
            if cast(pb.OnOrderBookCreated, event).HasField("instrument"):
                self.instruments += 1

    def _reduce(self, order_id: int, quantity: int) -> bool:
        """Take a trade's quantity off an order; whether a user owns it."""
        entry = self.open_orders.get(order_id)
        if entry is None:
            return False
        left, owned = entry
        if left > quantity:
            self.open_orders[order_id] = (left - quantity, owned)
        else:
            del self.open_orders[order_id]
        return owned

    @property
    def resting(self) -> int:
        return len(self.open_orders)


class OrderBookWatch:
    """A non-blocking connection to the order book feeding a MarketTally, for a select loop.

    `connect()` (again after a loss: the tally keeps its counts, its state is rebuilt from the new
    replay), then `read()` whenever `sock` is readable. `error` says why the last connection ended.
    """

    def __init__(self, address: tuple[str, int], tally: MarketTally | None = None) -> None:
        self.address = address
        self.tally = tally if tally is not None else MarketTally()
        self.sock: socket.socket | None = None
        self.error = ""
        self.connections = 0
        self._session = ClientSession("order_book")
        self._barrier = 0

    @property
    def connected(self) -> bool:
        return self.sock is not None

    @property
    def live(self) -> bool:
        """Connected with the replay applied: the figures are current."""
        return self.sock is not None and not self.tally.replaying

    def connect(self, timeout: float = 0.5) -> bool:
        """Connect, log in and ask for a barrier (the end of the replay); False (and `error`) on failure."""
        self.close()
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except OSError as exc:
            self.error = f"cannot connect to {self.address[0]}:{self.address[1]}: {exc.strerror or exc}"
            return False
        self._session = ClientSession("order_book")
        _, login = self._session.encode_request(common_pb2.LoginRequest(username=WATCH_USERNAME))
        self._barrier, barrier = self._session.encode_request(pb.BarrierRequest())
        try:
            sock.sendall(login + barrier)
        except OSError as exc:
            sock.close()
            self.error = f"lost at login: {exc.strerror or exc}"
            return False
        sock.setblocking(False)
        self.sock = sock
        self.tally.begin_replay(reconnection=self.connections > 0)
        self.connections += 1
        return True

    def read(self, max_reads: int = 64) -> bool:
        """Apply what arrived (at most `max_reads` reads, so a busy day starves no one); False once the
        connection is lost (then `error` says why, and `sock` is None)."""
        sock = self.sock
        if sock is None:
            return False
        for _ in range(max_reads):
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except OSError as exc:
                return self._lost(exc.strerror or str(exc))
            if not data:
                return self._lost("closed by the order book")
            try:
                self._session.feed_data(data, self._event, self._response)
            except _Refused as exc:
                return self._lost(str(exc))
            if self._session.error is not None:
                return self._lost(f"protocol violation: {self._session.error}")
            if self.sock is None:
                return False
        return True

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def _lost(self, why: str) -> bool:
        self.error = why
        self.close()
        return False

    def _event(self, message: Message) -> None:
        self.tally.apply(message)

    def _response(self, request_id: int, message: Message) -> None:
        if isinstance(message, common_pb2.LoginResponse) and message.error_message:
            raise _Refused(f"login refused: {message.error_message}")
        if request_id == self._barrier:
            self.tally.end_replay()


class _Refused(Exception):
    """The order book refused the watch's login."""


# the lines ------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentView:
    """What one status line shows of a component."""

    name: str
    address: tuple[str, int]
    pid: int | None
    state: str
    """"running", or why not (e.g. "died: exit status 3")."""
    connections: Connections | None
    """None where /proc cannot tell."""
    figures: tuple[str, ...] = ()


def market_figures(protocols: Iterable[str], tally: MarketTally | None, live: bool) -> tuple[str, ...]:
    """The figures a component serving `protocols` gets from the order book's events (none if no watch)."""
    if tally is None:
        return ()
    wanted = set(protocols)
    if not live and tally.last_order_id == 0 and tally.books == 0:
        return ("(following the order book...)",) if "order_book" in wanted else ()
    bound = "" if tally.exact else ">="
    out: list[str] = []
    if "order_book" in wanted:
        out += [
            f"books {tally.books}",
            f"orders {tally.resting} resting / {tally.last_order_id} today",
            f"trades {tally.last_trade_id}",
        ]
    if "admin" in wanted:
        out.append(f"instruments {tally.instruments}")
    if "execution" in wanted:
        out += [f"user orders {bound}{tally.user_orders}", f"user trades {bound}{tally.user_trades}"]
    return tuple(out)


def format_lines(views: Sequence[ComponentView]) -> list[str]:
    """One aligned line per component: name, address, pid, state, clients, figures."""
    name_width = max((len(v.name) for v in views), default=0)
    addresses = [f"{v.address[0]}:{v.address[1]}" for v in views]
    address_width = max((len(a) for a in addresses), default=0)
    pid_width = max((len(str(v.pid or "-")) for v in views), default=0)
    lines: list[str] = []
    for view, address in zip(views, addresses, strict=True):
        parts = [
            f"{view.name:<{name_width}}",
            f"{address:<{address_width}}",
            f"pid {view.pid or '-':<{pid_width}}",
        ]
        conns = view.connections
        if view.state != "running":
            parts.append(view.state)
        elif conns is None:
            parts.append("running, clients ?")
        else:
            parts.append("listening" if conns.listening else "NOT LISTENING")
            clients = f"clients {conns.clients}"
            if conns.peers:
                clients += f" (+ {', '.join(conns.peers)})"
            parts.append(clients)
        parts.extend(view.figures)
        lines.append("  ".join(parts).rstrip())
    return lines


def format_duration(seconds: float) -> str:
    """H:MM:SS (days as hours)."""
    total = max(0, int(seconds))
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


class StatusBoard:
    """Status lines on a stream: redrawn in place on a terminal, else printed when they change.

    `show(header, lines)`: the header (a time) does not count as a change. On a terminal each line is
    cut to the terminal's width, so that none wraps and the cursor goes back up exactly over them.
    `release()` leaves what is drawn as it is: whatever is printed next goes below it.
    """

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._drawn = 0
        self._last: list[str] | None = None

    def show(self, header: str, lines: Sequence[str], width: int | None = None) -> bool:
        """Draw; returns whether anything was written."""
        body = list(lines)
        if not self.tty:
            if body == self._last:
                return False
            self._last = body
            self.stream.write("".join(f"{line}\n" for line in [header, *("  " + b for b in body)]))
            self.stream.flush()
            return True
        columns = width if width is not None else _terminal_width(self.stream)
        out = [f"\x1b[{self._drawn}F"] if self._drawn else []
        for line in [header, *("  " + b for b in body)]:
            out.append("\x1b[2K" + line[: max(1, columns - 1)] + "\n")
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = 1 + len(body)
        self._last = body
        return True

    def release(self) -> None:
        self._drawn = 0


def _terminal_width(stream: TextIO) -> int:
    """The terminal's columns; where it says 0 or cannot tell, $COLUMNS or 80 (as shutil does)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = int(os.environ.get("COLUMNS", ""))
        except ValueError:
            columns = 0
    return columns if columns > 0 else 80
