"""How fast a component starts: to accepting TCP connections (the contract gives 2 s) and to serving.

Each run writes a config for the order book, spawns its console script with ``$NOTIFY_SOCKET`` set
(app.launch), polls a TCP connect every millisecond until it succeeds, and waits for its
``READY=1``; then it stops it. Last, the whole deployment of deployment_config.json through the
runner (start order, each accepting, then every READY). Prints p50 and max of each, in ms.

    ./scripts/uv run python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from optivex.deploy import Deployment, default_deployment_path, load_deployment
from optivex.deploy.readiness import NOTIFY_SOCKET_ENV, ReadyListener
from optivex.deploy.runner import DEFAULT_USERS, console_script, pick_free_ports, write_users_file

STANDALONE = "optivex-order-book"
"""The component that starts without a connectTo target."""


def one_start(script: str, workdir: Path, users: Path) -> tuple[float, float]:
    """Seconds from spawn to accepting, and to READY=1, of one start of `script`."""
    (port,) = pick_free_ports(1)
    config = workdir / f"{script}.json"
    config.write_text(
        json.dumps(
            {
                "logLevel": "INFO",
                "logDirectory": str(workdir / "logs"),
                "listenOn": {"host": "127.0.0.1", "port": port},
                "dataFilePath": str(users),
            }
        ),
        encoding="utf-8",
    )
    listener = ReadyListener()
    env = {**os.environ, NOTIFY_SOCKET_ENV: listener.env_value}
    started = time.monotonic()
    process = subprocess.Popen(
        [console_script(script), "-c", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{script} exited with status {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.001)
        accepting = time.monotonic() - started
        if not listener.wait(20.0):
            raise RuntimeError(f"{script} did not say READY=1 within 20 s")
        return accepting, time.monotonic() - started
    finally:
        listener.close()
        process.send_signal(signal.SIGTERM)
        process.wait(5)


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:,.0f} ms, max {max(values) * 1000:,.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        users = workdir / "users.json"
        write_users_file(users, DEFAULT_USERS)
        starts = [one_start(STANDALONE, workdir, users) for _ in range(args.runs)]
        accepting, serving = [s[0] for s in starts], [s[1] for s in starts]
        print(f"{STANDALONE}: accepting {ms(accepting)}; serving {ms(serving)} ({args.runs} starts)")
        specs = load_deployment(default_deployment_path()).components
        whole = []
        for run in range(args.runs):
            began = time.monotonic()
            with Deployment(specs, workdir / f"deployment{run}"):
                whole.append(time.monotonic() - began)
        names = ", ".join(s.name for s in specs)
        print(f"deployment ({names}): every component serving {ms(whole)} ({args.runs} starts)")


if __name__ == "__main__":
    main()
