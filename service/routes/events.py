"""``/studies/{id}/events``: server-sent events as trials change, for live dashboards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from service import studies
from service.deps import DbDep, ReadAuth
from service.errors import InvalidInput
from service.events import study_events
from service.responses import error_responses
from service.tables import utcnow

router = APIRouter(prefix="/studies/{study_id}", tags=["events"])
PING_S = 15
MAX_STREAM_S = 3600
# One server-sent event as clients (and schema checkers) parse it; ``data`` is JSON text.
_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["trial", "summary", "status", "deleted"]},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
}


@router.get(
    "/events",
    response_class=EventSourceResponse,
    summary="Server-sent events: `trial` per changed trial, then `summary`; `status` when the study's status changes; `deleted` ends the stream",
    responses={
        200: {"content": {"text/event-stream": {"schema": _EVENT_SCHEMA}}, "description": "Events"},
        **error_responses(404, 422),
    },
)
def events(
    study_id: int,
    request: Request,
    db: DbDep,
    _principal: ReadAuth,
    max_seconds: Annotated[
        float, Query(gt=0, le=MAX_STREAM_S, description="Close the stream after this")
    ] = MAX_STREAM_S,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    with db.reading() as session:
        studies.get_study(session, study_id=study_id)
    since = utcnow()
    if last_event_id:
        try:
            since = datetime.fromisoformat(last_event_id)
        except ValueError:
            raise InvalidInput(("header", "last-event-id"), "not an event id this API sent") from None
        if since.tzinfo is None:
            raise InvalidInput(("header", "last-event-id"), "not an event id this API sent")
    poll = float(getattr(request.app.state, "events_poll_interval", 1.0))
    stream = study_events(db, study_id=study_id, since=since, poll_interval=poll, max_seconds=max_seconds)
    return EventSourceResponse(stream, ping=PING_S)
