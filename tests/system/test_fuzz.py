"""The fuzz harness (`fuzzing.py`), briefly and with a fixed seed, against every protocol the deployment
serves: `scripts/fuzz.py` runs the same at length.

A protocol joins by name as soon as a component of deployment_config.json serves it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from optivex.deploy import Deployment, load_deployment

from .fuzzing import Fuzzer, FuzzLimits, verify

pytestmark = pytest.mark.xdist_group("heavy")
"""Heavy (large days, floods, installs): one at a time on one worker, so the rest stay responsive."""

ROOT = Path(__file__).resolve().parents[2]
SERVED = sorted(load_deployment(ROOT / "deployment_config.json").protocols)
SEED = 20261202
LIMITS = FuzzLimits(seconds=3.0)
"""A few seconds a protocol: CI's share. The bounds of a longer run are the same."""
EVERY_ACTION = {
    "valid", "sensible", "mutated", "random-payload", "odd-types", "bad-length", "split", "cut", "login",
    "close", "big-frame",
}  # fmt: skip


@pytest.mark.parametrize("protocol", SERVED)
def test_fuzzing_leaves_every_component_serving_and_the_day_consistent(
    deploy: Callable[[str | None], Deployment], protocol: str
) -> None:
    deployment = deploy(None)
    fuzzer = Fuzzer(deployment, protocol, SEED, LIMITS)
    try:
        report = fuzzer.run()
        context = "\n".join([report.summary(), "last actions:", *report.recent])
        assert report.failures == [], context
        assert set(report.sent) >= EVERY_ACTION, context  # it did fuzz, in every way it knows
        assert verify(deployment, fuzzer) == [], context
    finally:
        fuzzer.close()
