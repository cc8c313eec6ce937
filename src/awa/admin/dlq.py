"""The dead-letter hold as an operator sees it: list, show, retry, purge, policies.

The operations themselves live in ``awa.dlq.DeadLetters`` because the client offers them
too (``client.dlq``, where an application also *declares* its policies) and the client
cannot import this package, which sits beside it. Here they are bound to the admin's host,
with the one operation only operators need (``purge_letters``: purge named letters or fail),
and the types the surfaces print are re-exported so ``cli``/``web`` import only ``admin``.
"""

from __future__ import annotations

from collections.abc import Sequence

from awa.dlq import DeadLetter, PolicyRow, RetryOutcome
from awa.dlq import DeadLetters as _LibraryDeadLetters
from awa.errors import ValidationError

__all__ = ["DeadLetter", "DeadLetters", "PolicyRow", "RetryOutcome"]


class DeadLetters(_LibraryDeadLetters):
    """``admin.dlq``: the library's hold API, plus a purge of named letters that fails
    loudly on an id it cannot find."""

    async def purge_letters(self, dead_letter_ids: Sequence[int]) -> int:
        """Delete exactly these letters, or none: ``DeadLetterNotFound`` (nothing deleted)
        when one of them does not exist. An operator who names a letter that is not there
        (a typo, already purged or expired) is told so, where ``purge(ids)`` — idempotent
        for library code — would report 0 and succeed. How many were deleted."""
        ids = list(dead_letter_ids)
        if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in ids):
            raise ValidationError("dead_letter_ids", ids, "expected positive integer ids")
        return len(await self._host.store.dlq.dlq_purge_exactly(ids))
