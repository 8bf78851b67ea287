"""The contract's JSON schemas and Optivex's own config keys, packaged so that the wheel alone validates."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

COMPONENT_CONFIG = "config_schema.json"
USER_DATA_FILE = "data_file_schema.json"
DEPLOYMENT_CONFIG = "deployment_config_schema.json"
OPTIVEX_CONFIG = "optivex_config_schema.json"
"""Optivex's own optional keys of a component config (not part of the contract)."""

MAX_KEY_SHOWN = 64
"""A config key longer than this is shown truncated in messages (keys come from the operator's file)."""


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parse one of the schema files of this package."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(name))


def schema_error(name: str, data: Any) -> str | None:
    """The most relevant violation of schema `name` as "field a.b: reason", or None when `data` is valid."""
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(data))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        if unknown:
            key = unknown[0]
            return (
                f"field {where}: unknown key {shown_key(key)}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}"
            )
    return f"field {where}: {error.message}"


def property_names(name: str) -> list[str]:
    """The top-level keys schema `name` defines, in order."""
    return list(load_schema(name).get("properties", {}))


def shown_key(key: str) -> str:
    """`key` quoted and escaped for a one-line message, truncated past MAX_KEY_SHOWN characters."""
    if len(key) > MAX_KEY_SHOWN:
        return f"{key[:MAX_KEY_SHOWN]!r}... ({len(key)} characters)"
    return repr(key)


def nearest_key(key: str, known: Iterable[str]) -> str | None:
    """The known key closest to `key` (difflib's ratio, ignoring case), or None when none is close."""
    by_folded = {k.casefold(): k for k in known}
    # Truncated first: difflib's cost grows with the product of the lengths, and keys are short.
    matches = difflib.get_close_matches(key[: MAX_KEY_SHOWN * 2].casefold(), by_folded, n=1)
    return by_folded[matches[0]] if matches else None


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """The suffix " (did you mean 'x'?)" naming the known key nearest to `key`, or "" when none is close."""
    nearest = nearest_key(key, known)
    return "" if nearest is None else f" (did you mean {nearest!r}?)"
