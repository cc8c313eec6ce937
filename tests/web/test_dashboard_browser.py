"""The lanes page of the console (``dashboard_app``, the read-only console) in a real
headless Chromium (``support.browser``): the page loads, shows both lanes and every branch,
and updates in place when a branch becomes delayed. A screenshot is saved to
``build/screenshots/dashboard-delayed.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult
from awa.maintenance.builtin import BUILTIN_BRANCHES
from awa.web import dashboard_app, serve
from support.browser import chromium, screenshot, until_true


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


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
        rows = await until_true(lambda: (r := _rows(browser)) and expected <= set(r) and r)
        assert {lane for lane, _, _ in rows.values()} == {"slo", "hygiene"}
        assert rows["switchable"] == ("hygiene", "on time", False)
        assert "leader" in browser.find_element(By.ID, "leader").text

        branch.slow = True  # no reload from here on: the page must update by itself
        rows = await until_true(
            lambda: (r := _rows(browser)) and r.get("switchable", ("", ""))[1] == "DELAYED" and r
        )
        assert [name for name, (_, _, marked) in rows.items() if marked] == ["switchable"]
        screenshot(browser, "dashboard-delayed.png")
        tg.cancel_scope.cancel()
