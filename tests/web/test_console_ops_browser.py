"""The console's operator pages in a real headless Chromium, clicked as an operator would,
against real runtimes (ADR 033): "run now" on the cron page enqueues a job the jobs list
then shows; retry and purge on the dead-letter page; the lanes page's history charts draw
points from the leader's persisted health samples; and a slowed hygiene branch, led by a
separate process, shows DELAYED until that process is killed (SIGKILL), after which the
page marks the data STALE within twice the health interval the leader persisted (the
console is not told it). One screenshot per test in ``build/screenshots/``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from selenium import webdriver

import awa
from awa.config import MaintenanceConfig
from support.browser import (
    chromium,
    click_if_present,
    log_in,
    screenshot,
    text_of,
    until_true,
)
from support.cli_process import awa_env
from support.console import MailOutage, finished, served_console, until

TOKEN = "ops-browser-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def _accept_dialog(driver: webdriver.Chrome) -> None:
    driver.switch_to.alert.accept()


def _log_in(driver: webdriver.Chrome, base: str, page: str) -> None:
    """Log in as the operator, then open ``page``."""
    log_in(driver, base, TOKEN)
    driver.get(base + page)


def _chart(driver: webdriver.Chrome, branch: str) -> dict[str, Any]:
    """What the lanes page drew for ``branch``: points per line, delayed marks, verdict."""
    found: dict[str, Any] = driver.execute_script(
        """const c = document.querySelector(`.chart[data-branch="${arguments[0]}"]`);
        if (!c) return {};
        const n = cls => Number(c.querySelector('polyline.' + cls).dataset.n);
        return {lateness: n('lateness'), duration: n('duration'),
                delayed: c.querySelectorAll('rect.delayed').length,
                verdict: c.querySelector('span').textContent,
                stale: c.classList.contains('stale')};""",
        branch,
    )
    return found


async def test_cron_run_now_enqueues_a_job_the_jobs_list_shows(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    client.schedule("nightly", "0 3 * * *", "report", queue="reports")
    async with (
        client,
        awa.Runtime(client, awa.RuntimeConfig(queues={}), run_maintenance=False),
        served_console(database_url, token=TOKEN) as base,
    ):
        await anyio.to_thread.run_sync(_log_in, browser, base, "cron")
        row = 'tr[data-schedule="nightly"]'
        await until_true(lambda: "active" in text_of(browser, row))
        await until_true(lambda: click_if_present(browser, f'{row} button[data-op="cron-run"]'))
        await anyio.to_thread.run_sync(_accept_dialog, browser)
        flash = await until_true(lambda: (t := text_of(browser, "#flash")) and "done" in t and t)
        job_id = int(flash.split("(job ")[1].rstrip(")"))
        job = await client.get_job(job_id)
        assert (job.kind, job.queue, job.state) == ("report", "reports", "available")
        assert job.metadata["awa.cron"]["manual"] is True
        await until_true(lambda: text_of(browser, f"{row} td:nth-child(7)") == "1")  # fired

        await anyio.to_thread.run_sync(browser.get, base + "jobs?kind=report")
        await until_true(lambda: f"{job_id}" in text_of(browser, f'tr[data-job="{job_id}"]'))
        await anyio.to_thread.run_sync(screenshot, browser, "ops-cron-run-now-jobs-list.png")


async def test_dead_letter_retry_and_purge_from_the_browser(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    outage = MailOutage(client)
    async with (
        client,
        outage.runtime,
        served_console(database_url, token=TOKEN) as base,
    ):
        first, second = [await client.insert("send", {"n": n}, max_attempts=1) for n in (1, 2)]

        async def held() -> bool:
            letters = await client.dlq.list_letters()
            return {d.id for d in letters} == {first.id, second.id}

        await until(held)
        await anyio.to_thread.run_sync(_log_in, browser, base, "dead-letters")
        await until_true(lambda: "smtp down" in text_of(browser, f'tr[data-letter="{first.id}"]'))

        outage.broken = False
        retry = f'tr[data-letter="{first.id}"] button[data-op="dlq-retry"]'
        await until_true(lambda: click_if_present(browser, retry))
        flash = await until_true(lambda: (t := text_of(browser, "#flash")) and "done" in t and t)
        fresh_id = int(flash.split("(job ")[1].rstrip(")"))
        assert (await finished(client, fresh_id)).state == "completed"
        # Pending letters only by default: the retried one leaves the list.
        await until_true(lambda: not text_of(browser, f'tr[data-letter="{first.id}"]'))

        purge = f'tr[data-letter="{second.id}"] button[data-op="dlq-purge"]'
        await until_true(lambda: click_if_present(browser, purge))
        await anyio.to_thread.run_sync(_accept_dialog, browser)
        await until_true(lambda: "no dead letters" in text_of(browser, "#dlq tbody"))
        assert [d.id for d in await client.dlq.list_letters(include_retried=True)] == [first.id]

        await anyio.to_thread.run_sync(browser.get, base + "dead-letters?retried=1")
        await until_true(lambda: str(fresh_id) in text_of(browser, f'tr[data-letter="{first.id}"]'))
        await anyio.to_thread.run_sync(screenshot, browser, "ops-dead-letters-retried.png")


async def test_lanes_page_charts_draw_points_from_health_samples(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2, health_interval=0.2)
    async with (
        client,
        awa.Runtime(client, maintenance=maintenance),
        served_console(database_url) as base,
    ):
        await anyio.to_thread.run_sync(browser.get, base)
        drawn = await until_true(
            lambda: (c := _chart(browser, "promote_scheduled")) and c["lateness"] >= 5 and c
        )
        assert drawn["duration"] >= 5 and drawn["verdict"] == "on time"
        assert "leader alive" in text_of(browser, "#history-age")
        await anyio.to_thread.run_sync(screenshot, browser, "ops-lanes-charts.png")


#: A maintenance-only process whose hygiene branch ``slowed`` takes 10x its interval.
LEADER = """
import sys
import anyio
import awa
from awa.config import MaintenanceConfig
from awa.maintenance import HYGIENE, Branch, BranchContext, BranchResult

