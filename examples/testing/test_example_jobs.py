from collections.abc import AsyncIterator
from datetime import timedelta

import app
import pytest

import awa
from awa import testing


@pytest.fixture
async def client(awa_database_url: str) -> AsyncIterator[awa.Client]:
    app.client.set_database_url(awa_database_url)  # a fresh, migrated database per test
    async with app.client:
        yield app.client


async def test_signup_enqueues_a_welcome_email(client: awa.Client) -> None:
    result = await testing.perform(client, "signup", {"email": "ada@example.com"})
    assert isinstance(result, testing.Completed)
    assert result.result == {"welcomed": "ada@example.com"}
    await testing.assert_enqueued(client, kind="send_email", args={"to": "ada@example.com"})


async def test_an_undeliverable_signup_is_cancelled(client: awa.Client) -> None:
    result = await testing.perform(client, "signup", {"email": "bob@example.invalid"})
    assert isinstance(result, testing.Cancelled)
    assert result.reason == "cannot mail bob@example.invalid"
    await testing.refute_enqueued(client, kind="send_email")


async def test_a_rate_limited_email_is_retried_in_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "rate_limited", {"eve@example.com"})  # no database needed here
    args = {"to": "eve@example.com", "template": "welcome"}
    result = await testing.perform(app.client, "send_email", args)
    assert isinstance(result, testing.Retried)
    assert result.delay == timedelta(seconds=60)
    last = await testing.perform(app.client, "send_email", args, attempt=25, max_attempts=25)
    assert isinstance(last, testing.Failed)
