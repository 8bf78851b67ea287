"""The gateway's Optivex extensions (execution.proto 50-69, risk_limits.proto 70-73): reports and queries.

Which rule each test covers:

- execution reports go to every subscribed connection of the order's owner, whoever caused the change
  (a fill caused by another user's order, a cancel from another connection), and to nobody else:
  `test_reports_reach_every_subscribed_connection_of_the_owner`; a connection's own insert is answered
  before the reports of its trades, in matching order, both sides of a self-trade reported:
  `test_own_response_comes_before_the_reports_of_its_trades`; subscribing twice is an error, and an
  order placed straight on the order book in the user's name is reported too:
  `test_subscribing_twice_is_an_error`;
- open orders: the user's resting orders by symbol then id, with their remaining quantities, one
  instrument or all, an unknown symbol an error, at once after an insert's response:
  `test_open_orders`;
- positions after a sequence of fills: exact cash and FIFO realised PnL for both sides (cash 0.1 + 0.2
  is 0.3 exactly), every instrument traded or one, one never traded (zeros and its last price), an
  unknown symbol an error: `test_positions_after_a_sequence_of_fills`;
- self-trade prevention setting: off until set, Set/Get per user (shared by its connections), invalid
  values an error that changes nothing: `test_self_trade_prevention_setting`;
- a client knowing only the contract's protos (compiled from the contract's folder into a separate
  descriptor pool) sees only contract message types, each decoding, while another client of the same
  user uses the extensions: `test_a_contract_only_client_sees_nothing_new`.

A barrier for reports: GetOpenOrders is answered after the gateway's feed barrier, so its response on a
connection comes after every report the gateway made from the changes any client had been told of
(`report_barrier`).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from optivex.proto import common_pb2
from optivex.proto import execution_pb2 as ex
from optivex.proto import risk_limits_pb2 as rl

from .helpers import BUY, SELL, TIMEOUT, Exchange, SyncClient, insert
from .test_execution import place, withdraw

CONTRACT_PROTO = Path("/work/shared/contract/proto")
"""The contract's proto files (what a client that knows only the contract compiles)."""


def ok(response: Any) -> Any:
    assert response.error_message == "", response
    return response


def subscribe_reports(client: SyncClient) -> None:
    ok(client.request(ex.SubscribeExecutionReportsRequest(), expect=ex.SubscribeExecutionReportsResponse))


def report_barrier(client: SyncClient) -> list[Message]:
    """Every message `client` receives before the response to a GetOpenOrdersRequest sent now (answered
    after the gateway's feed barrier: every report of a change a client was already told of is before)."""
    request = ex.GetOpenOrdersRequest()
    client.send(request)
    before: list[Message] = []
    while True:
        message = client.receive()
        if isinstance(message, ex.GetOpenOrdersResponse) and message.request_id == request.request_id:
            return before
        before.append(message)


def fill(
    order_id: int,
    trade_id: int,
    side: int,
    price: float,
    quantity: int,
    remaining: int,
    aggressor: bool,
    symbol: str = "ABC",
) -> tuple[Any, ...]:
    return ("fill", order_id, trade_id, symbol, side, price, quantity, remaining, aggressor)


def shown(messages: list[Message]) -> list[tuple[Any, ...]]:
    """Reports (and responses) as comparable tuples, timestamps left out (checked > 0)."""
    out: list[tuple[Any, ...]] = []
    for m in messages:
        if isinstance(m, ex.OnFill):
            assert m.timestamp > 0
            out.append(
                fill(
                    m.order_id,
                    m.trade_id,
                    m.side,
                    m.price,
                    m.quantity,
                    m.remaining_quantity,
                    m.aggressor,
                    m.instrument_symbol,
                )
            )
        elif isinstance(m, ex.OnOrderCancelled):
            assert m.timestamp > 0
            out.append(
                (
                    "cancelled",
                    m.order_id,
                    m.instrument_symbol,
                    m.cancelled_quantity,
                    m.reason,
                    m.replaced_by_order_id,
                )
            )
        elif isinstance(m, ex.OnOrderAmended):
            assert m.timestamp > 0
            out.append(
                (
                    "amended",
                    m.order_id,
                    m.instrument_symbol,
                    m.price,
                    m.quantity,
                    m.priority_kept,
                    m.previous_order_id,
                )
            )
        else:
            out.append((type(m).__name__, getattr(m, "request_id", None), getattr(m, "error_message", None)))
    return out


