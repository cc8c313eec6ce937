"""The operator console in a real headless Chromium, clicked as an operator would, against a
real runtime: log in with the operator token; pause a queue and see the runtime stop
claiming it (its jobs stay available), resume and see them run; open a failed job's detail
showing its two failed attempts, click retry and see it complete; cancel a running job
(confirming the dialog) and see its runtime stop it; the lanes page marks a stopped
leader's data STALE. Screenshots go to
``build/screenshots/`` (console-*.png).
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

import awa
from awa.config import MaintenanceConfig
from support.browser import chromium, log_in, screenshot, until_true
from support.console import QUICK_RETRY, finished, served_console, until

TOKEN = "browser-operator-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def _click(driver: webdriver.Chrome, css: str) -> bool:
    """Click the element ``css`` names, if it is there (the page re-renders on refresh)."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        if found and found[0].is_enabled():
            found[0].click()
            return True
    except StaleElementReferenceException:
        pass
    return False


def _text(driver: webdriver.Chrome, css: str) -> str:
    try:
        return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:
        return ""


def _accept_dialog(driver: webdriver.Chrome) -> None:
    driver.switch_to.alert.accept()


async def _state_is(client: awa.Client, job_id: int, state: str) -> bool:
    return (await client.get_job(job_id)).state == state


async def test_operator_pauses_resumes_and_retries_from_the_browser(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    ran: list[int] = []
    failing = True

    @client.handler("send", queue="mail")
    async def send(ctx: awa.JobContext) -> None:
        ran.append(ctx.job.id)

    @client.handler("stuck")
    async def stuck(ctx: awa.JobContext) -> None:
        await anyio.sleep(3600)  # until the operator cancels it

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        if failing:
            raise RuntimeError(f"upstream down (attempt {ctx.job.attempt})")

    config = awa.RuntimeConfig(
        queues={"default": 2, "mail": 2}, backoff=QUICK_RETRY, heartbeat_interval=0.2
    )
    maintenance = MaintenanceConfig(
        startup_jitter=0,
        election_interval=0.2,
        health_interval=0.2,
        intervals={"queue_stats": 0.2},
    )
    async with (
        client,
        awa.Runtime(client, config, maintenance=maintenance),
        served_console(database_url, token=TOKEN, health_interval=0.2) as base,
    ):
        await anyio.to_thread.run_sync(log_in, browser, base, TOKEN)
        await until_true(lambda: _text(browser, "#session") == "operator")

        # --- pause: the queues page lists "mail" (a far-future job keeps it in the stats)
        await client.insert("send", {"to": "later"}, queue="mail", delay=3600)
        await anyio.to_thread.run_sync(browser.get, base + "queues")
        pause = 'button[data-queue="mail"][data-action="pause"]'
        await until_true(lambda: _click(browser, pause))
        await until_true(lambda: "PAUSED" in _text(browser, 'tr[data-queue="mail"]'))
        assert await client.queues.is_paused("mail")
        held = [await client.insert("send", {"to": f"u{i}"}, queue="mail") for i in range(3)]
        await anyio.sleep(1.5)  # many notify and claim cycles of the running runtime
        assert ran == []
        assert {(await client.get_job(j.id)).state for j in held} == {"available"}
        await until_true(lambda: "available 3" in _text(browser, 'tr[data-queue="mail"]'))
        screenshot(browser, "console-queue-paused.png")

        # --- resume: the held jobs run
        resume = 'button[data-queue="mail"][data-action="resume"]'
        await until_true(lambda: _click(browser, resume))
        for job in held:
            assert (await finished(client, job.id)).state == "completed"
        assert sorted(ran) == sorted(j.id for j in held)
        await until_true(lambda: "running" in _text(browser, 'tr[data-queue="mail"] td'))

        # --- a job that failed twice: its detail shows both attempts; retry completes it
        job = await client.insert("flaky", {"invoice": 7}, max_attempts=2)
        assert (await finished(client, job.id)).state == "failed"
        await anyio.to_thread.run_sync(browser.get, f"{base}jobs/{job.id}")
        rows = await until_true(
            lambda: (t := _text(browser, "#job-errors tbody tr")).count("upstream down") == 2 and t
        )
        assert "attempt 1" in rows and "attempt 2" in rows
        assert '"invoice": 7' in _text(browser, "#job-args")
        browser.execute_script("document.getElementById('job-errors').scrollIntoView()")
        screenshot(browser, "console-job-two-failures.png")
        failing = False
        await until_true(lambda: _click(browser, '#job-actions button[data-action="retry"]'))
        await until(lambda: _state_is(client, job.id, "completed"))
        await until_true(lambda: "(completed)" in _text(browser, "#job-title"))
        screenshot(browser, "console-job-retried.png")

        # --- the jobs list shows it, filtered by kind
        await anyio.to_thread.run_sync(browser.get, base + "jobs?kind=flaky")
        await until_true(lambda: f"{job.id}" in _text(browser, "#jobs tbody"))

        # --- cancel a running job from the list, confirming the browser's dialog
        running = await client.insert("stuck", {})
        await until(lambda: _state_is(client, running.id, "running"))
        await anyio.to_thread.run_sync(browser.get, base + "jobs?state=running")
        cancel = f'tr[data-job="{running.id}"] button[data-action="cancel"]'
        await until_true(lambda: _click(browser, cancel))
        await anyio.to_thread.run_sync(_accept_dialog, browser)
        assert (await finished(client, running.id)).state == "cancelled"
        await until_true(lambda: "done" in _text(browser, "#flash"))


async def test_lanes_page_marks_a_stopped_leaders_data_stale(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    interval = 0.3
    maintenance = MaintenanceConfig(
        startup_jitter=0, election_interval=0.2, health_interval=interval
    )

    def health() -> set[str]:
        return set(_text(browser, "#branches tbody td:nth-child(11)").split("\n")) - {""}

    async with client, served_console(database_url, health_interval=interval) as base:
        async with awa.Runtime(client, maintenance=maintenance):
            await anyio.to_thread.run_sync(browser.get, base)
            await until_true(lambda: health() == {"on time"})
            assert "alive" in _text(browser, "#leader")
        stopped = anyio.current_time()
        await until_true(lambda: health() == {"STALE"})
        # 2 x interval after the last write, plus the page's 2 s refresh and a busy machine.
        assert anyio.current_time() - stopped <= 2 * interval + 2.0 + 2.0
        assert "NOT alive" in _text(browser, "#leader")
        assert "STALE" in _text(browser, "#age")
        screenshot(browser, "console-lanes-stale.png")
