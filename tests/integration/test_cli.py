"""The `hone` command: every subcommand has --help, and `hone study …` works against a real API.

The study commands run as real processes against a real `hone api` on a SQLite file; an
error is one red line and an exit code, never a traceback.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from hone.cli import app
from hone.settings import store_user_config
from tests.integration.processes import (
    ADMIN_TOKEN,
    REPO,
    TINY_STUDY,
    clean_env,
    free_port,
    hone,
    run_hone,
    running,
    wait_http,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli")]

SUBCOMMANDS = [
    ["up"],
    ["api"],
    ["worker"],
    ["dashboard"],
    ["db", "upgrade"],
    ["train"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    *[
        ["study", name]
        for name in (
            "create",
            "list",
            "show",
            "diagnose",
            "watch",
            "pause",
            "resume",
            "stop",
            "export",
            "delete",
        )
    ],
]


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def _command(args: list[str]) -> Any:
    command: Any = typer.main.get_command(app)
    for name in args:
        command = command.commands[name]
    return command


@pytest.mark.parametrize("args", SUBCOMMANDS, ids=" ".join)
def test_help_fits_80_columns_and_names_every_option_whole(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    assert "…" not in result.output and "<bool>" not in result.output
    for parameter in _command(args).params:
        for name in getattr(parameter, "opts", []):
            if name.startswith("--"):
                assert re.search(rf"(^|[ ,/]){re.escape(name)}($|[ ,/=])", result.output, re.M), name


def test_hone_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"hone {importlib.metadata.version('hone')}"


def test_a_report_overhead_outside_zero_to_one_is_one_clear_error() -> None:
    result = run_hone("worker", "--token", ADMIN_TOKEN, "--report-overhead", "2", env=clean_env(), timeout=60)
    assert result.returncode == 2
    assert "--report-overhead" in result.stderr and "Traceback" not in result.stderr


class LiveApi:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir

    def study(self, *args: str, token: str | None = ADMIN_TOKEN, cwd: Path | None = None):  # type: ignore[no-untyped-def]
        options = ["--api", self.url] + (["--token", token] if token else [])
        return run_hone("study", *args, *options, env=clean_env(), cwd=cwd or self.workdir, timeout=60)

    def spec_file(self, name: str, **changes: object) -> Path:
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps({**TINY_STUDY, "name": name, **changes}))
        return path


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    workdir = tmp_path_factory.mktemp("cli")
    env = clean_env(HONE_DATABASE_URL=f"sqlite:///{workdir / 'hone.db'}", HONE_ADMIN_TOKEN=ADMIN_TOKEN)
    upgrade = run_hone("db", "upgrade", env=env, cwd=workdir)
    assert upgrade.returncode == 0, upgrade.stderr
    port = free_port()
    argv = hone("api", "--host", "127.0.0.1", "--port", str(port))
    with running(argv, env=env, log=workdir / "api.log", cwd=workdir) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", process=process)
        yield LiveApi(url, workdir)


def created_id(stdout: str) -> int:
    match = re.search(r"created study (\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


def assert_one_line_error(result, code: int, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_create_prints_the_id_and_the_command_to_watch_it(live_api: LiveApi) -> None:
    result = live_api.study("create", str(live_api.spec_file("cli-create")))
    assert result.returncode == 0, result.stderr
    study_id = created_id(result.stdout)
    assert f"hone study watch {study_id}" in result.stdout


def test_list_and_show_describe_the_study(live_api: LiveApi) -> None:
    study_id = created_id(live_api.study("create", str(live_api.spec_file("cli-show"))).stdout)
    listing = live_api.study("list")
    assert listing.returncode == 0, listing.stderr
    assert "cli-show" in listing.stdout
    shown = live_api.study("show", str(study_id))
    assert shown.returncode == 0, shown.stderr
    assert "cli-show" in shown.stdout and "running" in shown.stdout
    assert "round 1 of 2" in shown.stdout


def test_pause_resume_stop_change_the_status_and_watch_exits_on_a_stopped_study(live_api: LiveApi) -> None:
    study_id = str(created_id(live_api.study("create", str(live_api.spec_file("cli-lifecycle"))).stdout))
    assert live_api.study("pause", study_id).returncode == 0
    assert "paused" in live_api.study("show", study_id).stdout
    assert live_api.study("resume", study_id).returncode == 0
    assert "running" in live_api.study("show", study_id).stdout
    assert live_api.study("stop", study_id).returncode == 0
    watched = live_api.study("watch", study_id)
    assert watched.returncode == 0, watched.stderr
    assert "stopped" in watched.stdout


def test_show_and_watch_say_a_study_failed_and_group_its_failures_by_cause(live_api: LiveApi) -> None:
    spec = live_api.spec_file("cli-failed", failure_policy={"first_trials": 2})
    study_id = created_id(live_api.study("create", str(spec)).stdout)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"{live_api.url}/api/v1", headers=headers) as api:
        for _ in range(2):
            grant = api.post("/leases", json={"worker": "w", "studies": [study_id]}).json()
            body = {"reason": "KeyError: 'accuracy'", "traceback": "Traceback ...\nKeyError: 'accuracy'"}
            assert api.post(f"/leases/{grant['lease']['id']}/fail", json=body).status_code == 200
    shown = live_api.study("show", str(study_id))
    assert shown.returncode == 0, shown.stderr
    assert "status failed" in shown.stdout
    assert "the first 2 trials failed with the same cause: KeyError: 'accuracy'" in shown.stdout
    assert re.search(r"2\s+│\s+KeyError: 'accuracy'", shown.stdout), shown.stdout
    watched = live_api.study("watch", str(study_id))
    assert watched.returncode == 0, watched.stderr
    assert f"study {study_id} failed" in watched.stdout and "failed: the first 2 trials" in watched.stdout


def test_diagnose_prints_the_verdict_the_numbers_and_the_recipe_or_one_line_without_data(
    live_api: LiveApi,
) -> None:
    study_id = created_id(live_api.study("create", str(live_api.spec_file("cli-diagnose"))).stdout)
    assert_one_line_error(live_api.study("diagnose", str(study_id)), 1, "no completed trial yet")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"{live_api.url}/api/v1", headers=headers) as api:
        grant = api.post("/leases", json={"worker": "w", "studies": [study_id]}).json()
        body = {"value": 0.9, "metrics": {"val_accuracy": 0.9, "train_accuracy": 1.0}}
        assert api.post(f"/leases/{grant['lease']['id']}/complete", json=body).status_code == 200
    shown = live_api.study("diagnose", str(study_id))
    assert shown.returncode == 0, shown.stderr
    assert "high_variance" in shown.stdout and "error = 1 − val_accuracy" in shown.stdout
    assert "Regularize more" in shown.stdout
    assert "note: l2: not searched" in shown.stdout  # the recipe would raise it
    as_json = json.loads(live_api.study("diagnose", str(study_id), "--json").stdout)
    assert as_json["verdict"] == "high_variance" and as_json["variance"] == pytest.approx(0.1)
    wrong_round = live_api.study("diagnose", str(study_id), "--round", "5")
    assert_one_line_error(wrong_round, 2, f"round: study {study_id} has rounds 1 to 1, not 5")


def test_export_writes_csv_and_json(live_api: LiveApi, tmp_path: Path) -> None:
    study_id = str(created_id(live_api.study("create", str(live_api.spec_file("cli-export"))).stdout))
    csv_path = tmp_path / "trials.csv"
    result = live_api.study("export", study_id, "--format", "csv", "-o", str(csv_path))
    assert result.returncode == 0, result.stderr
    assert csv_path.read_text().splitlines()[0].strip() != ""
    as_json = live_api.study("export", study_id, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    json.loads(as_json.stdout)


def test_delete_asks_first_and_removes_the_study_with_yes(live_api: LiveApi) -> None:
    study_id = str(created_id(live_api.study("create", str(live_api.spec_file("cli-delete"))).stdout))
    refused = live_api.study("delete", study_id)  # no terminal: the confirmation reads EOF
    assert refused.returncode == 1
    assert live_api.study("show", study_id).returncode == 0
    assert live_api.study("delete", study_id, "--yes").returncode == 0
    assert_one_line_error(live_api.study("show", study_id), 1, "")


def test_an_invalid_spec_is_one_line_naming_the_field(live_api: LiveApi) -> None:
    bad_space = {"lr": {"type": "float", "low": -1.0, "high": 0.1, "scale": "log"}}
    result = live_api.study("create", str(live_api.spec_file("cli-invalid", space=bad_space)))
    assert_one_line_error(result, 2, "space.lr.low")


def test_a_missing_or_malformed_file_is_bad_input(live_api: LiveApi) -> None:
    assert_one_line_error(live_api.study("create", "no-such-file.json"), 2, "cannot read")
    broken = live_api.workdir / "broken.json"
    broken.write_text("{not json")
    assert_one_line_error(live_api.study("create", str(broken)), 2, "not valid JSON")


def test_a_wrong_token_is_one_line(live_api: LiveApi) -> None:
    assert_one_line_error(live_api.study("list", token="x" * 40), 1, "token")


def test_an_unreachable_api_says_to_start_hone_up(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_hone("study", "list", "--api", url, "--token", ADMIN_TOKEN, env=clean_env(), cwd=tmp_path)
    assert_one_line_error(result, 1, f"cannot reach the hone API at {url} — is `hone up` running?")


def test_without_a_token_the_cli_uses_the_one_hone_up_keeps(live_api: LiveApi, tmp_path: Path) -> None:
    (tmp_path / "hone-data").mkdir()
    (tmp_path / "hone-data" / "admin-token").write_text(ADMIN_TOKEN + "\n")
    result = live_api.study("list", token=None, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_cli_finds_the_api_and_token_hone_up_stored_from_any_directory(
    live_api: LiveApi, tmp_path: Path
) -> None:
    store_user_config({"HONE_API_URL": live_api.url, "HONE_TOKEN": ADMIN_TOKEN})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # no .env, no hone-data/
    result = run_hone("study", "list", env=clean_env(), cwd=elsewhere, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_example_study_is_accepted_by_the_api(live_api: LiveApi) -> None:
    result = live_api.study("create", str(REPO / "examples" / "digits.json"))
    assert result.returncode == 0, result.stderr
    shown = live_api.study("show", str(created_id(result.stdout)))
    assert "round 1 of 3" in shown.stdout


def test_a_bad_knob_is_named_without_pydantics_value_error_prefix() -> None:
    result = CliRunner().invoke(app, ["train", "--keep-prob", "2"])
    assert result.exit_code == 2
    assert "keep_prob: every keep_prob must be in (0, 1]" in result.output
    assert "Value error" not in result.output
