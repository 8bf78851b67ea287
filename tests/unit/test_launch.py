"""app.launch: a component listens before its heavy imports, and says when it serves."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import optivex.client
from optivex.app.launch import NOTIFY_SOCKET_ENV, listen_early, notify_ready
from optivex.deploy.readiness import ReadyListener

HEAVY_MODULES = ("asyncio", "google.protobuf", "fastjsonschema", "optivex.app.component")
ENTRY_PACKAGES = ("optivex.orderbook", "optivex.admin", "optivex.info", "optivex.gateway", "optivex.sample")


def _config(tmp_path: Path, listen_on: Any) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"logLevel": "INFO", "listenOn": listen_on}), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _modules_loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing `module`."""
    probe = f"import sys, {module}\nprint(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def _heavy(loaded: set[str]) -> set[str]:
    return {h for h in HEAVY_MODULES for name in loaded if name == h or name.startswith(h + ".")}


@pytest.mark.parametrize("package", ENTRY_PACKAGES)
def test_the_entry_point_of_a_component_imports_nothing_heavy(package: str) -> None:
    assert _heavy(_modules_loaded_by(package)) == set()


def test_a_component_does_not_load_the_sdk() -> None:
    loaded = _modules_loaded_by("optivex.gateway.component")
    assert "optivex.client.aio" in loaded
    assert not {"optivex.client.exchange", "optivex.client.aio_exchange", "optivex.client.state"} & loaded


def test_every_public_name_of_the_client_package_resolves() -> None:
    assert sorted(optivex.client.__all__) == sorted(optivex.client._MODULE_OF)
    for name in optivex.client.__all__:
        assert getattr(optivex.client, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = optivex.client.Nope


def test_listen_early_listens_on_listen_on(tmp_path: Path) -> None:
    port = _free_port()
    sockets = listen_early(_config(tmp_path, {"host": "127.0.0.1", "port": port}))
    try:
        assert [s.getsockname()[:2] for s in sockets] == [("127.0.0.1", port)]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # the kernel accepts before anyone calls accept()
    finally:
        for sock in sockets:
            sock.close()


def test_listen_early_takes_a_port_written_as_an_integral_number(tmp_path: Path) -> None:
    port = _free_port()
    sockets = listen_early(_config(tmp_path, {"host": "127.0.0.1", "port": float(port)}))
    try:
        assert [s.getsockname()[:2] for s in sockets] == [("127.0.0.1", port)]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.parametrize(
    "listen_on",
    [
        {"host": "127.0.0.1", "port": 70000},
        {"host": "127.0.0.1", "port": 1.5},
        {"host": "127.0.0.1", "port": "1"},
        {"host": "127.0.0.1", "port": True},
        {"host": 127, "port": 1},
        {"port": 1},
        "127.0.0.1:1",
        {"host": "no.such.host.invalid", "port": 1},
    ],
)
def test_listen_early_leaves_what_it_cannot_use_to_the_component(tmp_path: Path, listen_on: Any) -> None:
    assert listen_early(_config(tmp_path, listen_on)) == []


def test_listen_early_without_a_readable_config(tmp_path: Path) -> None:
    assert listen_early(tmp_path / "missing.json") == []
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert listen_early(tmp_path / "bad.json") == []


def test_listen_early_on_a_port_in_use(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert listen_early(_config(tmp_path, {"host": "127.0.0.1", "port": port})) == []


def test_ready_reaches_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = ReadyListener()
    try:
        assert not listener.wait(0)
        monkeypatch.setenv(NOTIFY_SOCKET_ENV, listener.env_value)
        notify_ready()
        assert listener.wait(1)
        assert listener.wait(0)  # stays ready
    finally:
        listener.close()


def test_ready_without_anyone_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTIFY_SOCKET_ENV, raising=False)
    notify_ready()
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, "@optivex-nobody-listens-here")
    notify_ready()  # gone: ignored
