"""System-test fixtures: a fresh deployment per test, through the deployment runner.

Each test is one trading day against real component processes on 127.0.0.1.
When a test fails, the logs of its components are attached to the report.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from pathlib import Path

import pytest

from optivex.deploy import ComponentSpec, Deployment, start_suite

from .helpers import Exchange


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        for deployment in getattr(item, "_deployments", ()):
            report.sections.append(("component logs", deployment.logs()))
    return report


@pytest.fixture
def deploy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str | None], Deployment]]:
    """Start the deployment of a suite (`deploy("order_book")`), or every component (`deploy(None)`);
    stopped after the test."""
    started: list[Deployment] = request.node.__dict__.setdefault("_deployments", [])

    def start(suite: str | None) -> Deployment:
        deployment = start_suite(suite, tmp_path / f"deployment{len(started)}")
        started.append(deployment)
        return deployment

    yield start
    for deployment in started:
        deployment.stop()


@pytest.fixture
def deploy_components(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[Iterable[ComponentSpec], Collection[str]], Deployment]]:
    """Start a deployment of the given components (`deploy_components(specs, ())`), the ones named in
    the second argument deferred (`Deployment.start`): a suite's entries with others added or changed
    (`ComponentSpec.derive`: a second info process, a lowered bound). Stopped after the test."""
    started: list[Deployment] = request.node.__dict__.setdefault("_deployments", [])

    def start(components: Iterable[ComponentSpec], defer: Collection[str]) -> Deployment:
        deployment = Deployment(components, tmp_path / f"deployment{len(started)}")
        started.append(deployment)
        return deployment.start(defer=defer)

    yield start
    for deployment in started:
        deployment.stop()


@pytest.fixture
def exchange(deploy: Callable[[str | None], Deployment]) -> Iterator[Exchange]:
    """The order_book suite's deployment (order book + admin) with client helpers."""
    with Exchange(deploy("order_book")) as ex:
        yield ex


@pytest.fixture
def info(deploy: Callable[[str | None], Deployment]) -> Iterator[Exchange]:
    """The info suite's deployment (info + admin + order book) with client helpers."""
    with Exchange(deploy("info")) as ex:
        yield ex


@pytest.fixture
def gateway(deploy: Callable[[str | None], Deployment]) -> Iterator[Exchange]:
    """The execution suite's deployment (gateway + admin + order book) with client helpers."""
    with Exchange(deploy("execution")) as ex:
        yield ex


@pytest.fixture
def risk_limits(deploy: Callable[[str | None], Deployment]) -> Iterator[Exchange]:
    """The risk_limits suite's deployment (gateway + admin + order book) with client helpers."""
    with Exchange(deploy("risk_limits")) as ex:
        yield ex
