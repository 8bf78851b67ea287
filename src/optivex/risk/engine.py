"""The risk engine: per-user outstanding and rolling figures, and the checks of section 7.

Pure and synchronous; ``now`` is passed in (seconds of time.monotonic(), never decreasing).
Integers throughout: quantities in lots, prices in units of 0.0001, amounts in
``price_units * quantity``.

Outstanding (resting) quantity and amount are kept per user and per (user, book id) from
the order book's own events (``order_added``, ``order_reduced``, ``reset``), plus the
reservations of inserts that passed ``check_insert`` and have not been seen on the feed
yet. A reservation counts until the feed applies that order (``placed`` then
``order_added``), or until it is released (the order book refused it, or the request
failed). So the check and the reservation are one step, and two concurrent inserts of
one user can never both slip under one limit.

``placed`` may come before or after the feed's ``order_added`` for that id: an order the
feed adds while one of its owner's reservations is pending is remembered (until none is
pending), so ``placed`` then drops the reservation instead of waiting. After ``reset``,
requests that were in flight must be released, not placed: the fresh mirror counts
whatever the order book accepted.

An amend (``check_amend``) that keeps priority reserves nothing: the feed's OrderAmended
lowers outstanding (the gateway passes it to ``order_reduced`` with the difference). One
that loses priority reserves its new order like an insert (placed under the new order id
the response gives); the old order counts until the feed shows it cancelled, so while the
amend is in flight outstanding overestimates, never under. The response's order id tells
the outcome: should the order book decide otherwise than the mirror predicted (a fill the
gateway had not seen yet), ``placed``/``settled`` correct the rolling windows.

Rolling windows (the message rate per user; accepted quantities and amounts per
(user, symbol)) are logs of (time, value) in time order with a running total of the
entries whose age is below the window. Entries are kept for ``max(window, history)``
seconds even while no limit (or a shorter one) applies, so a limit set or widened later
still sees what was sent in the last ``history`` seconds (HISTORY_SECONDS): the figures
are exact for any window up to that, whatever the order of Sets. Memory is bounded by
the request rate times that retention: about 50 bytes an insert (its request and its
accepted quantity and amount), e.g. 150 MB for one user sending 50,000 orders/s.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, MutableSequence
from typing import NamedTuple

from optivex.risk.limits import (
    InstrumentLimits,
    Rolling,
    UserLimits,
    instrument_limits_error,
    user_limits_error,
)
from optivex.units import format_amount

HISTORY_SECONDS = 60.0
"""How long rolling entries are kept while no limit that long applies (see the module docstring)."""

_COMPACT_AT = 4096
"""A log's list drops its expired prefix once that prefix has this many entries and is half the list."""

_PENDING, _PLACED, _SETTLED, _RELEASED = range(4)


class Rejection(NamedTuple):
    """A breached limit: ``field`` its proto field name; ``outstanding`` True when the figure may be stale.

    Stale state only overestimates outstanding figures: on such a rejection the caller may
    bring the feed up to date (barrier) and check again. Rolling and rate rejections are final.
    """

    field: str
    message: str
    outstanding: bool


