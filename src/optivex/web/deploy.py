"""The web component as an entry of a deployment (`optivex up --web PORT`, tests).

It is not listed in deployment_config.json (each protocol there has exactly
one provider, and it provides none): whoever wants it adds this entry to the
components it starts. The deployment runner rewrites its listenOn (unless
its ports are fixed), connectTo, logDirectory and dataFilePath like any
component's; it logs in to info as `username`, with that user's password in
the deployment's user data file.
"""

from __future__ import annotations

from typing import Any

from optivex.deploy.config import ComponentSpec

DEFAULT_PORT = 17180
"""The page's port in configs/web.json."""


def web_component(
    username: str,
    port: int = DEFAULT_PORT,
    *,
    host: str = "127.0.0.1",
    info: str = "info",
    data_file: str = "run/users.json",
    log_directory: str = "run/logs",
    **config: Any,
) -> ComponentSpec:
    """The entry of optivex-web serving on host:port, following the component named `info`.

    `config` adds or replaces keys of its config (web_config_schema.json: maxBrowsers, ...).
    """
    return ComponentSpec(
        name="web",
        package_name="optivex-web",
        protocols=(),
        auth_required=True,
        config={
            "logLevel": "INFO",
            "logDirectory": log_directory,
            "listenOn": {"host": host, "port": port},
            "connectTo": {info: {"host": "127.0.0.1", "port": 0}},
            "login": {"username": username},
            "dataFilePath": data_file,
            **config,
        },
    )
