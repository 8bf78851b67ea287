"""A stock machine: uv bootstrapped where PEP 668 allows it, and a component started from a config it reads.

The bootstrap (scripts/lib/uv.sh) is run by a python3 that refuses `pip install` as Debian's does: a
private Python prefix whose stdlib directory holds an ``EXTERNALLY-MANAGED`` marker (a venv cannot be
made so: pip never refuses inside a venv, and a venv's stdlib is its base's). Its HOME is empty and
no uv is on its PATH. It may download uv from the package index pip is set up with; when that index
cannot be reached, the tests that need it are skipped, saying so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optivex.deploy import Deployment, load_deployment
from optivex.proto import order_book_pb2 as ob

from .helpers import Exchange

pytestmark = pytest.mark.xdist_group("heavy")
"""Heavy (large days, floods, installs): one at a time on one worker, so the rest stay responsive."""

ROOT = Path(__file__).resolve().parents[2]
UV_SH = ROOT / "scripts" / "lib" / "uv.sh"
SYSTEM_BIN_DIRS = ("/usr/bin", "/bin")
"""Where the bootstrap's commands (bash, rm, ln, ...) come from; without any uv, python or pip in them."""
PASSED_ENV = (
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
"""The only variables the bootstrap inherits: how this machine reaches its package index."""
BOOTSTRAP_TIMEOUT = 240.0
"""Seconds one bootstrap may take before the test fails (about 10 s here: a venv, then a 17 MB wheel)."""
UNREACHABLE = re.compile(
    r"NewConnectionError|Could not fetch URL|ProxyError|SSLError|Network is unreachable"
    r"|Temporary failure in name resolution|timed out|Connection refused"
)
"""pip's words for an index it cannot reach: only then is a test that downloads uv skipped."""
PIP_DIR_NAMES = ("site-packages", "dist-packages")


def uv_requirement() -> str:
    match = re.search(r"^OPTIVEX_UV_REQUIREMENT='([^']+)'", UV_SH.read_text(encoding="utf-8"), re.M)
    assert match, f"no OPTIVEX_UV_REQUIREMENT in {UV_SH}"
    return match.group(1)


@dataclasses.dataclass(frozen=True)
class Pep668Python:
    """A private Python prefix that refuses pip installs (PEP 668), and the environment to run it in."""

    prefix: Path
    home: Path
    path: str
    pip_path: str
    """A sys.path entry that holds a pip (this python's own, or the one it was denied)."""

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python3"

    def env(self) -> dict[str, str]:
        passed = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
        return {**passed, "HOME": str(self.home), "PATH": self.path, "LANG": "C.UTF-8"}

    def run(
        self, *args: str | Path, cwd: Path | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env={**self.env(), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=BOOTSTRAP_TIMEOUT,
            check=False,
        )

    def site_dirs(self) -> dict[str, list[str]]:
        """Every directory this interpreter installs into or imports from, with what it holds."""
        query = (
            "import json, site, sysconfig; print(json.dumps(sorted({*site.getsitepackages(),"
            " site.getusersitepackages(), sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})))"
        )
        listed = self.run(self.python, "-c", query)
        assert listed.returncode == 0, listed.stderr
        dirs: list[str] = json.loads(listed.stdout)
        return {d: sorted(os.listdir(d)) if os.path.isdir(d) else [] for d in dirs}


def _filtered_bin(dest: Path) -> Path:
    """A directory with every command of SYSTEM_BIN_DIRS but uv, python and pip."""
    dest.mkdir()
    for directory in SYSTEM_BIN_DIRS:
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            if re.match(r"(uv|uvx|python|pip|pydoc|idle)", entry.name) or (dest / entry.name).exists():
                continue
            (dest / entry.name).symlink_to(entry.path)
    return dest


def _find_pip(base: str, stdlib: str) -> tuple[str, str]:
    """Where the base interpreter's pip is: ("dir", its package directory) or ("wheel", a pip wheel)."""
    found = subprocess.run(
        [base, "-c", "import os, pip; print(os.path.dirname(pip.__file__))"], capture_output=True, text=True
    )
    if found.returncode == 0:
        return "dir", found.stdout.strip()
    for wheels in (Path(stdlib) / "ensurepip" / "_bundled", Path("/usr/share/python-wheels")):
        for wheel in sorted(wheels.glob("pip-*.whl")):
            return "wheel", str(wheel)
    pytest.fail(f"{base} has no pip and no pip wheel was found to give the PEP 668 python")


def make_pep668_python(tmp_path: Path, *, ensurepip: bool = True, pip: bool = True) -> Pep668Python:
    """A copy of this test's base interpreter in its own prefix: stdlib linked in, EXTERNALLY-MANAGED added.

    `ensurepip=False` leaves out ensurepip (Debian without python3-venv); `pip=False` leaves out pip
    (Debian without python3-pip). The PEP 668 refusal is asserted here.
    """
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    info = subprocess.run(
        [
            base,
            "-c",
            "import json, sys, sysconfig; print(json.dumps([sysconfig.get_path('stdlib'),"
            " sysconfig.get_config_var('LIBDIR'), '%d.%d' % sys.version_info[:2]]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stdlib, libdir, version = json.loads(info.stdout)
    prefix = tmp_path / "pep668-python"
    lib = prefix / "lib" / f"python{version}"
    lib.mkdir(parents=True)
    left_out = {*PIP_DIR_NAMES, "EXTERNALLY-MANAGED", *(() if ensurepip else ("ensurepip",))}
    for entry in os.scandir(stdlib):
        if entry.name not in left_out:
            (lib / entry.name).symlink_to(entry.path)
    if libdir and os.path.isdir(libdir):  # a shared libpython, found through the binary's $ORIGIN
        for entry in os.scandir(libdir):
            if entry.name.startswith("libpython"):
                (prefix / "lib" / entry.name).symlink_to(entry.path)
    (prefix / "bin").mkdir()
    # A copy, not a link: Python finds its prefix from where its binary really is.
    shutil.copy2(base, prefix / "bin" / f"python{version}")
    (prefix / "bin" / "python3").symlink_to(f"python{version}")
    (lib / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=This test's python is externally managed (PEP 668).\n", encoding="utf-8"
    )
    home = tmp_path / "home"
    home.mkdir()
    kind, where = _find_pip(base, stdlib)
    made = Pep668Python(
        prefix,
        home,
        path=f"{prefix / 'bin'}:{_filtered_bin(tmp_path / 'system-bin')}",
        pip_path=os.path.dirname(where) if kind == "dir" else where,
    )
    if pip:
        query = "import sysconfig; print(sysconfig.get_path('purelib'))"
        purelib = Path(made.run(made.python, "-c", query).stdout.strip())
        assert purelib.is_relative_to(prefix), purelib
        purelib.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            (purelib / "pip").symlink_to(where)
        else:
            (purelib / "pip-wheel.pth").write_text(f"{where}\n", encoding="utf-8")
    else:
        assert made.run(made.python, "-m", "pip", "--version").returncode != 0
    # Without a pip of its own, the one it was denied shows the refusal (as its ensurepip's would).
    refused = made.run(
        made.python,
        "-m",
        "pip",
        "install",
        "--no-index",
        "uv",
        extra_env={} if pip else {"PYTHONPATH": made.pip_path},
    )
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr, (
        f"this python does not refuse to install as PEP 668 says:\n{refused.stdout}{refused.stderr}"
    )
    return made


def project_copy(tmp_path: Path) -> Path:
    """A directory laid out as the project for uv.sh: it bootstraps into <project>/.uv."""
    project = tmp_path / "project"
    (project / "scripts" / "lib").mkdir(parents=True)
    shutil.copy2(UV_SH, project / "scripts" / "lib" / "uv.sh")
    shutil.copy2(ROOT / "scripts" / "uv", project / "scripts" / "uv")
    return project


SHOW_UV = "set -euo pipefail; source scripts/lib/uv.sh; command -v uv; uv --version"
"""Sources the bootstrap as scripts/test does, then prints which uv it gave and its version."""


@pytest.mark.parametrize(
    "pip", [True, False], ids=["python3 has pip, no ensurepip", "python3 has ensurepip, no pip"]
)
def test_uv_is_bootstrapped_into_a_private_venv_by_a_pep668_python(tmp_path: Path, pip: bool) -> None:
    py = make_pep668_python(tmp_path, ensurepip=not pip, pip=pip)
    before = py.site_dirs()
    project = project_copy(tmp_path)

    first = py.run("bash", "-c", SHOW_UV, cwd=project)
    failed_download = f"install {uv_requirement()}' failed" in first.stderr
    if first.returncode != 0 and failed_download and UNREACHABLE.search(first.stderr):
        pytest.skip(f"pip cannot reach its package index to download uv:\n{first.stderr.strip()[-600:]}")
    assert first.returncode == 0, first.stderr
    uv_path, version = first.stdout.split("\n")[:2]
    assert uv_path == str(project / ".uv" / "bin" / "uv")
    assert version.startswith("uv 0.")
    assert "installing it into" in first.stderr and "left untouched" in first.stderr

    assert py.site_dirs() == before, "the bootstrap installed into the PEP 668 python's own directories"
    assert py.run(py.python, "-c", "import uv").returncode != 0
    assert not (py.home / ".local").exists()  # no --user install either

    usable = py.run(
        project / "scripts" / "uv",
        "run",
        "--no-project",
        "python",
        "-c",
        "import sys; print(sys.prefix)",
        cwd=project,
    )
    assert usable.returncode == 0, usable.stderr
    assert "installing" not in usable.stderr  # the bootstrapped uv is reused
    assert usable.stdout.strip() == str(py.prefix)  # uv found and ran the machine's python3


def test_without_ensurepip_or_pip_the_error_names_the_package(tmp_path: Path) -> None:
    py = make_pep668_python(tmp_path, ensurepip=False, pip=False)
    project = project_copy(tmp_path)
    result = py.run("bash", "-c", SHOW_UV, cwd=project)
    assert result.returncode == 1, result.stdout
    assert "error: cannot bootstrap uv:" in result.stderr
    assert "has neither pip (22.3 or later) nor ensurepip" in result.stderr
    assert "apt-get install python3-venv" in result.stderr
    assert "docs.astral.sh/uv" in result.stderr  # the other way out
    assert not (project / ".uv" / "bin" / "uv").exists()
    assert result.stdout == ""  # nothing ran after the failed source


def test_without_python3_the_error_says_so(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    env = {"HOME": str(tmp_path), "PATH": str(_filtered_bin(tmp_path / "system-bin"))}
    result = subprocess.run(["bash", "-c", SHOW_UV], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "error: cannot bootstrap uv: no python3 on PATH" in result.stderr


def _fake_uv(path: Path, version_status: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\necho "fake uv at $0: $*${{UV_SYSTEM_CERTS:+ (system certs)}}"\nexit {version_status}\n',
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def test_a_uv_on_path_is_used_as_it_is(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    fake = _fake_uv(tmp_path / "tools" / "uv")
    env = {"HOME": str(tmp_path), "PATH": f"{fake.parent}:{_filtered_bin(tmp_path / 'system-bin')}"}
    result = subprocess.run(["bash", "-c", SHOW_UV], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(fake), f"fake uv at {fake}: --version"]
    assert not (project / ".uv").exists()


def test_a_uv_on_path_that_does_not_run_gives_way_to_the_projects(tmp_path: Path) -> None:
    project = project_copy(tmp_path)
    broken = _fake_uv(tmp_path / "tools" / "uv", version_status=1)
    own = _fake_uv(project / ".uv" / "bin" / "uv")  # as an earlier bootstrap left it
    (project / ".uv" / "requirement").write_text(f"{uv_requirement()}\n", encoding="utf-8")
    env = {"HOME": str(tmp_path), "PATH": f"{broken.parent}:{_filtered_bin(tmp_path / 'system-bin')}"}
    result = subprocess.run(["bash", "-c", SHOW_UV], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The bootstrapped uv trusts the system's certificates, as pip does on Debian.
    certs = " (system certs)" if Path("/etc/ssl/certs/ca-certificates.crt").is_file() else ""
    assert result.stdout.splitlines() == [str(own), f"fake uv at {own}: --version{certs}"]
    assert f"warning: {broken} does not run" in result.stderr
    assert "installing" not in result.stderr


# ---------------------------------------------------------------- a component's config


def test_an_unknown_config_key_is_warned_about_in_the_log_and_ignored(tmp_path: Path) -> None:
    spec = load_deployment(ROOT / "deployment_config.json").provider("order_book")
    config = {**spec.config, "busyPollMicrosecond": 0}
    config.pop("busyPollMicroseconds", None)
    with (
        Deployment([dataclasses.replace(spec, config=config)], tmp_path / "run") as deployment,
        Exchange(deployment) as ex,
    ):
        created = ex.order_book().request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
        assert isinstance(created, ob.CreateOrderBookResponse)  # it started, and serves
        log = "".join(f.read_text(encoding="utf-8") for f in deployment.provider("order_book").log_files())
    warnings = [line for line in log.splitlines() if " WARNING " in line and "busyPollMicrosecond'" in line]
    assert len(warnings) == 1, log
    expected = "unknown key 'busyPollMicrosecond' (did you mean 'busyPollMicroseconds'?); ignored"
    assert re.search(rf"config \S+\.json: {re.escape(expected)}$", warnings[0]), warnings[0]
    assert "busy polling 200 us after each read" in log  # the misspelt key changed nothing
