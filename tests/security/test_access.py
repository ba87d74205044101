"""Access control: every route × every kind of credential gets exactly the documented outcome.

The route list comes from the app itself, so a route added without an auth dependency
(and not on the short public list) fails here. Roles nest: read < worker < admin.
"""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select

from service import auth
from service.auth import ROLES, Role
from service.tables import Token, utcnow
from tests.api.conftest import Api

# Routes that answer without a token, and why.
PUBLIC = {
    ("GET", "/healthz"),  # liveness probe, says nothing
    ("GET", "/readyz"),  # readiness probe for compose / load balancers
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/docs-assets"),  # Swagger UI's and ReDoc's files, served so /docs works offline
    ("GET", "/"),  # hone's own page: no data until the user gives it a token
    ("GET", "/web"),  # the page's scripts and styles
}
CREDENTIALS = ("none", "malformed", "unknown", "revoked", "read", "worker", "admin")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    role: Role | None  # None: public


def _roles_of(dependant: Any) -> list[Role]:
    found: list[Role] = []
    for dependency in dependant.dependencies:
        role = getattr(dependency.call, "hone_role", None)
        if role is not None:
            found.append(role)
        found += _roles_of(dependency)
    return found


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) for every route, also through FastAPI's included-router wrappers."""
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            yield route.path, route
        elif hasattr(route, "effective_route_contexts"):
            for context in route.effective_route_contexts():
                original = context.original_route
                if isinstance(original, APIRoute):
                    yield context.path or original.path, original
        elif hasattr(route, "path"):
            yield route.path, route  # plain Starlette routes (docs, openapi.json)


def endpoints(app: FastAPI) -> list[Endpoint]:
    found: list[Endpoint] = []
    for path, route in _api_routes(app):
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method == "HEAD":
                continue
            roles = _roles_of(route.dependant) if isinstance(route, APIRoute) else []
            assert len(set(roles)) <= 1, f"{method} {path} asks for several roles: {roles}"
            found.append(Endpoint(method, path, roles[0] if roles else None))
    return found


def test_every_route_is_protected_unless_it_is_on_the_public_list(
    make_api: Callable[..., Api], sqlite_url: str
) -> None:
    api = make_api(sqlite_url)
    found = endpoints(api.app)
    assert len(found) > 20, [f"{e.method} {e.path}" for e in found]
    unprotected = {(e.method, e.path) for e in found if e.role is None}
    assert unprotected == PUBLIC
    # Writes need admin or worker; every lease route is for workers.
    for endpoint in found:
        if endpoint.path.startswith("/api/v1/leases"):
            assert endpoint.role == "worker", endpoint
        elif endpoint.method in {"POST", "DELETE", "PUT", "PATCH"}:
            assert endpoint.role == "admin", endpoint
        elif endpoint.role is not None:
            assert endpoint.role == "read", endpoint


def expected(credential: str, required: Role) -> int | None:
    """401 or 403 where the credential may not pass; None where it may (any non-auth answer)."""
    if credential in ("none", "malformed", "unknown", "revoked"):
        return 401
    return None if ROLES.index(credential) >= ROLES.index(required) else 403  # type: ignore[arg-type]


@pytest.fixture
def matrix_api(make_api: Callable[..., Api], sqlite_url: str) -> Api:
    api = make_api(sqlite_url)
    revoked = api.token("admin", name="revoked admin")
    with api.db.transaction() as session:
        row = session.scalars(select(Token).where(Token.hash == auth.hash_token(revoked))).one()
        assert auth.revoke_token(session, token_id=row.id, now=utcnow())
    api.tokens_by_kind = {  # type: ignore[attr-defined]
        "none": None,
        "malformed": "Basic dXNlcjpwYXNz",
        "unknown": "Bearer " + auth.generate_token(),
        "revoked": f"Bearer {revoked}",
        **{role: f"Bearer {api.tokens[role]}" for role in ROLES},
    }
    return api


