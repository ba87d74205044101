"""The study client: error messages, pagination and retries, against an in-memory transport."""

from __future__ import annotations

import io
import json
import socket

import httpx
import pytest

from hone.client import ApiError, ApiUnreachableError, Client
from tests.unit.answers import study_json, trial_json


def client_answering(transport: httpx.MockTransport) -> Client:
    return Client("http://hone.test", "t" * 32, transport=transport)


def test_a_422_names_the_field_in_dotted_form() -> None:
    detail = [
        {
            "loc": ["body", "space", "lr", "low"],
            "msg": "a log-scaled parameter needs low > 0",
            "type": "value_error",
        },
        {"loc": ["body", "rounds"], "msg": "Field required", "type": "missing"},
    ]
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json={"detail": detail}))
    with pytest.raises(ApiError) as caught, client_answering(transport) as client:
        client.create_study({"name": "x"})
    assert caught.value.status == 422
    assert str(caught.value) == "space.lr.low: a log-scaled parameter needs low > 0; rounds: Field required"


def test_a_string_detail_is_the_message_and_a_bare_status_gets_a_human_one() -> None:
    answers = iter([httpx.Response(409, json={"detail": "name in use"}), httpx.Response(401)])
    transport = httpx.MockTransport(lambda request: next(answers))
    with client_answering(transport) as client:
        with pytest.raises(ApiError, match="^name in use$"):
            client.stop(1)
        with pytest.raises(ApiError, match="refused the token"):
            client.get_study(1)


def test_requests_carry_the_bearer_token_and_the_api_prefix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=study_json(id=3, status="running"))

    with client_answering(httpx.MockTransport(handler)) as client:
        assert client.get_study(3).id == 3
    assert seen[0].url.path == "/api/v1/studies/3"
    assert seen[0].headers["authorization"] == "Bearer " + "t" * 32


def test_iter_trials_follows_the_cursor_to_the_last_page() -> None:
    pages = {
        None: {"items": [trial_json(number=0), trial_json(number=1)], "next_cursor": "c1", "total": 3},
        "c1": {"items": [trial_json(number=2)], "next_cursor": None, "total": 3},
    }
    cursors: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        cursors.append(cursor)
        assert request.url.params["state"] == "complete"
        return httpx.Response(200, json=pages[cursor])

    with client_answering(httpx.MockTransport(handler)) as client:
        numbers = [trial.number for trial in client.iter_trials(7, state="complete", page_size=2)]
    assert numbers == [0, 1, 2]
    assert cursors == [None, "c1"]


def test_export_streams_the_body_into_a_file() -> None:
    body = b"number,value\n" + b"".join(f"{i},{i / 10}\n".encode() for i in range(1000))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    out = io.BytesIO()
    with client_answering(transport) as client:
        written = client.export_to(1, out, format="csv")
    assert written == len(body)
    assert out.getvalue() == body


def test_a_connection_refused_is_retried_then_says_to_start_hone_up() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    client = Client(f"http://127.0.0.1:{port}", None, timeout=2)
    with pytest.raises(ApiUnreachableError) as caught:
        client.list_studies()
    assert (
        str(caught.value) == f"cannot reach the hone API at http://127.0.0.1:{port} — is `hone up` running?"
    )
    assert caught.value.status == 0


def test_a_connect_error_followed_by_an_answer_succeeds() -> None:
    attempts = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=[study_json(id=1)])

    with client_answering(httpx.MockTransport(handler)) as client:
        assert [study.id for study in client.list_studies()] == [1]
    assert attempts["n"] == 3


def test_a_non_json_error_body_still_gives_a_message() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(ApiError, match="Bad Gateway"), client_answering(transport) as client:
        client.best(1)


def test_create_study_posts_the_spec_as_json() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        return httpx.Response(201, json=study_json(id=5, name=json.loads(request.content)["name"]))

    with client_answering(httpx.MockTransport(handler)) as client:
        study = client.create_study({"name": "digits"})
        assert (study.id, study.name) == (5, "digits")
