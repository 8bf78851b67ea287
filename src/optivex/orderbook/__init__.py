"""The order-book component: every book of the day, the only place orders match."""

from optivex.app.launch import launch


def main() -> None:
    """The console script: listens at once, then imports the component (optivex.app.launch)."""
    launch("order-book", "optivex.orderbook.component:OrderBookComponent", __doc__)
