from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from service.tables import Trial, utcnow
from tests.api.conftest import Api, add_trials


def _events(text: str) -> list[tuple[str, dict[str, object]]]:
    found = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def _stream_while(api: Api, study_id: int, change: Callable[[], object], max_seconds: float) -> Any:
    """The study's event stream, read while ``change`` runs 0.3 s after it opened."""

    def later() -> None:
        time.sleep(0.3)
        change()

    changer = threading.Thread(target=later)
    changer.start()
    response = api.get(f"/studies/{study_id}/events", params={"max_seconds": max_seconds})
    changer.join()
    return response


def test_the_stream_sends_a_summary_then_each_trial_that_changes(api: Api) -> None:
    api.app.state.events_poll_interval = 0.05
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.5])

    def change_later() -> None:
        time.sleep(0.3)
        with api.db.transaction() as session:
            session.execute(
                update(Trial)
                .where(Trial.study_id == study_id, Trial.number == 0)
                .values(value=0.25, updated_at=utcnow() + timedelta(milliseconds=1))
            )

    writer = threading.Thread(target=change_later)
    writer.start()
    response = api.get(f"/studies/{study_id}/events", params={"max_seconds": 1.0})
    writer.join()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[0][0] in ("trial", "summary")
    trial_values = [data["value"] for kind, data in events if kind == "trial"]
    assert trial_values[-1] == 0.25
    summaries = [data for kind, data in events if kind == "summary"]
    assert summaries[-1]["best"]["value"] == 0.25  # type: ignore[index]


def test_a_deleted_study_ends_the_stream(api: Api) -> None:
    api.app.state.events_poll_interval = 0.05
    study_id = api.create_study()["id"]

    started = time.monotonic()
    response = _stream_while(api, study_id, lambda: api.delete(f"/studies/{study_id}"), max_seconds=5)
    assert time.monotonic() - started < 4
    assert [kind for kind, _ in _events(response.text)][-1] == "deleted"


def test_the_stream_validates_its_inputs(api: Api) -> None:
    study_id = api.create_study()["id"]
    assert api.get("/studies/999/events", params={"max_seconds": 1}).status_code == 404
    assert api.get(f"/studies/{study_id}/events", params={"max_seconds": 0}).status_code == 422
    response = api.get(f"/studies/{study_id}/events", headers={"Last-Event-ID": "yesterday"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]


def test_a_status_change_is_an_event_and_every_event_kind_is_in_the_documented_schema(api: Api) -> None:
    api.app.state.events_poll_interval = 0.05
    study_id = api.create_study()["id"]

    response = _stream_while(api, study_id, lambda: api.post(f"/studies/{study_id}/pause"), max_seconds=1.0)
    events = _events(response.text)
    assert ("status", {"status": "paused", "failure": None}) in events
    schema = api.client.get("/openapi.json").json()["paths"]["/api/v1/studies/{study_id}/events"]
    documented = schema["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    kinds = set(documented["properties"]["event"]["enum"])
    assert {kind for kind, _ in events} <= kinds
    assert {"trial", "summary", "status", "deleted"} <= kinds
