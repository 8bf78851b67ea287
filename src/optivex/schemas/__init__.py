"""The contract's JSON schemas and Optivex's own config keys, packaged so that the wheel alone validates."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema

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
def _validator(name: str) -> Callable[[Any], Any]:
    # fastjsonschema compiles the schema to Python once: importing and compiling cost milliseconds
    # where jsonschema's import alone took a third of a second of every component's start.
    return fastjsonschema.compile(load_schema(name), use_default=False)


def schema_error(name: str, data: Any) -> str | None:
    """The first violation of schema `name` as "field a.b: reason", or None when `data` is valid."""
    try:
        _validator(name)(data)
    except fastjsonschema.JsonSchemaValueException as error:
        return f"field {'.'.join(error.path[1:]) or '(top level)'}: {_reason(error)}"
    return None


def _reason(error: fastjsonschema.JsonSchemaValueException) -> str:
    rule, expected, value = error.rule, error.rule_definition, error.value
    if rule == "additionalProperties" and expected is False and isinstance(value, dict):
        allowed = list((error.definition or {}).get("properties", {}))
        unknown = [k for k in value if k not in allowed]
        if unknown:
            key = unknown[0]
            return f"unknown key {shown_key(key)}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}"
    if rule == "required" and isinstance(value, dict):
        missing = [k for k in expected if k not in value]
        if missing:
            return f"{missing[0]!r} is a required property"
    if rule == "type":
        return f"{_shown(value)} is not of type {expected!r}"
    if rule == "enum":
        return f"{_shown(value)} is not one of {expected!r}"
    if rule in ("minimum", "maximum"):
        bound = "less than the minimum" if rule == "minimum" else "greater than the maximum"
        return f"{_shown(value)} is {bound} of {expected!r}"
    # fastjsonschema's own wording, after the name of the place ("data.a.b must ...").
    return error.message.removeprefix(error.name or "").lstrip()


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_KEY_SHOWN else text[:MAX_KEY_SHOWN] + "..."


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
