"""The protocols of the exchange: which message class each MessageType names.

Built from the generated modules by naming convention: the MessageType value
``CREATE_ORDER_BOOK_REQUEST`` names the message ``CreateOrderBookRequest`` of
the same proto file (or of common.proto), and every ``X_REQUEST`` is answered
by ``X_RESPONSE``. One table serves servers, clients and tools alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from google.protobuf.message import Message

from optivex.proto import (
    admin_pb2,
    common_pb2,
    execution_pb2,
    info_pb2,
    order_book_pb2,
    risk_limits_pb2,
    sample_pb2,
)

LOGIN_REQUEST = 0
LOGIN_RESPONSE = 1


@dataclass(frozen=True)
class Protocol:
    """The message types of one protocol, or of several sharing a port."""

    name: str
    classes: dict[int, type[Message]]
    """MessageType value -> message class."""
    types: dict[type[Message], int]
    """Message class -> MessageType value."""
    requests: frozenset[int]
    """The types a server accepts from clients."""
    responses: dict[int, type[Message]]
    """Request type -> class of its response."""

    def type_of(self, message: Message) -> int:
        """The MessageType value under which `message` travels."""
        return self.types[type(message)]

    def merged(self, other: Protocol) -> Protocol:
        """Both protocols on one port; their MessageType values must not clash."""
        for value, cls in other.classes.items():
            if self.classes.get(value, cls) is not cls:
                raise ValueError(f"{self.name} and {other.name} both use MessageType {value}")
        return Protocol(
            name=f"{self.name}+{other.name}",
            classes={**self.classes, **other.classes},
            types={**self.types, **other.types},
            requests=self.requests | other.requests,
            responses={**self.responses, **other.responses},
        )


def _camel(enum_name: str) -> str:
    return "".join(part.capitalize() for part in enum_name.split("_"))


def _build(name: str, module: ModuleType) -> Protocol:
    enum = module.MessageType
    classes: dict[int, type[Message]] = {}
    for value_name, value in enum.items():
        cls = getattr(module, _camel(value_name), None) or getattr(common_pb2, _camel(value_name))
        classes[value] = cls
    by_name = dict(enum.items())
    requests = frozenset(v for n, v in by_name.items() if n.endswith("_REQUEST"))
    responses = {
        v: classes[by_name[n[: -len("_REQUEST")] + "_RESPONSE"]]
        for n, v in by_name.items()
        if n.endswith("_REQUEST")
    }
    return Protocol(name, classes, {c: v for v, c in classes.items()}, requests, responses)


PROTOCOLS: dict[str, Protocol] = {
    "order_book": _build("order_book", order_book_pb2),
    "admin": _build("admin", admin_pb2),
    "info": _build("info", info_pb2),
    "execution": _build("execution", execution_pb2),
    "risk_limits": _build("risk_limits", risk_limits_pb2),
    "sample": _build("sample", sample_pb2),
}


def protocol_for(names: Iterable[str]) -> Protocol:
    """The protocol served on one port that carries all of `names`."""
    merged: Protocol | None = None
    for name in names:
        proto = PROTOCOLS[name]
        merged = proto if merged is None else merged.merged(proto)
    if merged is None:
        raise ValueError("no protocol named")
    return merged
