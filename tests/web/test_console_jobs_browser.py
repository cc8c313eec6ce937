"""The console's jobs page in a real headless Chromium, clicked as an operator would, with a
real runtime running the jobs (ADR 032): filter the list and bulk-retry every failed job
of a queue through the confirmation ("Retry 5 failed jobs of queue mail?") and see them
complete; open a job's detail with its two failed attempts; cancel a running job from its
detail page; discard a job from the list and another from its detail page.

One screenshot per test in ``build/screenshots/`` (git-ignored; CI keeps it as an artefact).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
)
from selenium.webdriver.common.by import By

import awa
from awa.config import MaintenanceConfig
from awa.errors import JobNotFound
from support.browser import (
    chromium,
    click_if_present,
    log_in,
    screenshot,
    text_of,
    until_true,
)
from support.console import QUICK_RETRY, finished, served_console, until

TOKEN = "jobs-browser-token"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def _alert_text(driver: webdriver.Chrome) -> str:
    """The open confirmation's text ("" while none is open)."""
    try:
        return str(driver.switch_to.alert.text)
    except NoAlertPresentException:
        return ""


def _accept(driver: webdriver.Chrome) -> None:
    driver.switch_to.alert.accept()


def _fill_filter(driver: webdriver.Chrome, fields: dict[str, str]) -> None:
    """Type the filter into the page's form and submit it, as an operator would."""
    form = driver.find_element(By.ID, "filters")
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            field.find_element(By.CSS_SELECTOR, f'option[value="{value}"], option').click()
            driver.execute_script("arguments[0].value = arguments[1]", field, value)
        else:
            field.clear()
            field.send_keys(value)
    form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').click()


@asynccontextmanager
async def _console(
    database_url: str, browser: webdriver.Chrome, client: awa.Client
) -> AsyncIterator[str]:
    """A runtime (queues default and mail) and the console, logged in; yields its base."""
    config = awa.RuntimeConfig(
        queues={"default": 4, "mail": 4}, backoff=QUICK_RETRY, heartbeat_interval=0.2
    )
    maintenance = MaintenanceConfig(startup_jitter=0, election_interval=0.2)
    async with (
        awa.Runtime(client, config, maintenance=maintenance),
        served_console(database_url, token=TOKEN) as base,
    ):
        await anyio.to_thread.run_sync(log_in, browser, base + "jobs", TOKEN)
        yield base


