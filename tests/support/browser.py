"""A real headless Chromium for the console's browser tests (Debian's ``chromium`` and
``chromium-driver`` packages): skip, or fail under CI, when it is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    UnexpectedAlertPresentException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

#: Where browser tests save screenshots (git-ignored; CI keeps the folder as an artefact).
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def need_chromium() -> None:
    """Chromium and its driver are system packages: ``.ci/run`` installs them, visibly, and
    sets ``AWA_REQUIRE_BROWSER=1`` so CI fails rather than skips when they are missing.
    Elsewhere the test skips and says what to install (a test never installs packages)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    reason = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("AWA_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    need_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def until_true(predicate: Any, timeout: float = 30.0) -> Any:
    """Run the (blocking, webdriver-calling) ``predicate`` in a thread until it returns
    something truthy; return that."""
    with anyio.fail_after(timeout):
        while True:
            value = await anyio.to_thread.run_sync(predicate)
            if value:
                return value
            await anyio.sleep(0.2)


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name))


def click_if_present(driver: webdriver.Chrome, css: str) -> bool:
    """Click the element ``css`` names if it is shown and enabled; False if it is not there
    yet (the pages re-render on every refresh, so a caller tries again later)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found and found[0].is_displayed() and found[0].is_enabled():
            found[0].click()
            return True
    except (StaleElementReferenceException, UnexpectedAlertPresentException):
        pass
    return False


def text_of(driver: webdriver.Chrome, css: str) -> str:
    """The text of every element ``css`` names ("" while the page re-renders or a dialog is
    open)."""
    try:
        return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
    except (StaleElementReferenceException, UnexpectedAlertPresentException):
        return ""


def log_in(driver: webdriver.Chrome, url: str, token: str, timeout: float = 30.0) -> None:
    """Open ``url`` of a console, forget any earlier test's cookie (cookies are per host,
    not per port), and log in with ``token`` once the page shows its login form (it does
    so only after its session request answers: typing earlier fails on a hidden field).
    Returns once the page says "operator"."""
    driver.get(url)
    driver.delete_all_cookies()
    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    field = wait.until(expected_conditions.visibility_of_element_located((By.ID, "token")))
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "session"), "operator"))
