"""The operator layer: what an operator does to a running system, shared by the ``awa`` CLI,
the dashboard and library code.

``Admin`` is composed of ``.jobs`` (list, inspect, cancel, retry, queue stats), ``.cron``
(list, pause, resume schedules), ``.queues`` (pause, resume, list paused queues), ``.dlq``
(the dead-letter hold), ``.events`` (the event outbox) and ``.maintenance`` (leader, lane
health, declarations catalog, dashboard snapshot). The surfaces (``awa.cli``, ``awa.web``)
reach the database only through it (an import-linter contract forbids them ``awa.store``),
so an operation exists once whichever surface offers it. ADR 018.
"""

from awa.admin.facade import Admin
from awa.admin.host import AdminHost

__all__ = ["Admin", "AdminHost"]
