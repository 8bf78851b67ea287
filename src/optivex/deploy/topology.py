"""Which components a system-test suite needs (contract section 9), the order they start in, and the
one check of connectTo targets (`check_connect_to`) and of connectTo cycles (`start_order`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from optivex.deploy.errors import DeploymentError

if TYPE_CHECKING:
    from optivex.deploy.config import ComponentSpec, DeploymentConfig

SUITE_DEPENDENCIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "order_book": ("admin",),
        "info": ("admin", "order_book"),
        "execution": ("admin", "order_book"),
        "risk_limits": ("admin", "execution"),
    }
)
"""Suite -> the protocols its tests need besides the suite's own (section 9, rule 1)."""

SUITES: tuple[str, ...] = tuple(SUITE_DEPENDENCIES)


def suite_protocols(suite: str) -> tuple[str, ...]:
    """The suite's own protocol, then its dependencies."""
    if suite not in SUITE_DEPENDENCIES:
        raise DeploymentError(f"unknown suite {suite!r} (suites: {', '.join(SUITES)})")
    return (suite, *SUITE_DEPENDENCIES[suite])


def components_for_suite(config: DeploymentConfig, suite: str) -> list[ComponentSpec]:
    """The providers of the suite's protocols and, transitively, their connectTo targets, in start order."""
    wanted: set[str] = set()
    pending = [config.provider(protocol).name for protocol in suite_protocols(suite)]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(config.component(name).connect_to)
    return start_order(c for c in config.components if c.name in wanted)


def check_connect_to(components: Iterable[ComponentSpec], known: Collection[str], scope: str) -> None:
    """Every connectTo target of `components` is one of `known`; else DeploymentError naming the first
    that is not, `scope` saying what it is instead ("no component", "not part of this deployment")."""
    for spec in components:
        for target in spec.connect_to:
            if target not in known:
                raise DeploymentError(
                    f"component {spec.name!r}: connectTo names {target!r}, which is {scope} "
                    f"(have: {', '.join(known)})"
                )


def start_order(components: Iterable[ComponentSpec]) -> list[ComponentSpec]:
    """Components with their connectTo targets first, else in the given order (a stable topological sort).

    Targets outside `components` do not constrain the order. A cycle raises DeploymentError naming it
    (`connectTo cycle: a -> b -> a`): the deployment config's validation relies on this check.
    """
    remaining: list[ComponentSpec] = list(components)
    names = {c.name for c in remaining}
    placed: set[str] = set()
    ordered: list[ComponentSpec] = []
    while remaining:
        for i, spec in enumerate(remaining):
            if all(t in placed or t not in names for t in spec.connect_to):
                ordered.append(spec)
                placed.add(spec.name)
                del remaining[i]
                break
        else:
            raise DeploymentError(f"connectTo cycle: {' -> '.join(_cycle(remaining))}")
    return ordered


def _cycle(stuck: list[ComponentSpec]) -> list[str]:
    """A cycle among components none of which can start (each has a connectTo target among them), as a
    path `a, b, ..., a`: follow each one's first such target from the first until a name repeats."""
    by_name = {c.name: c for c in stuck}
    path = [stuck[0].name]
    while True:
        target = next(t for t in by_name[path[-1]].connect_to if t in by_name)
        if target in path:
            return [*path[path.index(target) :], target]
        path.append(target)