def _url(api: Api, endpoint: Endpoint, study_id: int) -> str:
    if endpoint.method == "DELETE":  # an allowed delete must find a study each time
        study_id = api.create_study(name=f"s-{uuid.uuid4().hex[:8]}")["id"]
    values = {"study_id": study_id, "number": 0, "lease_id": uuid.uuid4().hex, "round_number": 1}
    path = re.sub(r"{(\w+)}", lambda m: str(values.get(m.group(1), 1)), endpoint.path)
    return path + ("?max_seconds=0.2" if path.endswith("/events") else "")


def test_every_route_answers_each_credential_as_documented(matrix_api: Api) -> None:
    api = matrix_api
    failures: list[str] = []
    protected = [e for e in endpoints(api.app) if e.role is not None]
    study_id = api.create_study()["id"]
    for endpoint in protected:
        for kind in CREDENTIALS:
            header = api.tokens_by_kind[kind]  # type: ignore[attr-defined]
            headers = {"Authorization": header} if header else {}
            response = api.client.request(
                endpoint.method, _url(api, endpoint, study_id), headers=headers, json={}
            )
            want = expected(kind, endpoint.role)  # type: ignore[arg-type]
            got = response.status_code
            ok = got == want if want is not None else got not in (401, 403) and got < 500
            if want == 401 and ok:
                ok = response.headers.get("www-authenticate", "").lower().startswith("bearer")
            if not ok:
                failures.append(
                    f"{endpoint.method} {endpoint.path} [{kind}]: {got} (want {want or 'allowed'})"
                )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "bearer hone_",
        "Token " + "a" * 43,
        "Bearer " + "x" * 10_000,
        "Bearer hone_" + "é" * 43,
        "Bearer hone_\x00\x01",
    ],
    ids=["empty", "blank", "prefix-only", "other-scheme", "huge", "non-ascii", "control-chars"],
)
def test_malformed_authorization_headers_are_401_never_500(
    make_api: Callable[..., Api], sqlite_url: str, header: str
) -> None:
    api = make_api(sqlite_url)
    try:
        response = api.client.get("/api/v1/studies", headers={"Authorization": header})
    except (httpx.LocalProtocolError, UnicodeEncodeError):
        return  # the client itself refuses to send it: nothing reaches the API
    assert response.status_code == 401


def test_tokens_are_stored_as_sha256_hashes_only(make_api: Callable[..., Api], sqlite_url: str) -> None:
    api = make_api(sqlite_url)
    with api.db.reading() as session:
        rows = list(session.scalars(select(Token)))
    assert len(rows) == len(ROLES)
    for row in rows:
        secret = api.tokens[row.role]  # type: ignore[index]
        stored = " ".join(str(value) for value in (row.name, row.hash, row.prefix, row.role))
        assert secret not in stored
        assert row.hash == auth.hash_token(secret) and re.fullmatch(r"[0-9a-f]{64}", row.hash)
        assert len(row.prefix) < len(secret) // 3  # enough to recognise it in a list, not to use it


def test_tokens_are_compared_in_constant_time(
    make_api: Callable[..., Api], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = make_api(sqlite_url, admin_token="bootstrap-admin-token-0123456789")
    compared: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert (
        api.client.get(
            "/api/v1/studies", headers={"Authorization": "Bearer bootstrap-admin-token-0123456789"}
        ).status_code
        == 200
    )
    assert compared, "the bootstrap admin token was not compared with hmac.compare_digest"
    compared.clear()
    assert api.get("/studies", role="read").status_code == 200
    assert any(auth.hash_token(api.tokens["read"]) in pair for pair in compared)


def test_no_token_appears_in_the_api_logs(
    make_api: Callable[..., Api], sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = "bootstrap-admin-token-abcdef0123456789"
    api = make_api(sqlite_url, admin_token=admin)
    secrets = [admin, *api.tokens.values()]
    with caplog.at_level(logging.DEBUG):
        for secret in secrets:
            headers = {"Authorization": f"Bearer {secret}"}
            api.client.get("/api/v1/studies", headers=headers)
            api.client.post("/api/v1/studies", headers=headers, json={"name": 1})
            api.client.post("/api/v1/leases/nope/complete", headers=headers, json={"value": 1})
        api.client.get("/api/v1/studies", headers={"Authorization": f"Bearer {admin}x"})
    text = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert caplog.records, "nothing was logged: the test would prove nothing"
    for secret in secrets:
        assert secret not in text
