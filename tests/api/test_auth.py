"""Every route × every kind of caller, driven from the app's own OpenAPI schema: a new
route is checked the moment it exists, and one without auth fails here."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from service.auth import revoke_token
from service.tables import Token, utcnow
from tests.api.conftest import Api

PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}
BOOTSTRAP = "bootstrap-admin-token-0123456789"
PATH_VALUES = {"study_id": "999999", "number": "0", "lease_id": "no-such-lease", "worker_id": "w"}


def required_role(method: str, path: str) -> str | None:
    """The least role each route must demand: reads need any token, lease writes a worker
    token, every other write an admin token."""
    if (method, path) in PUBLIC:
        return None
    if method == "GET":
        return "read"
    if path.startswith("/api/v1/leases"):
        return "worker"
    return "admin"


def operations(api: Api) -> list[tuple[str, str]]:
    paths = api.client.get("/openapi.json").json()["paths"]
    found = [(method.upper(), path) for path, ops in paths.items() for method in ops]
    assert len(found) >= 20
    return sorted(found)


def call(api: Api, method: str, path: str, headers: dict[str, str]) -> int:
    url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)
    params = {"max_seconds": 0.1} if url.endswith("/events") else None
    response = api.client.request(
        method, url, headers=headers, params=params, json={} if method != "GET" else None
    )
    if response.status_code == 401:
        assert response.headers.get("www-authenticate") == "Bearer"
    return response.status_code


def test_every_route_but_health_declares_bearer_auth(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for method, path in operations(api):
        secured = "security" in paths[path][method.lower()]
        assert secured == ((method, path) not in PUBLIC), (method, path)


CALLERS: dict[str, Callable[[Api], dict[str, str]]] = {
    "no token": lambda api: {},
    "malformed header": lambda api: {"Authorization": "Basic dXNlcjpwYXNz"},
    "empty bearer": lambda api: {"Authorization": "Bearer "},
    "unknown token": lambda api: {"Authorization": "Bearer hone_" + "x" * 43},
    "revoked token": lambda api: {"Authorization": f"Bearer {api.tokens['read']}"},
}


@pytest.mark.parametrize("caller", list(CALLERS))
def test_a_caller_without_a_valid_token_gets_401_everywhere_but_health(api: Api, caller: str) -> None:
    if caller == "revoked token":
        with api.db.transaction() as session:
            read_id = session.query(Token.id).filter(Token.role == "read").scalar()
            revoke_token(session, token_id=read_id, now=utcnow())
    headers = CALLERS[caller](api)
    for method, path in operations(api):
        status = call(api, method, path, headers)
        if required_role(method, path) is None:
            assert status == 200, (method, path, status)
        else:
            assert status == 401, (method, path, status)


RANK = {"read": 0, "worker": 1, "admin": 2}


@pytest.mark.parametrize("role", ["read", "worker", "admin", "bootstrap admin"])
def test_each_role_may_do_what_its_rank_allows_and_gets_403_otherwise(
    make_api: Callable[..., Api], db_url: str, role: str
) -> None:
    api = make_api(db_url, admin_token=BOOTSTRAP)
    token = BOOTSTRAP if role == "bootstrap admin" else api.tokens[role]  # type: ignore[index]
    rank = RANK["admin" if role == "bootstrap admin" else role]
    for method, path in operations(api):
        needed = required_role(method, path)
        status = call(api, method, path, {"Authorization": f"Bearer {token}"})
        if needed is not None and rank < RANK[needed]:
            assert status == 403, (role, method, path, status)
        else:
            assert status not in (401, 403), (role, method, path, status)


def test_a_token_is_recorded_as_used_without_its_secret_in_the_database(api: Api) -> None:
    api.get("/studies", role="read")
    with api.db.reading() as session:
        rows = session.query(Token).all()
    read = next(row for row in rows if row.role == "read")
    assert read.last_used_at is not None
    assert all(api.tokens[role] not in (row.hash, row.prefix) for row in rows for role in api.tokens)  # type: ignore[index]


@pytest.mark.parametrize("cache_seconds", [0.0, 1.0])
def test_a_revoked_token_stops_working_within_the_token_cache_time(
    make_api: Callable[..., Api], db_url: str, cache_seconds: float
) -> None:
    api = make_api(db_url, token_cache_seconds=cache_seconds)
    assert api.get("/studies", role="read").status_code == 200  # checked, and cached for cache_seconds
    with api.db.transaction() as session:  # as `hone token revoke` does, from another process
        read_id = session.query(Token.id).filter(Token.role == "read").scalar()
        revoke_token(session, token_id=read_id, now=utcnow())
    revoked_at = time.monotonic()
    while api.get("/studies", role="read").status_code == 200:
        assert time.monotonic() - revoked_at < cache_seconds + 0.5, "the revoked token still works"
        time.sleep(0.05)
    if cache_seconds == 0:
        assert time.monotonic() - revoked_at < 0.5  # refused at the first request after
    assert api.get("/studies", role="worker").status_code == 200  # other tokens are unaffected
