"""Fuzz every protocol of a deployment at length: the harness of tests/system/test_fuzz.py.

    uv run python scripts/fuzz.py [--seconds 60] [--seed N] [--protocol order_book ...]
                                  [--connections 8] [--verbose] [--dir DIR] [--start-timeout 2]

Starts every component of deployment_config.json on 127.0.0.1 (ephemeral ports, work dir in a
temporary directory unless --dir), then for each protocol served (or each --protocol) fuzzes it for
--seconds (tests/system/fuzzing.py says what is sent) and checks the deployment afterwards: every
component running, the replay of a fresh login equal to what the events built, no book crossed, fresh
clients answered correctly. Prints what it sent (every action with --verbose) and every failure, with
the last actions before it and the tail of the components' logs; exit status 1 on a failure.

The bounds of tests/system/fuzzing.py's FuzzLimits apply, connections opened and frames sent in all
growing with --seconds (OPENED_PER_SECOND, FRAMES_PER_SECOND). The same --seed makes the same choices;
what they hit (books, orders, connections still open) depends on the components' answers, so a
failure found is reproduced by its seed often, not always.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the harness lives with the system tests

from optivex.deploy import DeploymentError, start_suite  # noqa: E402
from optivex.deploy.runner import START_TIMEOUT  # noqa: E402
from tests.system.fuzzing import Fuzzer, FuzzLimits, verify  # noqa: E402

OPENED_PER_SECOND = 250
"""Connections a run may open per second of --seconds (FuzzLimits.max_opened at least)."""
FRAMES_PER_SECOND = 20_000
"""Frames a run may send per second of --seconds (FuzzLimits.max_frames at least)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per protocol (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--protocol", action="append", default=None, help="only these (repeatable)")
    parser.add_argument("--connections", type=int, default=FuzzLimits.connections, help="open at once")
    parser.add_argument("--verbose", action="store_true", help="print every action sent")
    parser.add_argument("--dir", type=Path, default=None, help="work dir of the deployment (kept)")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=START_TIMEOUT,
        help=f"seconds each component has to listen (default {START_TIMEOUT:g}, the contract's)",
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    limits = dataclasses.replace(
        FuzzLimits(),
        seconds=args.seconds,
        connections=args.connections,
        max_opened=max(FuzzLimits.max_opened, int(OPENED_PER_SECOND * args.seconds)),
        max_frames=max(FuzzLimits.max_frames, int(FRAMES_PER_SECOND * args.seconds)),
    )
    with tempfile.TemporaryDirectory(prefix="optivex-fuzz-") as tmp:
        workdir = args.dir if args.dir is not None else Path(tmp)
        try:
            deployment = start_suite(
                None, workdir, ROOT / "deployment_config.json", start_timeout=args.start_timeout
            )
        except DeploymentError as exc:
            print(f"fuzz: cannot start the deployment: {exc}", file=sys.stderr)
            return 2
        with deployment:
            served = sorted({p for c in deployment.components for p in c.protocols})
            protocols = args.protocol or served
            unknown = sorted(set(protocols) - set(served))
            if unknown:
                print(f"fuzz: not served by this deployment: {', '.join(unknown)}", file=sys.stderr)
                return 2
            print(f"seed {seed}; {args.seconds:g} s per protocol: {', '.join(protocols)}", flush=True)
            failed = False
            for protocol in protocols:
                fuzzer = Fuzzer(deployment, protocol, seed, limits, print if args.verbose else None)
                try:
                    report = fuzzer.run()
                    problems = [*report.failures, *verify(deployment, fuzzer)]
                finally:
                    fuzzer.close()
                print(report.summary(), flush=True)
                if problems:
                    failed = True
                    print(f"FAILED ({protocol}, seed {seed}):", *problems, sep="\n  ")
                    print("last actions:", *report.recent, sep="\n  ")
                    for comp in deployment.components:
                        print(comp.tail())
                    break
                print(f"  {protocol}: no failure", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
