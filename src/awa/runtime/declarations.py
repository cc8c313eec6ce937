"""Publishing the application's declarations when a runtime starts.

Why at start: operators (CLI, dashboard) and pool-only maintenance processes read cron
schedules, job kinds and dead-letter policies from the database, and they can only see what
some process of the application wrote there. A runtime publishes them once its instance id
is its own (a runtime refused for a colliding id must not overwrite the live holder's), and
``cron_sync``/``dead_letter`` keep them fresh afterwards. ``publish_declarations=False``
(the CLI's pool-only maintenance) publishes nothing.

``warn_unserved_queues`` compares the other way round, the declared handlers against what
this runtime serves: a handler on a queue no runtime serves is never called and its jobs
(cron fires included) wait without an error anywhere, so a worker says so when it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from awa.client import Client
from awa.maintenance.branches.cron_sync import declarations_of
from awa.store import Store

__all__ = ["publish_declarations", "warn_unserved_queues"]

log = logging.getLogger("awa.runtime")


async def publish_declarations(store: Store, client: Client, instance_id: str) -> None:
    """Write ``client``'s cron schedules, declarations and dead-letter policies."""
    clock = client.clock
    if len(client.cron):
        await store.cron.cron_upsert(declarations_of(client.cron), instance_id, clock.db_now())
    await store.observe.publish_declarations(client.declarations(), instance_id, clock.db_now())
    if len(client.dlq.policies):
        await client.dlq.publish(instance_id)


def warn_unserved_queues(client: Client, queues: Collection[str]) -> list[str]:
    """Log one WARNING naming every handler whose queue is not in ``queues`` (the queues
    this runtime serves), with its queue; return those kinds. Only a warning: another
    runtime may serve those queues (one worker per queue is a normal deployment), but when
    none does, this line is the only trace of the jobs that never run. Called for workers
    only: a maintenance-only runtime serves no queue by design."""
    served = set(queues)
    unserved = sorted(
        (spec for spec in client.registry if spec.queue not in served), key=lambda s: s.kind
    )
    if unserved:
        log.warning(
            "handlers registered on queues this runtime does not serve: %s; this runtime "
            "serves %s. Their jobs run only where a runtime serves those queues "
            "(RuntimeConfig(queues=...), `awa worker --queue NAME=N`).",
            ", ".join(f"{spec.kind!r} (queue {spec.queue!r})" for spec in unserved),
            ", ".join(repr(q) for q in sorted(served)) or "no queue",
        )
    return [spec.kind for spec in unserved]
