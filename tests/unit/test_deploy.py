"""The deployment runner: config validation, topology, config rewriting, and processes (fake components)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optivex import cli
from optivex.deploy import runner
from optivex.deploy.config import (
    ComponentSpec,
    DeploymentConfig,
    default_deployment_path,
    load_deployment,
    parse_deployment,
)
from optivex.deploy.errors import DeploymentError
from optivex.deploy.runner import (
    ADMIN_USER,
    BIN_DIR_ENV,
    DEFAULT_USERS,
    Deployment,
    console_script,
    read_users_file,
    rewrite_config,
    start_suite,
)
from optivex.deploy.topology import SUITE_DEPENDENCIES, SUITES, components_for_suite, start_order

ROOT = Path(__file__).resolve().parents[2]
ROOT_DEPLOYMENT = ROOT / "deployment_config.json"
PACKAGED_DEPLOYMENT = ROOT / "src" / "optivex" / "deploy" / "deployment_config.json"


# helpers ------------------------------------------------------------------


def _config(port: int = 0, connect: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "logLevel": "INFO",
        "logDirectory": "run/logs",
        "listenOn": {"host": "127.0.0.1", "port": port},
        "dataFilePath": "run/users.json",
    }
    if connect:
        config["connectTo"] = {name: {"host": "127.0.0.1", "port": 1} for name in connect}
    config.update(extra)
    return config


def _entry(
    name: str, protocols: list[str], connect: tuple[str, ...] = (), package: str = "", **extra: Any
) -> dict[str, Any]:
    auth = protocols != ["order_book"]
    return {
        "name": name,
        "packageName": package or f"optivex-{name}",
        "protocols": protocols,
        "authRequired": auth,
        "config": _config(connect=connect, authRequired=auth, **extra),
    }


def _deployment(*entries: dict[str, Any], tests: list[str] | None = None) -> dict[str, Any]:
    return {"components": list(entries), "systemTests": tests or []}


def _full_deployment(front_first: bool = False) -> DeploymentConfig:
    """All five protocols, {admin, info} and {execution, risk_limits} shared, listed out of start order."""
    trading_targets = ("order_book", "front") if front_first else ("order_book",)
    return parse_deployment(
        _deployment(
            _entry("trading", ["execution", "risk_limits"], trading_targets),
            _entry("front", ["admin", "info"], ("order_book",)),
            _entry("order_book", ["order_book"]),
            tests=list(SUITES),
        )
    )


def _names(specs: list[ComponentSpec]) -> list[str]:
    return [s.name for s in specs]


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _can_connect(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


# packaged copy and loading -----------------------------------------------------


def test_packaged_deployment_config_is_the_root_one() -> None:
    assert PACKAGED_DEPLOYMENT.read_bytes() == ROOT_DEPLOYMENT.read_bytes()


def test_real_deployment_config_is_valid() -> None:
    config = load_deployment(ROOT_DEPLOYMENT)
    assert config.path == ROOT_DEPLOYMENT
    assert config.components
    for suite in config.system_tests:
        assert suite in SUITES


def test_default_deployment_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    packaged = default_deployment_path()
    assert packaged.read_bytes() == ROOT_DEPLOYMENT.read_bytes()
    (tmp_path / "deployment_config.json").write_text("{}", encoding="utf-8")
    assert default_deployment_path() == Path("deployment_config.json")


# validation --------------------------------------------------------------------


def _error(data: Any) -> str:
    with pytest.raises(DeploymentError) as info:
        parse_deployment(data, Path("deployment_config.json"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("deployment_config.json: ")
    return message


def test_valid_full_deployment() -> None:
    config = _full_deployment()
    assert config.protocols == {"admin", "info", "execution", "risk_limits", "order_book"}
    assert config.provider("info").name == "front"
    assert config.component("trading").connect_to == ("order_book",)
    assert config.system_tests == SUITES


def test_schema_error_names_the_field() -> None:
    data = _deployment(_entry("ob", ["order_book"]))
    data["components"][0]["protocols"] = ["orderbook"]
    assert "components.0.protocols.0" in _error(data)
    assert "components" in _error({"systemTests": []})


def test_duplicate_names() -> None:
    message = _error(_deployment(_entry("a", ["admin"]), _entry("a", ["info"])))
    assert "'a' appears twice" in message


def test_protocol_with_two_providers() -> None:
    message = _error(_deployment(_entry("a", ["admin", "info"]), _entry("b", ["info"])))
    assert "'info' has two providers: 'a' and 'b'" in message


def test_order_book_must_be_alone() -> None:
    message = _error(_deployment(_entry("ob", ["order_book", "admin"])))
    assert "'order_book' must be alone" in message


def test_connect_to_unknown_component() -> None:
    message = _error(_deployment(_entry("a", ["admin"], ("nowhere",))))
    assert "connectTo names 'nowhere'" in message


def test_connect_to_cycle() -> None:
    message = _error(
        _deployment(
            _entry("a", ["admin"], ("b",)), _entry("b", ["info"], ("c",)), _entry("c", ["execution"], ("a",))
        )
    )
    assert "cycle: a -> b -> c -> a" in message
    assert "cycle: a -> a" in _error(_deployment(_entry("a", ["admin"], ("a",))))


def test_component_config_checked_against_its_schema() -> None:
    entry = _entry("a", ["admin"])
    del entry["config"]["logLevel"]
    assert "component 'a': config field (top level): 'logLevel' is a required property" in _error(
        _deployment(entry)
    )
    entry = _entry("a", ["admin"])
    entry["config"]["listenOn"]["port"] = 70000
    assert "component 'a': config field listenOn.port" in _error(_deployment(entry))


def test_auth_required_must_agree_with_config() -> None:
    entry = _entry("a", ["admin"])
    entry["config"]["authRequired"] = False
    assert "authRequired is true but its config says false" in _error(_deployment(entry))


def test_system_tests_need_their_protocols() -> None:
    message = _error(_deployment(_entry("ob", ["order_book"]), tests=["order_book"]))
    assert "'order_book', which needs protocol 'admin'" in message


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="cannot read deployment config"):
        load_deployment(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    with pytest.raises(DeploymentError, match="not JSON"):
        load_deployment(bad)


# topology ----------------------------------------------------------------------


def test_suite_table_is_the_contracts() -> None:
    assert dict(SUITE_DEPENDENCIES) == {
        "order_book": ("admin",),
        "info": ("admin", "order_book"),
        "execution": ("admin", "order_book"),
        "risk_limits": ("admin", "execution"),
    }


@pytest.mark.parametrize(
    ("suite", "front_first", "expected"),
    [
        ("order_book", False, ["order_book", "front"]),
        ("info", False, ["order_book", "front"]),
        ("execution", False, ["order_book", "trading", "front"]),
        ("risk_limits", False, ["order_book", "trading", "front"]),
        ("order_book", True, ["order_book", "front"]),
        ("execution", True, ["order_book", "front", "trading"]),
        ("risk_limits", True, ["order_book", "front", "trading"]),
    ],
)
def test_components_for_suite(suite: str, front_first: bool, expected: list[str]) -> None:
    assert _names(components_for_suite(_full_deployment(front_first), suite)) == expected


def test_suite_pulls_connect_to_targets_transitively() -> None:
    config = parse_deployment(
        _deployment(
            _entry("admin", ["admin"], ("relay",)),
            _entry("relay", ["info"], ("ob",)),
            _entry("ob", ["order_book"]),
            _entry("exec", ["execution"], ("ob",)),
        )
    )
    # order_book needs admin; admin connects to relay (info), which connects to ob.
    assert _names(components_for_suite(config, "order_book")) == ["ob", "relay", "admin"]


def test_suite_errors() -> None:
    config = parse_deployment(_deployment(_entry("ob", ["order_book"])))
    with pytest.raises(DeploymentError, match="no component provides protocol 'admin'"):
        components_for_suite(config, "order_book")
    with pytest.raises(DeploymentError, match="unknown suite 'nope'"):
        components_for_suite(config, "nope")


def test_real_deployment_topology() -> None:
    config = load_deployment(ROOT_DEPLOYMENT)
    for suite in config.system_tests:
        specs = components_for_suite(config, suite)
        names = _names(specs)
        provided = {p for s in specs for p in s.protocols}
        assert {suite, *SUITE_DEPENDENCIES[suite]} <= provided
        for i, spec in enumerate(specs):
            for target in spec.connect_to:
                assert target in names[:i]


def test_start_order_is_stable_and_targets_first() -> None:
    config = parse_deployment(
        _deployment(
            _entry("x", ["info"], ("z",)),
            _entry("y", ["admin"]),
            _entry("z", ["order_book"]),
            _entry("w", ["execution"], ("x", "y")),
        )
    )
    assert _names(start_order(config.components)) == ["y", "z", "x", "w"]
    assert _names(start_order(reversed(config.components))) == ["z", "y", "x", "w"]
    # Targets outside the given components do not constrain the order.
    assert _names(start_order([config.component("x"), config.component("y")])) == ["x", "y"]


def test_start_order_cycle() -> None:
    a = ComponentSpec("a", "pa", ("admin",), True, _config(connect=("b",)))
    b = ComponentSpec("b", "pb", ("info",), True, _config(connect=("a",)))
    with pytest.raises(DeploymentError, match="cycle: a -> b -> a"):
        start_order([a, b])
    # a component that only waits for the cycle is not part of it
    c = ComponentSpec("c", "pc", ("execution",), True, _config(connect=("b",)))
    d = ComponentSpec("d", "pd", ("order_book",), False, _config())
    with pytest.raises(DeploymentError, match=r"cycle: b -> a -> b$"):
        start_order([d, c, b, a])


# config rewriting ------------------------------------------------------------------


def test_rewrite_config(tmp_path: Path) -> None:
    original = _config(port=17101, connect=("order_book", "front"), authRequired=True, admins=["admin"])
    snapshot = json.loads(json.dumps(original))
    targets = {"order_book": ("127.0.0.1", 40001), "front": ("::1", 40002)}
    config = rewrite_config(original, ("127.0.0.1", 40003), targets, tmp_path / "logs", tmp_path / "u.json")
    assert config == {
        "logLevel": "INFO",
        "logDirectory": str(tmp_path / "logs"),
        "listenOn": {"host": "127.0.0.1", "port": 40003},
        "connectTo": {
            "order_book": {"host": "127.0.0.1", "port": 40001},
            "front": {"host": "::1", "port": 40002},
        },
        "dataFilePath": str(tmp_path / "u.json"),
        "authRequired": True,
        "admins": ["admin"],
    }
    assert original == snapshot


def test_a_deployment_refuses_a_connect_to_target_outside_it(tmp_path: Path) -> None:
    """The one check of connectTo targets (topology.check_connect_to), here against the deployment's own
    components: the config names `order_book`, which is a component of the file but not started here."""
    front = _full_deployment().component("front")
    with pytest.raises(DeploymentError) as info:
        Deployment([front], tmp_path / "work")
    assert str(info.value) == (
        "component 'front': connectTo names 'order_book', which is not part of this deployment (have: front)"
    )


def test_users_file_round_trip(tmp_path: Path) -> None:
    path = runner.write_users_file(tmp_path / "users.json", DEFAULT_USERS)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["users"][0] == {"username": "admin", "password": "admin", "full_name": "Exchange Operator"}
    assert read_users_file(path) == DEFAULT_USERS
    assert ADMIN_USER in DEFAULT_USERS
    assert {u.username for u in DEFAULT_USERS} >= {"alice", "bob", "carol", "dave"}
    _write(tmp_path / "bad.json", {"users": [{"username": "x"}]})
    with pytest.raises(DeploymentError, match="invalid user data file"):
        read_users_file(tmp_path / "bad.json")


# processes: fake components ------------------------------------------------------

FAKE_COMPONENT = """\
import json, os, signal, socket, sys, time
from pathlib import Path

