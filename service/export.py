"""A study's trials as CSV or JSON, streamed in batches from ``hone_trials``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal

from protocol import TrialOut
from service.db import Database
from service.results import trial_batches

ExportFormat = Literal["csv", "json"]
_COLUMNS = (
    "number",
    "round",
    "config_number",
    "attempt",
    "state",
    "value",
    "last_step",
    "reason",
    "worker_id",
    "started_at",
    "finished_at",
    "duration_s",
)


def export_csv(db: Database, *, study_id: int, param_names: list[str]) -> Iterator[str]:
    """A header, then one row per trial; parameters flattened as ``params_<name>`` columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_COLUMNS, *(f"params_{name}" for name in param_names)])
    yield _drain(buffer)
    for batch in trial_batches(db.reading, study_id=study_id):
        for trial in batch:
            row = trial.model_dump(mode="json")
            writer.writerow(
                [_cell(row[column]) for column in _COLUMNS]
                + [_cell(trial.params.get(name)) for name in param_names]
            )
        yield _drain(buffer)


def export_json(db: Database, *, study_id: int) -> Iterator[str]:
    """A JSON array of trials (the fields of ``GET …/trials``), written batch by batch."""
    yield "["
    first = True
    for batch in trial_batches(db.reading, study_id=study_id):
        for trial in batch:
            yield ("" if first else ",\n") + _dump(trial)
            first = False
    yield "]\n"


def _dump(trial: TrialOut) -> str:
    return trial.model_dump_json()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
