"""optivex-web's config (schemas/web_config_schema.json), validated with one-line errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optivex.app.config import LOG_LEVELS, MAX_UNKNOWN_KEY_WARNINGS, Address, ConfigError, read_json
from optivex.app.users import load_users
from optivex.schemas import nearest_key, property_names, schema_error, shown_key
from optivex.web.market import DEFAULT_DEPTH, DEFAULT_MAX_INSTRUMENTS, DEFAULT_TRADES_KEPT

WEB_CONFIG = "web_config_schema.json"
DEFAULT_MAX_BROWSERS = 64
"""WebSocket connections served at once."""
DEFAULT_BROWSER_TIMEOUT = 10.0
"""Seconds a browser has to answer a ping or take an update before it is dropped."""


@dataclass(frozen=True)
class WebConfig:
    log_level: int
    log_directory: Path
    listen_on: Address
    info: Address
    username: str
    password: str
    max_browsers: int = DEFAULT_MAX_BROWSERS
    max_instruments: int = DEFAULT_MAX_INSTRUMENTS
    depth_levels: int = DEFAULT_DEPTH
    trades_shown: int = DEFAULT_TRADES_KEPT
    browser_timeout: float = DEFAULT_BROWSER_TIMEOUT


def _address(entry: dict[str, Any]) -> Address:
    return Address(entry["host"], entry["port"])


def parse_web_config(data: Any) -> WebConfig:
    """Validate a parsed config; ConfigError names the field (and the data file's problem, if any)."""
    error = schema_error(WEB_CONFIG, data)
    if error is not None:
        if isinstance(data, dict):  # a required key may be missing because it is misspelt
            known = property_names(WEB_CONFIG)
            misspelt = [
                f"unknown key {shown_key(key)} (did you mean {nearest!r}?)"
                for key in data
                if key not in known and (nearest := nearest_key(key, known)) not in (None, *data)
            ]
            targets = data.get("connectTo")
            if isinstance(targets, dict) and "info" not in targets:
                misspelt += [
                    f"connectTo: unknown key {shown_key(key)} (did you mean 'info'?)"
                    for key in targets
                    if nearest_key(key, ("info",)) == "info"
                ]
            error = "; ".join([error, *misspelt[:MAX_UNKNOWN_KEY_WARNINGS]])
        raise ConfigError(error)
    login = data["login"]
    username: str = login["username"]
    password: str | None = login.get("password")
    data_file = data.get("dataFilePath")
    if data_file is not None:
        users = load_users(Path(data_file))
        user = users.get(username)
        if user is None:
            raise ConfigError(f"field login.username: {username!r} is not a user of {data_file}")
        if password is None:
            password = user.password
        elif password != user.password:
            raise ConfigError(f"field login.password: not the password of {username!r} in {data_file}")
    if password is None:
        raise ConfigError("field login: 'password' is required when there is no dataFilePath")
    return WebConfig(
        log_level=LOG_LEVELS[data["logLevel"]],
        log_directory=Path(data["logDirectory"]),
        listen_on=_address(data["listenOn"]),
        info=_address(data["connectTo"]["info"]),
        username=username,
        password=password,
        max_browsers=int(data.get("maxBrowsers", DEFAULT_MAX_BROWSERS)),
        max_instruments=int(data.get("maxInstruments", DEFAULT_MAX_INSTRUMENTS)),
        depth_levels=int(data.get("depthLevels", DEFAULT_DEPTH)),
        trades_shown=int(data.get("tradesShown", DEFAULT_TRADES_KEPT)),
        browser_timeout=float(data.get("browserTimeoutSeconds", DEFAULT_BROWSER_TIMEOUT)),
    )


def load_web_config(path: Path) -> WebConfig:
    """Read and validate a config file; ConfigError says "invalid config <path>: field ...: ..."."""
    data = read_json(path, "config")
    try:
        return parse_web_config(data)
    except ConfigError as exc:
        raise ConfigError(f"invalid config {path}: {exc}") from exc
