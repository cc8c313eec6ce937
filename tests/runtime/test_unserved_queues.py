"""A worker warns once at start when a registered handler's queue is not one it serves
(issue 18: ``awa worker --queue other=5`` with a handler on ``mail`` ran silently while the
``mail`` jobs waited), and stays quiet when every handler's queue is served or when it is a
maintenance-only runtime (which serves no queue by design). On a real PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest

import awa
from support.maintenance import maint_config

UNSERVED = "does not serve"


async def noop(ctx: awa.JobContext) -> None:
    return None


def app(database_url: str) -> awa.Client:
    client = awa.Client(database_url)
    client.handler("send_email", queue="mail")(noop)
    client.handler("resize", queue="other")(noop)
    return client


def unserved_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "awa.runtime" and r.levelno == logging.WARNING and UNSERVED in r.getMessage()
    ]


async def test_a_worker_warns_once_naming_the_handler_its_queue_and_the_served_queues(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="awa")
    client = app(database_url)
    config = awa.RuntimeConfig(queues={"other": 5})
    async with client, awa.Runtime(client, config, run_maintenance=False) as runtime:
        await runtime.start()  # a second start() of a running runtime: no second warning
    [message] = unserved_warnings(caplog)
    assert "'send_email' (queue 'mail')" in message
    assert "serves 'other'" in message
    assert "resize" not in message  # its queue is served


@pytest.mark.parametrize("role", ["worker_serving_all", "maintenance"])
async def test_no_warning_when_every_queue_is_served_or_for_maintenance_only(
    database_url: str, caplog: pytest.LogCaptureFixture, role: str
) -> None:
    caplog.set_level(logging.INFO, logger="awa")
    client = app(database_url)
    if role == "maintenance":
        runtime = awa.Runtime(client, role="maintenance", maintenance=maint_config())
    else:
        config = awa.RuntimeConfig(queues={"mail": 1, "other": 1})
        runtime = awa.Runtime(client, config, run_maintenance=False)
    async with client, runtime:
        pass
    started = [r for r in caplog.records if r.getMessage().startswith("runtime ")]
    assert started, "the runtime's start was not logged: the capture saw nothing"
    assert unserved_warnings(caplog) == []
