"""The MessageType tables derived from the generated code."""

from __future__ import annotations

import pytest

from optivex.proto import admin_pb2, common_pb2, info_pb2, order_book_pb2
from optivex.protocols import PROTOCOLS, protocol_for


def test_every_message_type_names_a_class() -> None:
    for protocol in PROTOCOLS.values():
        assert protocol.classes[0] is common_pb2.LoginRequest
        assert protocol.classes[1] is common_pb2.LoginResponse
        for value, cls in protocol.classes.items():
            assert protocol.types[cls] == value


def test_requests_and_their_responses() -> None:
    ob = PROTOCOLS["order_book"]
    assert ob.requests == {0, 10, 12, 14, 100, 102, 104, 106, 110}
    assert ob.responses[106] is order_book_pb2.AmendOrderResponse
    assert ob.classes[108] is order_book_pb2.OnOrderAmended
    assert ob.responses[100] is order_book_pb2.BarrierResponse
    assert ob.responses[104] is order_book_pb2.ListBooksResponse
    assert PROTOCOLS["admin"].responses[30] is admin_pb2.ListInstrumentsResponse
    assert ob.responses[12] is order_book_pb2.InsertOrderResponse
    assert ob.classes[5] is order_book_pb2.OnTrade


def test_shared_port_protocols_merge() -> None:
    merged = protocol_for(["admin", "info"])
    assert merged.classes[10] is admin_pb2.CreateInstrumentRequest
    assert merged.classes[22] is info_pb2.OnTopOfBook
    protocol_for(["execution", "risk_limits"])


def test_clashing_protocols_refuse_to_merge() -> None:
    with pytest.raises(ValueError):
        protocol_for(["order_book", "admin"])
