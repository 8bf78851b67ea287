"""What the `optivex` command prints of a message: every field, in declaration order, defaults included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.text_encoding import CEscape


def format_message(message: Message, indent: str = "") -> str:
    """A message in protobuf's text form, but with every field, in declaration order: fields at their
    default too (`side: BUY`, `quantity: 0`, `trade_ids: []`), which the text form leaves out. A field
    with presence that is not set (a sub-message, an `optional` or oneof member) reads `<not set>`.

    What every command of this CLI prints of a message goes through here.
    """
    lines: list[str] = []
    fields = cast("Sequence[FieldDescriptor]", message.DESCRIPTOR.fields)
    for field in fields:
        value = getattr(message, field.name)
        if field.is_repeated:
            if not value:
                lines.append(f"{indent}{field.name}: []")
            elif field.message_type is not None and field.message_type.GetOptions().map_entry:
                lines.extend(_map_entries(field, value, indent))
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    lines.append(_block(field.name, item, indent))
            else:
                items = ", ".join(_scalar(field, item) for item in value)
                lines.append(f"{indent}{field.name}: [{items}]")
        elif field.has_presence and not message.HasField(field.name):
            lines.append(f"{indent}{field.name}: <not set>")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            lines.append(_block(field.name, value, indent))
        else:
            lines.append(f"{indent}{field.name}: {_scalar(field, value)}")
    return "\n".join(lines)


def _map_entries(field: FieldDescriptor, value: Mapping[object, object], indent: str) -> list[str]:
    """A map field as protobuf's text form writes it: one `name { key: ... value ... }` per entry, by key."""
    entry = field.message_type
    assert entry is not None
    key_field = entry.fields_by_name["key"]
    value_field = entry.fields_by_name["value"]
    inner = indent + "  "
    out = []
    for key in sorted(value):  # type: ignore[type-var]  # map keys are str, int or bool
        item = value[key]
        if isinstance(item, Message):
            shown = _block("value", item, inner)
        else:
            shown = f"{inner}value: {_scalar(value_field, item)}"
        out.append(f"{indent}{field.name} {{\n{inner}key: {_scalar(key_field, key)}\n{shown}\n{indent}}}")
    return out


def _block(name: str, message: Message, indent: str) -> str:
    inner = format_message(message, indent + "  ")
    return f"{indent}{name} {{\n{inner}\n{indent}}}" if inner else f"{indent}{name} {{}}"


def _scalar(field: FieldDescriptor, value: object) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert isinstance(value, int) and field.enum_type is not None
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{CEscape(value.encode("utf-8"), as_utf8=True)}"'
    if isinstance(value, bytes):
        return f'"{CEscape(value, as_utf8=False)}"'
    return repr(value) if isinstance(value, float) else str(value)