async def test_bulk_retry_by_filter_after_confirming_the_count(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    failing = True
    ran: list[int] = []

    @client.handler("send", queue="mail")
    async def send(ctx: awa.JobContext) -> None:
        if failing:
            raise RuntimeError("smtp down")
        ran.append(ctx.job.id)

    async with client, _console(database_url, browser, client) as base:
        mail = [
            await client.insert("send", {"i": i}, queue="mail", max_attempts=1) for i in range(5)
        ]
        other = await client.insert("send", {"i": 9}, queue="default", max_attempts=1)
        for job in [*mail, other]:
            assert (await finished(client, job.id)).state == "failed"

        await anyio.to_thread.run_sync(_fill_filter, browser, {"queue": "mail", "state": "failed"})
        await until_true(lambda: "state=failed" in browser.current_url)
        listed = await until_true(
            lambda: (t := text_of(browser, "#jobs tbody")).count("failed") == 5 and t
        )
        assert str(other.id) not in listed.split()
        failing = False
        await until_true(lambda: click_if_present(browser, 'button[data-bulk="retry"]'))
        question = await until_true(lambda: _alert_text(browser))
        assert question == "Retry 5 failed jobs of queue mail?"
        await anyio.to_thread.run_sync(_accept, browser)
        await until_true(lambda: "retry: 5 of 5 jobs done" in text_of(browser, "#flash"))
        for job in mail:
            assert (await finished(client, job.id)).state == "completed"
        assert sorted(ran) == sorted(j.id for j in mail)
        assert (await client.get_job(other.id)).state == "failed"  # not in the filter
        await anyio.to_thread.run_sync(browser.get, base + "jobs?queue=mail")
        await until_true(lambda: text_of(browser, "#jobs tbody").count("completed") == 5)
        screenshot(browser, "jobs-bulk-retry.png")


async def test_detail_shows_each_failed_attempt_and_cancel_stops_a_running_job(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)

    @client.handler("flaky")
    async def flaky(ctx: awa.JobContext) -> None:
        raise RuntimeError(f"upstream down (attempt {ctx.job.attempt})")

    @client.handler("stuck")
    async def stuck(ctx: awa.JobContext) -> None:
        await anyio.sleep(3600)

    async with client, _console(database_url, browser, client) as base:
        job = await client.insert("flaky", {"invoice": 7}, max_attempts=2)
        # Generous timeouts: the retry waits for the leader's promotion on a shared machine.
        assert (await finished(client, job.id, timeout=60)).state == "failed"
        await anyio.to_thread.run_sync(browser.get, f"{base}jobs/{job.id}")
        rows = await until_true(
            lambda: (
                (t := text_of(browser, "#job-errors tbody tr")).count("upstream down") == 2 and t
            )
        )
        assert "attempt 1" in rows and "attempt 2" in rows
        browser.execute_script("document.getElementById('job-errors').scrollIntoView()")
        screenshot(browser, "jobs-detail-two-failures.png")

        running = await client.insert("stuck", {})

        async def is_running() -> bool:
            return (await client.get_job(running.id)).state == "running"

        await until(is_running, timeout=60)
        await anyio.to_thread.run_sync(browser.get, f"{base}jobs/{running.id}")
        await until_true(lambda: "(running)" in text_of(browser, "#job-title"))
        assert text_of(browser, '#job-actions button[data-action="discard"]') == ""
        cancel = '#job-actions button[data-action="cancel"]'
        await until_true(lambda: click_if_present(browser, cancel))
        assert await until_true(lambda: _alert_text(browser)) == f"Cancel job {running.id}?"
        await anyio.to_thread.run_sync(_accept, browser)
        assert (await finished(client, running.id, timeout=60)).state == "cancelled"
        await until_true(lambda: "(cancelled)" in text_of(browser, "#job-title"), timeout=60)
        screenshot(browser, "jobs-cancelled-running.png")


async def test_discard_from_the_list_and_from_the_detail_page(
    database_url: str, browser: webdriver.Chrome
) -> None:
    client = awa.Client(database_url)
    async with client, _console(database_url, browser, client) as base:
        first = await client.insert("report", {}, queue="slow", delay=3600, unique_key="nightly")
        second = await client.insert("report", {"n": 2}, queue="slow", delay=3600)
        await anyio.to_thread.run_sync(browser.get, base + "jobs?queue=slow")
        button = f'tr[data-job="{first.id}"] button[data-action="discard"]'
        await until_true(lambda: click_if_present(browser, button))
        assert "deleted for good" in await until_true(lambda: _alert_text(browser))
        await anyio.to_thread.run_sync(_accept, browser)
        await until_true(lambda: f"discard: job {first.id} done" in text_of(browser, "#flash"))
        with pytest.raises(JobNotFound):
            await client.get_job(first.id)
        await until_true(
            lambda: (
                not browser.find_elements(By.CSS_SELECTOR, f'tr[data-job="{first.id}"]')
                and browser.find_elements(By.CSS_SELECTOR, f'tr[data-job="{second.id}"]')
            )
        )
        again = await client.insert("report", {}, queue="slow", delay=3600, unique_key="nightly")
        assert again.id != first.id  # its unique key was freed

        await anyio.to_thread.run_sync(browser.get, f"{base}jobs/{second.id}")
        discard = '#job-actions button[data-action="discard"]'
        await until_true(lambda: click_if_present(browser, discard))
        await until_true(lambda: _alert_text(browser))
        await anyio.to_thread.run_sync(_accept, browser)
        await until_true(lambda: browser.current_url.endswith("/jobs"))
        await until_true(lambda: f"discard: job {second.id} done" in text_of(browser, "#flash"))
        with pytest.raises(JobNotFound):
            await client.get_job(second.id)
        screenshot(browser, "jobs-discarded.png")
