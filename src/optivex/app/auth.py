"""Login rules shared by every component (section 2 of the contract)."""

from __future__ import annotations

import hmac

from optivex.app.users import User

NOT_LOGGED_IN = "not logged in: send LoginRequest first"
ALREADY_LOGGED_IN = "already logged in on this connection"
BAD_CREDENTIALS = "invalid username or password"


class Authenticator:
    """Decides logins. With auth_required any username is checked against the users."""

    def __init__(self, users: dict[str, User], auth_required: bool) -> None:
        self._users = users
        self.auth_required = auth_required

    def check(self, current_user: str | None, username: str, password: str) -> str:
        """The error of this login attempt, or "" when it succeeds."""
        if current_user is not None:
            return ALREADY_LOGGED_IN
        if not self.auth_required:
            return ""
        user = self._users.get(username)
        # Compare in constant time, and as long for an unknown user as for a known one.
        expected = user.password if user is not None else "\0" + password
        same = hmac.compare_digest(expected.encode(), password.encode())
        return "" if same and user is not None else BAD_CREDENTIALS
