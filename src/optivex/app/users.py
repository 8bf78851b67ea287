"""The user data file: who may log in, with which password."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from optivex.app.config import ConfigError
from optivex.schemas import USER_DATA_FILE, load_schema


@dataclass(frozen=True)
class User:
    username: str
    password: str
    full_name: str


def parse_users(data: Any) -> dict[str, User]:
    """Users from the contract's form ({"users": [...]}) or a bare JSON array of users."""
    if isinstance(data, list):
        data = {"users": data}
    validator = jsonschema.Draft202012Validator(load_schema(USER_DATA_FILE))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"field {where}: {error.message}")
    users: dict[str, User] = {}
    for entry in data["users"]:
        name = entry["username"]
        if name in users:
            raise ConfigError(f"username {name!r} appears twice")
        users[name] = User(name, entry["password"], entry["full_name"])
    return users


def load_users(path: Path) -> dict[str, User]:
    """Read the user data file; ConfigError says why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read user data file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"user data file {path} is not JSON: {exc}") from exc
    try:
        return parse_users(data)
    except ConfigError as exc:
        raise ConfigError(f"invalid user data file {path}: {exc}") from exc
