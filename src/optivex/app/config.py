"""A component's runtime config, validated against the contract's schema."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optivex.net.connection import DEFAULT_MAX_UNSENT
from optivex.schemas import COMPONENT_CONFIG, OPTIVEX_CONFIG, schema_error

LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


class ConfigError(Exception):
    """The config (or a file it names) cannot be used; the message is one line for the operator."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int


@dataclass(frozen=True)
class ComponentConfig:
    """The fields every component reads; `raw` keeps component-specific keys.

    Besides the contract's keys, the optional keys of optivex_config_schema.json.
    """

    log_level: int
    log_directory: Path
    listen_on: Address
    data_file_path: Path
    auth_required: bool
    connect_to: dict[str, Address] = field(default_factory=dict)
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT
    busy_poll_microseconds: int | None = None
    """None: the component's default."""
    raw: dict[str, Any] = field(default_factory=dict)

    def target(self, role: str) -> Address:
        """The address to reach `role` (a component name in connectTo; the only entry also serves)."""
        if role in self.connect_to:
            return self.connect_to[role]
        if len(self.connect_to) == 1:
            return next(iter(self.connect_to.values()))
        raise ConfigError(f"connectTo: no entry for {role!r} (have: {', '.join(self.connect_to) or 'none'})")


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file; ConfigError says "cannot read <what> <path>: ..." or that it is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path} is not JSON: {exc}") from exc


def parse_config(data: Any, default_auth: bool = True) -> ComponentConfig:
    """Validate a parsed JSON config and build the ComponentConfig."""
    error = schema_error(COMPONENT_CONFIG, data) or schema_error(OPTIVEX_CONFIG, data)
    if error is not None:
        raise ConfigError(error)
    busy_poll = data.get("busyPollMicroseconds")  # JSON integers may be written 2e2
    return ComponentConfig(
        log_level=LOG_LEVELS[data["logLevel"]],
        log_directory=Path(data["logDirectory"]),
        listen_on=Address(data["listenOn"]["host"], data["listenOn"]["port"]),
        data_file_path=Path(data["dataFilePath"]),
        auth_required=data.get("authRequired", default_auth),
        connect_to={k: Address(v["host"], v["port"]) for k, v in data.get("connectTo", {}).items()},
        max_unsent_bytes=int(data.get("maxUnsentBytes", DEFAULT_MAX_UNSENT)),
        busy_poll_microseconds=None if busy_poll is None else int(busy_poll),
        raw=data,
    )


def load_config(path: Path, default_auth: bool = True) -> ComponentConfig:
    """Read and validate a config file; ConfigError names the file and the field at fault."""
    data = read_json(path, "config")
    try:
        return parse_config(data, default_auth)
    except ConfigError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc
