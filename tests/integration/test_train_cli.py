"""The real ``hone train`` command, run as a process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.config import KNOBS

pytestmark = pytest.mark.slow


def _hone() -> list[str]:
    script = Path(sys.executable).parent / "hone"
    if script.exists():
        return [str(script)]
    found = shutil.which("hone")
    assert found, "the hone console script is not installed"
    return [found]


def hone(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([*_hone(), *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_json_output_is_one_object_with_every_epoch() -> None:
    done = hone("train", "--dataset", "iris", "--max-epochs", "3", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [e["epoch"] for e in data["epochs"]] == [1, 2, 3]
    assert set(data["epochs"][0]) == {
        "epoch",
        "lr",
        "batch_loss",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
    }
    assert data["train_measured_on"] == {"rows": 90, "of": 90, "sample": False}
    assert data["status"] == "completed" and data["stopped_early"] is False
    assert set(data["test"]) == {"test_loss", "test_accuracy"}
    assert data["config"]["dataset"] == "iris"


def test_progress_is_printed_a_line_per_epoch() -> None:
    done = hone("train", "--dataset", "wine", "--max-epochs", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert "train_accuracy" in lines[1] and "val_accuracy" in lines[1]
    assert "train_* on all" in lines[-1]
    assert lines[-1].startswith("completed")


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": "iris", "lr": 0.5, "max_epochs": 2, "hidden_units": [8, 4]}))
    done = hone("train", "--config", str(config), "--lr", "0.01", "--keep-prob", "0.9,1", "--json")
    assert done.returncode == 0, done.stderr
    used = json.loads(done.stdout)["config"]
    assert (used["lr"], used["max_epochs"], used["hidden_units"]) == (0.01, 2, [8, 4])
    assert used["keep_prob"] == [0.9, 1.0]


def test_every_knob_is_a_flag() -> None:
    done = hone("train", "--help")
    assert done.returncode == 0
    missing = [k for k in KNOBS if f"--{k.replace('_', '-')}" not in done.stdout]
    assert not missing


def test_an_invalid_value_names_the_field_and_exits_2_without_a_traceback() -> None:
    done = hone("train", "--lr", "-1")
    assert done.returncode == 2
    assert "lr" in done.stderr and "greater than 0" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_unknown_key_in_the_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"learning_rate": 0.1}))
    done = hone("train", "--config", str(config))
    assert done.returncode == 2
    assert "learning_rate" in done.stderr and "Traceback" not in done.stderr


def test_bad_data_is_a_message_and_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n3,4\n")
    done = hone("train", "--dataset", str(data), "--target", "price")
    assert done.returncode == 2
    assert "target column 'price' not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_diverging_run_reports_its_status_and_exits_1() -> None:
    done = hone(
        "train", "--dataset", "iris", "--optimizer", "sgd", "--lr", "90", "--no-normalize-inputs", "--json"
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["status"] == "diverged"


def test_digits_reaches_96_percent_test_accuracy_well_under_a_minute() -> None:
    started = time.perf_counter()
    done = hone("train", "--dataset", "digits", "--json")
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["test"]["test_accuracy"] >= 0.96
    assert seconds < 60
