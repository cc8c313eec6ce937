"""A tiny application: two handlers, tested in ``test_example_jobs.py`` beside it."""

from __future__ import annotations

import awa

client = awa.Client()  # AWA_DATABASE_URL in production; the tests point it elsewhere

#: Stands in for an e-mail provider: what was sent, and the addresses it rate-limits.
outbox: list[dict[str, str]] = []
rate_limited: set[str] = set()


@client.handler("signup", queue="accounts")
async def signup(ctx: awa.JobContext) -> object:
    email = ctx.args["email"]
    if email.endswith(".invalid"):
        return awa.Cancel(f"cannot mail {email}")
    await client.insert("send_email", {"to": email, "template": "welcome"})
    return {"welcomed": email}


@client.handler("send_email", queue="mail")
async def send_email(ctx: awa.JobContext) -> None:
    if ctx.args["to"] in rate_limited:
        raise awa.RetryAfter(60, reason="provider rate limit")
    outbox.append(ctx.args)
