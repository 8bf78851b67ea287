"""`optivex-web -c config.json`: the web page for watching the market, a client of info.

It listens first, as soon as its config is read and before the HTTP
library is even imported (connections wait in the backlog meanwhile: a
deployment sees it ready at once), then follows info (``web.follower``) and
serves browsers (``web.server``); until info answers, the page says so.
An invalid config or user data file stops it at once with one line on
stderr naming the file and the field (exit status 2); an address it cannot
listen on with status 1; SIGINT or SIGTERM stops it with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

from optivex.app.config import Address, ConfigError
from optivex.app.launch import new_event_loop, notify_ready
from optivex.web.config import WebConfig, load_web_config

NAME = "optivex-web"


def setup_logging(config: WebConfig) -> logging.Logger:
    """Log to `<logDirectory>/web-<port>.log` and to stderr, at the configured level."""
    log_dir = config.log_directory
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_dir / f"web-{config.listen_on.port}.log", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write logs to {log_dir}: {exc.strerror or exc}") from exc
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger = logging.getLogger("optivex.web")
    logger.setLevel(config.log_level)
    logger.propagate = False
    for handler in (file_handler, logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def listen(address: Address) -> socket.socket:
    """A listening TCP socket on `address` (OSError if it cannot be had)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    return socket.create_server((address.host, address.port), family=family, backlog=128)


async def serve(
    config: WebConfig, log: logging.Logger, sock: socket.socket, stopping: asyncio.Event | None = None
) -> None:
    """Serve on the listening `sock` until SIGINT/SIGTERM (or until `stopping` is set, when given)."""
    from aiohttp import web  # imported once listening (see the module docstring)

    from optivex.web.follower import InfoFollower
    from optivex.web.market import Market
    from optivex.web.server import WebServer

    loop = asyncio.get_running_loop()
    if stopping is None:
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
    market = Market(config.depth_levels, config.trades_shown, config.max_instruments)
    server = WebServer(market, log, max_browsers=config.max_browsers, browser_timeout=config.browser_timeout)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        follower = InfoFollower(
            market, config.info.host, config.info.port, config.username, config.password, log
        )
        follower.on_change.append(server.changed)
        follower.start()
        host, port = sock.getsockname()[:2]
        log.info(
            "%s listening on http://%s:%d/, following info at %s:%d",
            NAME,
            host,
            port,
            config.info.host,
            config.info.port,
        )
        notify_ready()
        await stopping.wait()
        log.info("%s stopping", NAME)
        await follower.stop()
    finally:
        await runner.cleanup()


def run(argv: list[str] | None = None) -> int:
    """The main: `optivex-web -c config.json`; returns the exit status."""
    parser = argparse.ArgumentParser(prog=NAME, description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("-c", "--config", required=True, type=Path, help="web config (JSON)")
    args = parser.parse_args(argv)
    try:
        config = load_web_config(args.config)
        log = setup_logging(config)
    except ConfigError as exc:
        print(f"{NAME}: {exc}", file=sys.stderr)
        return 2
    log.info("%s starting with config %s", NAME, args.config)
    try:
        sock = listen(config.listen_on)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(config, log, sock))
    except OSError as exc:
        log.error("cannot serve on %s:%d: %s", config.listen_on.host, config.listen_on.port, exc)
        return 1
    log.info("%s stopped", NAME)
    return 0


def main() -> None:
    sys.exit(run())