class _Log:
    """Entries (time, value) in time order; ``total`` sums the values of entries at or after ``head``.

    Entries before ``head`` are older than ``window``; entries before ``start`` are past
    retention and dropped (physically once the prefix is long enough). ``base`` is how many
    entries were dropped physically, so an entry's sequence number stays valid. Times and
    values are machine arrays (16 bytes an entry); values turn into a list of ints only if
    one does not fit 64 bits (an amount of a huge price times a huge quantity).
    """

    __slots__ = ("base", "head", "start", "times", "total", "values", "window")

    def __init__(self) -> None:
        self.times = array("d")
        self.values: MutableSequence[int] = array("q")
        self.base = 0
        self.start = 0
        self.head = 0
        self.total = 0
        self.window = 0.0

    def advance(self, now: float, window: float, history: float) -> int:
        """The sum of the entries whose age at ``now`` is < ``window`` (window 0: nothing counts)."""
        times = self.times
        values = self.values
        head = self.head
        total = self.total
        if window != self.window:
            if window > self.window:
                start = self.start
                while head > start and now - times[head - 1] < window:
                    head -= 1
                    total += values[head]
            self.window = window
        n = len(times)
        while head < n and now - times[head] >= window:
            total -= values[head]
            head += 1
        self.total = total
        keep = window if window > history else history
        start = self.start
        while start < head and now - times[start] >= keep:
            start += 1
        if start >= _COMPACT_AT and 2 * start >= n:
            del times[:start]
            del values[:start]
            head -= start
            self.base += start
            start = 0
        self.head = head
        self.start = start
        return total

    def append(self, now: float, value: int) -> int:
        """Record an entry; returns its sequence number (for ``cancel``)."""
        self.times.append(now)
        try:
            self.values.append(value)
        except OverflowError:
            self.values = [*self.values, value]
        # Counted at once; the next advance drops it again if the window is 0.
        self.total += value
        return self.base + len(self.times) - 1

    def cancel(self, seq: int) -> None:
        """Remove an entry's value (it stays, as 0, so positions do not move)."""
        position = seq - self.base
        if position >= 0:
            if position >= self.head:
                self.total -= self.values[position]
            self.values[position] = 0

    def restore(self, seq: int, value: int) -> None:
        """Give an entry appended as 0 its value, as if appended with it (nothing once dropped)."""
        position = seq - self.base
        if position >= 0:
            try:
                self.values[position] = value
            except OverflowError:
                self.values = [*self.values]
                self.values[position] = value
            if position >= self.head:
                self.total += value


class _Out:
    """Outstanding quantity and amount (resting orders plus reservations)."""

    __slots__ = ("amount", "quantity")

    def __init__(self) -> None:
        self.quantity = 0
        self.amount = 0


class _User:
    __slots__ = (
        "early",
        "instruments",
        "limits",
        "max_quantity",
        "out",
        "pending",
        "rate",
        "rate_limit",
        "rate_window",
    )

    def __init__(self) -> None:
        self.limits: UserLimits | None = None
        self.max_quantity = 0
        self.rate_limit = 0
        self.rate_window = 0.0
        self.rate = _Log()
        self.out = _Out()
        # Reservations not yet placed nor released.
        self.pending = 0
        # Ids of the user's orders the feed added while some reservation was pending: an order
        # the feed shows before ``placed`` names it (then ``placed`` drops the reservation).
        self.early: set[int] = set()
        self.instruments: dict[str, InstrumentLimits] = {}


class _Instrument:
    __slots__ = (
        "amount_limit",
        "amount_window",
        "amounts",
        "max_amount",
        "max_quantity",
        "quantities",
        "quantity_limit",
        "quantity_window",
        "symbol",
    )

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.max_quantity = 0
        self.max_amount = 0
        self.quantity_limit = 0
        self.quantity_window = 0.0
        self.amount_limit = 0
        self.amount_window = 0.0
        self.quantities = _Log()
        self.amounts = _Log()


class Reservation:
    """What one accepted insert reserved (opaque to the gateway): hand it to ``placed`` or ``release``."""

    __slots__ = ("amount", "book", "book_key", "instrument", "order_id", "quantity", "seq", "state", "user")

    def __init__(
        self,
        user: _User,
        book_key: tuple[str, int],
        book: _Out,
        instrument: _Instrument,
        quantity: int,
        amount: int,
        seq: int,
    ) -> None:
        self.user = user
        self.book_key = book_key
        self.book = book
        self.instrument = instrument
        self.quantity = quantity
        self.amount = amount
        self.seq = seq
        self.state = _PENDING
        self.order_id = 0


class _AmendReservation(Reservation):
    """An accepted amend of order ``replaces``.

    ``keeps``: checked as keeping priority, so it reserved nothing and its rolling entries
    are 0 (``late_quantity``/``late_amount`` are what they become should the order book
    replace the order after all). Otherwise it reserved the new order as an insert does,
    and its rolling entries hold the new quantity and amount.
    """

    __slots__ = ("keeps", "late_amount", "late_quantity", "replaces")

    def __init__(
        self,
        user: _User,
        book_key: tuple[str, int],
        book: _Out,
        instrument: _Instrument,
        quantity: int,
        amount: int,
        seq: int,
        replaces: int,
        keeps: bool,
    ) -> None:
        super().__init__(
            user, book_key, book, instrument, 0 if keeps else quantity, 0 if keeps else amount, seq
        )
        self.replaces = replaces
        self.keeps = keeps
        self.late_quantity = quantity
        self.late_amount = amount


