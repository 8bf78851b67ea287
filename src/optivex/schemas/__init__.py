"""The contract's JSON schemas and Optivex's own config keys, packaged so that the wheel alone validates."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

COMPONENT_CONFIG = "config_schema.json"
USER_DATA_FILE = "data_file_schema.json"
DEPLOYMENT_CONFIG = "deployment_config_schema.json"
OPTIVEX_CONFIG = "optivex_config_schema.json"
"""Optivex's own optional keys of a component config (not part of the contract)."""


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
    return f"field {where}: {error.message}"
