"""The gateway (execution + risk_limits) over loopback TCP: its cost beside the order book's, same run.

Starts the risk_limits suite's deployment (order book, admin, gateway) through
the deployment runner in a temp dir (real processes, as in the system tests),
creates one instrument through admin (tick 0.01) and gives each default user
(alice, bob, carol, dave; password = username) EVERY risk limit, set far above
what the run reaches, so every check runs and none rejects: user
max_outstanding_quantity and message_rate_rolling_limit, and on the instrument
max_outstanding_quantity, max_outstanding_amount, order_quantity_rolling_limit
and order_amount_rolling_limit (rolling windows of `--limit-window` seconds).
Orders are never marketable (bids 99.41-99.90, asks 100.10-100.59), so no
trade takes an order away before its cancel. Then, on that one deployment:

a. round trips: alice inserts one order at a time and waits for its response,
   through the gateway (logged in to it) and straight to the order book (its
   InsertOrderRequest with `on_behalf_of_username` alice, what the gateway
   itself sends), in alternating blocks of `--block` inserts (gateway block,
   direct block, repeated `--blocks` times) so the machine's drift hits both
   alike. After each block its orders are cancelled in one pipelined, untimed
   batch, so the book stays small. The first pair of blocks warms up and is
   not counted. Reports p50/p90/p99/max in microseconds of each path and the
   ratio gateway/direct (target: gateway p99 <= 2.5x direct p99).
b. load: 4 client processes (multiprocessing "spawn"), one per user, each
   pipelining inserts and cancels of its own orders with at most `--window`
   requests in flight (it writes a batch once a quarter of the window is
   free: cancels of every order of its own known to rest, then new inserts).
   They start together and run `--warmup` + `--seconds` s; the responses
   each receives during the last `--seconds` are counted. Reports orders/s
   (inserts + cancels answered per second: all 4 together, and per client),
   the responses carrying an error (rejected: should be 0; counted over the
   whole run, the final clean-up included) and the CPU use of the order book,
   the gateway and the clients over the counted seconds (% of one core, from
   /proc; "other" is every other process of the machine: noise on a shared
   machine). The same 4-client run straight into the order book (same users,
   on_behalf_of_username) follows as the same-minutes baseline, and the ratio
   gateway/direct; `--repeat N` alternates the two N times. Each run also
   derives the CPU microseconds an order costs each process and the rate
   that cost caps it at on this machine (every core busy with it, or its
   busiest component, one process, at a whole core).

Components run with their configs from deployment_config.json, so with their
default busy polling after each read (200 us in the order book and in the
gateway); `--gateway-busy-poll-us` and `--order-book-busy-poll-us` set the
gateway's and the order book's `busyPollMicroseconds`.
`--direct-only` runs the direct halves alone, on the order book and admin (no
gateway in the deployment).

    uv run python benchmarks/gateway.py [--blocks 20] [--block 1000] [--seconds 5] [--window 1000]
    uv run python benchmarks/gateway.py --quick      # a smoke run with small numbers
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from multiprocessing.process import BaseProcess
from typing import Any

from info_fanout import COMPONENT_START_TIMEOUT, cpu_seconds, machine_cpu_seconds
from info_fanout import READERS as TRADERS
from orderbook_tcp import insert as random_insert

from optivex.client import SyncClient
from optivex.deploy import (
    ADMIN_USER,
    Deployment,
    components_for_suite,
    default_deployment_path,
    load_deployment,
)
from optivex.proto import admin_pb2, common_pb2, execution_pb2, risk_limits_pb2
from optivex.proto import order_book_pb2 as pb
from optivex.protocols import PROTOCOLS, Protocol, protocol_for
from optivex.wire import READ_SIZE, FrameDecoder, encode_frame

SYMBOL = "GWBENCH"
TICK_SIZE = 0.01
GATEWAY_PROTOCOL = protocol_for(("execution", "risk_limits"))
"""What the gateway's port speaks."""
ORDER_BOOK_PROTOCOL = PROTOCOLS["order_book"]
HIGH_QUANTITY = 1_000_000_000_000
"""max_outstanding_quantity (user and instrument): far above anything a run leaves resting."""
HIGH_AMOUNT = 1e11
"""max_outstanding_amount: far above price x quantity of anything a run leaves resting."""
HIGH_ROLLING = 2_000_000_000
"""Every rolling limit (an int32): far above what `--limit-window` seconds of a run reach."""
SETUP_TIMEOUT = 60.0
"""Seconds a client process has to connect and log in (and, at the end, to report)."""
START_DELAY = 0.3
"""Seconds between the go signal and the clients' common start (they all get it first)."""
INSERT_POOL = 1000
"""Distinct pre-encoded inserts each load client cycles through."""
CLIENT_TIMEOUT = 30.0
"""Seconds any client waits for a response before it gives up (the run then fails)."""

