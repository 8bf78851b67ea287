"""The live book view (`optivex book`) under a flood: its redraws per second and its CPU use.

Starts a deployment on ephemeral ports, creates an instrument, opens `optivex book` in a
pseudo-terminal (as a user's terminal: 50 x 110), and floods the book straight through the order book
with resting 1-lot buys round its 10 best levels (each one a book change, no trade) at --rate a
second for --seconds. Prints, per second and in all: the flood's changes, the books the view received
(after info's conflation), its redraws, and its CPU (utime + stime from /proc/<pid>/stat, in % of
one core). Targets: at most 10 redraws a second, under 20% of a core.

    ./scripts/uv run python benchmarks/live_view.py [--rate 6000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optivex.deploy import start_suite
from optivex.deploy.runner import console_script
from tests.system.test_cli import write_config
from tests.system.test_cli_pty import Flood, Terminal, create_book

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=6000.0, help="book changes a second (default: 6000)")
    parser.add_argument("--seconds", type=int, default=10, help="seconds measured (default: 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optivex-live-view-") as tmp:
        deployment = start_suite(None, Path(tmp) / "deployment", start_timeout=10.0)
        try:
            config = write_config(deployment, Path(tmp) / "deployment_config.json")
            book_id = create_book(deployment, "FLOOD")
            view = Terminal([console_script("optivex"), "book", "FLOOD", "--config", str(config)])
            try:
                view.wait_for(lambda t: "bid qty" in t.screen(), "the view")
                levels = [round(99.0 + i * 0.01, 2) for i in range(10)]
                flood = Flood(deployment.address("order_book"), book_id, levels, args.rate)
                flood.start()
                time.sleep(1.0)  # warm-up: the flood reaches its pace
                print(f"{'second':>6} {'changes':>8} {'books in':>8} {'redraws':>7} {'cpu %':>6}")
                start, cpu0, inserted0 = time.monotonic(), cpu_seconds(view.process.pid), flood.inserted
                last, cpu_last, inserted_last = start, cpu0, inserted0
                worst_redraws = 0
                for second in range(1, args.seconds + 1):
                    time.sleep(max(0.0, start + second - time.monotonic()))
                    now, cpu, inserted = time.monotonic(), cpu_seconds(view.process.pid), flood.inserted
                    redraws = view.redraws(last, now)
                    worst_redraws = max(worst_redraws, redraws)
                    found = re.search(r"(\d+) updates/s", view.screen())
                    books = int(found.group(1)) if found else -1
                    print(
                        f"{second:>6} {(inserted - inserted_last) / (now - last):>8.0f} {books:>8} "
                        f"{redraws:>7} {100 * (cpu - cpu_last) / (now - last):>6.1f}",
                        flush=True,
                    )
                    last, cpu_last, inserted_last = now, cpu, inserted
                flood.stop()
                elapsed = last - start
                total_redraws = view.redraws(start, last)
                print(
                    f"in all: {(inserted_last - inserted0) / elapsed:.0f} book changes/s "
                    f"for {elapsed:.1f} s; "
                    f"the view redrew {total_redraws / elapsed:.1f} times/s (at most {worst_redraws} in a "
                    f"second) using {100 * (cpu_last - cpu0) / elapsed:.1f}% of a core"
                )
                code = view.interrupt()
                if code != 0:
                    print(f"the view exited with status {code}", file=sys.stderr)
                    return 1
            finally:
                view.close()
        finally:
            deployment.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
