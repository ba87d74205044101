from pathlib import Path

import pytest
from pydantic import ValidationError

from hone.client import Client
from hone.settings import Settings, store_user_config, user_config_file


def test_placeholder_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(_env_file=None)


def test_the_worker_token_follows_the_admin_token_s_rules_and_empty_means_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HONE_WORKER_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="worker_token"):
        Settings(_env_file=None)
    monkeypatch.setenv("HONE_WORKER_TOKEN", "")  # what compose passes for an empty .env line
    assert Settings(_env_file=None).worker_token is None
    monkeypatch.setenv("HONE_WORKER_TOKEN", "w" * 32)
    assert Settings(_env_file=None).worker_token.get_secret_value() == "w" * 32  # type: ignore[union-attr]


def test_cors_origins_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_CORS_ORIGINS", "http://a.example, http://b.example")
    assert Settings(_env_file=None).cors_origins == ["http://a.example", "http://b.example"]


def test_heartbeat_interval_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_HEARTBEAT_INTERVAL", "0")
    with pytest.raises(ValidationError, match="heartbeat_interval"):
        Settings(_env_file=None)


def test_the_client_finds_the_stored_token_and_url_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HONE_TOKEN", raising=False)
    monkeypatch.delenv("HONE_API_URL", raising=False)
    stored = store_user_config({"HONE_API_URL": "http://127.0.0.1:8123", "HONE_TOKEN": "t" * 43})
    assert stored == user_config_file() and stored.stat().st_mode & 0o077 == 0
    store_user_config({"HONE_TOKEN": "u" * 43})  # updates one line, keeps the rest
    monkeypatch.chdir(tmp_path)  # no .env, no hone-data/ here
    with Client.from_settings(Settings()) as client:
        assert client.api_url == "http://127.0.0.1:8123"
        assert client._http.headers["Authorization"] == f"Bearer {'u' * 43}"
    monkeypatch.setenv("HONE_TOKEN", "v" * 43)  # the environment still wins
    assert Settings().token.get_secret_value() == "v" * 43  # type: ignore[union-attr]