Request = execution_pb2.InsertOrderRequest | pb.InsertOrderRequest


# --- setup ------------------------------------------------------------------------------------------


def create_instrument(host: str, port: int) -> int:
    """Create SYMBOL through admin; its order_book_id."""
    with SyncClient(host, port, "admin", timeout=CLIENT_TIMEOUT) as admin:
        admin.login(ADMIN_USER.username, ADMIN_USER.password)
        created = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=SYMBOL), tick_size=TICK_SIZE
            ),
            check=True,
            expect=admin_pb2.CreateInstrumentResponse,
        )
        return created.order_book_id


def set_every_limit(host: str, port: int, user: str, window: int) -> None:
    """Set every user and instrument limit of `user` on SYMBOL, high enough never to reject."""
    rolling = risk_limits_pb2.RollingWindowLimit(limit=HIGH_ROLLING, window_in_seconds=window)
    user_limits = risk_limits_pb2.UserRiskLimits(
        max_outstanding_quantity=HIGH_QUANTITY, message_rate_rolling_limit=rolling
    )
    instrument_limits = risk_limits_pb2.InstrumentRiskLimits(
        max_outstanding_quantity=HIGH_QUANTITY,
        max_outstanding_amount=HIGH_AMOUNT,
        order_quantity_rolling_limit=rolling,
        order_amount_rolling_limit=rolling,
    )
    with SyncClient(host, port, GATEWAY_PROTOCOL, timeout=CLIENT_TIMEOUT) as client:
        client.login(user, user)
        client.request(risk_limits_pb2.SetUserRiskLimitsRequest(user_risk_limits=user_limits), check=True)
        client.request(
            risk_limits_pb2.SetInstrumentRiskLimitsRequest(
                instrument_symbol=SYMBOL, instrument_risk_limits=instrument_limits
            ),
            check=True,
        )
        got = client.request(
            risk_limits_pb2.GetUserRiskLimitsRequest(),
            check=True,
            expect=risk_limits_pb2.GetUserRiskLimitsResponse,
        )
        assert got.user_risk_limits == user_limits, f"{user}'s user limits read back as {got}"
        got_instruments = client.request(
            risk_limits_pb2.GetInstrumentRiskLimitsRequest(),
            check=True,
            expect=risk_limits_pb2.GetInstrumentRiskLimitsResponse,
        )
        read_back = got_instruments.risk_limits_by_instrument[SYMBOL]
        assert read_back == instrument_limits, f"{user}'s {SYMBOL} limits read back as {read_back}"


def order(rng: random.Random, path: str, book: int, user: str) -> Request:
    """A random non-marketable insert of `user` for `path` ("gateway": by symbol; "direct": by book)."""
    request = random_insert(rng, book, False)
    if path == "direct":
        request.on_behalf_of_username = user
        return request
    return execution_pb2.InsertOrderRequest(
        instrument_symbol=SYMBOL, side=request.side, price=request.price, quantity=request.quantity
    )


def cancel_factory(
    path: str, book: int
) -> Callable[[int], execution_pb2.CancelOrderRequest | pb.CancelOrderRequest]:
    """The cancel of an order id for `path`."""
    if path == "direct":
        return lambda order_id: pb.CancelOrderRequest(order_book_id=book, order_id=order_id)
    return lambda order_id: execution_pb2.CancelOrderRequest(instrument_symbol=SYMBOL, order_id=order_id)


# --- a. round trips ---------------------------------------------------------------------------------


def percentile_us(ordered: list[int], p: float) -> float:
    """The p-th percentile of sorted nanoseconds, in microseconds."""
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1000