mode = Path(sys.argv[0]).name.removeprefix("optivex-").removeprefix("fake-")
assert sys.argv[1] == "-c", sys.argv
config = json.loads(Path(sys.argv[2]).read_text())
users = json.loads(Path(config["dataFilePath"]).read_text())["users"]
log_dir = Path(config["logDirectory"])
log_dir.mkdir(parents=True, exist_ok=True)
port = config["listenOn"]["port"]
log = open(log_dir / f"fake-{port}.log", "a")
log.write(f"{mode} starting pid {os.getpid()} users {len(users)} connectTo {config.get('connectTo', {})}\\n")
log.flush()
if mode == "crash":
    print("boom: this component refuses to start", file=sys.stderr)
    sys.exit(1)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
if mode == "silent":
    while True:
        time.sleep(1)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    server.bind((config["listenOn"]["host"], port))
except OSError as exc:
    print(f"cannot listen on port {port}: {exc}", file=sys.stderr)
    log.write(f"cannot listen: {exc}\\n")
    sys.exit(1)
server.listen()
log.write(f"listening on {port}\\n")
log.flush()
if mode == "die":
    time.sleep(0.5)
    print("dying on purpose", file=sys.stderr)
    sys.exit(3)
if mode == "notify":  # serves a while after listening, then says so ($NOTIFY_SOCKET, app.launch)
    time.sleep(0.5)
    log.write("ready\\n")
    log.flush()
    notify = os.environ["NOTIFY_SOCKET"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"READY=1", "\\0" + notify[1:] if notify.startswith("@") else notify)
