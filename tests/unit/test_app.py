"""Config, user data file, login rules and log-safe client strings of the component framework."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optivex.app.auth import ALREADY_LOGGED_IN, BAD_CREDENTIALS, Authenticator
from optivex.app.config import ConfigError, load_config, parse_config
from optivex.app.users import User, load_users, parse_users
from optivex.logsafe import MAX_LOGGED_CHARS, loggable


def _config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "logLevel": "INFO",
        "logDirectory": "/tmp/logs",
        "listenOn": {"host": "127.0.0.1", "port": 0},
        "dataFilePath": "/tmp/users.json",
    }
    base.update(overrides)
    return base


def test_valid_config() -> None:
    config = parse_config(_config(connectTo={"order_book": {"host": "127.0.0.1", "port": 5}}, admins=["a"]))
    assert config.auth_required is True
    assert config.target("order_book").port == 5
    assert config.raw["admins"] == ["a"]


def test_optivex_keys_are_parsed() -> None:
    config = parse_config(_config(maxUnsentBytes=65536, busyPollMicroseconds=0))
    assert (config.max_unsent_bytes, config.busy_poll_microseconds) == (65536, 0)
    defaults = parse_config(_config())
    assert defaults.max_unsent_bytes == 8 * 1024 * 1024
    assert defaults.busy_poll_microseconds is None  # the component decides


def test_auth_default_is_the_components() -> None:
    assert parse_config(_config(), default_auth=False).auth_required is False
    assert parse_config(_config(authRequired=True), default_auth=False).auth_required is True


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (_config(logLevel="LOUD"), "logLevel"),
        (_config(listenOn={"host": "127.0.0.1", "port": 70000}), "listenOn.port"),
        (_config(listenOn={"host": "", "port": 1}), "listenOn.host"),
        ({k: v for k, v in _config().items() if k != "dataFilePath"}, "dataFilePath"),
        (_config(authRequired="yes"), "authRequired"),
        (_config(busyPollMicroseconds=-1), "busyPollMicroseconds"),
        (_config(busyPollMicroseconds=2_000_000), "busyPollMicroseconds"),
        (_config(busyPollMicroseconds="200"), "busyPollMicroseconds"),
        (_config(maxUnsentBytes=1024), "maxUnsentBytes"),
        (_config(maxUnsentBytes=100_000.5), "maxUnsentBytes"),
        (_config(admins="admin"), "admins"),
        (_config(admins=[""]), "admins.0"),
    ],
)
def test_invalid_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").split(".")[-1]):
        parse_config(config)


def test_missing_and_non_json_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        load_config(bad)


def test_target_without_entry() -> None:
    with pytest.raises(ConfigError, match="connectTo"):
        parse_config(_config()).target("order_book")


USERS = [{"username": "alice", "password": "pw", "full_name": "Alice"}]


def test_users_in_contract_form_and_bare_array(tmp_path: Path) -> None:
    assert parse_users({"users": USERS}) == {"alice": User("alice", "pw", "Alice")}
    assert parse_users(USERS) == {"alice": User("alice", "pw", "Alice")}
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": USERS}))
    assert "alice" in load_users(path)


@pytest.mark.parametrize(
    "data",
    [
        {"users": [{"username": "", "password": "x", "full_name": "y"}]},
        {"users": [{"username": "a", "full_name": "y"}]},
        {"people": []},
        {"users": USERS + USERS},
    ],
)
def test_invalid_users(data: Any) -> None:
    with pytest.raises(ConfigError):
        parse_users(data)


def test_unreadable_users_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read user data file"):
        load_users(tmp_path / "missing.json")


def test_login_rules() -> None:
    auth = Authenticator({"alice": User("alice", "pw", "Alice")}, auth_required=True)
    assert auth.check(None, "alice", "pw") == ""
    assert auth.check(None, "alice", "wrong") == BAD_CREDENTIALS
    assert auth.check(None, "mallory", "pw") == BAD_CREDENTIALS
    assert auth.check(None, "mallory", "\0pw") == BAD_CREDENTIALS
    assert auth.check("alice", "alice", "pw") == ALREADY_LOGGED_IN


def test_login_without_auth_takes_any_name() -> None:
    auth = Authenticator({}, auth_required=False)
    assert auth.check(None, "anyone", "") == ""
    assert auth.check("anyone", "again", "") == ALREADY_LOGGED_IN


def test_loggable_quotes_and_escapes_client_strings() -> None:
    assert loggable("alice") == "'alice'"
    assert loggable("") == "''"
    assert loggable(None) == "None"
    forged = loggable("x\n2026-12-02 00:00:00,000 INFO optivex.order-book: forged\r\x1b[2J\u2028\x00")
    assert "\n" not in forged and "\r" not in forged and "\x1b" not in forged and "\u2028" not in forged
    assert forged == r"'x\n2026-12-02 00:00:00,000 INFO optivex.order-book: forged\r\x1b[2J\u2028\x00'"


def test_loggable_truncates_to_a_bounded_length() -> None:
    assert loggable("a" * MAX_LOGGED_CHARS) == repr("a" * MAX_LOGGED_CHARS)
    long = loggable("a" * MAX_LOGGED_CHARS + "b" * 1_048_000)
    assert long == repr("a" * MAX_LOGGED_CHARS) + "...(1048000 more)"
    assert loggable("\n" * 1000, limit=3) == r"'\n\n\n'...(997 more)"
