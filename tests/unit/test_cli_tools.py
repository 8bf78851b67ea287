"""The client commands' pieces without an exchange: --help of each, argument types, the map printer, the
live view's pacing and rendering."""

from __future__ import annotations

import argparse
import io

import pytest
from rich.console import Console

from optivex import cli
from optivex.proto import common_pb2, info_pb2, risk_limits_pb2
from optivex.tools import common
from optivex.tools.live import BookView, Pacer, Rate, clock, decimals_of, trade_line

COMMANDS = [
    "up",
    "demo",
    "create-instrument",
    "instruments",
    "insert",
    "amend",
    "cancel",
    "cancel-all",
    "orders",
    "positions",
    "limits",
    "set-user-limits",
    "set-instrument-limits",
    "book",
    "trades",
]


def test_every_command_is_listed() -> None:
    parser = cli.build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(actions[0].choices) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: optivex {command}")
    if command not in ("up", "demo"):
        assert "--config PATH" in out and "--user USER" in out and "--password PASSWORD" in out


def test_connection_defaults_are_up_s(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(str(tmp_path))  # no deployment_config.json here: optivex up's ports
    args = cli.build_parser().parse_args(["orders"])
    assert args.user == "alice" and args.password is None
    found = common.addresses_of(args)
    assert (found.admin, found.info, found.gateway) == (
        ("127.0.0.1", 17101),
        ("127.0.0.1", 17102),
        ("127.0.0.1", 17103),
    )
    args = cli.build_parser().parse_args(["orders", "--gateway", "localhost:9"])
    assert common.addresses_of(args).gateway == ("localhost", 9)


def test_a_missing_config_is_one_line(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["orders", "--config", f"{tmp_path}/nope.json"]) == common.USAGE
    err = capsys.readouterr().err
    assert err.startswith("optivex orders: ") and err.count("\n") == 1 and "nope.json" in err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["insert", "X", "hold", "1", "1"], "invalid choice"),
        (["insert", "X", "buy", "0", "1"], "must be more than 0"),
        (["insert", "X", "buy", "1", "nan"], "not a finite price"),
        (["set-user-limits", "--message-rate", "5/0"], "LIMIT/SECONDS"),
        (["orders", "--gateway", "nohost"], "HOST:PORT"),
    ],
)
def test_bad_arguments(argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_map_fields_are_printed_by_key() -> None:
    message = risk_limits_pb2.GetInstrumentRiskLimitsResponse()
    message.risk_limits_by_instrument["B"].max_outstanding_quantity = 5
    message.risk_limits_by_instrument["A"].max_outstanding_amount = 2.5
    lines = cli.format_message(message).splitlines()
    assert lines[2:5] == ["risk_limits_by_instrument {", '  key: "A"', "  value {"]
    assert "    max_outstanding_quantity: 0" in lines and "    order_amount_rolling_limit: <not set>" in lines
    assert lines.index('  key: "B"') > lines.index('  key: "A"')


def test_the_pacer_allows_ten_redraws_a_second() -> None:
    pacer = Pacer(10)
    assert pacer.wait(5.0) == 0.0
    pacer.drawn(5.0)
    assert pacer.wait(5.05) == pytest.approx(0.05)
    assert pacer.wait(5.1) == 0.0
    draws, now = 0, 0.0
    pacer = Pacer(10)
    while now < 1.0:  # asked every millisecond for a second: 10 draws
        if pacer.wait(now) == 0.0:
            pacer.drawn(now)
            draws += 1
        now = round(now + 0.001, 3)
    assert draws == 10


def test_rate_counts_the_last_second() -> None:
    rate = Rate()
    rate.add(1.0, 3)
    rate.add(1.5)
    assert rate.per_second(1.9) == 4
    assert rate.per_second(2.2) == 1


def test_prices_take_the_tick_s_decimals() -> None:
    assert decimals_of(0.01) == 2 and decimals_of(0.0005) == 4 and decimals_of(1.0) == 0
    assert decimals_of(None) == 2 and clock(0) == "00:00:00.000"
    trade = info_pb2.OnTrade(
        trade_id=7,
        instrument_symbol="ABC",
        timestamp=1_500_000_000,
        price=10.5,
        quantity=3,
        aggressor_side=common_pb2.SELL,
    )
    assert trade_line(trade) == "00:00:01.500  ABC        SELL      3 @      10.50  trade 7"


def test_the_book_view_shows_the_ladder_and_trades() -> None:
    view = BookView("ABC", depth=3, trades=2)
    assert view.apply(
        info_pb2.OnInstrument(instrument=common_pb2.Instrument(symbol="ABC"), tick_size=0.05), 0.0
    )
    book = info_pb2.OnPriceDepthBook(instrument_symbol="ABC", timestamp=1)
    book.bids.add(price=10.0, quantity=4)
    book.asks.add(price=10.05, quantity=6)
    book.asks.add(price=10.1, quantity=1)
    assert view.apply(book, 0.0)
    assert not view.apply(info_pb2.OnPriceDepthBook(instrument_symbol="OTHER"), 0.0)
    for n in (1, 2, 3):
        view.apply(info_pb2.OnTrade(trade_id=n, instrument_symbol="ABC", price=10.05, quantity=n), 0.0)
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(view.render(0.5))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = [line.rstrip() for line in text.splitlines()]
    ladder = [line.split() for line in lines[3:9]]
    assert ladder == [[], ["10.10", "1"], ["10.05", "6"], ["4", "10.00"], [], []]
    assert "tick 0.05" in lines[0] and "spread 0.05" in lines[0] and "last 10.05 x 3" in lines[0]
    assert "1 updates/s" in lines[0]
    tape = [line.split() for line in lines[12:]]
    assert [row[2:4] for row in tape if row] == [["3", "10.05"], ["2", "10.05"]]
