"""The liveness pipe between a supervisor and its worker processes (ADR 028).

The supervisor creates one pipe per child, keeps the write end (which nobody else holds:
``os.pipe`` fds are not inherited, and ``pass_fds`` hands the child only the read end) and
never writes to it. The kernel closes the write end when the supervisor exits, however it
exits, SIGKILL included; the child then reads end-of-file and stops. Unlike
``PR_SET_PDEATHSIG`` this works on every POSIX system, has no race with a parent that dies
before the child could arm it (end-of-file stays readable), and is not tied to the thread
that spawned the child.
"""

from __future__ import annotations

import asyncio
import os

__all__ = ["supervisor_gone"]


async def supervisor_gone(fd: int) -> None:
    """Return once the supervisor's end of the liveness pipe ``fd`` is closed (the child's
    half of the protocol: ``awa worker --supervisor-fd``)."""
    loop = asyncio.get_running_loop()
    while True:
        readable: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _resolve, readable)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        if not os.read(fd, 4096):  # end of file: no writer is left
            return


def _resolve(future: asyncio.Future[None]) -> None:
    """The reader callback may fire again before the waiting task has run."""
    if not future.done():
        future.set_result(None)
