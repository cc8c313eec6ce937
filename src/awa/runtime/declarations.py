"""Publishing the application's declarations when a runtime starts.

Why at start: operators (CLI, dashboard) and pool-only maintenance processes read cron
schedules, job kinds and dead-letter policies from the database, and they can only see what
some process of the application wrote there. A runtime publishes them once its instance id
is its own (a runtime refused for a colliding id must not overwrite the live holder's), and
``cron_sync``/``dead_letter`` keep them fresh afterwards. ``publish_declarations=False``
(the CLI's pool-only maintenance) publishes nothing.
"""

from __future__ import annotations

from awa.client import Client
from awa.maintenance.branches.cron_sync import declarations_of
from awa.store import Store

__all__ = ["publish_declarations"]


async def publish_declarations(store: Store, client: Client, instance_id: str) -> None:
    """Write ``client``'s cron schedules, declarations and dead-letter policies."""
    clock = client.clock
    if len(client.cron):
        await store.cron.cron_upsert(declarations_of(client.cron), instance_id, clock.db_now())
    await store.observe.publish_declarations(client.declarations(), instance_id, clock.db_now())
    if len(client.dlq.policies):
        await client.dlq.publish(instance_id)