def describe(ordered: list[int]) -> str:
    return (
        f"p50 {percentile_us(ordered, 50):,.0f} us, p90 {percentile_us(ordered, 90):,.0f} us, "
        f"p99 {percentile_us(ordered, 99):,.0f} us, max {ordered[-1] / 1000:,.0f} us"
    )


def one_block(client: SyncClient, path: str, book: int, rng: random.Random, count: int) -> list[int]:
    """`count` inserts one at a time (nanoseconds each), then their cancels in one untimed batch."""
    user = TRADERS[0]
    expect: type[execution_pb2.InsertOrderResponse] | type[pb.InsertOrderResponse] = (
        pb.InsertOrderResponse if path == "direct" else execution_pb2.InsertOrderResponse
    )
    latencies = []
    order_ids = []
    for _ in range(count):
        request = order(rng, path, book, user)
        t0 = time.perf_counter_ns()
        response = client.request(request)
        t1 = time.perf_counter_ns()
        assert isinstance(response, expect) and not response.error_message, response
        latencies.append(t1 - t0)
        order_ids.append(response.order_id)
    cancel = cancel_factory(path, book)
    client.send(*(cancel(order_id) for order_id in order_ids))
    for _ in order_ids:
        cancelled = client.receive()
        assert not getattr(cancelled, "error_message", "x"), cancelled
    return latencies


def round_trips(gateway: SyncClient | None, direct: SyncClient, book: int, blocks: int, block: int) -> None:
    """Alternating blocks of one-at-a-time inserts through the gateway and straight to the order book."""
    rng = random.Random(11)
    clients = {"gateway": gateway, "direct": direct}
    samples: dict[str, list[int]] = {"gateway": [], "direct": []}
    for index in range(blocks + 1):
        for path, client in clients.items():
            if client is not None:
                latencies = one_block(client, path, book, rng, block)
                if index:  # the first pair warms up
                    samples[path].extend(latencies)
    print(f"a. round trips, one insert at a time ({blocks} x {block:,} samples a path, alternating blocks):")
    ordered = {path: sorted(values) for path, values in samples.items() if values}
    for path, values in ordered.items():
        print(f"   {path:>8}: {describe(values)}", flush=True)
    if len(ordered) == 2:
        gw, dr = ordered["gateway"], ordered["direct"]
        p50 = percentile_us(gw, 50) / percentile_us(dr, 50)
        p99 = percentile_us(gw, 99) / percentile_us(dr, 99)
        verdict = "met" if p99 <= 2.5 else "NOT met"
        print(
            f"   gateway / direct: p50 {p50:.2f}x, p99 {p99:.2f}x (target p99 <= 2.5x: {verdict})", flush=True
        )


# --- b. load: the client process --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a load client sends its orders."""

    path: str
    """"gateway" (logged in, by symbol) or "direct" (the order book, on_behalf_of_username)."""
    host: str
    port: int
    book: int


@dataclass
class ClientFigures:
    """What one load client reports."""

    user: str
    answered: int
    """Responses received during the counted seconds."""
    inserts: int
    """Of them, insert responses."""
    rejected: int
    """Responses carrying an error, over the whole run (clean-up included)."""
    first_error: str
    cpu: float
    """CPU seconds of the client process during the counted seconds."""


def load_client(target: Target, user: str, window: int, control: Pipe) -> None:
    """One load client: connect (and log in), answer ("ready",), run on ("go", start, count_from, end).

    Sends ("done", ClientFigures) once its orders are all cancelled; any failure as ("error", traceback).
    """
    try:
        control.send(("done", _load_client(target, user, window, control)))
    except KeyboardInterrupt:
        pass
    except Exception:
        control.send(("error", traceback.format_exc()))


