"""A component's runtime config, validated against the contract's schema."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optivex.net.connection import DEFAULT_MAX_UNSENT
from optivex.schemas import (
    COMPONENT_CONFIG,
    OPTIVEX_CONFIG,
    did_you_mean,
    nearest_key,
    property_names,
    schema_error,
    shown_key,
)

LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}

KNOWN_KEYS = (*property_names(COMPONENT_CONFIG), *property_names(OPTIVEX_CONFIG))
"""The top-level keys of a component config that mean something: the contract's, then Optivex's."""

DEFAULT_MAX_CONNECTIONS = 10_000
"""Client connections a component serves at once unless its config says (``maxConnections``)."""

MAX_UNKNOWN_KEY_WARNINGS = 10
"""At most this many unknown keys are warned about one by one; one more warning counts the rest."""


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    busy_poll_microseconds: int | None = None
    """None: the component's default."""
    raw: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """One line each for the log, once logging is set up: keys accepted but ignored (unknown_keys)."""

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


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """A warning for each top-level key that is neither the contract's nor Optivex's.

    The contract lets a config carry other keys, so they are accepted, but such a key is most likely
    a misspelt one that would otherwise be ignored without a word. (Inside listenOn and connectTo's
    entries the contract allows no other key: schema_error refuses them, with the same suggestion.)
    """
    unknown = [key for key in data if key not in KNOWN_KEYS]
    warnings = [
        f"unknown key {shown_key(key)}{did_you_mean(key, KNOWN_KEYS)}; ignored"
        for key in unknown[:MAX_UNKNOWN_KEY_WARNINGS]
    ]
    if len(unknown) > MAX_UNKNOWN_KEY_WARNINGS:
        warnings.append(f"{len(unknown) - MAX_UNKNOWN_KEY_WARNINGS} more unknown keys; ignored")
    return warnings


def parse_config(data: Any, default_auth: bool = True) -> ComponentConfig:
    """Validate a parsed JSON config and build the ComponentConfig (with its `warnings`)."""
    error = schema_error(COMPONENT_CONFIG, data) or schema_error(OPTIVEX_CONFIG, data)
    if error is not None:
        if isinstance(data, dict):  # a required key may be missing because it is misspelt
            misspelt = [
                f"unknown key {shown_key(key)} (did you mean {nearest!r}?)"
                for key in data
                if key not in KNOWN_KEYS and (nearest := nearest_key(key, KNOWN_KEYS)) not in (None, *data)
            ]
            error = "; ".join([error, *misspelt[:MAX_UNKNOWN_KEY_WARNINGS]])
        raise ConfigError(error)
    busy_poll = data.get("busyPollMicroseconds")  # JSON integers may be written 2e2
    return ComponentConfig(
        log_level=LOG_LEVELS[data["logLevel"]],
        log_directory=Path(data["logDirectory"]),
        # int(): JSON Schema's "integer" admits 17100.0 too.
        listen_on=Address(data["listenOn"]["host"], int(data["listenOn"]["port"])),
        data_file_path=Path(data["dataFilePath"]),
        auth_required=data.get("authRequired", default_auth),
        connect_to={k: Address(v["host"], int(v["port"])) for k, v in data.get("connectTo", {}).items()},
        max_unsent_bytes=int(data.get("maxUnsentBytes", DEFAULT_MAX_UNSENT)),
        max_connections=int(data.get("maxConnections", DEFAULT_MAX_CONNECTIONS)),
        busy_poll_microseconds=None if busy_poll is None else int(busy_poll),
        raw=data,
        warnings=tuple(unknown_keys(data)),
    )


def load_config(path: Path, default_auth: bool = True) -> ComponentConfig:
    """Read and validate a config file; ConfigError names the file and the field at fault.

    Each of the config's `warnings` names the file too.
    """
    data = read_json(path, "config")
    try:
        config = parse_config(data, default_auth)
    except ConfigError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc
    return dataclasses.replace(config, warnings=tuple(f"config {path}: {w}" for w in config.warnings))
