"""The contract's JSON schemas, shipped inside the package so the wheel alone validates."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

COMPONENT_CONFIG = "config_schema.json"
USER_DATA_FILE = "data_file_schema.json"
DEPLOYMENT_CONFIG = "deployment_config_schema.json"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Parse one of the schema files of this package."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
