"""Adaptive busy polling: the loop keeps polling for a window after activity, then sleeps again."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from optivex.app.config import parse_config
from optivex.net import BusyPoll
from optivex.orderbook.component import OrderBookComponent
from optivex.sample.component import SampleApp

from .test_app import _config


async def _until_idle(poll: BusyPoll, limit: float = 5.0) -> None:
    """Yield to the loop until `poll` stops polling."""
    deadline = time.monotonic() + limit
    while poll.polling:
        assert time.monotonic() < deadline, "busy polling never stopped"
        await asyncio.sleep(0)


def test_polls_for_the_window_then_stops() -> None:
    async def run() -> None:
        poll = BusyPoll(asyncio.get_running_loop(), 0.005)
        assert not poll.polling
        started = time.monotonic()
        poll.activity()
        assert poll.polling
        await _until_idle(poll)
        assert time.monotonic() - started >= 0.005

    asyncio.run(run())


def test_activity_extends_the_window_without_a_second_poller() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        poll = BusyPoll(loop, 0.005)
        poll.activity()
        ready_before = len(loop._ready)  # type: ignore[attr-defined]
        poll.activity()
        assert len(loop._ready) == ready_before  # type: ignore[attr-defined]
        started = time.monotonic()
        await asyncio.sleep(0.003)
        poll.activity()
        await _until_idle(poll)
        assert time.monotonic() - started >= 0.008

    asyncio.run(run())


def test_each_poll_yields_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A polling loop gives its CPU to any process ready to run (a woken client) at every poll."""
    yields: list[None] = []
    monkeypatch.setattr("optivex.net.busy_poll._sched_yield", lambda: yields.append(None))

    async def run() -> None:
        poll = BusyPoll(asyncio.get_running_loop(), 0.002)
        poll.activity()
        await _until_idle(poll)

    asyncio.run(run())
    assert yields, "busy polling never yielded the CPU"


def test_activity_after_polling_stopped_starts_it_again() -> None:
    async def run() -> None:
        poll = BusyPoll(asyncio.get_running_loop(), 0.001)
        poll.activity()
        await _until_idle(poll)
        poll.activity()
        assert poll.polling
        await _until_idle(poll)

    asyncio.run(run())


def test_components_default_and_config_override() -> None:
    log = logging.getLogger("test.busy_poll")
    assert OrderBookComponent(parse_config(_config()), {}, log).busy_poll_microseconds == 200
    assert SampleApp(parse_config(_config()), {}, log).busy_poll_microseconds == 0
    config = parse_config(_config(busyPollMicroseconds=0))
    assert OrderBookComponent(config, {}, log).busy_poll_microseconds == 0
    config = parse_config(_config(busyPollMicroseconds=50))
    assert SampleApp(config, {}, log).busy_poll_microseconds == 50
