"""optivex-web's config: validation with one-line errors, the login checked against a data file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optivex.app.config import ConfigError
from optivex.web.component import run
from optivex.web.config import DEFAULT_MAX_BROWSERS, load_web_config, parse_web_config


def config(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "logLevel": "INFO",
        "logDirectory": "logs",
        "listenOn": {"host": "127.0.0.1", "port": 17180},
        "connectTo": {"info": {"host": "127.0.0.1", "port": 17102}},
        "login": {"username": "alice", "password": "secret"},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": [{"username": "alice", "password": "pw", "full_name": "Alice"}]}))
    return path


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_web_config(data)
    return str(caught.value)


def test_the_shipped_config_is_valid() -> None:
    parsed = load_web_config(Path(__file__).parents[2] / "configs" / "web.json")
    assert (parsed.info.port, parsed.username, parsed.max_browsers) == (17102, "alice", DEFAULT_MAX_BROWSERS)


def test_bounds_and_defaults() -> None:
    parsed = parse_web_config(
        config(maxBrowsers=3, maxInstruments=7, depthLevels=5, tradesShown=20, browserTimeoutSeconds=0.5)
    )
    assert (parsed.max_browsers, parsed.max_instruments, parsed.depth_levels, parsed.trades_shown) == (
        3,
        7,
        5,
        20,
    )
    assert parsed.browser_timeout == 0.5
    assert "maxBrowsers" in error_of(config(maxBrowsers=0))
    assert "browserTimeoutSeconds" in error_of(config(browserTimeoutSeconds=0))


def test_errors_name_the_field() -> None:
    assert error_of(config(login=None)) == "field (top level): 'login' is a required property"
    assert "did you mean 'login'?" in error_of({**config(login=None), "logn": {"username": "a"}})
    assert "did you mean 'maxBrowsers'?" in error_of(config(maxBrowser=3))
    assert error_of(config(connectTo={"inf": {"host": "h", "port": 1}})) == (
        "field connectTo: 'info' is a required property; connectTo: unknown key 'inf' (did you mean 'info'?)"
    )
    assert error_of(config(listenOn={"host": "h", "port": 70000})).startswith("field listenOn.port:")
    assert "'password' is required" in error_of(config(login={"username": "alice"}))


def test_the_login_is_checked_against_a_data_file(tmp_path: Path) -> None:
    path = str(users_file(tmp_path))
    parsed = parse_web_config(config(login={"username": "alice"}, dataFilePath=path))
    assert parsed.password == "pw"  # taken from the data file
    assert parse_web_config(config(login={"username": "alice", "password": "pw"}, dataFilePath=path))
    assert "not the password of 'alice'" in error_of(config(dataFilePath=path))
    assert "'bob' is not a user" in error_of(config(login={"username": "bob"}, dataFilePath=path))
    assert "cannot read user data file" in error_of(config(dataFilePath=str(tmp_path / "none.json")))


def test_the_command_refuses_a_bad_config_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "web.json"
    path.write_text(json.dumps(config(depthLevels="ten")))
    assert run(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"optivex-web: invalid config {path}: field depthLevels: 'ten' is not of type")
