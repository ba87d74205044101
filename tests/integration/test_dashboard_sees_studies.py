"""A study created over REST is an ordinary Optuna study: optuna-dashboard's own JSON API
lists it, with its trials, from the same database."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import optuna
import optuna_dashboard

from tests.api.conftest import Api, make_api, sqlite_template  # noqa: F401 - fixtures


def _get(app: Any, path: str) -> Any:
    """GET through the dashboard's WSGI app in-process (no server, no port)."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = status

    environ = {
        "REQUEST_METHOD": "GET",
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
    assert captured["status"].startswith("200"), (path, captured["status"], body[:300])
    return json.loads(body)


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