def cancelled(
    order_id: int, quantity: int, reason: int = 0, replaced_by: int = 0, symbol: str = "ABC"
) -> tuple[Any, ...]:
    return ("cancelled", order_id, symbol, quantity, reason, replaced_by)


def test_reports_reach_every_subscribed_connection_of_the_owner(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    alice1, alice2, alice3 = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("alice")
    bob1, bob2 = gateway.gateway("bob"), gateway.gateway("bob")
    subscribe_reports(alice1)
    subscribe_reports(alice2)
    subscribe_reports(bob2)
    resting = ok(place(alice2, "ABC", BUY, 10.00, 5))
    # a fill caused by another user's order: both of alice's subscribed connections hear of it
    sell = ok(place(bob1, "ABC", SELL, 10.00, 3))
    (trade_id,) = sell.trade_ids
    mine = fill(resting.order_id, trade_id, BUY, 10.00, 3, 2, False)
    theirs = fill(sell.order_id, trade_id, SELL, 10.00, 3, 0, True)
    assert shown(report_barrier(alice1)) == [mine]
    assert shown(report_barrier(alice2)) == [mine]
    assert shown(report_barrier(bob2)) == [theirs]
    # a cancel from another connection (alice3: not subscribed) is reported to alice1 and alice2 only
    ok(withdraw(alice3, "ABC", resting.order_id))
    assert shown(report_barrier(alice1)) == [cancelled(resting.order_id, 2)]
    assert shown(report_barrier(alice2)) == [cancelled(resting.order_id, 2)]
    # nothing ever to the unsubscribed connections (their barriers come after any report made)
    assert report_barrier(alice3) == [] and report_barrier(bob1) == []
    assert report_barrier(bob2) == []
    # a closed subscriber's reports stop; the other connection still gets them
    alice1.close()
    order = ok(place(alice3, "ABC", SELL, 11.00, 1))
    ok(withdraw(alice3, "ABC", order.order_id))
    assert shown(report_barrier(alice2)) == [cancelled(order.order_id, 1)]


def test_own_response_comes_before_the_reports_of_its_trades(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    alice, bob = gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(alice)
    first = ok(place(bob, "ABC", SELL, 10.00, 2))
    own = ok(place(alice, "ABC", SELL, 10.01, 3))  # a self-trade to come: alice's own resting order
    assert report_barrier(alice) == []
    request = ex.InsertOrderRequest(request_id=77, instrument_symbol="ABC", side=BUY, price=10.01, quantity=6)
    alice.send(request)
    messages = report_barrier(alice)
    response = messages[0]
    assert isinstance(response, ex.InsertOrderResponse) and response.request_id == 77, messages
    assert response.error_message == "" and response.traded_quantity == 5
    t1, t2 = response.trade_ids
    assert shown(messages[1:]) == [
        fill(response.order_id, t1, BUY, 10.00, 2, 4, True),
        # the self-trade: alice's buy (the aggressor) and alice's resting sell, two reports
        fill(response.order_id, t2, BUY, 10.01, 3, 1, True),
        fill(own.order_id, t2, SELL, 10.01, 3, 0, False),
    ]
    assert first.order_id > 0


def test_subscribing_twice_is_an_error(gateway: Exchange) -> None:
    book = gateway.create_instrument("ABC")
    alice = gateway.gateway("alice")
    subscribe_reports(alice)
    again = alice.request(ex.SubscribeExecutionReportsRequest(), expect=ex.SubscribeExecutionReportsResponse)
    assert "already subscribed" in again.error_message
    # still subscribed, once: one report per change; an order placed in alice's name straight on the
    # order book is hers too
    direct = gateway.order_book()
    order_id = insert(direct, book, BUY, 9.00, 4, "alice").order_id
    assert insert(direct, book, SELL, 9.00, 1, "bob").error_message == ""
    (report,) = report_barrier(alice)
    assert isinstance(report, ex.OnFill) and (report.order_id, report.remaining_quantity) == (order_id, 3)
    # before login: refused
    anonymous = gateway.gateway(None)
    refused = anonymous.request(
        ex.SubscribeExecutionReportsRequest(), expect=ex.SubscribeExecutionReportsResponse
    )
    assert refused.error_message


def open_orders(client: SyncClient, symbol: str = "") -> list[tuple[Any, ...]]:
    response = ok(
        client.request(ex.GetOpenOrdersRequest(instrument_symbol=symbol), expect=ex.GetOpenOrdersResponse)
    )
    return [
        (o.order_id, o.instrument_symbol, o.side, o.price, o.quantity, o.remaining_quantity)
        for o in response.orders
        if o.timestamp > 0
    ]


def test_open_orders(gateway: Exchange) -> None:
    gateway.create_instrument("DEF")
    abc = gateway.create_instrument("ABC")
    alice, alice_too, bob = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("bob")
    assert open_orders(alice) == []
    d1 = ok(place(alice, "DEF", SELL, 20.00, 4)).order_id
    a1 = ok(place(alice, "ABC", BUY, 10.00, 5)).order_id
    a2 = ok(place(alice_too, "ABC", SELL, 12.00, 1)).order_id
    gone = ok(place(alice, "ABC", BUY, 9.00, 1)).order_id
    ok(withdraw(alice, "ABC", gone))
    ok(place(bob, "ABC", BUY, 9.50, 7))
    ok(place(bob, "ABC", SELL, 10.00, 2))  # fills 2 of a1
    direct = insert(gateway.order_book(), abc, BUY, 8.00, 3, "alice").order_id
    expected_abc = [
        (a1, "ABC", BUY, 10.00, 5, 3),
        (a2, "ABC", SELL, 12.00, 1, 1),
        (direct, "ABC", BUY, 8.00, 3, 3),
    ]
    assert open_orders(alice) == [*expected_abc, (d1, "DEF", SELL, 20.00, 4, 4)]  # by symbol, then id
    assert open_orders(alice_too, "ABC") == expected_abc
    assert open_orders(alice, "DEF") == [(d1, "DEF", SELL, 20.00, 4, 4)]
    assert [o[0] for o in open_orders(bob)] != []
    for symbol in ("ABD", "abc", "x" * 100):
        response = alice.request(
            ex.GetOpenOrdersRequest(instrument_symbol=symbol), expect=ex.GetOpenOrdersResponse
        )
        assert "unknown instrument" in response.error_message and not response.orders
    # at once after an insert's response, from another connection of the user
    for n in range(20):
        order_id = ok(place(alice, "DEF", BUY, 1.00 + n / 100, 1)).order_id
        assert order_id in [o[0] for o in open_orders(alice_too, "DEF")], n


def positions(client: SyncClient, symbol: str = "") -> list[tuple[Any, ...]]:
    response = ok(
        client.request(ex.GetPositionsRequest(instrument_symbol=symbol), expect=ex.GetPositionsResponse)
    )
    return [
        (
            p.instrument_symbol,
            p.position,
            p.cash,
            p.bought_quantity,
            p.sold_quantity,
            p.traded_volume,
            p.realised_pnl,
            p.last_trade_price,
        )
        for p in response.positions
    ]


def test_positions_after_a_sequence_of_fills(gateway: Exchange) -> None:
    gateway.create_instrument("ABC")
    gateway.create_instrument("XYZ", tick_size=0.1)
    gateway.create_instrument("QQQ")
    alice, bob, carol = gateway.gateway("alice"), gateway.gateway("bob"), gateway.gateway("carol")
    assert positions(alice) == []
    # alice buys 10 @ 10.00 and 5 @ 10.50 from bob, then sells 12 @ 11.00 to him
    ok(place(bob, "ABC", SELL, 10.00, 10))
    ok(place(bob, "ABC", SELL, 10.50, 5))
    assert ok(place(alice, "ABC", BUY, 10.50, 15)).traded_quantity == 15
    ok(place(alice, "ABC", SELL, 11.00, 12))
    assert ok(place(bob, "ABC", BUY, 11.00, 12)).traded_quantity == 12
    # FIFO: 10 @ 10.00 closed at 11.00 (+10.00), 2 of 5 @ 10.50 (+1.00); cash -100 - 52.5 + 132
    alice_abc = ("ABC", 3, -20.5, 15, 12, 27, 11.0, 11.0)
    bob_abc = ("ABC", -3, 20.5, 12, 15, 27, -11.0, 11.0)
    # XYZ: alice buys 1 @ 0.1 and 1 @ 0.2 from carol (0.1 + 0.2 is 0.3 in exact units), then flips:
    # sells 3 @ 0.3 (closes both lots: +0.2 + 0.1, then short 1 @ 0.3)
    ok(place(carol, "XYZ", SELL, 0.1, 1))
    ok(place(carol, "XYZ", SELL, 0.2, 1))
    assert ok(place(alice, "XYZ", BUY, 0.2, 2)).traded_quantity == 2
    ok(place(carol, "XYZ", BUY, 0.3, 3))
    assert ok(place(alice, "XYZ", SELL, 0.3, 3)).traded_quantity == 3
    alice_xyz = ("XYZ", -1, 0.6, 2, 3, 5, 0.3, 0.3)
    carol_xyz = ("XYZ", 1, -0.6, 3, 2, 5, -0.3, 0.3)
    assert positions(alice) == [alice_abc, alice_xyz]  # by symbol; QQQ never traded: no entry
    assert positions(bob) == [bob_abc]
    assert positions(carol, "XYZ") == [carol_xyz]
    assert positions(alice, "ABC") == [alice_abc]
    # an instrument carol never traded: zeros, with the instrument's last price (anyone's)
    assert positions(carol, "ABC") == [("ABC", 0, 0.0, 0, 0, 0, 0.0, 11.0)]
    assert positions(carol, "QQQ") == [("QQQ", 0, 0.0, 0, 0, 0, 0.0, 0.0)]
    response = alice.request(ex.GetPositionsRequest(instrument_symbol="NOPE"), expect=ex.GetPositionsResponse)
    assert "unknown instrument" in response.error_message and not response.positions
    # a self-trade: a buy and a sell of alice's, at once in her figures
    ok(place(alice, "QQQ", SELL, 5.00, 2))
    assert ok(place(alice, "QQQ", BUY, 5.00, 2)).traded_quantity == 2
    assert positions(alice, "QQQ") == [("QQQ", 0, 0.0, 2, 2, 4, 0.0, 5.0)]


def stp(client: SyncClient) -> int:
    response = ok(
        client.request(rl.GetSelfTradePreventionRequest(), expect=rl.GetSelfTradePreventionResponse)
    )
    return int(response.self_trade_prevention)


def set_stp(client: SyncClient, value: int) -> rl.SetSelfTradePreventionResponse:
    return client.request(
        rl.SetSelfTradePreventionRequest(self_trade_prevention=cast(common_pb2.SelfTradePrevention, value)),
        expect=rl.SetSelfTradePreventionResponse,
    )


def test_self_trade_prevention_setting(gateway: Exchange) -> None:
    alice, alice_too, bob = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("bob")
    assert stp(alice) == common_pb2.SELF_TRADE_ALLOWED
    ok(set_stp(alice, common_pb2.CANCEL_RESTING))
    assert stp(alice_too) == common_pb2.CANCEL_RESTING  # the user's, every connection
    assert stp(bob) == common_pb2.SELF_TRADE_ALLOWED
    for invalid in (3, -1, 1000):
        assert "invalid self_trade_prevention" in set_stp(alice, invalid).error_message
    assert stp(alice) == common_pb2.CANCEL_RESTING
    ok(set_stp(alice_too, common_pb2.CANCEL_INCOMING))
    assert stp(alice) == common_pb2.CANCEL_INCOMING
    ok(set_stp(alice, common_pb2.SELF_TRADE_ALLOWED))
    assert stp(alice) == common_pb2.SELF_TRADE_ALLOWED
    anonymous = gateway.gateway(None)
    assert set_stp(anonymous, 1).error_message
    assert anonymous.request(
        rl.GetSelfTradePreventionRequest(), expect=rl.GetSelfTradePreventionResponse
    ).error_message


# -- a client that knows only the contract --------------------------------------------------------


class ContractClient:
    """A raw client of the gateway's port built from the contract's protos alone: its own descriptor
    pool (compiled from CONTRACT_PROTO by protoc), its own framing; every frame it receives must be of a
    type of the contract's execution or risk_limits MessageType and decode as that message."""

    def __init__(self, address: tuple[str, int], tmp: Path) -> None:
        out = tmp / "contract.desc"
        protos = ("common.proto", "execution.proto", "risk_limits.proto")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{CONTRACT_PROTO}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                *protos,
            ],
            check=True,
        )
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
        self.pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            self.pool.Add(file)
        self.classes: dict[int, type[Message]] = {}
        self.types: dict[str, int] = {}
        for package in ("optiver.exchange.execution", "optiver.exchange.risklimits"):
            enum = self.pool.FindEnumTypeByName(f"{package}.MessageType")
            for value in enum.values:
                name = "".join(part.capitalize() for part in value.name.split("_"))
                try:
                    descriptor = self.pool.FindMessageTypeByName(f"{package}.{name}")
                except KeyError:
                    descriptor = self.pool.FindMessageTypeByName(f"optiver.exchange.{name}")
                self.classes[value.number] = message_factory.GetMessageClass(descriptor)
                self.types[name] = value.number
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.buffer = b""
        self.received: list[Message] = []

    def new(self, name: str, **fields: Any) -> Message:
        return self.classes[self.types[name]](**fields)

    def request(self, name: str, **fields: Any) -> Any:
        """Send a request; return its response (every frame before it is kept in `received`)."""
        message = self.new(name, **fields)
        payload = message.SerializeToString()
        self.sock.sendall(struct.pack(">II", 4 + len(payload), self.types[name]) + payload)
        response_name = name[: -len("Request")] + "Response"
        while True:
            got = self.receive()
            if type(got).__name__ == response_name and got.request_id == fields["request_id"]:  # type: ignore[attr-defined]
                return got
            self.received.append(got)

    def receive(self) -> Message:
        while len(self.buffer) < 8 or len(self.buffer) < 4 + struct.unpack(">I", self.buffer[:4])[0]:
            data = self.sock.recv(65536)
            assert data, "the gateway closed the contract client's connection"
            self.buffer += data
        length, msg_type = struct.unpack(">II", self.buffer[:8])
        payload, self.buffer = self.buffer[8 : 4 + length], self.buffer[4 + length :]
        assert msg_type in self.classes, f"type {msg_type} is not in the contract"
        return self.classes[msg_type].FromString(payload)


