"""Shared by the console's API and browser tests: serve ``awa.web.console_app`` over real
uvicorn on loopback, read the page's CSRF secret, and make a job fail for real."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

import awa
from awa.config import MaintenanceConfig
from awa.web import console_app, serve

#: A retry backoff short enough that two failed attempts take a fraction of a second.
QUICK_RETRY = awa.Backoff(base=0.05, cap=0.1, jitter=0.0)


@asynccontextmanager
async def served_console(url: str, **options: Any) -> AsyncIterator[str]:
    """The console for ``url`` on a free loopback port; yields its base URL (``/`` ended)."""
    async with anyio.create_task_group() as tg:
        port = await tg.start(serve, console_app(url, **options), "127.0.0.1", 0)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            tg.cancel_scope.cancel()


def csrf_of(page: str) -> str:
    """The CSRF secret the console embeds in every page."""
    match = re.search(r'<meta name="csrf" content="([^"]+)">', page)
    assert match, page[:500]
    return match.group(1)


async def until(probe: Any, timeout: float = 20.0, every: float = 0.05) -> Any:
    """Await ``probe()`` until it returns something truthy; return that."""
    with anyio.fail_after(timeout):
        while True:
            value = await probe()
            if value:
                return value
            await anyio.sleep(every)


async def finished(client: awa.Client, job_id: int, timeout: float = 20.0) -> awa.Job:
    """The job once it reached a terminal state."""

    async def probe() -> awa.Job | None:
        job = await client.get_job(job_id)
        return job if job.state in ("completed", "failed", "cancelled") else None

    result: awa.Job = await until(probe, timeout)
    return result


class MailOutage:
    """A "mail" queue under a dead-letter policy whose "send" handler fails while
    ``broken`` is set, and a runtime for it that moves failed jobs to the dead letters
    within a tenth of a second. Clear ``broken`` to make retried letters succeed."""

    def __init__(self, client: awa.Client) -> None:
        self.broken = True
        client.dlq.declare("mail")

        @client.handler("send", queue="mail")
        async def send(ctx: awa.JobContext) -> None:
            if self.broken:
                raise ConnectionError("smtp down")

        self.runtime = awa.Runtime(
            client,
            awa.RuntimeConfig(queues={"mail": 2}, backoff=QUICK_RETRY),
            maintenance=MaintenanceConfig(
                startup_jitter=0, election_interval=0.2, intervals={"dead_letter": 0.1}
            ),
        )