if mode == "mute":  # listens, never says it is ready, dies
    time.sleep(0.3)
    sys.exit(3)
while True:
    conn, _ = server.accept()
    conn.close()
"""

FAKE_MODES = ("ok", "silent", "crash", "stubborn", "die")
NOTIFYING_MODES = ("notify", "mute")
"""Installed as `optivex-fake-<mode>`: the runner expects READY=1 from Optivex's console scripts."""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PATH holding `fake-<mode>` executables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in (*(f"fake-{m}" for m in FAKE_MODES), *(f"optivex-fake-{m}" for m in NOTIFYING_MODES)):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{FAKE_COMPONENT}", encoding="utf-8")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv(BIN_DIR_ENV, raising=False)  # CI points it at the wheel's venv
    return bin_dir


def _fake_specs(
    ob: str = "ok", front: str = "ok", trading: str = "ok", port: int = 0
) -> tuple[ComponentSpec, ...]:
    config = _full_deployment(front_first=True)
    modes = {"order_book": ob, "front": front, "trading": trading}
    return tuple(
        ComponentSpec(s.name, f"fake-{modes[s.name]}", s.protocols, s.auth_required, s.config)
        for s in config.components
    )


def _only_order_book() -> list[ComponentSpec]:
    return [s for s in _fake_specs() if s.name == "order_book"]


