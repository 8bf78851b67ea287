"""The deployment config (`deployment_config.json`): loading, schema and semantic validation."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from optivex.app.config import ConfigError, read_json
from optivex.deploy.errors import DeploymentError
from optivex.deploy.topology import SUITE_DEPENDENCIES, check_connect_to, start_order
from optivex.schemas import COMPONENT_CONFIG, DEPLOYMENT_CONFIG, schema_error

DEPLOYMENT_FILE = "deployment_config.json"
STANDALONE_PROTOCOLS = frozenset({"order_book"})
"""Protocols whose provider may implement no other protocol."""


@dataclass(frozen=True)
class ComponentSpec:
    """One entry of `components`: a console script, the protocols it serves and its runtime config."""

    name: str
    package_name: str
    protocols: tuple[str, ...]
    auth_required: bool
    config: dict[str, Any] = field(hash=False)
    """The runtime config as written in the deployment (never mutated; the runner rewrites a copy)."""

    @property
    def connect_to(self) -> tuple[str, ...]:
        """Names of the components this one connects to, in config order."""
        targets: Mapping[str, Any] = self.config.get("connectTo", {})
        return tuple(targets)

    def derive(self, name: str | None = None, config: Mapping[str, Any] | None = None) -> ComponentSpec:
        """A copy of this entry under another `name` and/or with some top-level `config` keys replaced.

        For a Deployment built in code: a second info process following the same order book (a
        deployment config may not list two providers of a protocol, a Deployment may), or a component
        with a lowered bound (`{"maxUnsentBytes": 262144}`).
        """
        return ComponentSpec(
            name=self.name if name is None else name,
            package_name=self.package_name,
            protocols=self.protocols,
            auth_required=self.auth_required,
            config={**copy.deepcopy(self.config), **copy.deepcopy(dict(config or {}))},
        )


@dataclass(frozen=True)
class DeploymentConfig:
    """A validated deployment: its components in file order and the system-test suites it lists."""

    components: tuple[ComponentSpec, ...]
    system_tests: tuple[str, ...]
    path: Path | None = None

    @property
    def protocols(self) -> frozenset[str]:
        """Every protocol some component provides."""
        return frozenset(p for c in self.components for p in c.protocols)

    def component(self, name: str) -> ComponentSpec:
        """The component called `name`; DeploymentError when there is none."""
        for spec in self.components:
            if spec.name == name:
                return spec
        raise DeploymentError(f"no component named {name!r} (have: {', '.join(self.names())})")

    def provider(self, protocol: str) -> ComponentSpec:
        """The component providing `protocol`; DeploymentError when none does."""
        for spec in self.components:
            if protocol in spec.protocols:
                return spec
        raise DeploymentError(f"no component provides protocol {protocol!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components)


def default_deployment_path() -> Path:
    """`./deployment_config.json` when the current directory has one, else the copy shipped in the package."""
    local = Path(DEPLOYMENT_FILE)
    if local.is_file():
        return local
    return Path(str(resources.files(__package__).joinpath(DEPLOYMENT_FILE)))


def parse_deployment(data: Any, path: Path | None = None) -> DeploymentConfig:
    """Validate parsed JSON (schema, then the rules of the contract) and build the DeploymentConfig."""
    prefix = f"{path}: " if path is not None else ""
    error = schema_error(DEPLOYMENT_CONFIG, data)
    if error is not None:
        raise DeploymentError(f"{prefix}{error}")
    components = tuple(
        ComponentSpec(
            name=c["name"],
            package_name=c["packageName"],
            protocols=tuple(c["protocols"]),
            auth_required=c["authRequired"],
            config=c["config"],
        )
        for c in data["components"]
    )
    config = DeploymentConfig(components, tuple(data["systemTests"]), path)
    try:
        check_deployment(config)
    except DeploymentError as exc:
        raise DeploymentError(f"{prefix}{exc}") from exc
    return config


def check_deployment(config: DeploymentConfig) -> None:
    """The semantic rules the schema cannot express; the first broken one raises DeploymentError."""
    names: set[str] = set()
    for spec in config.components:
        if spec.name in names:
            raise DeploymentError(f"component name {spec.name!r} appears twice")
        names.add(spec.name)

    providers: dict[str, str] = {}
    for spec in config.components:
        for protocol in spec.protocols:
            if protocol in providers:
                raise DeploymentError(
                    f"protocol {protocol!r} has two providers: {providers[protocol]!r} and {spec.name!r}"
                )
            providers[protocol] = spec.name
            if protocol in STANDALONE_PROTOCOLS and len(spec.protocols) > 1:
                others = ", ".join(p for p in spec.protocols if p != protocol)
                raise DeploymentError(
                    f"component {spec.name!r}: protocol {protocol!r} must be alone on its component "
                    f"(it also has {others})"
                )

    for spec in config.components:
        error = schema_error(COMPONENT_CONFIG, spec.config)
        if error is not None:
            raise DeploymentError(f"component {spec.name!r}: config {error}")
        declared = spec.config.get("authRequired")
        if declared is not None and declared != spec.auth_required:
            raise DeploymentError(
                f"component {spec.name!r}: authRequired is {json.dumps(spec.auth_required)} "
                f"but its config says {json.dumps(declared)}"
            )

    check_connect_to(config.components, config.names(), "no component")
    start_order(config.components)  # raises on a connectTo cycle

    for suite in config.system_tests:
        for protocol in (suite, *SUITE_DEPENDENCIES[suite]):
            if protocol not in providers:
                raise DeploymentError(
                    f"systemTests lists {suite!r}, which needs protocol {protocol!r}, but no component "
                    "provides it"
                )


def load_deployment(path: str | Path) -> DeploymentConfig:
    """Read and validate a deployment config; DeploymentError (one line) names the file and the problem."""
    path = Path(path)
    try:
        data = read_json(path, "deployment config")
    except ConfigError as exc:
        raise DeploymentError(str(exc)) from exc
    return parse_deployment(data, path)
