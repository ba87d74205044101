"""An app over a fresh, upgraded database, with a token of each role.

``make_api(db_url)`` is the factory (other test packages reuse it); ``api`` is one app on
the parametrised ``db_url`` (SQLite and PostgreSQL). ``add_trials`` writes ``hone_trials``
rows straight into the table, as a lease grant and its report would.
"""

from __future__ import annotations

import copy
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from hone.settings import Settings
from service import migrate
from service.app import create_app
from service.auth import Role, create_token
from service.db import Database
from service.tables import Trial, utcnow
from tests.conftest import POSTGRES_URL

SPEC: dict[str, Any] = {
    "name": "digits",
    "objective": {"trainer": "mlp", "dataset": "digits", "metric": "val_loss", "direction": "minimize"},
    "space": {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        "n_layers": {"type": "int", "low": 1, "high": 4},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    },
    "sampler": {"type": "random", "seed": 1},
    "rounds": [{"trials": 10}, {"trials": 5}],
}


def spec(**changes: Any) -> dict[str, Any]:
    """A valid spec (a copy), with top-level fields replaced."""
    return {**copy.deepcopy(SPEC), **changes}


@dataclass
class Api:
    """A running app, its test client, its database and one token per role."""

    app: FastAPI
    client: TestClient
    url: str
    db: Database
    tokens: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: Role = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.get(f"/api/v1{path}", headers=headers, **kwargs)

    def post(self, path: str, role: Role = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.post(f"/api/v1{path}", headers=headers, **kwargs)

    def delete(self, path: str, role: Role = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.delete(f"/api/v1{path}", headers=headers, **kwargs)

    def create_study(self, **changes: Any) -> dict[str, Any]:
        response = self.post("/studies", json=spec(**changes))
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def token(self, role: Role, name: str = "test") -> str:
        with self.db.transaction() as session:
            _, secret = create_token(session, role=role, name=name, now=utcnow())
        return secret


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file upgraded once per session by ``service.migrate.upgrade``; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "hone.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database upgraded once per session; tests are created from it (TEMPLATE)."""
    if not POSTGRES_URL:
        pytest.skip("HONE_TEST_POSTGRES_URL not set")
    name = f"hone_tmpl_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        migrate.upgrade(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_FROM_TEMPLATE: set[str] = set()


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """Overrides the shared fixture for API tests: a fresh database, created already
    upgraded from the session's template (one CREATE DATABASE instead of an upgrade)."""
    name = f"hone_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    _FROM_TEMPLATE.add(url)
    try:
        yield url
    finally:
        _FROM_TEMPLATE.discard(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def upgraded(request: pytest.FixtureRequest, url: str) -> None:
    """Give the database at ``url`` the current schema: a SQLite file is copied from an
    upgraded template (an upgrade takes ~0.7 s, a copy milliseconds); a PostgreSQL
    database from ``postgres_url`` already is one, anything else is upgraded."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, str(parsed.database))
    elif url not in _FROM_TEMPLATE:
        migrate.upgrade(url)


@pytest.fixture
def make_api(request: pytest.FixtureRequest) -> Iterator[Callable[..., Api]]:
    """Factory: ``make_api(db_url, **settings)`` gives the database the current schema and
    starts an app on it, with a token of each role."""
    made: list[Api] = []

    def make(url: str, **settings: Any) -> Api:
        upgraded(request, url)
        app = create_app(Settings(_env_file=None, database_url=url, **settings))  # type: ignore[call-arg]
        client = TestClient(app)
        client.__enter__()
        api = Api(app=app, client=client, url=url, db=app.state.db)
        api.tokens = {role: api.token(role, name=f"{role} token") for role in ("read", "worker", "admin")}
        made.append(api)
        return api

    yield make
    for api in made:
        api.client.__exit__(None, None, None)


@pytest.fixture
def api(db_url: str, make_api: Callable[..., Api]) -> Api:
    return make_api(db_url)


def add_trials(
    db: Database,
    *,
    study_id: int,
    values: list[float | None],
    start: int = 0,
    round_number: int = 1,
    state: str | None = None,
    params: Callable[[int], dict[str, Any]] | None = None,
    chunk: int = 1000,
    finished_at: datetime | None = None,
) -> None:
    """Bulk-insert ``hone_trials`` rows numbered from ``start`` (fast: no Optuna involved).

    ``trial_id`` is offset so it cannot collide with Optuna's real ids in these tests.
    """
    now = utcnow()
    rows = []
    for offset, value in enumerate(values):
        number = start + offset
        rows.append(
            {
                "study_id": study_id,
                "trial_id": 10_000_000 + study_id * 1_000_000 + number,
                "number": number,
                "round": round_number,
                "config_number": number,
                "attempt": 0,
                "state": state or ("complete" if value is not None else "failed"),
                "params": params(number) if params else {"lr": 0.01, "n_layers": 2, "optimizer": "adam"},
                "value": value,
                "worker_id": "w1",
                "started_at": (finished_at or now) - timedelta(seconds=10),
                "finished_at": finished_at or now,
                "updated_at": now,
            }
        )
    # One transaction per chunk: PostgreSQL's count trigger updates one hone_trial_counts row
    # per insert, and each update within a transaction walks that row's chain of versions, so
    # 100k rows in one transaction took minutes (quadratic); hone itself writes one trial a time.
    for begin in range(0, len(rows), chunk):
        with db.transaction() as session:
            session.execute(insert(Trial), rows[begin : begin + chunk])
