"""What clients send reaches the log escaped, truncated and rate-limited (logsafe, Component.complain).

Before: a newline in a username forged a log line, 1 MiB usernames wrote
84 MB of log in 1.5 s, and every frame of an unknown type logged a line.
Each test also checks that the component served another client meanwhile.
"""

from __future__ import annotations

from optivex.app.component import MAX_COMPLAINTS_PER_CONNECTION
from optivex.deploy.runner import RunningComponent
from optivex.proto import common_pb2
from optivex.proto import order_book_pb2 as ob
from optivex.wire import MAX_FRAME_LENGTH, encode_frame

from .helpers import BUY, Exchange, SyncClient, insert

FORGED_STAMP = "1999-01-01 00:00:00,000"
"""The timestamp of the forged line: a line of the log starting with it would be forged."""
HUGE_NAME = "n" * (MAX_FRAME_LENGTH - 64)
"""A username as long as a LoginRequest frame allows."""
HUGE_LOGINS = 20
LOG_BYTES_PER_HUGE_LOGIN = 2048
"""Log written for one huge login and one refused (file and stderr together): a few short lines."""
UNKNOWN_FRAMES = 10_000


def _log_bytes(component: RunningComponent) -> int:
    return sum(path.stat().st_size for path in [component.stderr_path, *component.log_files()])


def _log_lines(component: RunningComponent) -> list[str]:
    return [line for path in component.log_files() for line in path.read_text().splitlines()]


def _login(client: SyncClient, username: str, password: str = "") -> common_pb2.LoginResponse:
    response = client.request(common_pb2.LoginRequest(username=username, password=password))
    assert isinstance(response, common_pb2.LoginResponse)
    return response


def _barrier(client: SyncClient) -> None:
    """Everything the order book did for `client`'s earlier requests is done (and logged) once answered."""
    assert isinstance(client.request(ob.BarrierRequest()), ob.BarrierResponse)


def _serves_others(exchange: Exchange, book: int) -> None:
    response = insert(exchange.order_book(), book, BUY, 10.0, 1, "someone")
    assert not response.error_message and response.order_id > 0


def test_a_username_with_a_newline_cannot_forge_a_log_line(exchange: Exchange) -> None:
    book = exchange.create_book()
    forged = f"mallory\n{FORGED_STAMP} INFO optivex.order-book: FORGED admin logged in"
    client = exchange.order_book()
    assert _login(client, forged).error_message == ""
    assert _login(client, forged).error_message  # refused: already logged in
    _barrier(client)
    admin = exchange.connect("admin")
    assert _login(admin, forged, "wrong").error_message
    _serves_others(exchange, book)
    for name in ("order_book", "admin"):
        lines = _log_lines(exchange.deployment.provider(name))
        assert not [line for line in lines if line.startswith(FORGED_STAMP)]
        mentions = [line for line in lines if "FORGED" in line]
        assert mentions and all(r"'mallory\n" + FORGED_STAMP in line for line in mentions), mentions


def test_a_huge_username_writes_a_bounded_amount_of_log(exchange: Exchange) -> None:
    book = exchange.create_book()
    order_book = exchange.deployment.provider("order_book")
    before = _log_bytes(order_book)
    clients = [exchange.order_book() for _ in range(HUGE_LOGINS)]
    for client in clients:
        client.send(common_pb2.LoginRequest(username=HUGE_NAME))
    _serves_others(exchange, book)
    for client in clients:
        assert client.receive_as(common_pb2.LoginResponse).error_message == ""
        assert _login(client, HUGE_NAME).error_message  # a refused login logs the name too
        _barrier(client)
    written = _log_bytes(order_book) - before
    assert written < HUGE_LOGINS * LOG_BYTES_PER_HUGE_LOGIN, f"{written} bytes of log"


def test_unknown_message_types_write_a_bounded_number_of_lines(exchange: Exchange) -> None:
    book = exchange.create_book()
    order_book = exchange.deployment.provider("order_book")
    before = len(_log_lines(order_book))
    client = exchange.order_book()
    client.send_raw(encode_frame(9999, b"") * UNKNOWN_FRAMES)
    _serves_others(exchange, book)
    _barrier(client)
    added = _log_lines(order_book)[before:]
    complaints = [line for line in added if "message type 9999" in line]
    assert len(complaints) == MAX_COMPLAINTS_PER_CONNECTION, added[:20]
    assert len(added) == MAX_COMPLAINTS_PER_CONNECTION + 1, added[:20]  # and "further ones ... not logged"
