from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from hone.settings import Settings
from service import migrate
from service.app import create_app
from service.deps import get_db
from tests.api.conftest import Api, add_trials


def test_healthz_and_readyz_answer_without_a_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["schema_current"] is True


def test_readyz_is_503_when_the_schema_is_behind(api: Api) -> None:
    migrate.downgrade(api.url, "base")
    ready = api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["schema_current"] is False
    assert "hone db upgrade" in ready.json()["detail"]
    assert migrate.is_current(api.url) is False


def test_metrics_count_requests_by_route_and_trials_by_state(api: Api) -> None:
    study_id = api.create_study()["id"]
    add_trials(api.db, study_id=study_id, values=[0.1, None])
    api.get(f"/studies/{study_id}")
    text = api.client.get("/metrics", headers=api.headers("read")).text
    assert 'hone_http_requests_total{method="GET",route="/studies/{study_id}",status="200"} 1.0' in text
    assert 'hone_trials{state="complete"} 1.0' in text
    assert 'hone_trials{state="failed"} 1.0' in text
    assert "hone_database_up 1.0" in text


def test_metrics_count_the_turns_that_answered_lease_requests(api: Api) -> None:
    api.create_study(rounds=[{"trials": 2}])
    for _ in range(3):  # two grants, then no room: each its own turn here (one at a time)
        api.post("/leases", role="worker", json={"worker": "w", "devices": ["cpu"]})
    text = api.client.get("/metrics", headers=api.headers("read")).text
    assert "hone_lease_grant_batches_total 3.0" in text
    assert "hone_lease_requests_answered_total 3.0" in text


def test_metrics_count_the_batches_that_answered_heartbeats(api: Api) -> None:
    api.create_study()
    lease = api.post("/leases", role="worker", json={"worker": "w", "devices": ["cpu"]}).json()["lease"]["id"]
    for _ in range(2):  # one at a time here: a batch each
        assert api.post(f"/leases/{lease}/heartbeat", role="worker").status_code == 200
    text = api.client.get("/metrics", headers=api.headers("read")).text
    assert "hone_heartbeat_batches_total 2.0" in text
    assert "hone_heartbeats_answered_total 2.0" in text


def test_an_unreachable_database_is_a_503_with_retry_after(api: Api) -> None:
    def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    api.app.dependency_overrides[get_db] = unreachable
    response = api.get("/studies")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "unavailable" in response.json()["detail"]


def test_a_database_that_went_away_is_a_503_not_a_500(
    postgres_url: str, make_api: Callable[..., Api]
) -> None:
    from sqlalchemy import create_engine, text

    api = make_api(postgres_url)
    assert api.get("/studies").status_code == 200
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    api.app.state.db.engine.pool._pre_ping = False  # the pool must hand out a dead connection
    api.app.state.db.read_sessions.kw["bind"].pool._pre_ping = False
    response = api.get("/studies")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert api.get("/studies").status_code == 200  # the pool threw the dead connection away


@pytest.mark.parametrize("origin", ["https://dash.example"])
def test_cors_allows_the_configured_origins_only(
    sqlite_url: str, make_api: Callable[..., Api], origin: str
) -> None:
    api = make_api(sqlite_url, cors_origins=[origin])
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = api.client.options("/api/v1/studies", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == origin
    other = api.client.options("/api/v1/studies", headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_openapi_schema_documents_every_error_status(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if not path.startswith("/api/v1/studies"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "403", "503"} <= codes, (method, path)
            if "{study_id}" in path:
                assert "404" in codes, (method, path)


def test_the_app_starts_on_a_fresh_database_and_says_it_is_not_ready(sqlite_url: str) -> None:
    app = create_app(Settings(_env_file=None, database_url=sqlite_url))  # type: ignore[call-arg]
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503


def test_the_docs_pages_load_their_assets_from_the_api_not_a_cdn(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = api.client.get(page).text
        assert "cdn" not in html.lower() and "googleapis" not in html
        scripts = re.findall(r'src="([^"]+)"', html) + re.findall(r'href="([^"]+\.css)"', html)
        assert scripts, page
        for asset in scripts:
            answer = api.client.get(asset)
            assert answer.status_code == 200 and len(answer.content) > 1000, asset


def test_what_start_up_made_is_kept_out_of_full_collections_while_the_app_runs(sqlite_url: str) -> None:
    # A full collection of ~250,000 start-up objects stopped every request for ~100 ms every
    # few seconds under a fleet's heartbeats (benchmarks/fleet_scale.py).
    migrate.upgrade(sqlite_url)
    app = create_app(Settings(_env_file=None, database_url=sqlite_url))  # type: ignore[call-arg]
    assert gc.get_freeze_count() == 0
    started = time.perf_counter()
    gc.collect()
    unfrozen = time.perf_counter() - started
    with TestClient(app):
        assert gc.get_freeze_count() > 100_000
        started = time.perf_counter()
        gc.collect()
        assert time.perf_counter() - started < unfrozen / 4
    assert gc.get_freeze_count() == 0  # collectable again once the app stops
