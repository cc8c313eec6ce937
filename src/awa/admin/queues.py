"""Queue pauses as an operator sees them: pause, resume, list (ADR 024).

The operations live in ``awa.queues.Queues`` because the client offers them too
(``client.queues``) and the client cannot import this package, which sits beside it. Here
they are bound to the admin's host, and the types the surfaces print are re-exported so
``cli``/``web`` import only ``admin``.
"""

from __future__ import annotations

from awa.queues import PauseOutcome, QueuePause, Queues

__all__ = ["PauseOutcome", "QueuePause", "Queues"]
