"""Unknown config keys: accepted (the contract allows other keys), with a warning naming the nearest one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from optivex.app.component import DESCRIPTOR_RESERVE, _fit_descriptors
from optivex.app.config import (
    DEFAULT_MAX_CONNECTIONS,
    KNOWN_KEYS,
    MAX_UNKNOWN_KEY_WARNINGS,
    ConfigError,
    load_config,
    parse_config,
    unknown_keys,
)
from optivex.schemas import COMPONENT_CONFIG, MAX_KEY_SHOWN, OPTIVEX_CONFIG, load_schema, nearest_key
from tests.unit.test_app import _config


def test_known_keys_are_the_contracts_and_optivexs() -> None:
    contract = set(load_schema(COMPONENT_CONFIG)["properties"])
    optivex = set(load_schema(OPTIVEX_CONFIG)["properties"])
    assert set(KNOWN_KEYS) == contract | optivex
    assert {"logLevel", "connectTo", "authRequired", "busyPollMicroseconds", "admins"} <= set(KNOWN_KEYS)


def test_a_config_of_known_keys_has_no_warning() -> None:
    every_key = _config(
        connectTo={"order_book": {"host": "127.0.0.1", "port": 5}},
        authRequired=False,
        maxUnsentBytes=65536,
        maxConnections=100,
        busyPollMicroseconds=0,
        admins=["a"],
    )
    assert set(every_key) == set(KNOWN_KEYS)
    assert parse_config(every_key).warnings == ()


def test_a_misspelt_key_is_accepted_with_a_warning_naming_the_nearest_key() -> None:
    config = parse_config(_config(busyPollMicrosecond=50))
    assert config.warnings == (
        "unknown key 'busyPollMicrosecond' (did you mean 'busyPollMicroseconds'?); ignored",
    )
    assert config.busy_poll_microseconds is None  # ignored: the component's default applies
    assert config.raw["busyPollMicrosecond"] == 50  # still there, as the contract allows


@pytest.mark.parametrize(
    ("key", "nearest"),
    [
        ("loglevel", "logLevel"),  # case is ignored
        ("LOGLEVEL", "logLevel"),
        ("listen_on", "listenOn"),
        ("connectto", "connectTo"),
        ("authRequierd", "authRequired"),
        ("maxUnsendBytes", "maxUnsentBytes"),
        ("admin", "admins"),
        ("dataFile", "dataFilePath"),
    ],
)
def test_the_nearest_key_is_suggested(key: str, nearest: str) -> None:
    assert nearest_key(key, KNOWN_KEYS) == nearest
    assert parse_config(_config(**{key: 1})).warnings == (
        f"unknown key {key!r} (did you mean {nearest!r}?); ignored",
    )


def test_a_key_near_none_gets_no_suggestion() -> None:
    config = parse_config(_config(comment="for the night shift"))
    assert config.warnings == ("unknown key 'comment'; ignored",)


def test_a_key_is_escaped_and_truncated() -> None:
    forged = "x\n2026-12-02 00:00:00 ERROR forged line"
    (warning,) = parse_config(_config(**{forged: 1})).warnings
    assert "\n" not in warning
    assert repr(forged) in warning
    long_key = "k" * 100_000
    (warning,) = parse_config(_config(**{long_key: 1})).warnings
    assert len(warning) < 2 * MAX_KEY_SHOWN + 100
    assert "(100000 characters)" in warning


def test_unknown_keys_are_warned_about_one_by_one_up_to_a_bound() -> None:
    many = {f"extra{i}": i for i in range(MAX_UNKNOWN_KEY_WARNINGS + 5)}
    warnings = unknown_keys(_config(**many))
    assert len(warnings) == MAX_UNKNOWN_KEY_WARNINGS + 1
    assert warnings[0].startswith("unknown key 'extra0'")
    assert warnings[-1] == "5 more unknown keys; ignored"
    exactly = {f"extra{i}": i for i in range(MAX_UNKNOWN_KEY_WARNINGS)}
    assert len(unknown_keys(_config(**exactly))) == MAX_UNKNOWN_KEY_WARNINGS


def test_load_config_names_the_file_in_each_warning(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(_config(busyPollMicrosecond=50, zzz=1)), encoding="utf-8")
    assert load_config(path).warnings == (
        f"config {path}: unknown key 'busyPollMicrosecond' (did you mean 'busyPollMicroseconds'?); ignored",
        f"config {path}: unknown key 'zzz'; ignored",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            _config(listenOn={"host": "127.0.0.1", "port": 1, "prot": 2}),
            "field listenOn: unknown key 'prot' (did you mean 'port'?); allowed: host, port",
        ),
        (
            _config(connectTo={"order_book": {"host": "127.0.0.1", "port": 1, "hots": "x"}}),
            "field connectTo.order_book: unknown key 'hots' (did you mean 'host'?); allowed: host, port",
        ),
        (
            _config(listenOn={"host": "127.0.0.1", "port": 1, "tls": True}),
            "field listenOn: unknown key 'tls'; allowed: host, port",
        ),
    ],
)
def test_an_address_refuses_other_keys_naming_the_nearest(config: dict[str, Any], message: str) -> None:
    """The contract's addresses allow no other key: refused, not warned about, with the same suggestion."""
    with pytest.raises(ConfigError) as refused:
        parse_config(config)
    assert str(refused.value) == message


