"""The user data file: who may log in, with which password."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optivex.app.config import ConfigError, read_json
from optivex.schemas import USER_DATA_FILE, schema_error


@dataclass(frozen=True)
class User:
    """One entry of the user data file."""

    username: str
    password: str
    full_name: str

    def to_json(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "full_name": self.full_name}


def parse_users(data: Any) -> dict[str, User]:
    """Users from the contract's form ({"users": [...]}) or a bare JSON array of users."""
    if isinstance(data, list):
        data = {"users": data}
    error = schema_error(USER_DATA_FILE, data)
    if error is not None:
        raise ConfigError(error)
    users: dict[str, User] = {}
    for entry in data["users"]:
        name = entry["username"]
        if name in users:
            raise ConfigError(f"username {name!r} appears twice")
        users[name] = User(name, entry["password"], entry["full_name"])
    return users


def load_users(path: Path) -> dict[str, User]:
    """Read the user data file; ConfigError says why it cannot be used."""
    data = read_json(path, "user data file")
    try:
        return parse_users(data)
    except ConfigError as exc:
        raise ConfigError(f"invalid user data file {path}: {exc}") from exc
