"""Section 8 of the contract: starting, refusing to start, logging, stopping, restarting, deploying.

The components are run as their console scripts (`<packageName> -c <config.json>`), directly with
subprocess or through the deployment runner.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from optivex.client import ConnectionClosed, RequestFailed
from optivex.deploy import Deployment, components_for_suite, console_script, load_deployment
from optivex.deploy.runner import pick_free_ports
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.schemas import COMPONENT_CONFIG, DEPLOYMENT_CONFIG, load_schema
from optivex.wire import encode_frame

from .helpers import BUY, SELL, Exchange, SyncClient, insert, until_barrier

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_SCHEMAS = ROOT.parent / "shared" / "contract" / "schemas"
SCRIPTS = ("optivex-order-book", "optivex-admin")
REFUSAL_TIMEOUT = 5.0
"""A refused start must end within a few seconds."""
STOP_LIMIT = 2.0
"""Seconds a component has to exit with status 0 after SIGINT or SIGTERM (section 8)."""

Json = dict[str, Any]


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def good_users(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "people.json", {"users": [{"username": "zed", "password": "pw", "full_name": "Zed"}]}
    )


def good_config(script: str, tmp_path: Path, users: Path) -> Json:
    """A valid config for `script` on a free port (admin's order book is never reached: refused first)."""
    port, other = pick_free_ports(2)
    config: Json = {
        "logLevel": "INFO",
        "logDirectory": str(tmp_path / "logs"),
        "listenOn": {"host": "127.0.0.1", "port": port},
        "dataFilePath": str(users),
        "authRequired": script != "optivex-order-book",
    }
    if script == "optivex-admin":
        config["connectTo"] = {"order_book": {"host": "127.0.0.1", "port": other}}
    return config


def run_refused(script: str, config_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a component that must refuse to start; it must exit non-zero within a few seconds."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [console_script(script), "-c", str(config_path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=REFUSAL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{script} did not exit within {REFUSAL_TIMEOUT:g} s") from None
    assert result.returncode != 0, f"{script} exited with 0 on a bad config; stderr: {result.stderr}"
    assert time.monotonic() - started < REFUSAL_TIMEOUT
    return result


def assert_one_line_naming(stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"


# ---------------------------------------------------------------- refusing to start


def _delete(*path: str) -> Callable[[Json], None]:
    def mutate(config: Json) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _set(value: object, *path: str) -> Callable[[Json], None]:
    def mutate(config: Json) -> None:
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


CONFIG_CASES: dict[str, tuple[Callable[[Json], None], str]] = {
    "no logLevel": (_delete("logLevel"), "logLevel"),
    "no logDirectory": (_delete("logDirectory"), "logDirectory"),
    "no listenOn": (_delete("listenOn"), "listenOn"),
    "no dataFilePath": (_delete("dataFilePath"), "dataFilePath"),
    "no listenOn.port": (_delete("listenOn", "port"), "port"),
    "port as a string": (_set("8080", "listenOn", "port"), "port"),
    "port above 65535": (_set(65536, "listenOn", "port"), "port"),
    "negative port": (_set(-1, "listenOn", "port"), "port"),
    "empty host": (_set("", "listenOn", "host"), "host"),
    "authRequired as a string": (_set("yes", "authRequired"), "authRequired"),
    "bad logLevel": (_set("VERBOSE", "logLevel"), "logLevel"),
    "lower-case logLevel": (_set("info", "logLevel"), "logLevel"),
}
OPTIVEX_KEY_CASES: dict[str, tuple[Callable[[Json], None], str]] = {
    "negative busyPollMicroseconds": (_set(-1, "busyPollMicroseconds"), "busyPollMicroseconds"),
    "busyPollMicroseconds as a string": (_set("200", "busyPollMicroseconds"), "busyPollMicroseconds"),
    "maxUnsentBytes below 64 KiB": (_set(1000, "maxUnsentBytes"), "maxUnsentBytes"),
    "admins not a list": (_set("admin", "admins"), "admins"),
}
"""Keys of Optivex's own (README, "Configuration keys"): the contract's schema allows them, we check them."""


@pytest.mark.parametrize("case", [*CONFIG_CASES, *OPTIVEX_KEY_CASES])
@pytest.mark.parametrize("script", SCRIPTS)
def test_an_invalid_config_is_refused(tmp_path: Path, script: str, case: str) -> None:
    contract_case = case in CONFIG_CASES
    mutate, field = CONFIG_CASES[case] if contract_case else OPTIVEX_KEY_CASES[case]
    config = good_config(script, tmp_path, good_users(tmp_path))
    mutate(config)
    contract = jsonschema.Draft202012Validator(load_schema(COMPONENT_CONFIG))
    assert contract.is_valid(config) != contract_case  # the case is what it claims to be
    path = write_json(tmp_path / "config.json", config)
    result = run_refused(script, path)
    assert_one_line_naming(result.stderr, field)


@pytest.mark.parametrize("content", ["", '{"logLevel": "INFO",}', "[]"], ids=repr)
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_config_that_is_no_json_object_is_refused(tmp_path: Path, script: str, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")
    result = run_refused(script, path)
    assert_one_line_naming(result.stderr, "config.json")


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_missing_config_file_is_refused(tmp_path: Path, script: str) -> None:
    path = tmp_path / "no-such-config.json"
    result = run_refused(script, path)
    assert_one_line_naming(result.stderr, "no-such-config.json")
    result = run_refused(script, tmp_path)  # a directory
    assert_one_line_naming(result.stderr, str(tmp_path))


USER_FILE_CASES: dict[str, tuple[str | None, str]] = {
    "missing": (None, "people.json"),
    "not JSON": ("{users: []", "people.json"),
    "no users key": ("{}", "users"),
    "users not an array": ('{"users": "zed"}', "users"),
    "entry without password": ('{"users": [{"username": "zed", "full_name": "Zed"}]}', "password"),
    "empty username": ('{"users": [{"username": "", "password": "pw", "full_name": "Z"}]}', "username"),
    "username not a string": ('{"users": [{"username": 7, "password": "pw", "full_name": "Z"}]}', "username"),
    "bare array, invalid entry": ('[{"username": "zed", "password": "pw"}]', "full_name"),
}


@pytest.mark.parametrize("case", USER_FILE_CASES)
@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unusable_user_data_file_is_refused(tmp_path: Path, script: str, case: str) -> None:
    content, word = USER_FILE_CASES[case]
    users = tmp_path / "people.json"
    if content is not None:
        users.write_text(content, encoding="utf-8")
    path = write_json(tmp_path / "config.json", good_config(script, tmp_path, users))
    result = run_refused(script, path)
    assert_one_line_naming(result.stderr, word)


def test_a_user_data_file_as_a_bare_array_is_accepted(tmp_path: Path) -> None:
    users = write_json(
        tmp_path / "people.json",
        [
            {"username": "zed", "password": "pw", "full_name": "Zed"},
            {"username": "amy", "password": "secret", "full_name": "Amy", "desk": "extra fields are fine"},
        ],
    )
    specs = components_for_suite(load_deployment(ROOT / "deployment_config.json"), "order_book")
    with Deployment(specs, tmp_path / "run", users_file=users) as deployment, Exchange(deployment) as ex:
        with pytest.raises(RequestFailed):
            ex.connect("admin", "amy", "amy")  # wrong password
        with pytest.raises(RequestFailed):
            ex.connect("admin", "admin", "admin")  # not in this file
        ex.connect("admin", "zed", "pw")
        admin = ex.connect("admin", "amy", "secret")
        response = admin.request(
            admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01)
        )
        assert isinstance(response, admin_pb2.CreateInstrumentResponse)
        assert (response.error_message, response.order_book_id) == ("", 1)
        assert ex.order_book("anyone").receive_as(ob.OnOrderBookCreated).order_book_id == 1
        assert deployment.stop() == {"order_book": 0, "admin": 0}


# ---------------------------------------------------------------- logging


@pytest.mark.parametrize("protocol", ["order_book", "admin"])
def test_a_component_logs_to_a_file_in_its_log_directory(exchange: Exchange, protocol: str) -> None:
    component = exchange.deployment.provider(protocol)
    files = component.log_files()
    assert files, f"no log file in {component.log_dir}"
    assert all(f.parent == component.log_dir for f in files)
    assert any(f.stat().st_size > 0 for f in files), "the log files are empty"
    sizes = {f: f.stat().st_size for f in files}
    # An ignored frame is logged (section 1): by the time a later request is answered.
    client = exchange.connect(protocol)
    client.send_raw(encode_frame(4242, b"\x01\x02"))
    login = client.request(common_pb2.LoginRequest(username="alice", password="alice"))
    assert isinstance(login, common_pb2.LoginResponse)
    grown = [f for f in component.log_files() if f.stat().st_size > sizes.get(f, 0)]
    assert grown, "nothing was logged about the ignored frame"
    assert any("4242" in f.read_text(encoding="utf-8", errors="replace") for f in grown)


def test_the_order_book_busy_polls_unless_configured_not_to(tmp_path: Path) -> None:
    spec = load_deployment(ROOT / "deployment_config.json").provider("order_book")
    for polling, expected in ((None, "busy polling 200 us after each read"), (0, "no busy polling")):
        config = dict(spec.config)
        config.pop("busyPollMicroseconds", None)
        if polling is not None:
            config["busyPollMicroseconds"] = polling
        spec_here = dataclasses.replace(spec, config=config)
        with Deployment([spec_here], tmp_path / f"run{polling}") as deployment, Exchange(deployment) as ex:
            created = ex.order_book().request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
            assert isinstance(created, ob.CreateOrderBookResponse)
            log_files = deployment.provider("order_book").log_files()
            assert any(expected in f.read_text(encoding="utf-8") for f in log_files)


def test_connections_past_max_connections_are_closed_and_the_others_served(tmp_path: Path) -> None:
    spec = load_deployment(ROOT / "deployment_config.json").provider("order_book")
    spec_here = spec.derive(config={"maxConnections": 2})
    with Deployment([spec_here], tmp_path / "run") as deployment, Exchange(deployment) as ex:
        first, second = ex.order_book(), ex.order_book()
        for client in (first, second):
            ok = client.request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
            assert isinstance(ok, ob.CreateOrderBookResponse)
        third = ex.order_book()
        assert third.wait_closed(), "a connection past maxConnections stayed open"
        assert first.request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
        first.close()
        # Once the order book has seen the close, a new connection is served again.
        deadline = time.monotonic() + 3.0
        while True:
            try:
                assert ex.order_book().request(ob.CreateOrderBookRequest(tick_size=0.01), check=True)
                break
            except ConnectionClosed:  # refused: the order book had not seen the close yet
                assert time.monotonic() < deadline, "no connection served after one of the two closed"
        logs = "".join(f.read_text(encoding="utf-8") for f in deployment.provider("order_book").log_files())
        assert "refused a connection from 127.0.0.1" in logs and "maxConnections 2" in logs


# ---------------------------------------------------------------- stopping


def _busy_day(exchange: Exchange) -> list[SyncClient]:
    """Clients of every kind connected to both components; returns those that should see the close."""
    book = exchange.create_instrument("ABC")
    trader = exchange.order_book("trader")
    for i in range(20):
        insert(trader, book, BUY if i % 2 else SELL, 10.0 + 0.01 * (i % 3), 1 + i)
    admin = exchange.admin("alice")
    idle_admin = exchange.connect("admin")  # connected, never logged in
    silent = exchange.order_book()  # requests only
    # mid-frame on both components
    half_admin = exchange.connect("admin")
    half_admin.send_raw(encode_frame(0, common_pb2.LoginRequest(username="bob").SerializeToString())[:7])
    half_book = exchange.order_book("half")
    half_book.send_raw(struct.pack(">II", 100, ob.INSERT_ORDER_REQUEST) + b"\x08")
    exchange.order_book("stalled")  # logged in, never reads what the events keep sending it
    for i in range(200):
        insert(silent, book, BUY, 9.0, 1 + i)
    return [trader, admin, idle_admin, silent, half_admin, half_book]


def _assert_closed(clients: list[SyncClient]) -> None:
    for client in clients:
        assert client.wait_closed(), "a client's connection stayed open after the component stopped"


def test_sigterm_with_clients_connected_exits_0_within_2_seconds(exchange: Exchange) -> None:
    clients = _busy_day(exchange)
    started = time.monotonic()
    codes = exchange.deployment.stop()  # SIGTERM to each, killed after 3 s
    elapsed = time.monotonic() - started
    assert codes == {"order_book": 0, "admin": 0}
    assert not any(c.killed for c in exchange.deployment.components)
    assert elapsed < STOP_LIMIT  # both were signalled at once
    _assert_closed(clients)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_each_component_within_2_seconds(exchange: Exchange, sig: signal.Signals) -> None:
    clients = _busy_day(exchange)
    processes = {c.name: c.process for c in exchange.deployment.components}
    started = time.monotonic()
    for process in processes.values():
        assert process is not None
        process.send_signal(sig)
    for name, process in processes.items():
        assert process is not None
        try:
            code = process.wait(max(0.0, STOP_LIMIT - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running {STOP_LIMIT:g} s after {sig.name}") from None
        assert code == 0, f"{name} exited with {code} on {sig.name}"
    _assert_closed(clients)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_signal_as_soon_as_it_accepts_still_exits_0(
    tmp_path: Path, script: str, sig: signal.Signals
) -> None:
    """A component listens before its imports are done (app.launch): a signal in that window is
    honoured once it runs, with status 0, not by the signal's default action."""
    config = good_config(script, tmp_path, good_users(tmp_path))
    port = config["listenOn"]["port"]
    config_path = write_json(tmp_path / "config.json", config)
    process = subprocess.Popen(
        [console_script(script), "-c", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STOP_LIMIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{script} did not accept within {STOP_LIMIT:g} s"
                time.sleep(0.005)
        process.send_signal(sig)
        try:
            _, stderr = process.communicate(timeout=STOP_LIMIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{script} still running {STOP_LIMIT:g} s after {sig.name}") from None
        assert process.returncode == 0, f"{script} exited with {process.returncode} on {sig.name}: {stderr}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_components_stop_cleanly_in_either_order(exchange: Exchange) -> None:
    """The order book stops first: admin survives (answering with errors), then stops with 0 as well."""
    clients = _busy_day(exchange)
    book_process = exchange.deployment.component("order_book").process
    admin_process = exchange.deployment.component("admin").process
    assert book_process is not None and admin_process is not None
    book_process.terminate()
    assert book_process.wait(STOP_LIMIT) == 0
    admin = exchange.admin("carol")
    response = admin.request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="LATE"), tick_size=0.01)
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse) and response.error_message
    assert admin_process.poll() is None
    started = time.monotonic()
    admin_process.terminate()
    assert admin_process.wait(STOP_LIMIT) == 0
    assert time.monotonic() - started < STOP_LIMIT
    _assert_closed([*clients, admin])


# ---------------------------------------------------------------- restarting


def test_a_restart_on_the_same_ports_is_a_new_day(exchange: Exchange) -> None:
    deployment = exchange.deployment
    addresses = {c.name: c.address for c in deployment.components}
    clients = _busy_day(exchange)
    assert exchange.create_instrument("DEF") == 2
    # stop, then start again at once on the ports just freed (a component not listening within 2 s
    # fails restart())
    codes = deployment.restart()
    assert codes == {"order_book": 0, "admin": 0}
    assert {c.name: c.address for c in deployment.components} == addresses
    _assert_closed(clients)
    # a new day: no books, no orders; ids start again
    watcher = exchange.order_book("watcher")
    assert until_barrier(watcher) == []
    admin = exchange.admin()
    response = admin.request(
        admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.01)
    )
    assert isinstance(response, admin_pb2.CreateInstrumentResponse)
    assert (response.error_message, response.order_book_id) == ("", 1)
    client = exchange.order_book()
    assert insert(client, 1, SELL, 10.0, 1).order_id == 1
    taking = insert(client, 1, BUY, 10.0, 1)
    assert (taking.order_id, list(taking.trade_ids)) == (2, [1])
    assert insert(client, 2, BUY, 10.0, 1).error_message  # yesterday's second book is gone
    assert watcher.receive_as(ob.OnOrderBookCreated).order_book_id == 1


# ---------------------------------------------------------------- the deployment config


def test_the_deployment_config_is_valid_and_lists_the_system_tests() -> None:
    data = json.loads((ROOT / "deployment_config.json").read_text(encoding="utf-8"))
    schemas = [load_schema(DEPLOYMENT_CONFIG)]
    contract_schema = CONTRACT_SCHEMAS / "deployment_config_schema.json"
    if contract_schema.is_file():  # beside a checkout, the contract's own copy too
        schemas.append(json.loads(contract_schema.read_text(encoding="utf-8")))
        assert schemas[1] == schemas[0], "the packaged deployment schema differs from the contract's"
    for schema in schemas:
        jsonschema.Draft202012Validator(schema).validate(data)
    assert "order_book" in data["systemTests"]
    config = load_deployment(ROOT / "deployment_config.json")  # the semantic rules too
    assert config.system_tests == tuple(data["systemTests"])
    component_schema = load_schema(COMPONENT_CONFIG)
    for component in data["components"]:
        jsonschema.validate(component["config"], component_schema)
        assert Path(console_script(component["packageName"])).is_file()
    providers = [p for c in data["components"] for p in c["protocols"]]
    assert len(providers) == len(set(providers)), "a protocol with two providers"
    order_book = [c for c in data["components"] if "order_book" in c["protocols"]]
    assert len(order_book) == 1 and order_book[0]["protocols"] == ["order_book"]
    assert order_book[0]["authRequired"] is False