def _shift(user: _Out, book: _Out, quantity: int, amount: int) -> None:
    """Add to a user's and one of its books' outstanding figures (negative: take away)."""
    user.quantity += quantity
    user.amount += amount
    book.quantity += quantity
    book.amount += amount


def _figure(resting: int, old: int, amounts: bool = False) -> str:
    """The outstanding figure of a rejection: "N resting", or "N resting - M amended" for an amend."""
    show = format_amount if amounts else str
    return f"{show(resting)} resting" if not old else f"{show(resting)} resting - {show(old)} amended"


def _applied(rolling: Rolling | None) -> tuple[int, float]:
    """(limit, window) of a rolling limit as the checks use it: (0, 0.0) when it does not apply."""
    if rolling is not None and rolling.limit > 0:
        return rolling.limit, rolling.window
    return 0, 0.0


def _breach(
    field: str, figure: str, new: int, limit: int, symbol: str | None, amounts: bool = False
) -> Rejection:
    """The rejection of an insert: "risk limit F breached: <figure> + N new > L (user | instrument S)"."""
    shown_new, shown_limit = (format_amount(new), format_amount(limit)) if amounts else (new, limit)
    where = "user" if symbol is None else f"instrument {symbol}"
    return Rejection(
        field,
        f"risk limit {field} breached: {figure} + {shown_new} new > {shown_limit} ({where})",
        field.startswith("max_outstanding"),
    )


