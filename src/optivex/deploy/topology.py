"""Which components a system-test suite needs (contract section 9) and the order they start in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def start_order(components: Iterable[ComponentSpec]) -> list[ComponentSpec]:
    """Components with their connectTo targets first, else in the given order (a stable topological sort).

    Targets outside `components` do not constrain the order. A cycle raises DeploymentError.
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
            raise DeploymentError(f"connectTo cycle among: {', '.join(c.name for c in remaining)}")
    return ordered


def providers(components: Sequence[ComponentSpec]) -> dict[str, ComponentSpec]:
    """Protocol -> the component (of `components`) providing it."""
    return {protocol: spec for spec in components for protocol in spec.protocols}