def test_a_misspelt_required_key_is_refused_naming_the_spelling() -> None:
    config = _config()
    config["log_level"] = config.pop("logLevel")
    with pytest.raises(ConfigError) as refused:
        parse_config(config)
    assert str(refused.value) == (
        "field (top level): 'logLevel' is a required property; "
        "unknown key 'log_level' (did you mean 'logLevel'?)"
    )


def test_a_refusal_names_no_misspelling_of_a_key_that_is_there() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(logLevel="LOUD", loglevel="INFO"))
    assert "unknown key" not in str(refused.value)


def test_ports_written_as_integral_numbers_are_ints() -> None:
    """JSON Schema's "integer" admits 17100.0: valid, so it must work as 17100."""
    config = parse_config(
        _config(listenOn={"host": "127.0.0.1", "port": 17100.0}, connectTo={"x": {"host": "h", "port": 5.0}})
    )
    assert type(config.listen_on.port) is int and config.listen_on.port == 17100
    assert type(config.connect_to["x"].port) is int and config.connect_to["x"].port == 5


def test_max_connections_defaults_and_must_be_positive() -> None:
    assert parse_config(_config()).max_connections == DEFAULT_MAX_CONNECTIONS
    assert parse_config(_config(maxConnections=3)).max_connections == 3
    with pytest.raises(ConfigError, match="maxConnections"):
        parse_config(_config(maxConnections=0))


class _Limits:
    """resource.getrlimit/setrlimit of a process whose open-file limits are (soft, hard)."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse

    def get(self, which: int) -> tuple[int, int]:
        return self.limits

    def set(self, which: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.limits = limits


@pytest.mark.parametrize(
    ("soft", "hard", "refuse", "fitting", "soft_after"),
    [
        (1024, 1_048_576, False, 10_000, 10_000 + DESCRIPTOR_RESERVE),  # raised to what is needed
        (1024, 4096, False, 4096 - DESCRIPTOR_RESERVE, 4096),  # raised to the hard limit, lowered
        (1024, 1_048_576, True, 1024 - DESCRIPTOR_RESERVE, 1024),  # cannot be raised: lowered
        (65536, 65536, False, 10_000, 65536),  # enough already: untouched
    ],
)
def test_max_connections_fit_the_limit_of_open_files(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, refuse: bool, fitting: int, soft_after: int
) -> None:
    import resource

    limits = _Limits(soft, hard, refuse)
    monkeypatch.setattr(resource, "getrlimit", limits.get)
    monkeypatch.setattr(resource, "setrlimit", limits.set)
    log = logging.getLogger("test_max_connections")
    assert _fit_descriptors(10_000, log) == fitting
    assert limits.limits == (soft_after, hard)
