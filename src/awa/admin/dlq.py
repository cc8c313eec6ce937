"""The dead-letter hold as an operator sees it: list, show, retry, purge, policies.

The operations themselves live in ``awa.dlq.DeadLetters`` because the client offers them
too (``client.dlq``, where an application also *declares* its policies) and the client
cannot import this package, which sits beside it. Here they are bound to the admin's host,
and the types the surfaces print are re-exported so ``cli``/``web`` import only ``admin``.
"""

from __future__ import annotations

from awa.dlq import DeadLetter, DeadLetters, PolicyRow, RetryOutcome

__all__ = ["DeadLetter", "DeadLetters", "PolicyRow", "RetryOutcome"]
