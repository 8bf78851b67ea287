"""The SDK's exceptions: each refusal carries the exchange's own error message.

OptivexError
├── RequestRejected          the exchange answered with an error (``message``: its text)
│   ├── OrderRejected        an insert, amend or cancel refused (price, quantity, ownership, FOK ...)
│   │   └── RiskLimitBreached  a pre-trade risk limit; ``limit`` is its proto field name
│   ├── UnknownInstrument    a symbol the exchange does not know (today)
│   ├── NotLoggedIn          the exchange says the connection is not logged in
│   ├── LoginRefused         a wrong username or password
│   └── ExchangeUnavailable  the order book behind the component is unreachable
├── ConnectionLost           the SDK's connection is down (it is reconnecting), or dropped mid-request
└── ExchangeTimeout          no answer within the SDK's timeout (also a TimeoutError)
"""

from __future__ import annotations

import re

from optivex.client.model import ComponentName

_RISK = re.compile(r"risk limit (\w+) breached")


class OptivexError(Exception):
    """Every error the SDK raises."""


class RequestRejected(OptivexError):
    """The exchange refused a request; `message` is its error_message, word for word."""

    def __init__(self, message: str, request: str = "") -> None:
        self.message = message
        self.request = request
        """What was asked (e.g. "insert BUY 10 ABC @ 10.5"), for the exception's text."""
        super().__init__(f"{request}: {message}" if request else message)


class OrderRejected(RequestRejected):
    """An insert, amend or cancel the exchange refused."""


class RiskLimitBreached(OrderRejected):
    """An order refused by a pre-trade risk limit; `limit` names the limit's proto field
    (``max_outstanding_quantity``, ``message_rate_rolling_limit`` ...)."""

    def __init__(self, message: str, request: str = "", limit: str = "") -> None:
        super().__init__(message, request)
        self.limit = limit


class UnknownInstrument(RequestRejected):
    """A symbol the exchange does not know (never created, or created on an earlier day)."""


class NotLoggedIn(RequestRejected):
    """The exchange says the connection is not logged in."""


class LoginRefused(RequestRejected):
    """A login the exchange refused (unknown user, wrong password)."""


class ExchangeUnavailable(RequestRejected):
    """The component could not reach the order book; the request may not have been carried out."""


class ConnectionLost(OptivexError):
    """The SDK's connection to a component is down, or dropped before a request was answered (it may
    or may not have been carried out then). The SDK reconnects by itself (see `ConnectionEvent`)."""

    def __init__(self, component: ComponentName, detail: str) -> None:
        self.component = component
        self.detail = detail
        super().__init__(f"{component} connection lost: {detail}")


class ExchangeTimeout(OptivexError, TimeoutError):
    """No answer within the SDK's timeout; the request may or may not have been carried out."""


def rejection(message: str, request: str = "", order: bool = False) -> RequestRejected:
    """The typed exception for an exchange's error message (`order`: it answered an order request)."""
    risk = _RISK.match(message)
    if risk is not None:
        return RiskLimitBreached(message, request, risk.group(1))
    if message.startswith("unknown instrument"):
        return UnknownInstrument(message, request)
    if message.startswith("not logged in"):
        return NotLoggedIn(message, request)
    if message.startswith("order book ") and "carried out" in message:
        return ExchangeUnavailable(message, request)
    return OrderRejected(message, request) if order else RequestRejected(message, request)
