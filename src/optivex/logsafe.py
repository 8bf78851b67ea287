"""Client strings made safe to log: escaped and truncated.

Whatever a client sends (usernames, symbols, any string field) is logged
through `loggable`: it becomes one quoted token, with control and
non-printable characters escaped the way ``repr`` does (a newline is the two
characters ``\\n``, so it cannot start a forged log line), cut to
MAX_LOGGED_CHARS characters with the number left out said, so a 1 MiB string
costs a log line of about a hundred bytes. Passwords are never logged.
"""

from __future__ import annotations

MAX_LOGGED_CHARS = 64
"""Characters of one client string kept in a log line; the rest is only counted."""


def loggable(text: str | None, limit: int = MAX_LOGGED_CHARS) -> str:
    """`text` quoted and escaped as by repr, at most `limit` characters of it, then "...(N more)".

    None (no user yet) is logged as ``None``.
    """
    if text is None:
        return "None"
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}...({len(text) - limit} more)"
