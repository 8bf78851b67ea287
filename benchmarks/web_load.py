"""optivex-web under load: CPU and the lag of a trade to every browser.

A deployment (every component of deployment_config.json, and optivex-web) on ephemeral ports; a
thread pipelines inserts into the order book (5 instruments, windows of 100) as fast as it can; N
aiohttp WebSocket clients read every message; 20 times, a trade is made through the gateway on a
sixth instrument and timed from its response until every browser has it. Prints the order book's
changes/s, optivex-web's CPU (from /proc) and the lag's p50 and max.

    ./scripts/uv run python benchmarks/web_load.py [--browsers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from optivex.client import SyncClient
from optivex.deploy import Deployment, default_deployment_path, load_deployment
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import order_book_pb2 as ob
from optivex.protocols import protocol_for
from optivex.web.deploy import web_component


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create(deployment: Deployment, symbol: str) -> int:
    host, port = deployment.address("admin")
    with SyncClient(host, port, "admin") as admin:
        admin.login("admin", "admin")
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(
                instrument=common_pb2.Instrument(symbol=symbol), tick_size=0.01
            ),
            expect=admin_pb2.CreateInstrumentResponse,
        )
    assert not response.error_message, response
    return response.order_book_id


def load(deployment: Deployment, books: list[int], stop: threading.Event, count: list[int]) -> None:
    host, port = deployment.address("order_book")
    rng = random.Random(2)
    with SyncClient(host, port, "order_book") as client:
        while not stop.is_set():
            window = [
                ob.InsertOrderRequest(
                    order_book_id=rng.choice(books),
                    side=rng.choice((common_pb2.BUY, common_pb2.SELL)),
                    price=rng.randrange(950, 1050) / 100,
                    quantity=rng.randint(1, 50),
                    on_behalf_of_username="dave",
                )
                for _ in range(100)
            ]
            client.send(*window)
            answered = 0
            while answered < len(window):
                if isinstance(client.receive(), ob.InsertOrderResponse):
                    answered += 1
            count[0] += len(window)


async def measure(deployment: Deployment, browsers: int, count: list[int]) -> str:
    web = deployment.component("web")
    host, port = web.address
    assert web.pid is not None
    gateway_host, gateway_port = deployment.provider("execution").address
    protocol = protocol_for(("execution", "risk_limits"))
    alice = SyncClient(gateway_host, gateway_port, protocol)
    alice.login("alice", "alice")
    bob = SyncClient(gateway_host, gateway_port, protocol)
    bob.login("bob", "bob")
    seen: dict[tuple[int, int], float] = {}

    async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            for trade in json.loads(message.data)["i"].get("MARK", {}).get("tr", []):
                seen.setdefault((index, trade[0]), time.monotonic())

    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"http://{host}:{port}/ws") for _ in range(browsers)]
        readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(2)
        cpu0, changes0, t0 = cpu_seconds(web.pid), count[0], time.monotonic()
        lags = []
        for _ in range(20):
            alice.request(
                ex.InsertOrderRequest(instrument_symbol="MARK", side=common_pb2.SELL, price=10, quantity=1)
            )
            response = bob.request(
                ex.InsertOrderRequest(instrument_symbol="MARK", side=common_pb2.BUY, price=10, quantity=1),
                expect=ex.InsertOrderResponse,
            )
            sent, (trade_id,) = time.monotonic(), response.trade_ids
            while not all((i, trade_id) in seen for i in range(browsers)):
                await asyncio.sleep(0.005)
            lags.append(max(seen[(i, trade_id)] for i in range(browsers)) - sent)
            await asyncio.sleep(0.2)
        cpu1, changes1, t1 = cpu_seconds(web.pid), count[0], time.monotonic()
        for reader in readers:
            reader.cancel()
    lags.sort()
    return (
        f"{browsers} browsers; order book changes/s {(changes1 - changes0) / (t1 - t0):,.0f}; "
        f"optivex-web CPU {(cpu1 - cpu0) / (t1 - t0) * 100:.1f}% of a core; "
        f"a trade to every browser: p50 {lags[len(lags) // 2] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--browsers", type=int, default=10)
    args = parser.parse_args()
    components = load_deployment(default_deployment_path()).components
    with tempfile.TemporaryDirectory() as workdir:
        deployment = Deployment([*components, web_component("carol", 0, data_file="users.json")], workdir)
        deployment.start()
        stop = threading.Event()
        try:
            books = [create(deployment, s) for s in ("A", "B", "C", "D", "E")]
            create(deployment, "MARK")
            count = [0]
            threading.Thread(target=load, args=(deployment, books, stop, count), daemon=True).start()
            print(asyncio.run(measure(deployment, args.browsers, count)))
        finally:
            stop.set()
            deployment.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
