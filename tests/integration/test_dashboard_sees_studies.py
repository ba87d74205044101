"""A study created over REST is an ordinary Optuna study: optuna-dashboard's own JSON API
lists it, with its trials, from the same database."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import optuna
import optuna_dashboard
from sqlalchemy import text

from hone.commands.dashboard import read_only
from tests.api.conftest import Api, make_api, sqlite_template  # noqa: F401 - fixtures


def _get(app: Any, path: str) -> Any:
    """GET through the dashboard's WSGI app in-process (no server, no port)."""
    status, body = _call(app, "GET", path)
    assert status.startswith("200"), (path, status, body[:300])
    return json.loads(body)


def _call(app: Any, method: str, path: str) -> tuple[str, bytes]:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = status

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    body = b"".join(app(environ, start_response))
    return str(captured["status"]), body


def test_optuna_dashboard_lists_a_study_created_over_rest_with_its_trials(
    db_url: str,
    make_api: Callable[..., Api],  # noqa: F811 - the fixture imported above
) -> None:
    api = make_api(db_url)
    study = api.create_study()
    storage = optuna.storages.RDBStorage(db_url)
    optuna_study = optuna.load_study(study_name=study["name"], storage=storage)
    for lr in (0.01, 0.1):
        trial = optuna_study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)})
        trial.report(0.9, step=0)
        optuna_study.tell(trial, lr * 2)

    dashboard = optuna_dashboard.wsgi(storage)
    listed = _get(dashboard, "/api/studies")["study_summaries"]
    assert [(s["study_id"], s["study_name"]) for s in listed] == [(study["id"], "digits")]

    detail = _get(dashboard, f"/api/studies/{study['id']}")
    assert [t["state"] for t in detail["trials"]] == ["Complete", "Complete"]
    assert [t["values"] for t in detail["trials"]] == [[0.02], [0.2]]
    assert detail["objective_names"] == ["val_loss"]
    assert any(attr["key"] == "hone_spec" for attr in detail["user_attrs"])
    storage.engine.dispose()


def test_hone_serves_the_dashboard_read_only_and_its_delete_button_does_not_break_hone(
    db_url: str,
    make_api: Callable[..., Api],  # noqa: F811 - the fixture imported above
) -> None:
    api = make_api(db_url)
    study = api.create_study()
    api.post("/leases", role="worker", json={"worker": "host-1-0", "devices": ["cpu"]})
    storage = optuna.storages.RDBStorage(db_url)
    dashboard = optuna_dashboard.wsgi(storage)

    status, body = _call(read_only(dashboard), "DELETE", f"/api/studies/{study['id']}")
    assert status.startswith("403") and b"read-only" in body
    assert _get(read_only(dashboard), f"/api/studies/{study['id']}")["name"] == "digits"

    # With --allow-writes, the trash icon: Optuna deletes the study on its own connection.
    status, _ = _call(dashboard, "DELETE", f"/api/studies/{study['id']}")
    assert status.startswith("204") or status.startswith("200"), status
    with api.db.reading() as session:
        assert session.execute(text("SELECT count(*) FROM hone_trials")).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM hone_studies")).scalar() == 0
    assert api.get(f"/studies/{study['id']}").status_code == 404
    created = api.post("/studies", json={**study["spec"], "name": "never-used"})
    assert created.status_code == 201, created.text
    assert created.json()["id"] != study["id"]
    storage.engine.dispose()
