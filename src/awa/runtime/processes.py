"""Run one application's workers in several processes: all the cores of a host (ADR 028).

``WorkerProcesses`` is a supervisor of N children, each ``python -m awa worker ...``: an
ordinary runtime with its own instance id, pools and presence, all on one database; at most
one leads maintenance, by the usual election. The supervisor never connects to the
database, so it has nothing to recover when a child dies. Children are *spawned* (a fresh
interpreter), never forked: a forked copy of a process running an event loop and threads
inherits locks held by threads that do not exist in the copy.

- A child that exits while no stop was asked for is restarted after a delay that doubles
  per restart (``RestartPolicy``); past the policy every child is stopped and
  ``WorkerCrashLoop`` raised.
- ``request_stop(signum)`` passes ``signum`` on to every child (each shuts down
  gracefully), waits ``stop_timeout`` and kills the rest; a second request (or a
  cancellation while waiting) passes it on again: the children stop waiting for handlers.
- Children run in their own process group, so a terminal's Ctrl-C reaches only the
  supervisor, which passes it on once (twice would make them abort their handlers).
- Each child watches a pipe only the supervisor can write to (``--supervisor-fd``,
  ``awa.runtime.supervisor_pipe``): when the supervisor dies, SIGKILL included, the child
  reads end-of-file and shuts down gracefully. No orphan keeps claiming jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio

from awa.errors import ConfigError, ValidationError, WorkerCrashLoop
from awa.runtime.restarts import RestartPolicy, RestartTracker
from awa.runtime.worker_command import describe_exit, resolve_processes, worker_argv

__all__ = ["WorkerProcesses", "resolve_processes", "run_processes", "worker_argv"]

log = logging.getLogger("awa.processes")

#: Seconds a stop waits beyond the children's own shutdown grace (closing pools, the leader
#: handing over) before it kills them.
STOP_MARGIN = 15.0


@dataclass
class _Child:
    slot: int
    process: asyncio.subprocess.Process
    pipe: int  # the write end of its liveness pipe; closing it tells the child to stop


class WorkerProcesses:
    """Supervise one child per entry of ``argvs`` (each the arguments after ``python -m
    awa``, usually from ``worker_argv``) until ``request_stop``; see the module docstring.

    ``env`` replaces the children's environment (default: this process's), ``cwd`` their
    working directory (where ``--app`` is imported from), ``output`` (a file descriptor,
    or ``subprocess.DEVNULL``) takes their stdout and stderr (default: this process's).
    After ``run()``, ``clean`` says whether every child stopped by itself, in time, with a
    clean code."""

    def __init__(
        self,
        argvs: Sequence[Sequence[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
        stop_timeout: float = 30.0 + STOP_MARGIN,
        policy: RestartPolicy | None = None,
        output: int | None = None,
    ) -> None:
        if not argvs:
            raise ValidationError("processes", 0, "at least one worker process is needed")
        self._argvs = [list(argv) for argv in argvs]
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._python = python
        self._output = output
        self._stop_timeout = stop_timeout
        self._tracker = RestartTracker(policy or RestartPolicy())
        self._children: dict[int, _Child] = {}
        self._stop = anyio.Event()
        self._signals: list[int] = []
        self.failure: WorkerCrashLoop | None = None
        self.clean = False
        #: The children's exit codes at the last stop (SIGKILLed ones as -9).
        self.stop_codes: list[int] = []
        #: Processes started so far, restarts included.
        self.started = 0

    @classmethod
    def for_app(
        cls,
        app: str,
        processes: int | None = None,
        *,
        queues: Mapping[str, int] | None = None,
        database_url: str | None = None,
        migrate: bool = False,
        maintenance: bool = True,
        shutdown_grace: float = 30.0,
        extra_args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        policy: RestartPolicy | None = None,
        output: int | None = None,
    ) -> WorkerProcesses:
        """``processes`` children (``None`` or 0: one per core) of ``awa worker --app
        app`` on ``database_url`` (default ``AWA_DATABASE_URL``), given to them in their
        environment rather than on their command line, where ``ps`` would show a password."""
        base = dict(env if env is not None else os.environ)
        url = database_url or base.get("AWA_DATABASE_URL")
        if not url:
            raise ConfigError("worker processes need database_url= or AWA_DATABASE_URL")
        base["AWA_DATABASE_URL"] = url
        argv = worker_argv(
            app,
            queues=queues,
            migrate=migrate,
            maintenance=maintenance,
            shutdown_grace=shutdown_grace,
            extra_args=extra_args,
        )
        count = resolve_processes(processes)
        return cls(
            [argv] * count,
            env=base,
            cwd=cwd,
            stop_timeout=shutdown_grace + STOP_MARGIN,
            policy=policy,
            output=output,
        )

    @property
    def pids(self) -> dict[int, int]:
        """Slot → pid of every child currently running."""
        return {
            slot: c.process.pid
            for slot, c in self._children.items()
            if c.process.returncode is None
        }

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop every child by passing ``signum`` on (from ``run()``); called again while
        they stop, pass it on again at once: the children stop waiting for handlers."""
        if self._stop.is_set():
            self._forward(signum)
            return
        self._signals.append(signum)
        self._stop.set()

    async def run(self) -> None:
        """Start every child, keep them running until ``request_stop``, stop them. Raises
        ``WorkerCrashLoop`` when a child exhausted the restart policy."""
        try:
            async with anyio.create_task_group() as tg:
                for slot in range(len(self._argvs)):
                    tg.start_soon(self._keep, slot)
                await self._stop.wait()
                tg.cancel_scope.cancel()
        except BaseException:
            # Cancelled or failed: stop them; a cancel after a stop request is a second one.
            with anyio.CancelScope(shield=True):
                await self._stop_all(again=bool(self._signals))
            raise
        await self._stop_all()
        if self.failure is not None:
            raise self.failure

    # ------------------------------------------------------------------ children

    async def _keep(self, slot: int) -> None:
        """Run slot ``slot`` until a stop, restarting its child when it dies."""
        while not self._stop.is_set():
            child = await self._spawn(slot)
            code = await child.process.wait()
            self._release(child)
            if self._stop.is_set():
                return
            delay = self._tracker.restart_delay(slot, time.monotonic())
            if delay is None:
                policy = self._tracker.policy
                self.failure = WorkerCrashLoop(
                    f"worker process {slot + 1} is crash-looping: it died more than "
                    f"{policy.max_restarts} times in {policy.window:g} s (last: "
                    f"{describe_exit(code)}); stopped the others (see its output above)"
                )
                log.error("%s", self.failure)
                self._signals.append(signal.SIGTERM)
                self._stop.set()
                return
            log.warning(
                "worker process %d (pid %d) died unexpectedly (%s); restarting in %.2f s",
                slot + 1,
                child.process.pid,
                describe_exit(code),
                delay,
            )
            await anyio.sleep(delay)

    async def _spawn(self, slot: int) -> _Child:
        read_end, write_end = os.pipe()  # both non-inheritable; pass_fds hands over one
        argv = [*self._argvs[slot], "--supervisor-fd", str(read_end)]
        try:
            with anyio.CancelScope(shield=True):  # a started child must not go unrecorded
                process = await asyncio.create_subprocess_exec(
                    self._python,
                    "-m",
                    "awa",
                    *argv,
                    stdin=subprocess.DEVNULL,
                    stdout=self._output,
                    stderr=self._output,
                    env=self._env,
                    cwd=self._cwd,
                    pass_fds=(read_end,),
                    process_group=0,
                )
        except OSError as exc:
            os.close(write_end)
            raise ConfigError(f"cannot start a worker process ({self._python}): {exc}") from exc
        finally:
            os.close(read_end)
        child = _Child(slot, process, write_end)
        self._children[slot] = child
        self.started += 1
        log.info("worker process %d started (pid %d)", slot + 1, process.pid)
        return child

    def _release(self, child: _Child) -> None:
        """The child is gone (reaped): close its pipe, forget it."""
        if self._children.get(child.slot) is child:
            del self._children[child.slot]
        with contextlib.suppress(OSError):
            os.close(child.pipe)

    def _forward(self, signum: int) -> None:
        for child in list(self._children.values()):
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signum)

    # ---------------------------------------------------------------------- stop

    async def _stop_all(self, *, again: bool = False) -> None:
        """Pass the stop signal on, wait for every child until ``stop_timeout``, kill the
        rest. ``again``, or cancelled while waiting (a second Ctrl-C in the CLI): pass it
        on once more and keep waiting, shielded, within the same bound."""
        self._stop.set()
        signum = self._signals[0] if self._signals else signal.SIGTERM
        self._forward(signum)
        first = time.monotonic()
        deadline = first + self._stop_timeout
        codes: list[int] = []
        try:
            if again:
                await self._forward_again(signum, first)
            codes += await self._wait_children(deadline)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not again:
                    await self._forward_again(signum, first)
                codes += await self._wait_children(deadline)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                killed = await self._kill_leftovers()
            self.stop_codes = codes + [-signal.SIGKILL] * killed
            allowed = self._clean_codes()
            self.clean = not killed and all(c in allowed for c in codes)
            self.clean = self.clean and self.failure is None

    async def _forward_again(self, signum: int, first: float) -> None:
        """Python runs a signal handler once for signals that arrive before it could run:
        leave the children a moment to handle the first one, or the two would be one."""
        with anyio.CancelScope(shield=True):
            await anyio.sleep(max(0.0, first + 0.2 - time.monotonic()))
        self._forward(signum)

    def _clean_codes(self) -> set[int]:
        """0 after a graceful stop; 128 + signal from a child stopped before it could shut
        down gracefully (still starting); minus the signal from one killed by it before
        its handlers were installed (still importing)."""
        return {0} | {128 + s for s in self._signals} | {-s for s in self._signals}

    async def _wait_children(self, deadline: float) -> list[int]:
        codes = []
        for child in list(self._children.values()):
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                code = await child.process.wait()
                codes.append(code)
                if code not in self._clean_codes():
                    log.warning(
                        "worker process %d (pid %d) stopped: %s",
                        child.slot + 1,
                        child.process.pid,
                        describe_exit(code),
                    )
                self._release(child)
        return codes

    async def _kill_leftovers(self) -> int:
        """SIGKILL every child still running after the stop bound; how many there were."""
        left = list(self._children.values())
        for child in left:
            log.error(
                "worker process %d (pid %d) did not stop within %.0f s: killing it",
                child.slot + 1,
                child.process.pid,
                self._stop_timeout,
            )
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
        for child in left:
            await child.process.wait()
            self._release(child)
        return len(left)


