import pytest
from pydantic import ValidationError

from hone.settings import Settings


def test_placeholder_admin_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_ADMIN_TOKEN", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(_env_file=None)


def test_cors_origins_accept_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_CORS_ORIGINS", "http://a.example, http://b.example")
    assert Settings(_env_file=None).cors_origins == ["http://a.example", "http://b.example"]


def test_heartbeat_interval_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HONE_HEARTBEAT_INTERVAL", "0")
    with pytest.raises(ValidationError, match="heartbeat_interval"):
        Settings(_env_file=None)