class Slowed(Branch):
    name = "slowed"
    lane = HYGIENE
    default_interval = 0.05

    async def run_once(self, ctx: BranchContext) -> BranchResult:
        await anyio.sleep(0.5)
        return BranchResult({"ran": 1})

async def main() -> None:
    client = awa.Client(sys.argv[1])
    config = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, health_interval=float(sys.argv[2])
    )
    async with client, awa.Runtime(
        client, role="maintenance", maintenance=config, branches=[Slowed()]
    ):
        print("leading", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def _health(driver: webdriver.Chrome) -> dict[str, str]:
    """branch -> the health cell of the lanes table (one script call: the table re-renders)."""
    cells = driver.execute_script(
        "return [...document.querySelectorAll('#branches tbody tr')].map(tr =>"
        " [...tr.querySelectorAll('td')].map(td => td.textContent))"
    )
    return {c[1]: c[10] for c in cells if len(c) >= 12}


async def test_slowed_branch_is_delayed_then_stale_after_its_leader_is_killed(
    database_url: str, browser: webdriver.Chrome
) -> None:
    interval = 0.5
    leader = await anyio.open_process(
        [sys.executable, "-c", LEADER, database_url, str(interval)],
        env=awa_env(),
        stdout=subprocess.DEVNULL,
    )
    try:
        async with served_console(database_url) as base:  # not told the interval
            await anyio.to_thread.run_sync(browser.get, base)
            await until_true(lambda: _health(browser).get("slowed") == "DELAYED", timeout=60)
            chart = await until_true(
                lambda: (c := _chart(browser, "slowed")) and c["delayed"] >= 1 and c
            )
            assert chart["verdict"] == "DELAYED" and not chart["stale"]
            assert "alive" in text_of(browser, "#leader")
            assert f"health every {interval:.2f} s from the leader" in text_of(
                browser, "#history-age"
            )

            leader.send_signal(signal.SIGKILL)  # no goodbye: the rows just stop coming
            await leader.wait()
            killed = anyio.current_time()
            await until_true(lambda: set(_health(browser).values()) == {"STALE"})
            # 2 x interval after the last write, plus the page's 2 s refresh and a busy
            # machine (measured, not asserted tight: the machine is shared).
            assert anyio.current_time() - killed <= 2 * interval + 2.0 + 2.0
            assert "NOT alive" in text_of(browser, "#leader")
            stale = await until_true(lambda: (c := _chart(browser, "slowed")) and c["stale"] and c)
            assert stale["verdict"] == "STALE"
            assert "STALE" in text_of(browser, "#history-age")
            await anyio.to_thread.run_sync(screenshot, browser, "ops-lanes-delayed-then-stale.png")
    finally:
        if leader.returncode is None:
            leader.kill()
        with anyio.CancelScope(shield=True):
            await leader.wait()
