"""Periodic jobs: schedules declared in code beside their handlers, fired by the leader.

Run it: ``python schedules.py`` (with no ``AWA_DATABASE_URL`` it starts a private
PostgreSQL through ``awa.embedded()``). It runs a worker with maintenance until the
every-second schedule has fired twice; ``awa worker --app schedules:client --queue
reports=2`` runs the same for good, and ``awa cron list`` shows the schedules.
"""

from __future__ import annotations

import asyncio
import os

import awa

client = awa.Client()  # AWA_DATABASE_URL, or set_database_url below
pulses: list[str] = []
two_pulses = asyncio.Event()


@client.handler("report", queue="reports", timeout=600)
async def report(ctx: awa.JobContext) -> dict[str, str]:
    fired_for = ctx.job.metadata["awa.cron"]["scheduled_at"]  # the instant, not "now"
    return {"report": f"{ctx.args['name']} for {fired_for}"}


@client.handler("pulse", queue="reports")
async def pulse(ctx: awa.JobContext) -> None:
    pulses.append(ctx.job.metadata["awa.cron"]["scheduled_at"])
    if len(pulses) == 2:
        two_pulses.set()


client.schedule(
    "nightly-report",
    "0 3 * * *",  # 03:00 every day, in the schedule's timezone
    "report",
    args={"name": "sales"},
    timezone="Europe/Berlin",
    misfire="catchup_latest",  # after an outage: only the latest missed instant, if recent
    catchup_window=6 * 3600,
    overlap="skip",  # not while the previous fire's job is pending or running
)
client.schedule("pulse", "* * * * * *", "pulse", overlap="skip")  # optional seconds field


async def main() -> None:
    await client.migrate()
    # The runtime publishes the schedules; its maintenance leader fires them into the
    # handlers' queue ("reports": no queue= on the schedules), and its workers run them.
    async with client, awa.Runtime(client, awa.RuntimeConfig(queues={"reports": 2})):
        await two_pulses.wait()
    print(f"pulsed for {pulses[0]} and {pulses[1]}")


if __name__ == "__main__":
    if os.environ.get("AWA_DATABASE_URL"):
        asyncio.run(main())
    else:
        with awa.embedded() as url:  # a private PostgreSQL in ./.awa/pgdata
            client.set_database_url(url)
            asyncio.run(main())
