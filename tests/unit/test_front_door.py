"""Pieces of `hone up` and `hone study watch` that need no running stack."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from rich.console import Console

from hone.commands.study import render_best, render_summary
from hone.stack import ensure_admin_token, port_is_free
from protocol import RoundOut, StudySummary, TrialDetail
from tests.unit.answers import NOW, study_json, trial_json


def test_the_admin_token_is_made_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    token, created = ensure_admin_token(tmp_path)
    again, created_again = ensure_admin_token(tmp_path)
    assert created and not created_again
    assert token == again and len(token) >= 32
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600


def test_a_port_in_use_is_not_free() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert not port_is_free("127.0.0.1", sock.getsockname()[1])


def test_the_watch_view_shows_counts_best_round_box_and_progress() -> None:
    study = StudySummary.model_validate(
        study_json(
            id=4,
            name="digits",
            status="running",
            direction="maximize",
            metric="val_accuracy",
            current_round=2,
            rounds=3,
            budget=24,
            counts={
                "running": 2,
                "complete": 10,
                "pruned": 3,
                "failed": 1,
                "total": 16,
                "configurations": 16,
            },
            best=trial_json(number=7, value=0.9631, params={"lr": 0.01}),
        )
    )
    quiet = {"opened_at": NOW, "closed_at": None, "best_value": None, "best_trial_number": None, "counts": {}}
    rounds = [
        RoundOut.model_validate({"number": 1, "status": "closed", "budget": 12, "box": {}, **quiet}),
        RoundOut.model_validate(
            {
                "number": 2,
                "status": "open",
                "budget": 6,
                "box": {"lr": {"low": 0.001, "high": 0.05}, "optimizer": {"choices": ["adam"]}},
                **quiet,
            }
        ),
    ]
    console = Console(width=120, record=True)
    console.print(render_summary(study, rounds, started=None))
    text = console.export_text()
    for expected in (
        "complete 10",
        "pruned 3",
        "failed 1",
        "running 2",
        "0.9631",
        "round 2 of 3",
        "0.001 … 0.05",
        "adam",
        "14/24",
        "58%",
    ):
        assert expected in text, expected


def test_study_show_labels_the_best_trials_parameters_and_shows_its_metrics() -> None:
    study = StudySummary.model_validate(study_json(metric="val_accuracy", direction="maximize"))
    best = TrialDetail.model_validate(
        {
            **trial_json(number=7, value=0.9631, params={"lr": 0.01, "optimizer": "adam"}),
            "trial_id": 8,
            "lease_expires_at": None,
            "heartbeat_at": None,
            "intermediate_values": {},
            "metrics": {"test_accuracy": 0.955, "epochs": 12.0},
        }
    )
    console = Console(width=80, record=True)
    console.print(render_best(study, best))
    text = console.export_text()
    assert "best trial #7: val_accuracy 0.9631" in text
    assert "best value" not in text  # the column holds each parameter's value
    for row in (
        r"parameter\s+┃\s+value",
        r"lr\s+│\s+0.01",
        r"metric\s+┃\s+value",
        r"test_accuracy\s+│\s+0.955",
    ):
        assert re.search(row, text), (row, text)
