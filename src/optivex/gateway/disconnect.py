"""Cancel-on-disconnect (execution.proto 60/61): the orders each opted-in connection placed or amended.

Pure bookkeeping; the component sends the cancels. A connection's
``CancelOnDisconnect`` collects the order ids of its insert and amend
responses (the order book's ids: the order may not be on the feed yet). When
the connection closes, ``closed()`` hands back the ids to cancel with one
CancelOrdersRequest (reason CANCEL_DISCONNECT: the order book skips ids that
no longer rest); a response that arrives after that (an insert in flight
when it closed) is cancelled on its own (``placed`` returns True).

Filled and cancelled orders are not removed one by one (that would cost
every feed change a lookup): when the set has doubled since it was last
pruned, the ids the mirror no longer has resting are dropped, so memory stays
proportional to the connection's resting orders and the work per insert is
amortised O(1). An id is kept while the mirror has not seen its order yet:
the order book answers a request before it sends that order's events, and
every earlier response's events come before the current one, so only the id
being added can be missing from the mirror for that reason; it is added after
the pruning.
"""

from __future__ import annotations

from collections.abc import Callable

PRUNE_AT_LEAST = 64
"""Ids a connection may collect before the first pruning."""


class CancelOnDisconnect:
    """The orders one connection placed or amended since it enabled cancel-on-disconnect."""

    __slots__ = ("_prune_at", "day", "ids", "is_closed", "user")

    def __init__(self, user: str, day: int) -> None:
        self.user = user
        self.day = day
        """The gateway's day counter when the ids were collected (a new day's ids are other orders)."""
        self.ids: set[int] = set()
        self.is_closed = False
        self._prune_at = PRUNE_AT_LEAST

    def placed(self, order_id: int, resting: Callable[[int], bool]) -> bool:
        """An insert or amend of this connection answered with `order_id`: True when the connection has
        closed already (cancel that order now), else it is remembered. `resting(id)` says whether the
        mirror still has an order resting (for the pruning)."""
        if self.is_closed:
            return True
        ids = self.ids
        if len(ids) >= self._prune_at:
            self.ids = ids = {i for i in ids if resting(i)}
            self._prune_at = max(PRUNE_AT_LEAST, 2 * len(ids))
        ids.add(order_id)
        return False

    def replaced(self, old_order_id: int, new_order_id: int) -> None:
        """An amend (from any connection of the user) replaced one of the orders: follow it."""
        ids = self.ids
        if old_order_id in ids:
            ids.discard(old_order_id)
            ids.add(new_order_id)

    def closed(self) -> list[int]:
        """The connection closed: the ids to cancel, ascending; later responses are cancelled as they come."""
        self.is_closed = True
        ids = sorted(self.ids)
        self.ids = set()
        return ids
