"""The built-in dashboard in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver`` packages, installed by the fixture when missing and possible): the page
loads, shows both lanes and every branch, and updates in place when a branch becomes
delayed. A screenshot is saved to ``.awa/artifacts/dashboard-delayed.png``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.builtin import BUILTIN_BRANCHES
from awa.web import dashboard_app, serve

ARTIFACTS = Path(__file__).resolve().parents[2] / ".awa" / "artifacts"


def _need_chromium() -> None:
    """Chromium and its driver are system packages: ``.ci/run`` installs them, visibly, and
    sets ``AWA_REQUIRE_BROWSER=1`` so CI fails rather than skips when they are missing.
    Elsewhere the test skips and says what to install (a test never installs packages)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return
    reason = "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get("AWA_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    _need_chromium()
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


class Switchable(Branch):
    """A hygiene branch that is quick until ``slow`` is set, then takes 10x its interval."""

    name = "switchable"
    lane = HYGIENE
    default_interval = 0.05

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slow = False

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        if self.slow:
            await anyio.sleep(0.5)
        return BranchResult({"ran": 1})


def _rows(driver: webdriver.Chrome) -> dict[str, tuple[str, str, bool]]:
    """branch -> (lane, health, row marked delayed) as rendered in the page's branch table,
    read in one script call (the page re-renders its tables on every refresh)."""
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#branches tbody tr')].map(tr =>"
        " [tr.className, ...[...tr.querySelectorAll('td')].map(td => td.textContent)])"
    )
    return {c[2]: (c[1], c[11], "delayed" in c[0]) for c in cells if len(c) >= 12}


async def _until(predicate: Any, timeout: float = 30.0) -> Any:
    with anyio.fail_after(timeout):
        while True:
            value = await anyio.to_thread.run_sync(predicate)
            if value:
                return value
            await anyio.sleep(0.2)


async def test_dashboard_shows_lanes_and_updates_when_a_branch_is_delayed(
    database_url: str, browser: webdriver.Chrome
) -> None:
    branch = Switchable()
    client = awa.Client(database_url)
    config = MaintenanceConfig(startup_jitter=0, health_interval=0.2, election_interval=0.2)
    expected = {cls.name for cls in BUILTIN_BRANCHES} | {"switchable"}
    async with (
        client,
        awa.Runtime(client, maintenance=config, branches=[branch]),
        anyio.create_task_group() as tg,
    ):
        port = await tg.start(serve, dashboard_app(database_url), "127.0.0.1", 0)
        await anyio.to_thread.run_sync(browser.get, f"http://127.0.0.1:{port}/")
        rows = await _until(lambda: (r := _rows(browser)) and expected <= set(r) and r)
        assert {lane for lane, _, _ in rows.values()} == {"slo", "hygiene"}
        assert rows["switchable"] == ("hygiene", "on time", False)
        assert "leader" in browser.find_element(By.ID, "leader").text

        branch.slow = True  # no reload from here on: the page must update by itself
        rows = await _until(
            lambda: (r := _rows(browser)) and r.get("switchable", ("", ""))[1] == "DELAYED" and r
        )
        assert [name for name, (_, _, marked) in rows.items() if marked] == ["switchable"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard-delayed.png"))
        tg.cancel_scope.cancel()
