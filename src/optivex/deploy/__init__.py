"""Deployment config -> topology -> processes: used by the system tests, `optivex up` and the benchmarks.

- `config`: `load_deployment()` reads and validates `deployment_config.json`.
- `topology`: which components a system-test suite needs, and in which order they start.
- `runner`: `Deployment` starts components on rewritten configs, waits for them, stops them.
- `workdir`, `status`, `supervisor`: `optivex up`'s directory lock and per-run logs, its status lines
  (sockets from /proc, figures from an order book connection), and the loop that watches a deployment.
"""

from __future__ import annotations

from optivex.app.users import User
from optivex.deploy.config import ComponentSpec, DeploymentConfig, default_deployment_path, load_deployment
from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import (
    ADMIN_USER,
    DEFAULT_USERS,
    Deployment,
    RunningComponent,
    console_script,
    start_suite,
)
from optivex.deploy.topology import SUITE_DEPENDENCIES, SUITES, components_for_suite, start_order

__all__ = [
    "ADMIN_USER",
    "DEFAULT_USERS",
    "SUITES",
    "SUITE_DEPENDENCIES",
    "ComponentSpec",
    "Deployment",
    "DeploymentConfig",
    "DeploymentError",
    "RunningComponent",
    "User",
    "components_for_suite",
    "console_script",
    "default_deployment_path",
    "load_deployment",
    "start_order",
    "start_suite",
]
