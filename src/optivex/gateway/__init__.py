"""The gateway: the execution and risk_limits protocols on one port (sections 6 and 7 of the contract).

- ``component``: ``GatewayComponent`` (``optivex-gateway``): orders by symbol for the logged-in user,
  checked against the user's limits (``optivex.risk``) and forwarded to the order book over the
  connection of its feed, whose mirror gives symbols, order ownership and outstanding quantities.
"""

from optivex.app.launch import launch


def main() -> None:
    """The console script: listens at once, then imports the component (optivex.app.launch)."""
    launch("gateway", "optivex.gateway.component:GatewayComponent", __doc__)
