"""The web page in a real headless browser: Debian's chromium, driven by selenium through chromedriver.

A real deployment with the web component (tests/system/test_web.py's `start_with_web`); the browser
opens the page, a trade is made through the gateway, and the page must show it and the book it left.
Skipped, with the reason printed, where chromium, chromedriver or selenium is missing (`.ci/run`
installs chromium and chromium-driver with apt-get where it can).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import BUY, SELL
from .test_web import WEB_TIMEOUT, DeployComponents, place, start_with_web, web_url

CHROMIUM = os.environ.get("OPTIVEX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OPTIVEX_CHROMEDRIVER", "/usr/bin/chromedriver")


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if shutil.which(path) is None:
            return f"{what} not found at {path} (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (uv sync: it is in the dev group)"
    return None


def chromium_driver() -> Any:
    """A selenium driver of headless Debian chromium (benchmarks/web_demo.py uses it too)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = missing()
    if reason is not None:
        print(f"SKIPPED browser test: {reason}")
        pytest.skip(reason)
    driver = chromium_driver()
    try:
        yield driver
    finally:
        driver.quit()


def test_a_trade_through_the_gateway_appears_on_the_page(
    deploy_components: DeployComponents, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    exchange = start_with_web(deploy_components)
    exchange.create_instrument("ABC", tick_size=0.05)
    wait = WebDriverWait(browser, WEB_TIMEOUT)
    browser.get(web_url(exchange))
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-state") == "live")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'section.card[data-symbol="ABC"]'))

    alice, bob = exchange.gateway("alice"), exchange.gateway("bob")
    place(alice, "ABC", SELL, 10.05, 5)
    place(alice, "ABC", SELL, 10.10, 3)
    place(alice, "ABC", BUY, 9.95, 4)
    (trade_id,) = place(bob, "ABC", BUY, 10.05, 2).trade_ids

    card = 'section.card[data-symbol="ABC"]'
    trade_row = wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'{card} .tape tr[data-trade-id="{trade_id}"]')
    )[0]
    assert trade_row.text.split()[1:] == ["10.05", "2"]  # time, price, quantity
    assert "B" in trade_row.get_attribute("class").split()

    def ladder(d: Any) -> list[tuple[str | None, str | None, str | None]]:
        rows = d.find_elements(By.CSS_SELECTOR, f"{card} .ladder tr.ask, {card} .ladder tr.bid")
        return [
            (r.get_attribute("data-side"), r.get_attribute("data-price"), r.get_attribute("data-qty"))
            for r in rows
        ]

    expected = [("ask", "10.10", "3"), ("ask", "10.05", "3"), ("bid", "9.95", "4")]  # worst ask on top
    wait.until(lambda d: ladder(d) == expected)
    assert browser.find_element(By.CSS_SELECTOR, f"{card} h2 .last").text == "10.05"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors

    # the page's own connection: lost when the web component stops, taken up again when it is back
    def status(d: Any) -> str | None:
        state: str | None = d.find_element(By.ID, "status").get_attribute("data-state")
        return state

    exchange.deployment.stop_component("web")
    wait.until(lambda d: status(d) == "offline")
    exchange.deployment.start_component("web")
    wait.until(lambda d: status(d) == "live")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'{card} .tape tr[data-trade-id="{trade_id}"]'))
    wait.until(lambda d: ladder(d) == expected)