def run_processes(
    app: str,
    processes: int | None = None,
    *,
    queues: Mapping[str, int] | None = None,
    database_url: str | None = None,
    migrate: bool = False,
    maintenance: bool = True,
    shutdown_grace: float = 30.0,
    extra_args: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    policy: RestartPolicy | None = None,
) -> bool:
    """Run ``processes`` worker processes of ``app`` (``"module:client"``; ``None`` or 0:
    one per core) until SIGINT or SIGTERM, then stop them gracefully; what ``awa worker
    --processes N`` does, from Python. Blocks; call it from the main thread (it handles the
    signals). Returns whether every child stopped cleanly; raises ``WorkerCrashLoop``."""
    supervisor = WorkerProcesses.for_app(
        app,
        processes,
        queues=queues,
        database_url=database_url,
        migrate=migrate,
        maintenance=maintenance,
        shutdown_grace=shutdown_grace,
        extra_args=extra_args,
        cwd=cwd,
        policy=policy,
    )
    anyio.run(_until_signalled, supervisor)
    return supervisor.clean


async def _until_signalled(supervisor: WorkerProcesses) -> None:
    async with anyio.create_task_group() as tg:

        async def relay() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                async for signum in received:
                    supervisor.request_stop(signum)

        tg.start_soon(relay)
        await supervisor.run()
        tg.cancel_scope.cancel()
