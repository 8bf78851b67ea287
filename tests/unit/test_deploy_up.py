"""The pieces of `optivex up` below the CLI: the directory lock, per-run log directories, components
dying with their parent, the socket tables, the order book's figures and the status lines."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import die_with_parent_hook
from optivex.deploy.status import (
    HIDDEN,
    ComponentView,
    Connections,
    MarketTally,
    StatusBoard,
    TcpSocket,
    count_connections,
    format_duration,
    format_lines,
    market_figures,
    parse_tcp_table,
    socket_inodes,
)
from optivex.deploy.supervisor import describe_exit
from optivex.deploy.workdir import LOCK_FILE, DirectoryBusy, DirectoryLock, new_run_directory
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as pb

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="Linux only (prctl, /proc)")


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


# the lock ------------------------------------------------------------------------


def test_a_second_lock_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    with DirectoryLock.acquire(tmp_path / "run") as lock:
        assert lock.held
        content = (tmp_path / "run" / LOCK_FILE).read_bytes()
        assert content.startswith(f"pid {os.getpid()}, started ".encode())
        with pytest.raises(DirectoryBusy) as info:
            DirectoryLock.acquire(tmp_path / "run")
        assert str(info.value) == (
            f"{tmp_path / 'run'} is in use by another optivex up ({content.decode().strip()}); "
            "stop it first, or give another --dir"
        )
        assert (tmp_path / "run" / LOCK_FILE).read_bytes() == content
    assert not lock.held
    DirectoryLock.acquire(tmp_path / "run").release()


def test_the_lock_is_not_inherited_by_children(tmp_path: Path) -> None:
    lock = DirectoryLock.acquire(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
        close_fds=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Running: its exec is over (the kernel closes close-on-exec descriptors after it lets a
        # vfork parent go on, so right after Popen returns the child may still hold the lock).
        assert child.stdout is not None and child.stdout.readline() == "up\n"
        lock.release()
        DirectoryLock.acquire(tmp_path).release()  # the child still runs, but holds no lock
    finally:
        child.kill()
        child.wait()


def test_kill_9_of_the_holder_frees_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from optivex.deploy.workdir import DirectoryLock\n"
            f"lock = DirectoryLock.acquire(Path({str(tmp_path)!r}))\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(DirectoryBusy, match=f"pid {holder.pid}"):
            DirectoryLock.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    DirectoryLock.acquire(tmp_path).release()


def test_a_lock_where_none_can_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(DeploymentError, match="cannot lock"):
        DirectoryLock.acquire(tmp_path / "file")


# per-run log directories ------------------------------------------------------------


def test_run_directories_are_fresh_and_latest_points_to_the_newest(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    now = 1796190000.0  # 2026-12-02 ... UTC
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    first = new_run_directory(logs, now)
    second = new_run_directory(logs, now)
    assert (first.name, second.name) == (stamp, f"{stamp}-2")
    assert os.readlink(logs / "latest") == second.name
    assert sorted(p.name for p in logs.iterdir()) == sorted([stamp, f"{stamp}-2", "latest"])


def test_a_latest_that_is_a_directory_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "logs" / "latest").mkdir(parents=True)
    run = new_run_directory(tmp_path / "logs")
    assert run.is_dir() and (tmp_path / "logs" / "latest").is_dir()
    assert not any(p.name.startswith(".latest") for p in (tmp_path / "logs").iterdir())


# dying with the parent -----------------------------------------------------------------


@linux_only
def test_children_die_with_their_parent_whatever_kills_it() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """\
                import subprocess, sys, time
                from optivex.deploy.runner import die_with_parent_hook
                child = subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent_hook()
                )
                print(child.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert not _wait_gone(child, 0.2)
    parent.kill()
    parent.wait()
    assert _wait_gone(child), f"child {child} outlived its parent"


@linux_only
def test_a_child_whose_parent_died_before_the_prctl_kills_itself() -> None:
    # The starter is not the parent the child sees: as if the starter had died between fork and prctl.
    hook = die_with_parent_hook(starter=os.getpid() + 1_000_000)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=hook)
    assert child.wait(10) == -signal.SIGKILL


def test_describe_exit() -> None:
    assert describe_exit(3) == "exit status 3"
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(-200) == "killed by signal 200"


# socket tables ----------------------------------------------------------------------------

TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4268 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 100 1 0
   1: 0100007F:4268 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 101 1 0
   2: 0100007F:9C40 0100007F:4268 01 00000000:00000000 00:00000000 00000000     0        0 201 1 0
   3: 0100007F:4268 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0
   4: 0100007F:9C41 0100007F:4268 01 00000000:00000000 00:00000000 00000000     0        0 301 1 0
   5: 0100007F:4268 0100007F:9C42 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0
   6: 0100007F:9C42 0100007F:4268 01 00000000:00000000 00:00000000 00000000     0        0 401 1 0
   7: 0100007F:4268 0100007F:9C43 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0
   8: garbage
"""
TCP6 = """\
  sl  local_address                         remote_address                        st ...
   0: 0000000000000000FFFF00000100007F:4268 0000000000000000FFFF00000100007F:9C44 01 0:0 0:0 0 0 0 104 1
   1: 0100007F:9C44 0100007F:4268 01 0:0 0:0 0 0 0 501 1
"""


def test_parse_tcp_table() -> None:
    rows = parse_tcp_table(TCP)
    assert len(rows) == 8
    assert rows[0] == TcpSocket(("0100007F", 0x4268), ("00000000", 0), 0x0A, 100)
    mapped = parse_tcp_table(TCP6)[0]
    assert mapped.local == ("0100007F", 0x4268)  # ::ffff:127.0.0.1 as the IPv4 row of its peer has it


def test_count_connections_tells_components_self_and_clients_apart() -> None:
    table = parse_tcp_table(TCP) + parse_tcp_table(TCP6)
    server = {100, 101, 102, 103, 104}
    owners = {201: "info", 301: HIDDEN, 101: "order_book", 100: "order_book"}
    # 9C40 is info's, 9C41 optivex up's (not shown), 9C42 and 9C44 (v4-mapped) clients; 9C43 is closing
    assert count_connections(table, 0x4268, server, owners) == Connections(True, 2, ("info",))
    assert count_connections(table, 0x4268, {101}, owners) == Connections(False, 0, ("info",))
    assert count_connections(table, 0x4269, server, owners) == Connections(False, 0, ())


@linux_only
def test_socket_inodes_of_this_process() -> None:
    import socket

    with socket.socket() as sock:
        inode = os.fstat(sock.fileno()).st_ino
        inodes = socket_inodes(os.getpid())
        assert inodes is not None and inode in inodes
    assert socket_inodes(2**22 + 12345) is None


# the order book's figures ------------------------------------------------------------------


def _day(tally: MarketTally) -> None:
    tally.apply(
        pb.OnOrderBookCreated(order_book_id=1, tick_size=0.01, instrument=common_pb2.Instrument(symbol="A"))
    )
    tally.apply(pb.OnOrderBookCreated(order_book_id=2, tick_size=0.01))
    tally.apply(pb.OnOrderInserted(order_id=1, order_book_id=1, side=common_pb2.SELL, price=10, quantity=5))
    tally.apply(
        pb.OnOrderInserted(
            order_id=2,
            order_book_id=1,
            side=common_pb2.BUY,
            price=10,
            quantity=2,
            username="bob",
            trade_ids=[1],
        )
    )
    tally.apply(
        pb.OnTrade(
            trade_id=1,
            order_book_id=1,
            buy_order_id=2,
            sell_order_id=1,
            price=10,
            quantity=2,
            aggressor_side=common_pb2.BUY,
        )
    )
    tally.apply(pb.OnOrderInserted(order_id=3, order_book_id=2, side=common_pb2.BUY, price=1, quantity=1))
    tally.apply(pb.OnOrderCancelled(order_id=3))
    # bob's order amended in the contract's form (priority kept): no new order
    tally.apply(pb.OnOrderCancelled(order_id=2, reason=common_pb2.CANCEL_AMENDED))
    tally.apply(
        pb.OnOrderInserted(
            order_id=2, order_book_id=1, side=common_pb2.BUY, price=9, quantity=1, username="bob"
        )
    )
    tally.apply(pb.OnTrade(trade_id=5, buy_order_id=77, sell_order_id=78, quantity=1))  # unknown orders


def test_market_tally_counts_the_day() -> None:
    tally = MarketTally()
    tally.begin_replay(reconnection=False)
    tally.end_replay()
    _day(tally)
    assert (tally.books, tally.instruments, tally.resting) == (2, 1, 2)
    assert tally.open_orders == {1: (3, False), 2: (1, True)}
    assert (tally.last_order_id, tally.last_trade_id, tally.user_orders, tally.user_trades) == (3, 5, 1, 1)
    assert tally.exact
    assert market_figures(("order_book",), tally, True) == (
        "books 2",
        "orders 2 resting / 3 today",
        "trades 5",
    )
    assert market_figures(("admin", "info"), tally, True) == ("instruments 1",)
    assert market_figures(("execution", "risk_limits"), tally, True) == ("user orders 1", "user trades 1")
    assert market_figures(("info",), tally, True) == ()
    assert market_figures(("order_book",), None, False) == ()


def test_a_reconnection_rebuilds_from_the_replay_and_bounds_the_user_figures() -> None:
    tally = MarketTally()
    tally.begin_replay(reconnection=False)
    tally.end_replay()
    _day(tally)
    tally.begin_replay(reconnection=True)
    assert tally.resting == 0 and tally.books == 0
    # the replay: books, then the resting orders (not counted again)
    tally.apply(
        pb.OnOrderBookCreated(order_book_id=1, tick_size=0.01, instrument=common_pb2.Instrument(symbol="A"))
    )
    tally.apply(pb.OnOrderBookCreated(order_book_id=2, tick_size=0.01))
    tally.apply(pb.OnOrderInserted(order_id=1, order_book_id=1, side=common_pb2.SELL, price=10, quantity=3))
    tally.apply(
        pb.OnOrderInserted(
            order_id=9, order_book_id=2, side=common_pb2.SELL, price=2, quantity=1, username="al"
        )
    )
    assert market_figures(("order_book",), tally, False)[1] == "orders 2 resting / 9 today"
    tally.end_replay()
    assert (tally.user_orders, tally.user_trades, tally.exact) == (1, 1, False)
    assert market_figures(("execution",), tally, True) == ("user orders >=1", "user trades >=1")


def test_before_the_first_replay_only_the_order_book_says_it_waits() -> None:
    tally = MarketTally()
    tally.begin_replay(reconnection=False)
    assert market_figures(("order_book",), tally, False) == ("(following the order book...)",)
    assert market_figures(("admin",), tally, False) == ()


# the lines ----------------------------------------------------------------------------------


def _views() -> list[ComponentView]:
    return [
        ComponentView(
            "order_book", ("127.0.0.1", 17100), 41, "running", Connections(True, 0, ("admin", "info"))
        ),
        ComponentView(
            "gateway", ("127.0.0.1", 17103), 1234, "running", Connections(False, 3), ("user orders 2",)
        ),
        ComponentView("info", ("127.0.0.1", 17102), 99, "running", None),
        ComponentView("admin", ("127.0.0.1", 17101), 5, "DIED: exit status 3", None),
    ]


def test_format_lines() -> None:
    assert format_lines(_views()) == [
        "order_book  127.0.0.1:17100  pid 41    listening  clients 0 (+ admin, info)",
        "gateway     127.0.0.1:17103  pid 1234  NOT LISTENING  clients 3  user orders 2",
        "info        127.0.0.1:17102  pid 99    running, clients ?",
        "admin       127.0.0.1:17101  pid 5     DIED: exit status 3",
    ]
    assert format_duration(3 * 3600 + 62.9) == "3:01:02"
    assert format_duration(-1) == "0:00:00"


def test_status_board_redraws_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    board = StatusBoard(stream, tty=True)
    assert board.show("Status at 1", ["a", "b"], width=80)
    assert stream.getvalue() == "\x1b[2KStatus at 1\n\x1b[2K  a\n\x1b[2K  b\n"
    stream.truncate(0)
    stream.seek(0)
    assert board.show("Status at 2", ["a", "x" * 100], width=20)
    assert stream.getvalue() == "\x1b[3F\x1b[2KStatus at 2\n\x1b[2K  a\n\x1b[2K  " + "x" * 17 + "\n"
    board.release()
    stream.truncate(0)
    stream.seek(0)
    board.show("Status at 3", ["a"], width=80)
    assert stream.getvalue() == "\x1b[2KStatus at 3\n\x1b[2K  a\n"  # below what was drawn, not over it


def test_status_board_prints_plain_lines_when_they_change() -> None:
    stream = io.StringIO()
    board = StatusBoard(stream, tty=False)
    assert board.show("Status at 1", ["a", "b"])
    assert not board.show("Status at 2", ["a", "b"])
    assert board.show("Status at 3", ["a", "c"])
    assert stream.getvalue() == "Status at 1\n  a\n  b\nStatus at 3\n  a\n  c\n"
