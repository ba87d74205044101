"""Server-sent events of a study: a ``trial`` event for each changed trial, then a
``summary`` (counts, best, status), found by polling ``hone_trials.updated_at``; a
``status`` event (``{"status", "failure"}``) when the study's status changes, and on
connecting to a study that is not running (a failed study says why).

Polling the database rather than notifying in-process keeps several API replicas (and
changes made by the reaper or another replica) visible to every open stream. A row
written with a timestamp slightly in the past (its transaction committed late) is
still caught: each poll looks back ``OVERLAP`` and skips what it already sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import anyio
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.db import Database
from service.errors import NotFound
from service.results import trial_out
from service.studies import get_study, summarise
from service.tables import Trial

OVERLAP = timedelta(seconds=2)
BATCH = 1000


def _changes(
    db: Database, *, study_id: int, since: datetime
) -> tuple[list[tuple[int, datetime, str]], str | None]:
    """Trials changed at or after ``since`` as (row id, updated_at, JSON), and the summary
    JSON if anything changed (None when the study no longer exists)."""
    with db.reading() as session:
        try:
            study_row = get_study(session, study_id=study_id)
        except NotFound:
            return [], None
        rows = session.scalars(
            select(Trial)
            .where(Trial.study_id == study_id, Trial.updated_at >= since)
            .order_by(Trial.updated_at, Trial.id)
            .limit(BATCH)
        ).all()
        changed = [(row.id, row.updated_at, trial_out(row).model_dump_json()) for row in rows]
        return changed, summarise(session, study=study_row).model_dump_json()


async def study_events(
    db: Database, *, study_id: int, since: datetime, poll_interval: float, max_seconds: float
) -> AsyncIterator[dict[str, str]]:
    """The event stream; ends after ``max_seconds`` (clients reconnect with Last-Event-ID)."""
    deadline = time.monotonic() + max_seconds
    sent: dict[int, datetime] = {}
    first = True
    last_status: dict[str, str | None] | None = None
    while True:
        changed, summary = await run_in_threadpool(_changes, db, study_id=study_id, since=since - OVERLAP)
        if summary is None:
            yield {"event": "deleted", "data": "{}"}
            return
        fresh = [(row_id, at, data) for row_id, at, data in changed if sent.get(row_id) != at]
        for row_id, at, data in fresh:
            sent[row_id] = at
            yield {"event": "trial", "id": at.isoformat(), "data": data}
        if fresh or first:
            yield {"event": "summary", "data": summary}
        state = json.loads(summary)
        status = {"status": state["status"], "failure": state.get("failure")}
        if status != last_status and not (first and status["status"] == "running"):
            yield {"event": "status", "data": json.dumps(status)}
        last_status, first = status, False
        if changed:
            # A full batch moves on from its last row, so a burst cannot pin the stream.
            since = max(since, changed[-1][1] + (OVERLAP if len(changed) == BATCH else timedelta(0)))
        horizon = since - OVERLAP
        sent = {row_id: at for row_id, at in sent.items() if at >= horizon}
        if time.monotonic() >= deadline:
            return
        await anyio.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))
