"""The SDK is `mypy --strict` clean for its users: a user's typed code (sdk_typed_user.py) checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_FILE = Path(__file__).with_name("sdk_typed_user.py")
CONFIG = """\
[mypy]
strict = True

[mypy-sdk_typed_user,tests.unit.sdk_typed_user]
disallow_any_expr = True

[mypy-optivex.proto.*]
ignore_errors = True
"""
"""A user's strict settings, and no expression of type Any in the user's code (the SDK's own modules
are checked by the project's mypy run)."""


@pytest.mark.xdist_group("heavy")
def test_a_users_code_is_mypy_strict_clean(tmp_path: Path) -> None:
    config = tmp_path / "mypy.ini"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--config-file",
            str(config),
            str(USER_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