class RiskEngine:
    """Every user's limits, outstanding figures and rolling windows; the checks of section 7."""

    def __init__(self, history: float = HISTORY_SECONDS) -> None:
        self._history = history
        self._users: dict[str, _User] = {}
        self._books: dict[tuple[str, int], _Out] = {}
        self._instruments: dict[tuple[str, str], _Instrument] = {}
        self._placed: dict[int, Reservation] = {}
        self._pending: set[Reservation] = set()

    # -- limits ---------------------------------------------------------------------------

    def set_user_limits(self, user: str, limits: UserLimits) -> None:
        """Replace the user's limits as a whole (ValueError, naming the field, when invalid)."""
        error = user_limits_error(limits)
        if error is not None:
            raise ValueError(error)
        state = self._user(user)
        state.limits = limits
        state.max_quantity = limits.max_outstanding_quantity
        state.rate_limit, state.rate_window = _applied(limits.message_rate)

    def user_limits(self, user: str) -> UserLimits | None:
        """The user's limits as last set; None before any Set."""
        state = self._users.get(user)
        return None if state is None else state.limits

    def set_instrument_limits(self, user: str, symbol: str, limits: InstrumentLimits) -> None:
        """Replace the user's limits in one instrument as a whole (ValueError when invalid)."""
        error = instrument_limits_error(limits)
        if error is not None:
            raise ValueError(error)
        self._user(user).instruments[symbol] = limits
        state = self._instrument(user, symbol)
        state.max_quantity = limits.max_outstanding_quantity
        state.max_amount = limits.max_outstanding_amount
        state.quantity_limit, state.quantity_window = _applied(limits.order_quantity)
        state.amount_limit, state.amount_window = _applied(limits.order_amount)

    def instrument_limits(self, user: str) -> dict[str, InstrumentLimits]:
        """Every instrument the user set limits on (zero-valued ones included), by symbol."""
        state = self._users.get(user)
        return {} if state is None else dict(state.instruments)

    # -- checks ---------------------------------------------------------------------------

    def count_request(self, user: str, now: float) -> Rejection | None:
        """Check the message rate and count this execution request, unless the rate rejects it."""
        state = self._users.get(user) or self._user(user)
        rate = state.rate
        sent = rate.advance(now, state.rate_window, self._history)
        if state.rate_limit and sent >= state.rate_limit:
            return Rejection(
                "message_rate_rolling_limit",
                f"risk limit message_rate_rolling_limit breached: {sent} requests in the last "
                f"{state.rate_window:g} s, limit {state.rate_limit} (user)",
                False,
            )
        rate.append(now, 1)
        return None

    def check_insert(
        self, user: str, book_id: int, symbol: str, price: int, quantity: int, now: float
    ) -> Reservation | Rejection:
        """Check the user and instrument limits for an insert and, if none is breached, reserve it.

        Checks in section 7's order: user max_outstanding_quantity, then the instrument's
        max_outstanding_quantity, max_outstanding_amount, order_quantity_rolling_limit,
        order_amount_rolling_limit. The message rate is ``count_request``'s.
        """
        state = self._users.get(user) or self._user(user)
        book_key = (user, book_id)
        book = self._books.get(book_key) or self._book(user, book_id)
        instrument = self._instruments.get((user, symbol)) or self._instrument(user, symbol)
        amount = price * quantity
        rejection = self._limits_breached(state, book, instrument, symbol, quantity, amount, 0, 0, now)
        if rejection is not None:
            return rejection
        seq = instrument.quantities.append(now, quantity)
        instrument.amounts.append(now, amount)
        _shift(state.out, book, quantity, amount)
        reservation = Reservation(state, book_key, book, instrument, quantity, amount, seq)
        state.pending += 1
        self._pending.add(reservation)
        return reservation

    def check_amend(
        self,
        user: str,
        book_id: int,
        symbol: str,
        order_id: int,
        old_price: int,
        old_remaining: int,
        new_price: int,
        new_quantity: int,
        keeps_priority: bool,
        now: float,
    ) -> Reservation | Rejection:
        """Check an amend of the user's resting order ``order_id`` and, if no limit is breached, reserve it.

        ``old_price``/``old_remaining``: the order as the mirror shows it; ``new_price`` (the old
        one when unchanged) and ``new_quantity`` the amended order. ``keeps_priority`` must be
        the mirror's prediction, ``new_price == old_price and new_quantity < old_remaining``
        (ValueError otherwise).

        Keeping priority only lowers outstanding and adds nothing to the rolling windows: it
        is always accepted, reserves nothing, and the feed's OrderAmended lowers the figures
        (``order_reduced(owner, book_id, price, previous_quantity - quantity)``). Otherwise
        the checks are check_insert's, in its order and with its fields, the outstanding ones
        seeing the old order replaced by the new (resting - old + new, quantity and amount),
        the rolling ones the whole new quantity and amount; the reservation is the new order's,
        as an insert's (the old order counts until the feed shows it cancelled).

        Hand the reservation to ``placed(reservation, response.order_id)``, ``settled(reservation,
        response.order_id)`` or ``release(reservation)`` as for an insert: the response's order id
        tells whether the order book kept priority. Should it replace an order checked as keeping
        priority (a fill the mirror had not shown yet), the new quantity and amount count in the
        rolling windows from the response on, as entries made at the time of the check; should it
        keep the priority of one checked as replaced, the reservation and its rolling entries are
        dropped.
        """
        keeps = new_price == old_price and 0 < new_quantity < old_remaining
        if keeps_priority != keeps:
            raise ValueError(
                f"keeps_priority={keeps_priority} for an amend of price {old_price} -> {new_price}, "
                f"quantity {old_remaining} -> {new_quantity}"
            )
        state = self._users.get(user) or self._user(user)
        book_key = (user, book_id)
        book = self._books.get(book_key) or self._book(user, book_id)
        instrument = self._instruments.get((user, symbol)) or self._instrument(user, symbol)
        amount = new_price * new_quantity
        if not keeps:
            rejection = self._limits_breached(
                state,
                book,
                instrument,
                symbol,
                new_quantity,
                amount,
                old_remaining,
                old_price * old_remaining,
                now,
            )
            if rejection is not None:
                return rejection
        # A priority-keeping amend's entries are 0 until (unless) the order book replaces the order.
        counted_quantity, counted_amount = (0, 0) if keeps else (new_quantity, amount)
        seq = instrument.quantities.append(now, counted_quantity)
        instrument.amounts.append(now, counted_amount)
        reservation = _AmendReservation(
            state, book_key, book, instrument, new_quantity, amount, seq, order_id, keeps
        )
        _shift(state.out, book, reservation.quantity, reservation.amount)
        state.pending += 1
        self._pending.add(reservation)
        return reservation

    def _limits_breached(
        self,
        state: _User,
        book: _Out,
        instrument: _Instrument,
        symbol: str,
        quantity: int,
        amount: int,
        old_quantity: int,
        old_amount: int,
        now: float,
    ) -> Rejection | None:
        """The first limit a new order of ``quantity``/``amount`` breaches, in section 7's order.

        ``old_quantity``/``old_amount``: what an amended order had (it leaves outstanding), 0 for an insert.
        """
        limit = state.max_quantity
        resting = state.out.quantity
        if limit and resting - old_quantity + quantity > limit:
            return _breach("max_outstanding_quantity", _figure(resting, old_quantity), quantity, limit, None)
        where = symbol
        limit = instrument.max_quantity
        resting = book.quantity
        if limit and resting - old_quantity + quantity > limit:
            return _breach("max_outstanding_quantity", _figure(resting, old_quantity), quantity, limit, where)
        limit = instrument.max_amount
        resting = book.amount
        if limit and resting - old_amount + amount > limit:
            figure = _figure(resting, old_amount, True)
            return _breach("max_outstanding_amount", figure, amount, limit, where, True)
        history = self._history
        accepted = instrument.quantities.advance(now, instrument.quantity_window, history)
        limit = instrument.quantity_limit
        if limit and accepted + quantity > limit:
            figure = f"{accepted} accepted in the last {instrument.quantity_window:g} s"
            return _breach("order_quantity_rolling_limit", figure, quantity, limit, where)
        accepted = instrument.amounts.advance(now, instrument.amount_window, history)
        limit = instrument.amount_limit
        if limit and accepted + amount > limit:
            figure = f"{format_amount(accepted)} accepted in the last {instrument.amount_window:g} s"
            return _breach("order_amount_rolling_limit", figure, amount, limit, where, True)
        return None

    def placed(self, reservation: Reservation, order_id: int) -> None:
        """The order book accepted the insert (or amend) as ``order_id``; OnOrderInserted replaces the
        reservation. Does nothing for a reservation already released, settled or placed."""
        if reservation.state != _PENDING:
            return
        if type(reservation) is _AmendReservation and self._amend_resolved(reservation, order_id):
            return
        self._pending.discard(reservation)
        state = reservation.user
        state.pending -= 1
        if order_id in state.early:
            # The feed already counts the order itself.
            state.early.discard(order_id)
            reservation.state = _SETTLED
            self._unreserve(reservation)
        else:
            reservation.state = _PLACED
            reservation.order_id = order_id
            self._placed[order_id] = reservation
        if not state.pending and state.early:
            state.early.clear()

    def release(self, reservation: Reservation) -> None:
        """The insert was refused or failed: undo its outstanding figures and its rolling entries.

        Does nothing for a reservation already released or already replaced by its order.
        """
        if self._drop(reservation, _RELEASED):
            instrument = reservation.instrument
            instrument.quantities.cancel(reservation.seq)
            instrument.amounts.cancel(reservation.seq)

    def settled(self, reservation: Reservation, order_id: int = 0) -> None:
        """The order book accepted the insert (or amend), and the feed already counts the order (it was
        reset since the request left): drop the reservation's outstanding figures, keep its rolling
        entries (the order was accepted). ``order_id`` the response's: for an amend it tells whether
        priority was kept (0: as checked). Does nothing for a reservation already released or replaced.
        """
        if type(reservation) is _AmendReservation and order_id and reservation.state == _PENDING:
            self._amend_resolved(reservation, order_id)
        self._drop(reservation, _SETTLED)

    # -- the feed -------------------------------------------------------------------------

    def reset(self, orders: Iterable[tuple[str, int, int, int]]) -> None:
        """Recompute outstanding from every resting order (owner, book_id, price, remaining).

        Placed reservations are dropped (the orders themselves are in ``orders`` if still
        resting); pending ones (requests still in flight) keep counting until released.
        """
        for reservation in self._placed.values():
            reservation.state = _SETTLED
        self._placed.clear()
        for state in self._users.values():
            state.out.quantity = state.out.amount = 0
        old = self._books
        for book in old.values():
            book.quantity = book.amount = 0
        self._books = {}
        for reservation in self._pending:
            self._books.setdefault(reservation.book_key, reservation.book)
        for owner, book_id, price, remaining in orders:
            self._count_order(owner, book_id, price, remaining)
        for reservation in self._pending:
            _shift(reservation.user.out, reservation.book, reservation.quantity, reservation.amount)

    def order_added(self, owner: str, book_id: int, order_id: int, price: int, quantity: int) -> None:
        """OnOrderInserted (full quantity): the order counts; a placed reservation for it is dropped."""
        reservation = self._placed.pop(order_id, None)
        state = self._users.get(owner) or self._user(owner)
        book = self._books.get((owner, book_id)) or self._book(owner, book_id)
        amount = price * quantity
        if reservation is not None:
            reservation.state = _SETTLED
            if reservation.book is book:
                quantity_change = quantity - reservation.quantity
                amount_change = amount - reservation.amount
            else:
                self._unreserve(reservation)
                quantity_change, amount_change = quantity, amount
        else:
            if state.pending:
                state.early.add(order_id)
            quantity_change, amount_change = quantity, amount
        _shift(state.out, book, quantity_change, amount_change)

    def _count_order(self, owner: str, book_id: int, price: int, quantity: int) -> None:
        """Count a resting order with no reservation to match (what ``reset`` does for each order)."""
        state = self._users.get(owner) or self._user(owner)
        book = self._books.get((owner, book_id)) or self._book(owner, book_id)
        amount = price * quantity
        _shift(state.out, book, quantity, amount)

    def order_reduced(self, owner: str, book_id: int, price: int, quantity: int) -> None:
        """A fill (at that order's own price) or a cancel of ``quantity`` of an order of ``owner``."""
        self._count_order(owner, book_id, price, -quantity)

    def outstanding(self, user: str, book_id: int | None = None) -> tuple[int, int]:
        """(quantity, amount) outstanding of the user, over all books or in one; reservations included."""
        if book_id is None:
            state = self._users.get(user)
            return (0, 0) if state is None else (state.out.quantity, state.out.amount)
        book = self._books.get((user, book_id))
        return (0, 0) if book is None else (book.quantity, book.amount)

    def accepted(self, user: str, symbol: str, now: float) -> tuple[int, int]:
        """(quantity, amount) the user's orders accepted in ``symbol`` within the instrument's current
        rolling windows at ``now``, as the rolling checks see them ((0, 0) where no rolling limit applies)."""
        instrument = self._instruments.get((user, symbol))
        if instrument is None:
            return 0, 0
        history = self._history
        return (
            instrument.quantities.advance(now, instrument.quantity_window, history),
            instrument.amounts.advance(now, instrument.amount_window, history),
        )

    # -- internals ------------------------------------------------------------------------

    def _user(self, user: str) -> _User:
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _User()
        return state

    def _book(self, user: str, book_id: int) -> _Out:
        key = (user, book_id)
        state = self._books.get(key)
        if state is None:
            state = self._books[key] = _Out()
        return state

    def _instrument(self, user: str, symbol: str) -> _Instrument:
        key = (user, symbol)
        state = self._instruments.get(key)
        if state is None:
            state = self._instruments[key] = _Instrument(symbol)
        return state

    def _drop(self, reservation: Reservation, state: int) -> bool:
        """Stop counting a pending or placed reservation; False if it no longer counted."""
        if reservation.state == _PENDING:
            self._pending.discard(reservation)
            user = reservation.user
            user.pending -= 1
            if not user.pending and user.early:
                user.early.clear()
        elif reservation.state == _PLACED:
            del self._placed[reservation.order_id]
        else:
            return False
        reservation.state = state
        self._unreserve(reservation)
        return True

    def _amend_resolved(self, reservation: _AmendReservation, order_id: int) -> bool:
        """Correct a pending amend's reservation for the order book's outcome (``order_id`` the same as
        the amended order's: priority kept). True when that settled it (nothing left to wait for on the
        feed); False when it goes on as an insert's (a new order the feed will add)."""
        kept = order_id == reservation.replaces
        if reservation.keeps:
            if not kept:
                # Replaced after all: the new order counts in the windows as of the check, and the feed
                # counts the order itself (no reservation to wait for).
                instrument = reservation.instrument
                instrument.quantities.restore(reservation.seq, reservation.late_quantity)
                instrument.amounts.restore(reservation.seq, reservation.late_amount)
                reservation.user.early.discard(order_id)
        elif kept:
            # Kept priority after all: no new order, nothing in the windows.
            instrument = reservation.instrument
            instrument.quantities.cancel(reservation.seq)
            instrument.amounts.cancel(reservation.seq)
        else:
            return False
        self._drop(reservation, _SETTLED)
        return True

    def _unreserve(self, reservation: Reservation) -> None:
        _shift(reservation.user.out, reservation.book, -reservation.quantity, -reservation.amount)
