"""Pre-trade risk limits (contract section 7): the limit types and the pure engine that checks them.

Pure: no asyncio, no protobuf, no clock of its own (callers pass ``now``, seconds of
``time.monotonic()``). Quantities are lots, prices integer units of 0.0001, amounts
``price_units * quantity``.
"""

from optivex.risk.engine import HISTORY_SECONDS, Rejection, Reservation, RiskEngine
from optivex.risk.limits import (
    InstrumentLimits,
    Rolling,
    UserLimits,
    instrument_limits_error,
    user_limits_error,
)

__all__ = [
    "HISTORY_SECONDS",
    "InstrumentLimits",
    "Rejection",
    "Reservation",
    "RiskEngine",
    "Rolling",
    "UserLimits",
    "instrument_limits_error",
    "user_limits_error",
]
