"""Complete API answers for tests that fake the API: what the service would send."""

from __future__ import annotations

from typing import Any

NOW = "2030-01-01T00:00:00Z"


def trial_json(**fields: Any) -> dict[str, Any]:
    """A ``TrialOut`` as the API sends it."""
    trial: dict[str, Any] = {
        "number": 0,
        "round": 1,
        "config_number": 0,
        "attempt": 0,
        "state": "complete",
        "params": {},
        "value": None,
        "last_step": None,
        "reason": None,
        "worker_id": None,
        "started_at": NOW,
        "finished_at": None,
        "duration_s": None,
        "updated_at": NOW,
    }
    trial.update(fields)
    trial.setdefault("config_number", trial["number"])
    return trial


def study_json(**fields: Any) -> dict[str, Any]:
    """A ``StudyDetail`` as the API sends it."""
    study: dict[str, Any] = {
        "id": 1,
        "name": "digits",
        "status": "running",
        "direction": "minimize",
        "metric": "val_loss",
        "current_round": 1,
        "rounds": 1,
        "budget": 10,
        "max_concurrent": None,
        "counts": {},
        "best": None,
        "created_at": NOW,
        "updated_at": NOW,
        "spec": {},
    }
    study.update(fields)
    return study
