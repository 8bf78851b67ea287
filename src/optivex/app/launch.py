"""How a component's process starts: listening first, then the imports, then saying it is ready.

A component must accept TCP connections within 2 seconds of its start (section 9 of the
contract), and importing asyncio, protobuf and a component's modules takes about half a second
on an idle machine, seconds on a loaded one. So each console script
(``optivex-gateway = "optivex.gateway:main"``) enters here through a module that imports nothing
heavy: `launch` reads ``listenOn`` from the config, binds and listens (the kernel completes
handshakes from then on and queues what clients send), and only then imports the component and
hands it the listening sockets. Whatever cannot be bound early (a config that cannot be read, a
port in use) is left to the component, which reports it as it always does.

Once serving, the component tells whoever started it that it is ready, by the systemd
notification protocol: a datagram ``READY=1`` to the Unix socket named by ``$NOTIFY_SOCKET``
(set by the deployment runner, or by systemd for a ``Type=notify`` service).

From the moment it listens a component may be told to stop: SIGINT or SIGTERM during the
imports is noted (`stop_requested`) and honoured as soon as the event loop runs, so the process
still closes its connections and exits with status 0, as section 8 asks, rather than dying of
the signal's default action.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
"""The environment variable naming the socket that `notify_ready` writes to (systemd's name)."""
READY_MESSAGE = b"READY=1"
LISTEN_BACKLOG = 1024
"""Connections the kernel queues for a component until it accepts them."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stop_requested: list[int] = []


def argument_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The command line of every component: ``NAME -c config.json``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-c", "--config", required=True, type=Path, help="component config (JSON)")
    return parser


def launch(prog: str, target: str, description: str | None = None, argv: list[str] | None = None) -> None:
    """The main of a component: listen on its config's ``listenOn``, then import `target`
    (``"package.module:Class"``) and run it on those sockets; exits with its status."""
    args = argument_parser(prog, description).parse_args(argv)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _note_stop)
    sockets = listen_early(args.config)
    module_name, _, class_name = target.partition(":")
    from optivex.app.component import run_component

    cls = getattr(importlib.import_module(module_name), class_name)
    sys.exit(run_component(cls, argv, sockets))


def _note_stop(signum: int, frame: object) -> None:
    _stop_requested.append(signum)


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM came before the component's event loop took these signals over."""
    return bool(_stop_requested)


def listen_early(config_path: Path) -> list[socket.socket]:
    """Sockets listening on the config's ``listenOn``, or none when that cannot be done yet: the
    component then binds (or reports why it cannot) after validating its config."""
    address = _listen_on(config_path)
    if address is None:
        return []
    host, port = address
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return []
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            # As asyncio's create_server: rebind at once a port a stopped component just used.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(LISTEN_BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        return []
    return sockets


def _listen_on(config_path: Path) -> tuple[str, int] | None:
    try:
        config: Any = json.loads(config_path.read_text(encoding="utf-8"))
        host, port = config["listenOn"]["host"], config["listenOn"]["port"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if type(port) is float and port.is_integer():  # JSON Schema's "integer" admits 17100.0 too
        port = int(port)
    if not isinstance(host, str) or type(port) is not int or not 0 <= port <= 65535:
        return None
    return host, port


def notify_ready() -> None:
    """Send ``READY=1`` to ``$NOTIFY_SOCKET`` when it is set (``@name``: Linux's abstract namespace)."""
    address = os.environ.get(NOTIFY_SOCKET_ENV)
    if not address or not hasattr(socket, "AF_UNIX"):
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(READY_MESSAGE, address)
    except OSError:
        pass  # whoever asked has gone; serving goes on


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed, else asyncio's."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
