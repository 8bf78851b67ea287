"""Knowing that a started component serves: the receiving end of ``$NOTIFY_SOCKET`` (app.launch).

A component listens within milliseconds of its start and serves once its imports and config are
done; tests and `optivex up` want the latter. Each start gets its own datagram socket (Linux's
abstract namespace, else a file in a fresh temporary directory), named to the component by
``$NOTIFY_SOCKET``; the component sends ``READY=1`` there once it serves.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import socket
import sys
import tempfile

from optivex.app.launch import NOTIFY_SOCKET_ENV, READY_MESSAGE

__all__ = ["NOTIFY_SOCKET_ENV", "ReadyListener"]


class ReadyListener:
    """One component start's notification socket; `env_value` goes into its ``$NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: str | None = None
        if sys.platform.startswith("linux"):
            name = f"optivex-{os.getpid()}-{secrets.token_hex(8)}"
            self._sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            self._dir = tempfile.mkdtemp(prefix="optivex-")
            self.env_value = os.path.join(self._dir, "notify")
            self._sock.bind(self.env_value)
        self._sock.setblocking(False)
        self.ready = False

    def wait(self, timeout: float) -> bool:
        """Whether ``READY=1`` has arrived, waiting up to `timeout` seconds for it."""
        if self.ready:
            return True
        readable, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
        while readable:
            try:
                message = self._sock.recv(4096)
            except BlockingIOError:
                break
            if READY_MESSAGE in message.split(b"\n"):
                self.ready = True
                break
        return self.ready

    def close(self) -> None:
        self._sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
