"""The `optivex` command's own pieces: --version, the message printer, argument checks."""

from __future__ import annotations

from importlib import metadata

import pytest

from optivex import cli
from optivex.proto import admin_pb2, common_pb2
from optivex.proto import order_book_pb2 as pb


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"optivex {metadata.version('optivex')}\n"
    assert cli.version() == metadata.version("optivex")


def test_version_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli.version() == "unknown (the optivex package is not installed)"


def test_every_field_is_printed_defaults_included() -> None:
    text = cli.format_message(pb.InsertOrderRequest(price=10.5))
    assert text.splitlines() == [
        "request_id: 0",
        "order_book_id: 0",
        "side: BUY",
        "price: 10.5",
        "quantity: 0",
        'on_behalf_of_username: ""',
        "time_in_force: GOOD_TILL_CANCEL",
        "self_trade_prevention: SELF_TRADE_ALLOWED",
    ]


def test_sub_messages_repeated_fields_and_presence() -> None:
    unset = cli.format_message(pb.OnOrderBookCreated(order_book_id=3, tick_size=0.01))
    assert unset.splitlines() == [
        "order_book_id: 3",
        "tick_size: 0.01",
        "instrument: <not set>",
        "timestamp: 0",
    ]
    created = pb.OnOrderBookCreated(order_book_id=3, instrument=common_pb2.Instrument(symbol="ABC"))
    assert cli.format_message(created).splitlines()[2:8] == [
        "instrument {",
        '  symbol: "ABC"',
        '  description: ""',
        '  currency: ""',
        "  multiplier: 0.0",
        "}",
    ]
    inserted = cli.format_message(pb.OnOrderInserted(order_id=7, side=common_pb2.SELL, trade_ids=[1, 2]))
    assert "side: SELL" in inserted.splitlines()
    assert "trade_ids: [1, 2]" in inserted.splitlines()
    assert "trade_ids: []" in cli.format_message(pb.OnOrderInserted()).splitlines()
    trades = cli.format_message(pb.TradesResponse(trades=[pb.OnTrade(trade_id=1), pb.OnTrade(trade_id=2)]))
    lines = trades.splitlines()
    assert lines.count("trades {") == 2
    assert "  trade_id: 2" in lines and "  aggressor_side: BUY" in lines
    assert lines[-2:] == ["more: false", "truncated: false"]


def test_strings_are_quoted_and_escaped_and_unknown_enums_are_numbers() -> None:
    message = admin_pb2.CreateInstrumentRequest(instrument=common_pb2.Instrument(symbol='a"b\nc é'))
    assert '  symbol: "a\\"b\\nc é"' in cli.format_message(message).splitlines()
    odd = pb.OnTrade()
    odd.aggressor_side = 7  # type: ignore[assignment]  # an enum value this build does not know
    assert "aggressor_side: 7" in cli.format_message(odd).splitlines()


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_status_interval_must_be_seconds(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["up", "--status-interval", value])
    assert info.value.code == 2
    assert "--status-interval" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "65536", "web", "-5"])
def test_web_port_must_be_a_port(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["up", "--web", value])
    assert info.value.code == 2
    assert "--web" in capsys.readouterr().err


def test_web_port_is_parsed() -> None:
    args = cli.build_parser().parse_args(["up", "--web", "17180"])
    assert args.web == 17180
    assert cli.build_parser().parse_args(["up"]).web is None
