"""Where a deployment's admin, info and gateway listen: `optivex up`'s fixed ports, or a deployment file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optivex.protocols import Protocol, protocol_for

LOCALHOST = "127.0.0.1"
ADMIN_PORT = 17101
INFO_PORT = 17102
GATEWAY_PORT = 17103
GATEWAY_PROTOCOL: Protocol = protocol_for(("execution", "risk_limits"))
"""The gateway's port carries both execution and risk_limits (one connection)."""

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Addresses:
    """(host, port) of each component the SDK talks to; the defaults are those of `optivex up`."""

    admin: Address = (LOCALHOST, ADMIN_PORT)
    info: Address = (LOCALHOST, INFO_PORT)
    gateway: Address = (LOCALHOST, GATEWAY_PORT)

    @classmethod
    def from_config(cls, path: str | Path) -> Addresses:
        """The addresses a deployment_config.json gives its admin, info and execution providers
        (a wildcard listen address is reached on the loopback). DeploymentError if the file is invalid."""
        from optivex.deploy.config import load_deployment
        from optivex.deploy.runner import connect_host

        config = load_deployment(path)

        def address(protocol: str) -> Address:
            listen = config.provider(protocol).config["listenOn"]
            return connect_host(str(listen["host"])), int(listen["port"])

        return cls(admin=address("admin"), info=address("info"), gateway=address("execution"))