def test_a_contract_only_client_sees_nothing_new(gateway: Exchange, tmp_path: Path) -> None:
    """Every extension is used by other connections of the same user, on the contract client's orders
    too (reports of its fills, amends, cancels of every reason go to `extended`); the contract client
    receives only the responses to its own contract requests."""
    from .test_execution_extensions_orders import FOK, IOC, RESTING, amend, cancel_all
    from .test_execution_extensions_orders import place as place_ext

    gateway.create_instrument("ABC")
    gateway.create_instrument("DEF")
    contract = ContractClient(gateway.deployment.provider("execution").address, tmp_path)
    login = contract.request("LoginRequest", request_id=1, username="alice", password="alice")
    assert login.error_message == ""

    def contract_insert(request_id: int, symbol: str, side: int, price: float, quantity: int) -> Any:
        response = contract.request(
            "InsertOrderRequest",
            request_id=request_id,
            instrument_symbol=symbol,
            side=side,
            price=price,
            quantity=quantity,
        )
        assert response.error_message == "", response
        return response

    # the contract-only client rests orders that the extensions will touch
    a = contract_insert(2, "ABC", BUY, 10.0, 5).order_id
    b = contract_insert(3, "DEF", SELL, 20.0, 5).order_id
    c = contract_insert(4, "ABC", SELL, 12.0, 5).order_id
    extended, leaving, bob = gateway.gateway("alice"), gateway.gateway("alice"), gateway.gateway("bob")
    subscribe_reports(extended)
    ok(set_stp(extended, common_pb2.CANCEL_RESTING))
    assert stp(extended) == common_pb2.CANCEL_RESTING
    ok(set_stp(extended, common_pb2.SELF_TRADE_ALLOWED))
    ok(place(bob, "ABC", SELL, 10.0, 1))  # a fill of the contract client's order
    ok(amend(extended, "ABC", a, 3))  # its order amended down (OnOrderAmended to extended)
    up = ok(amend(extended, "ABC", a, 4, price=10.5)).order_id  # and replaced
    assert ok(place_ext(bob, "ABC", SELL, 10.5, 6, tif=IOC)).cancelled_quantity == 2
    assert "cannot be filled in full" in place_ext(bob, "ABC", SELL, 10.5, 1, tif=FOK).error_message
    # a self-trade prevented: the contract client's resting ask is cancelled
    assert ok(place_ext(extended, "ABC", BUY, 12.0, 1, stp=RESTING)).resting_quantity == 1
    assert ok(cancel_all(extended, "DEF")).cancelled_order_ids == [b]
    ok(leaving.request(ex.EnableCancelOnDisconnectRequest(), expect=ex.EnableCancelOnDisconnectResponse))
    ok(place(leaving, "DEF", BUY, 19.0, 1))
    open_orders(extended)
    positions(extended)
    report_barrier(extended)
    leaving.close()
    # wait for the disconnect's cancel to be reported on `extended`
    assert isinstance(extended.receive(), ex.OnOrderCancelled)
    report_barrier(extended)  # every report made: any stray one to the contract client is queued before
    d = contract_insert(5, "DEF", SELL, 30.0, 1).order_id
    cancel = contract.request("CancelOrderRequest", request_id=6, instrument_symbol="DEF", order_id=d)
    assert cancel.error_message == ""
    assert contract.request("GetUserRiskLimitsRequest", request_id=7).error_message == ""
    assert contract.received == []
    assert up > c
