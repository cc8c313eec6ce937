"""``examples/callbacks/payments.py`` runs as a user runs it (``python payments.py``) on a
fresh database: the charge parks on its callback, the provider's side completes it, the
handler resumes with the payload and the job completes with it as its result."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from support.examples import EXAMPLES, run_script

SCRIPT = EXAMPLES / "callbacks" / "payments.py"


async def test_the_parked_charge_completes_with_the_providers_payload(
    empty_database_url: str, tmp_path: Path
) -> None:
    stdout, output = run_script(SCRIPT, empty_database_url, tmp_path, timeout=90)
    assert " completed: " in stdout, output[-4000:]

    conn = await asyncpg.connect(empty_database_url)
    try:
        job = await conn.fetchrow("SELECT id, state, attempt, result FROM awa.all_jobs")
        callback = await conn.fetchrow("SELECT job_id, state FROM awa.callbacks")
        policy = await conn.fetchval("SELECT retention_s FROM awa.dead_letter_policies")
    finally:
        await conn.close()
    assert job is not None and job["state"] == "completed"
    payment = {"paid": 1999, "reference": "pay-42"}
    assert json.loads(job["result"]) == {"order": 42, "payment": payment}
    assert f"job {job['id']} completed: " in stdout
    # It waited on a registered callback, resolved once (the resumed attempt is the same).
    assert callback is not None and callback["job_id"] == job["id"]
    assert callback["state"] == "completed"
    assert job["attempt"] == 1
    assert policy == 30 * 24 * 3600  # the declared dead-letter policy was published