@pytest.fixture
def deployment(fake_bin: Path, tmp_path: Path) -> Iterator[Deployment]:
    with Deployment(_fake_specs(), tmp_path / "work") as running:
        yield running


def test_console_script_from_the_bin_dir_env(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BIN_DIR_ENV, str(fake_bin))
    assert console_script("fake-ok") == str(fake_bin / "fake-ok")
    monkeypatch.setenv(BIN_DIR_ENV, str(fake_bin / "nowhere"))
    with pytest.raises(DeploymentError, match=BIN_DIR_ENV):
        console_script("fake-ok")


def test_console_script_resolution(fake_bin: Path) -> None:
    assert console_script("fake-ok") == str(fake_bin / "fake-ok")
    with pytest.raises(DeploymentError, match="not found"):
        console_script("optivex-no-such-script")


def test_start_address_and_rewritten_configs(deployment: Deployment, tmp_path: Path) -> None:
    assert [c.name for c in deployment.components] == ["order_book", "front", "trading"]
    ports = {c.port for c in deployment.components}
    assert len(ports) == 3 and 0 not in ports
    for protocol, name in [("order_book", "order_book"), ("admin", "front"), ("risk_limits", "trading")]:
        host, port = deployment.address(protocol)
        assert (host, port) == ("127.0.0.1", deployment.component(name).port)
        assert _can_connect((host, port))
    trading = deployment.component("trading")
    written = json.loads(trading.config_path.read_text(encoding="utf-8"))
    assert written["listenOn"] == {"host": "127.0.0.1", "port": trading.port}
    assert written["connectTo"] == {
        "order_book": {"host": "127.0.0.1", "port": deployment.component("order_book").port},
        "front": {"host": "127.0.0.1", "port": deployment.component("front").port},
    }
    assert written["authRequired"] is True
    assert Path(written["logDirectory"]) == trading.log_dir
    assert trading.log_dir.is_relative_to(tmp_path / "work")
    assert Path(written["dataFilePath"]) == deployment.users_file
    assert read_users_file(deployment.users_file) == DEFAULT_USERS == deployment.users
    assert "users 5" in deployment.logs()
    assert "===== trading:" in deployment.logs()
    assert deployment.poll_dead() == []
    with pytest.raises(DeploymentError, match="no component of this deployment provides"):
        Deployment(_only_order_book(), tmp_path / "x").address("admin")


def test_stop_and_restart_on_same_ports(deployment: Deployment) -> None:
    before = {c.name: c.port for c in deployment.components}
    pids = {c.pid for c in deployment.components}
    codes = deployment.restart()
    assert codes == {"order_book": 0, "front": 0, "trading": 0}
    assert deployment.day == 2
    assert {c.name: c.port for c in deployment.components} == before
    assert not pids & {c.pid for c in deployment.components}
    for comp in deployment.components:
        assert _can_connect(comp.address)
    assert "day 2" in deployment.component("front").stderr_path.read_text(encoding="utf-8")
    assert deployment.stop() == {"order_book": 0, "front": 0, "trading": 0}
    assert deployment.exit_codes == {"order_book": 0, "front": 0, "trading": 0}
    assert not deployment.running
    assert not _can_connect(deployment.address("info"))


