"""Prices as exact integers of 0.0001 (section 2 of the contract)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optivex.units import amount_to_units, format_amount, price_to_units, tick_to_units, units_to_price


@pytest.mark.parametrize(
    ("price", "units"),
    [
        (12.3456, 123456),
        (1.00004, 10000),
        (1.00005, 10000),  # tie on the decimal form, to even
        (1.00015, 10002),
        (100.12345, 1001234),
        (0.00005, 0),
        (0.00015, 2),
        (-1.0, -10000),
        (0.0, 0),
    ],
)
def test_rounding(price: float, units: int) -> None:
    assert price_to_units(price) == units


@pytest.mark.parametrize("price", [math.nan, math.inf, -math.inf, 1e300])
def test_unrepresentable_prices(price: float) -> None:
    assert price_to_units(price) is None


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_rounding_agrees_with_decimal_half_even_on_the_shortest_repr(price: float) -> None:
    expected = int(Decimal(repr(price)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN) * 10000)
    assert price_to_units(price) == expected


@pytest.mark.parametrize(
    ("price", "units"),
    [
        # Exact ties on the shortest repr whose binary product lands just inside 0.5 of an integer.
        (67117829.05195, 671178290520),
        (99080944.19195, 990809441920),
        (84065467.50345, 840654675034),
    ],
)
def test_rounding_of_large_ties(price: float, units: int) -> None:
    assert price_to_units(price) == units


@given(
    st.integers(0, (2**53 - 1) // 10**5),
    st.integers(0, 9999),
    st.booleans(),
)
def test_ties_round_to_even_at_every_magnitude(whole: int, fraction: int, negative: bool) -> None:
    """Prices whose shortest repr ends in a 5 at the fifth decimal: random floats almost never are."""
    text = f"{'-' if negative else ''}{whole}.{fraction:04d}5"
    price = float(text)
    expected = int(Decimal(repr(price)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN) * 10000)
    assert price_to_units(price) == expected


@given(st.integers(-(10**14), 10**14))
def test_units_to_price_is_the_double_of_the_decimal(units: int) -> None:
    price = units_to_price(units)
    assert price == float(str(Decimal(units) / 10000))
    assert price_to_units(price) == units


@pytest.mark.parametrize(
    ("units", "price"),
    [(10**304, 1e300), (2**53 + 1, 900719925474.0993), (3 * (2**53 + 1), 2702159776422.298)],
)
def test_units_to_price_rounds_once_past_2_to_the_53(units: int, price: float) -> None:
    assert units_to_price(units) == price == float(str(Decimal(units) / 10000))


def test_sent_price_is_the_shortest_decimal() -> None:
    assert repr(units_to_price(123456)) == "12.3456"


@pytest.mark.parametrize(
    ("tick", "units"),
    [(0.01, 100), (0.0001, 1), (1.0, 10000), (2.5, 25000), (0.0005, 5)],
)
def test_valid_ticks(tick: float, units: int) -> None:
    assert tick_to_units(tick) == units


@pytest.mark.parametrize("tick", [0.0, -0.01, 0.00001, 0.1 + 0.2, 0.00015, math.nan, math.inf])
def test_invalid_ticks_are_rejected_not_rounded(tick: float) -> None:
    assert tick_to_units(tick) is None


@pytest.mark.parametrize(
    ("amount", "units"),
    [
        (1000.0, 10_000_000),
        (0.0, 0),
        (-0.0, 0),
        (12.3456, 123456),
        (1.00005, 10000),
        (0.00004, 0),
        (900719925474.0992, 2**53),  # past what a price may be: an amount has no such bound
        (1e12, 10**16),
        (1e300, 10**304),
        (67117829.05195, 671178290520),
    ],
)
def test_amount_to_units_rounds_like_a_price(amount: float, units: int) -> None:
    assert amount_to_units(amount) == units


@pytest.mark.parametrize("amount", [-0.0001, -1.0, -1e300, math.nan, math.inf, -math.inf])
def test_amount_to_units_refuses_negative_and_unrepresentable(amount: float) -> None:
    assert amount_to_units(amount) is None


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (9_500_000, "950.0000"),
        (0, "0.0000"),
        (1, "0.0001"),
        (-123456, "-12.3456"),
        (10**30, f"{10**26}.0000"),
    ],
)
def test_format_amount_has_exactly_four_decimals(units: int, text: str) -> None:
    assert format_amount(units) == text