def _load_client(target: Target, user: str, window: int, control: Pipe) -> ClientFigures:
    gateway = target.path == "gateway"
    protocol: Protocol = GATEWAY_PROTOCOL if gateway else ORDER_BOOK_PROTOCOL
    client = SyncClient(target.host, target.port, protocol, timeout=CLIENT_TIMEOUT)
    if gateway:
        client.login(user, user)
    assert not client.pending
    sock = client.sock
    insert_response = execution_pb2.InsertOrderResponse if gateway else pb.InsertOrderResponse
    cancel_response = execution_pb2.CancelOrderResponse if gateway else pb.CancelOrderResponse
    insert_type = protocol.types[insert_response]
    cancel_type = protocol.types[cancel_response]
    rng = random.Random(user)
    pool = []
    for index in range(INSERT_POOL):
        request = order(rng, target.path, target.book, user)
        request.request_id = index + 1
        pool.append(encode_frame(protocol.types[type(request)], request.SerializeToString()))
    cancel = cancel_factory(target.path, target.book)
    cancel_request_type = protocol.types[type(cancel(1))]
    batch = max(1, window // 4)
    decoder = FrameDecoder()
    resting: list[int] = []
    counts = {"answered": 0, "inserts": 0, "rejected": 0, "in_flight": 0}
    first_error = ""

    def absorb(data: bytes) -> None:
        nonlocal first_error
        if not data:
            raise ConnectionError(f"the {target.path} closed {user}'s connection")
        frames = decoder.feed(data)
        if decoder.error is not None:
            raise RuntimeError(f"bad frame from the {target.path}: {decoder.error}")
        counts["answered"] += len(frames)
        counts["in_flight"] -= len(frames)
        for msg_type, payload in frames:
            if msg_type == insert_type:
                response: Any = insert_response.FromString(payload)
                counts["inserts"] += 1
                if not response.error_message:
                    resting.append(response.order_id)
                    continue
            elif msg_type == cancel_type:
                response = cancel_response.FromString(payload)
                if not response.error_message:
                    continue
            else:
                raise RuntimeError(f"unexpected message type {msg_type} from the {target.path}")
            counts["rejected"] += 1
            first_error = first_error or response.error_message

    request_ids = iter(range(INSERT_POOL + 1, 1 << 62))
    pool_index = 0

    def send(room: int, inserts: bool) -> None:
        """Up to `room` requests in one write: cancels of what rests, then (if `inserts`) new inserts."""
        nonlocal pool_index
        take = resting[:room]
        del resting[:room]
        frames = []
        for order_id in take:
            request = cancel(order_id)
            request.request_id = next(request_ids)
            frames.append(encode_frame(cancel_request_type, request.SerializeToString()))
        if inserts:
            for _ in range(room - len(take)):
                frames.append(pool[pool_index])
                pool_index = (pool_index + 1) % INSERT_POOL
        if frames:
            sock.sendall(b"".join(frames))
            counts["in_flight"] += len(frames)

    control.send(("ready",))
    command = control.recv()
    assert command[0] == "go", command
    _, start, count_from, end = command
    sleep_until(start)
    before: tuple[int, int, float] | None = None
    while True:
        now = time.monotonic()
        if before is None and now >= count_from:
            before = (counts["answered"], counts["inserts"], time.process_time())
        if now >= end:
            break
        if counts["in_flight"] <= window - batch:
            send(window - counts["in_flight"], True)
        absorb(sock.recv(READ_SIZE))
    assert before is not None
    figures = ClientFigures(
        user,
        counts["answered"] - before[0],
        counts["inserts"] - before[1],
        0,
        "",
        time.process_time() - before[2],
    )
    # clean-up, untimed: every answer in, then every order that rests cancelled
    while counts["in_flight"] or resting:
        if resting and counts["in_flight"] < window:
            send(window - counts["in_flight"], False)
        if counts["in_flight"]:
            absorb(sock.recv(READ_SIZE))
    client.close()
    figures.rejected = counts["rejected"]
    figures.first_error = first_error
    return figures


# --- b. load: the runs ------------------------------------------------------------------------------


class LoadClients:
    """The load client processes of one run, driven from here."""

    def __init__(self, target: Target, users: tuple[str, ...], window: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.controls: list[Pipe] = []
        self.procs: list[BaseProcess] = []
        for user in users:
            control, child = ctx.Pipe()
            proc = ctx.Process(target=load_client, args=(target, user, window, child), daemon=True)
            proc.start()
            child.close()
            self.controls.append(control)
            self.procs.append(proc)

    def expect(self, index: int, what: str, timeout: float) -> tuple[Any, ...]:
        """Client `index`'s next answer, which must be `what`; its failure is raised here (traceback)."""
        control = self.controls[index]
        if not control.poll(timeout):
            raise TimeoutError(f"load client {index} did not answer {what!r} in {timeout:.0f} s")
        answer: tuple[Any, ...] = control.recv()
        if answer[0] == "error":
            raise RuntimeError(f"load client {index} failed:\n{answer[1]}")
        if answer[0] != what:
            raise RuntimeError(f"load client {index} answered {answer!r}, not {what!r}")
        return answer

    def stop(self) -> None:
        """End every process that is still alive (killed after 2 s), close the pipes."""
        for proc in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.kill()
                proc.join(2)
        for control in self.controls:
            control.close()


@dataclass
class LoadRun:
    """One load run's figures."""

    path: str
    seconds: float
    clients: list[ClientFigures]
    cpu: dict[str, float]
    """% of one core over the counted seconds: each component, "clients" (all of them), "other"."""

    @property
    def rate(self) -> float:
        return sum(c.answered for c in self.clients) / self.seconds

    def describe(self, window: int) -> str:
        per_client = ", ".join(f"{c.user} {c.answered / self.seconds:,.0f}" for c in self.clients)
        answered = sum(c.answered for c in self.clients)
        inserts = sum(c.inserts for c in self.clients) / answered * 100 if answered else 0.0
        rejected = sum(c.rejected for c in self.clients)
        errors = {c.first_error for c in self.clients if c.first_error}
        first = f" (first: {sorted(errors)[0]!r})" if errors else ""
        client_cpu = "+".join(f"{c.cpu / self.seconds * 100:.0f}" for c in self.clients)
        cpu = ", ".join(f"{name} {value:.0f}" for name, value in self.cpu.items() if name != "clients")
        where = (
            "through the gateway, every limit set" if self.path == "gateway" else "straight to the order book"
        )
        return (
            f"   {len(self.clients)} clients {where} (window {window:,}): {self.rate:,.0f} orders/s "
            f"(inserts + cancels answered per second over {self.seconds:g} s; {per_client}); "
            f"{inserts:.0f}% inserts; rejected {rejected}{first}\n"
            f"      CPU % of one core: clients {client_cpu}, {cpu}\n"
            f"      {self.ceiling()}"
        )

    def ceiling(self) -> str:
        """CPU microseconds each order costs each process, and where the path tops out on this machine
        at that cost: its cores all busy with nothing else, or its busiest component (one process,
        one core) at 100%."""
        if not self.rate:
            return "no order answered"
        per_order = {
            name: value / 100 / self.rate * 1_000_000 for name, value in self.cpu.items() if name != "other"
        }
        cores = os.cpu_count() or 1
        total = sum(per_order.values())
        busiest = max((name for name in per_order if name != "clients"), key=per_order.__getitem__)
        parts = ", ".join(f"{name} {value:.1f}" for name, value in per_order.items())
        return (
            f"CPU us per order: {parts}; so at most {cores * 1_000_000 / total:,.0f} orders/s on "
            f"{cores} cores, {1_000_000 / per_order[busiest]:,.0f} with the {busiest} at one core"
        )


def sleep_until(moment: float) -> None:
    """Sleep until time.monotonic() reaches `moment` (the same clock in every process of the machine)."""
    while (left := moment - time.monotonic()) > 0:
        time.sleep(left)


def load_run(target: Target, args: argparse.Namespace, pids: dict[str, int]) -> LoadRun:
    """One run of the load clients against `target`; `pids`: the components whose CPU is measured."""
    users = TRADERS[: args.clients]
    clients = LoadClients(target, users, args.window)
    try:
        for index in range(len(users)):
            clients.expect(index, "ready", SETUP_TIMEOUT)
        start = time.monotonic() + START_DELAY
        count_from = start + args.warmup
        end = count_from + args.seconds
        for control in clients.controls:
            control.send(("go", start, count_from, end))
        sleep_until(count_from)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine_before = machine_cpu_seconds()
        sleep_until(end)
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / args.seconds * 100 for name, pid in pids.items()}
        machine = (machine_cpu_seconds() - machine_before) / args.seconds * 100
        figures: list[ClientFigures] = [
            clients.expect(index, "done", SETUP_TIMEOUT)[1] for index in range(len(users))
        ]
    finally:
        clients.stop()
    cpu["clients"] = sum(c.cpu for c in figures) / args.seconds * 100
    cpu["other"] = max(0.0, machine - sum(cpu.values()))
    return LoadRun(target.path, args.seconds, figures, cpu)


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20, help="counted block pairs of the round trips")
    parser.add_argument("--block", type=int, default=1000, help="one-at-a-time inserts per block")
    parser.add_argument("--clients", type=int, default=4, choices=range(1, len(TRADERS) + 1))
    parser.add_argument("--window", type=int, default=1000, help="requests in flight per load client")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted seconds of each load run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before counting")
    parser.add_argument("--repeat", type=int, default=1, help="load runs of each path, alternating")
    parser.add_argument(
        "--limit-window", type=int, default=10, help="window_in_seconds of every rolling limit"
    )
    parser.add_argument(
        "--client-busy-poll-us",
        type=int,
        default=0,
        help="busy polling of the round-trip clients (0: blocking)",
    )
    parser.add_argument(
        "--gateway-busy-poll-us", type=int, help="the gateway's busyPollMicroseconds (default: its config's)"
    )
    parser.add_argument(
        "--order-book-busy-poll-us",
        type=int,
        help="the order book's busyPollMicroseconds (default: its config's)",
    )
    parser.add_argument("--direct-only", action="store_true", help="no gateway: the direct halves alone")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.blocks, args.block, args.window, args.seconds, args.warmup = 2, 200, 200, 1.0, 0.3
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)", flush=True)
    paths = ["direct"] if args.direct_only else ["gateway", "direct"]
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        config = load_deployment(default_deployment_path())
        specs = components_for_suite(config, "order_book" if args.direct_only else "risk_limits")
        for protocol, busy_poll in (
            ("execution", args.gateway_busy_poll_us),
            ("order_book", args.order_book_busy_poll_us),
        ):
            if busy_poll is not None:
                override = {"busyPollMicroseconds": busy_poll}
                specs = [s.derive(config=override) if protocol in s.protocols else s for s in specs]
        deployment = Deployment(specs, tmp, start_timeout=COMPONENT_START_TIMEOUT)
        stack.enter_context(deployment.start())
        book = create_instrument(*deployment.address("admin"))
        targets = {"direct": Target("direct", *deployment.address("order_book"), book)}
        pids = {"order book": deployment.provider("order_book").pid}
        gateway: SyncClient | None = None
        if not args.direct_only:
            targets["gateway"] = Target("gateway", *deployment.address("execution"), book)
            pids["gateway"] = deployment.provider("execution").pid
            for user in TRADERS:
                set_every_limit(*deployment.address("execution"), user, args.limit_window)
            print(f"every limit set for {', '.join(TRADERS)} on {SYMBOL}", flush=True)
            gateway = SyncClient(*deployment.address("execution"), GATEWAY_PROTOCOL, timeout=CLIENT_TIMEOUT)
            stack.callback(gateway.close)
            gateway.login(TRADERS[0], TRADERS[0])
        direct = SyncClient(*deployment.address("order_book"), ORDER_BOOK_PROTOCOL, timeout=CLIENT_TIMEOUT)
        stack.callback(direct.close)
        for client in (gateway, direct):
            if client is not None:
                client.busy_poll = args.client_busy_poll_us / 1_000_000
        round_trips(gateway, direct, book, args.blocks, args.block)
        print(f"b. load, {args.clients} client processes pipelining inserts and cancels of their own orders:")
        known = {name: pid for name, pid in pids.items() if pid is not None}
        rates: dict[str, list[float]] = {path: [] for path in paths}
        for _ in range(args.repeat):
            for path in paths:
                run = load_run(targets[path], args, known)
                rates[path].append(run.rate)
                print(run.describe(args.window), flush=True)
        if len(paths) == 2:
            gw, dr = statistics.mean(rates["gateway"]), statistics.mean(rates["direct"])
            verdict = "met" if gw >= 50_000 else "NOT met"
            print(
                f"   gateway / direct: {gw / dr:.2f}x (mean of {args.repeat} run(s) each; "
                f"target >= 50,000 orders/s through the gateway: {verdict})",
                flush=True,
            )


if __name__ == "__main__":
    main()
