"""The info component: public market data from the order book's feed (section 5 of the contract).

- ``market``: pure; the published state of every instrument and what each
  feed change publishes (trades, top of book, depth), at consistent points only.
- ``fanout``: pure; encoded frames to subscribers, book messages conflated for
  slow readers, trades never.
- ``component``: ``InfoComponent``, the protocol over both (``optivex-info``).
"""

from optivex.app.launch import launch


def main() -> None:
    """The console script: listens at once, then imports the component (optivex.app.launch)."""
    launch("info", "optivex.info.component:InfoComponent", __doc__)
