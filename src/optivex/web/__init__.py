"""optivex-web: an optional web page for watching the market, a client of info.

- ``market`` (pure): every instrument's book and latest trades, and the
  JSON diff each browser lacks (coalescing by construction);
- ``follower``: one AsyncClient to info, its messages into the market,
  reconnecting when info restarts;
- ``server``: aiohttp: the page (``static/``, shipped in the wheel), and a
  WebSocket per browser, bounded;
- ``config``, ``component``: the config file and the console script.
"""
