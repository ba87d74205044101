from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hone.cli import app
from service import migrate
from service.auth import hash_token, stored_principal
from service.db import Database

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HONE_DATABASE_URL", raising=False)
    monkeypatch.delenv("HONE_ADMIN_TOKEN", raising=False)


def test_db_upgrade_creates_the_schema_under_the_data_dir(tmp_path: Path) -> None:
    assert runner.invoke(app, ["db", "current", "--data-dir", str(tmp_path)]).exit_code == 1
    result = runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    url = f"sqlite:///{tmp_path / 'hone.db'}"
    assert migrate.is_current(url)
    assert runner.invoke(app, ["db", "current", "--data-dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["db", "downgrade", "base", "--data-dir", str(tmp_path)]).exit_code == 0
    assert migrate.current_revision(url) is None


def test_hone_database_url_wins_over_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path / "ignored")]).exit_code == 0
    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "ignored").exists()


def test_a_created_token_is_printed_once_works_and_can_be_revoked(tmp_path: Path) -> None:
    runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)])
    created = runner.invoke(
        app, ["token", "create", "--role", "worker", "--name", "gpu box", "--data-dir", str(tmp_path)]
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("hone_") and len(secret) == 5 + 43
    db = Database(f"sqlite:///{tmp_path / 'hone.db'}")
    with db.reading() as session:
        principal = stored_principal(session, digest=hash_token(secret))
    assert principal is not None and principal.role == "worker"
    listed = runner.invoke(app, ["token", "list", "--data-dir", str(tmp_path)])
    assert "gpu box" in listed.stdout and secret not in listed.stdout
    assert runner.invoke(app, ["token", "revoke", "1", "--data-dir", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "1", "--data-dir", str(tmp_path)]).exit_code == 1
    with db.reading() as session:
        assert stored_principal(session, digest=hash_token(secret)) is None
    db.dispose()


def test_token_create_refuses_an_unknown_role_and_a_missing_schema(tmp_path: Path) -> None:
    assert (
        runner.invoke(app, ["token", "create", "--role", "root", "--data-dir", str(tmp_path)]).exit_code == 2
    )
    missing = runner.invoke(app, ["token", "create", "--role", "admin", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 2
    assert "hone db upgrade" in missing.output


def test_the_api_refuses_a_stale_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["api", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "hone db upgrade" in result.output


def test_the_api_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)])
    result = runner.invoke(app, ["api", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_the_api_refuses_several_processes_on_sqlite(tmp_path: Path) -> None:
    runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path)])
    result = runner.invoke(app, ["api", "--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--workers 2 needs PostgreSQL" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    zero = runner.invoke(app, ["api", "--workers", "0", "--data-dir", str(tmp_path)])
    assert zero.exit_code == 2 and "--workers" in zero.output