def test_explicit_command_hook(fake_bin: Path, tmp_path: Path) -> None:
    def command(spec: ComponentSpec) -> list[str]:
        return [sys.executable, str(fake_bin / spec.package_name)]

    with Deployment(_only_order_book(), tmp_path / "work", command=command) as running:
        assert _can_connect(running.address("order_book"))
    assert running.exit_codes == {"order_book": 0}


def test_component_that_never_listens(fake_bin: Path, tmp_path: Path) -> None:
    deployment = Deployment(_fake_specs(front="silent"), tmp_path / "work")
    begin = time.monotonic()
    with pytest.raises(DeploymentError) as info:
        deployment.start()
    elapsed = time.monotonic() - begin
    message = str(info.value)
    assert "component 'front' (fake-silent) did not accept connections" in message
    assert "within 2 s" in message
    assert "silent starting" in message  # the tail of its log
    assert 2.0 <= elapsed < 5.0
    assert deployment.component("order_book").poll() == 0  # stopped cleanly
    assert deployment.component("trading").process is None  # never started
    assert deployment.component("front").poll() is not None


def test_start_waits_until_an_optivex_component_says_it_is_ready(fake_bin: Path, tmp_path: Path) -> None:
    (spec,) = _only_order_book()
    notifying = ComponentSpec(
        spec.name, "optivex-fake-notify", spec.protocols, spec.auth_required, spec.config
    )
    with Deployment([notifying], tmp_path / "work") as running:
        (log,) = running.component("order_book").log_files()
        assert log.read_text().splitlines()[-1] == "ready"  # written just before READY=1
        assert "NOTIFY_SOCKET" not in running._env


def test_an_optivex_component_that_stops_before_it_is_ready(fake_bin: Path, tmp_path: Path) -> None:
    (spec,) = _only_order_book()
    mute = ComponentSpec(spec.name, "optivex-fake-mute", spec.protocols, spec.auth_required, spec.config)
    with pytest.raises(DeploymentError) as info:
        Deployment([mute], tmp_path / "work").start()
    assert "'order_book' (optivex-fake-mute) stopped with exit status 3 before it was ready to serve" in str(
        info.value
    )


def test_component_that_exits_at_once(fake_bin: Path, tmp_path: Path) -> None:
    deployment = Deployment(_fake_specs(ob="crash"), tmp_path / "work")
    begin = time.monotonic()
    with pytest.raises(DeploymentError) as info:
        deployment.start()
    message = str(info.value)
    assert "component 'order_book' (fake-crash) stopped with exit status 1" in message
    assert "boom: this component refuses to start" in message
    assert time.monotonic() - begin < 1.5
    assert deployment.component("front").process is None


def test_kill_after_stop_timeout(fake_bin: Path, tmp_path: Path) -> None:
    deployment = Deployment(_fake_specs(trading="stubborn"), tmp_path / "work", stop_timeout=0.5)
    with deployment:
        pass
    assert deployment.exit_codes == {"order_book": 0, "front": 0, "trading": -signal.SIGKILL}
    assert deployment.component("trading").killed


def test_poll_dead(deployment: Deployment) -> None:
    front = deployment.component("front")
    assert front.pid is not None
    os.kill(front.pid, signal.SIGKILL)
    assert front.process is not None
    front.process.wait(3)  # the kill has landed; poll_dead must now report it
    assert deployment.poll_dead() == [front]
    assert front.returncode == -signal.SIGKILL
    assert deployment.stop()["front"] == -signal.SIGKILL


def test_retry_when_the_port_was_taken(
    fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = socket.socket()  # bound without SO_REUSEADDR: the component's bind fails
    squatter.bind(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    real_pick = runner.pick_free_ports
    calls: list[int] = []

    def pick(count: int, host: str = "127.0.0.1") -> list[int]:
        calls.append(count)
        ports = real_pick(count, host)
        return [taken, *ports[1:]] if len(calls) == 1 else ports

    monkeypatch.setattr(runner, "pick_free_ports", pick)
    try:
        with Deployment(_fake_specs(), tmp_path / "work") as deployment:
            order_book = deployment.component("order_book")
            assert order_book.port != taken
            assert _can_connect(order_book.address)
            front_config = json.loads(deployment.component("front").config_path.read_text(encoding="utf-8"))
            assert front_config["connectTo"]["order_book"]["port"] == order_book.port
            assert "retrying on port" in order_book.stderr_path.read_text(encoding="utf-8")
    finally:
        squatter.close()
    assert calls == [3, 1]


def test_fixed_ports(fake_bin: Path, tmp_path: Path) -> None:
    ports = runner.pick_free_ports(3)
    specs = []
    for spec, port in zip(_fake_specs(), ports, strict=True):
        config = dict(spec.config, listenOn={"host": "0.0.0.0", "port": port})
        specs.append(ComponentSpec(spec.name, spec.package_name, spec.protocols, spec.auth_required, config))
    with Deployment(specs, tmp_path / "work", ports="fixed") as deployment:
        assert {c.name: c.port for c in deployment.components} == {
            s.name: p for s, p in zip(specs, ports, strict=True)
        }
        front_port = deployment.component("front").port
        assert deployment.address("info") == ("127.0.0.1", front_port)
        assert deployment.component("trading").config["connectTo"]["front"] == {
            "host": "127.0.0.1",
            "port": front_port,
        }
        assert deployment.component("trading").config["listenOn"]["host"] == "0.0.0.0"
        with pytest.raises(DeploymentError, match="already in use"):
            Deployment(specs, tmp_path / "other", ports="fixed").start()
    order_book = next(s for s in specs if s.name == "order_book")
    same = [order_book, ComponentSpec("b", "fake-ok", ("admin",), True, order_book.config)]
    with pytest.raises(DeploymentError, match="both listen on"):
        Deployment(same, tmp_path / "work", ports="fixed")


def test_start_suite(fake_bin: Path, tmp_path: Path) -> None:
    data = _deployment(
        _entry("trading", ["execution", "risk_limits"], ("order_book",), package="fake-ok"),
        _entry("front", ["admin", "info"], ("order_book",), package="fake-ok"),
        _entry("order_book", ["order_book"], package="fake-ok"),
        tests=list(SUITES),
    )
    path = _write(tmp_path / "deployment.json", data)
    with start_suite("info", tmp_path / "work", path) as deployment:
        assert [c.name for c in deployment.components] == ["order_book", "front"]
        assert _can_connect(deployment.address("info"))
    assert deployment.exit_codes == {"order_book": 0, "front": 0}


# the CLI -----------------------------------------------------------------------


def test_cli_help_lists_fixed_ports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as info:
        cli.main(["up", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for spec in load_deployment(ROOT_DEPLOYMENT).components:
        listen = spec.config["listenOn"]
        assert f"{listen['host']}:{listen['port']}" in out
    assert cli.main([]) == 2


def _up(tmp_path: Path, fake_bin: Path, front: str) -> tuple[subprocess.Popen[str], Path]:
    ports = runner.pick_free_ports(3)
    entries = [
        _entry(
            "order_book", ["order_book"], package="fake-ok", listenOn={"host": "127.0.0.1", "port": ports[0]}
        ),
        _entry(
            "front",
            ["admin", "info"],
            ("order_book",),
            package=f"fake-{front}",
            listenOn={"host": "127.0.0.1", "port": ports[1]},
        ),
    ]
    path = _write(tmp_path / "deployment.json", _deployment(*entries))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "optivex.cli",
            "up",
            "--deployment",
            str(path),
            "--dir",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    return process, tmp_path / "run"


def test_cli_up_stops_cleanly_on_sigterm(fake_bin: Path, tmp_path: Path) -> None:
    process, run_dir = _up(tmp_path, fake_bin, "ok")
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Running."):
            break
    out = "".join(lines)
    assert "alice" in out and "password 'alice'" in out
    assert str(run_dir / "users.json") in out
    assert "listening on 127.0.0.1:" in out
    process.send_signal(signal.SIGTERM)
    rest, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Stopped." in rest
    assert read_users_file(run_dir / "users.json") == DEFAULT_USERS


def test_cli_up_reports_a_dead_component(fake_bin: Path, tmp_path: Path) -> None:
    process, _ = _up(tmp_path, fake_bin, "die")
    _, err = process.communicate(timeout=15)
    assert process.returncode == 1
    assert re.search(r"component 'front' \(fake-die, pid \d+\) died: exit status 3\n", err), err
    assert "dying on purpose" in err
    assert "stopping the other components" in err
